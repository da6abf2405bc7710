"""Fused rules: a known piece of an objective recorded as one primitive whose VJP reuses the forward's work.

``SOFTMAX_CROSS_ENTROPY(z, onehot)``: the batch mean of softmax cross-entropy on logits ``z`` (batch, k)
with one-hot targets, in the formulation of ``nn.losses.CrossEntropy`` (per row b, with y the target class):

    d = (z - z_y) * (1 - onehot)        (d_y = 0 exactly; the other entries z_j - z_y)
    CE_b = logsumexp(d) = m + log(sum_j exp(d_j - m)),  m = max_j d_j
    value = sum_b CE_b / batch

and its gradient with respect to z, (softmax(d) - onehot) / batch, written without cancellation: the target
entry is -sum_{j != y} p_j (not p_y - 1, which loses every digit when p_y is near 1). Value and gradient are
those of the generic path bit for bit (the loss's own operations forward; ``ops.logsumexp_vjp``'s softmax,
exp(d - m) corrected by the rounding error of d - m, and the VJPs of the shift, in the same order; tested in
float64 and float32, numpy and torch),
in one record instead of seven. The forward keeps the gradient as the record's residual (``ops.Op.residual``);
the VJP is one multiplication, as in a hand-written backprop that reuses its softmax.

Cost: about 30 array operations on (batch, k) in the forward pass (where the generic path spends about as
many over both passes, plus six records' bookkeeping), one in the backward pass. On numpy, with the targets'
flat index ``hot=`` (``target_index``, computed where the loss is recorded), about 20: the same arithmetic, the
same bits, 49 us against the generic rule's 79 on 64 x 10 logits (a hand-written softmax cross-entropy without
the accuracy work: 34; minimums over interleaved rounds of 300 calls). On torch on the CPU, with the targets' columns
(``hot=`` is then gather's (batch, 1) index), 19 kernels instead of about 45: the same kernels on the same values,
so the same bits as the generic rule on torch; 180-240 us against its 310-370 on 64 x 10 float64 logits (torch's
own cross_entropy forward and backward, through torch.autograd: 115-160; timeit minimums, a noisy machine). On
CUDA the generic rule runs (the fast rules' test for a non-finite row would wait for the device).
Recorded with ``Tape.apply`` (the path that knows residuals); ``Reverse.value_and_grad`` uses it for
objectives whose loss is exactly ``CrossEntropy``.
"""
from __future__ import annotations

import math

import numpy as np

from .ops import make_op, softmax_shifted

_max_reduce, _add_reduce, _exp, _log1p = np.maximum.reduce, np.add.reduce, np.exp, np.log1p


def target_index(onehot):
    """The targets' positions, computed once where the loss is recorded (``hot=`` of ``SOFTMAX_CROSS_ENTROPY``): for a
    numpy matrix of exact one-hot rows, the flat index of each row's 1; for such a torch matrix on the CPU, each
    row's column as a (batch, 1) int64 tensor (``gather``'s index). None for anything else (the generic rule)."""
    if type(onehot).__module__ == "torch" and type(onehot).__name__ == "Tensor":
        if onehot.device.type != "cpu" or onehot.ndim != 2 or not onehot.dtype.is_floating_point:
            return None  # (CUDA: the generic rule, which needs no host sync for its fallback test)
        import torch  # (only reached with a torch tensor in hand)

        hot = target_index(onehot.numpy())
        return None if hot is None else torch.from_numpy(hot % onehot.shape[1]).reshape(-1, 1)
    if type(onehot) is not np.ndarray or onehot.ndim != 2 or onehot.dtype.kind != "f":
        return None
    hot = np.flatnonzero(onehot)
    if hot.shape[0] != onehot.shape[0] or not np.array_equal(hot // onehot.shape[1], np.arange(onehot.shape[0])) \
            or not (onehot.take(hot) == 1.0).all():
        return None
    return hot


def _softmax_cross_entropy(B, z, onehot, *, hot=None):
    if hot is not None and type(z) is type(onehot) and z.dtype == onehot.dtype and z.shape == onehot.shape:
        out = _numpy_softmax_cross_entropy(z, hot) if type(z) is np.ndarray else _torch_softmax_cross_entropy(z, hot)
        if out is not None:
            return out
    return _generic_softmax_cross_entropy(B, z, onehot)


def _generic_softmax_cross_entropy(B, z, onehot):
    # The value as nn.losses.CrossEntropy computes it, operation for operation; the gradient as the generic path's
    # VJPs compute it (logsumexp_vjp's softmax, then back through (z - z_y)(1 - onehot)): the same bits, in one record.
    c = 1.0 / onehot.shape[0]
    u = 1.0 - onehot
    zy = B.sum(onehot * z, axis=-1, keepdims=True)  # z_y (the one-hot row picks it exactly)
    d = (z - zy) * u
    value = B.sum(B.logsumexp(d, axis=-1)) / float(onehot.shape[0])  # (divided, as the loss: nn/losses.py)
    q = (c * softmax_shifted(B, d, -1)) * u  # p_j / batch off the target, 0 on it (logsumexp_vjp's softmax)
    grad = q - onehot * B.sum(q, axis=-1, keepdims=True)  # the target: -sum_{j != y} p_j / batch
    return value, grad


def _numpy_softmax_cross_entropy(z, hot):
    """The generic rule's arithmetic on numpy in about half its time: the same operations on the same values, so
    the same bits (tested). The targets are picked by their flat index ``hot`` instead of multiplied by the one-hot
    rows, the shift d - max(d) is made once for the value and the softmax (the generic rule makes it in both), and
    per-row steps that a whole-array count shows to be no-ops are skipped. None (use the generic rule) where a
    row's maximum is not finite or an entry is -inf: one check of the results finds both."""
    n = z.shape[0]
    c = 1.0 / n
    d = z - z.take(hot)[:, None]  # (z - z_y) * (1 - onehot): the factor changes no bit of a finite d (d_y = +0)
    m = _max_reduce(d, axis=-1, keepdims=True)
    x = d - m
    ex = _exp(x)
    # value: logsumexp(d) as the backends compute it (namespace.log_sum_exp_shifted): m + log1p(the sum of the
    # entries that are not a row's maximum + (the number of maxima - 1)); with n maxima in all, every row has one
    # and rest + 0.0 is rest
    top = x == 0
    rest = _add_reduce(ex, axis=-1, keepdims=True, where=~top)
    if np.count_nonzero(top) != n:
        rest = rest + (_add_reduce(top, axis=-1, keepdims=True, dtype=rest.dtype) - 1.0)
    value = _add_reduce((_log1p(rest) + m)[:, 0]) / n
    # gradient: ops.softmax_shifted on d (exp(x) corrected by the rounding error of x = d - m, TwoSum; the generic
    # rule zeroes a non-finite correction, which only a -inf entry or a non-finite maximum makes), times 1/n; 0 at
    # the target, where the generic rule's (1 - onehot) puts it, and then -sum_{j != y} p_j / n there
    bv = x - d
    e = ex * (1.0 + ((d - (x - bv)) + (-m - bv)))
    q = c * (e / _add_reduce(e, axis=-1, keepdims=True))
    q.put(hot, 0.0)
    target = _add_reduce(q, axis=-1)
    if not math.isfinite(value + _add_reduce(target)):  # a NaN correction, or an infinite or NaN maximum
        return None
    q.put(hot, -target)
    return value, q


def _torch_softmax_cross_entropy(z, col):
    """The generic rule's arithmetic with torch's own kernels on a CPU tensor, in a third of its operations: the
    same kernels on the same values (so the same bits as the generic rule on torch, tested), the targets picked by
    their column ``col`` ((batch, 1) int64) instead of multiplied by one-hot rows, the shift d - max(d) made once,
    and the products by (1 - onehot), the count of maxima and the correction's non-finite guard skipped where
    they change no bit. None (use the generic rule) where a row's maximum is not finite or an entry is -inf."""
    n = z.shape[0]
    c = 1.0 / n
    d = z - z.gather(1, col)  # (z - z_y) * (1 - onehot) for finite z: d_y = +0, and the factor 1 changes nothing
    m = d.amax(-1, keepdim=True)
    x = d - m
    ex = x.exp()
    top = x == 0
    rest = ex.masked_fill(top, 0.0).sum(-1, keepdim=True)
    if int(top.sum()) != n:  # a row with tied maxima: the generic rule's count term (rest + 0.0 is rest otherwise)
        rest = rest + (top.sum(-1, keepdim=True).to(d.dtype) - 1.0)
    value = (rest.log1p() + m).squeeze(-1).sum() / n
    bv = x - d  # softmax_shifted: exp(x) corrected by x's rounding error (TwoSum)
    e = ex * (1.0 + ((d - (x - bv)) + (-m - bv)))
    q = c * (e / e.sum(-1, keepdim=True))
    q.scatter_(1, col, 0.0)
    target = q.sum(-1, keepdim=True)
    if not math.isfinite(float(value + target.sum())):  # a NaN correction, or an infinite or NaN maximum
        return None
    return value, q.scatter_(1, col, -target)


SOFTMAX_CROSS_ENTROPY = make_op(
    "softmax_cross_entropy", _softmax_cross_entropy,
    lambda B, g, grad, z, onehot, *, hot=None: g * grad,  # ``grad``: the forward's residual, d value / d z
    None,                                    # the targets are data
    saves=("out", ""), residual=True)
