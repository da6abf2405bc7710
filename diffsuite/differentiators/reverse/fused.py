"""Fused rules: a known piece of an objective recorded as one primitive whose VJP reuses the forward's work.

``SOFTMAX_CROSS_ENTROPY(z, onehot)``: the batch mean of softmax cross-entropy on logits ``z`` (batch, k)
with one-hot targets, in the formulation of ``nn.losses.CrossEntropy`` (per row b, with y the target class):

    d = (z - z_y) * (1 - onehot)        (d_y = 0 exactly; the other entries z_j - z_y)
    CE_b = logsumexp(d) = m + log(sum_j exp(d_j - m)),  m = max_j d_j
    value = sum_b CE_b * (1 / batch)

and its gradient with respect to z, (softmax(d) - onehot) / batch, written without cancellation: the target
entry is -sum_{j != y} p_j (not p_y - 1, which loses every digit when p_y is near 1). Value and gradient are
those of the generic path bit for bit (the loss's own operations forward; ``ops.logsumexp_vjp``'s softmax,
exp(d - m) corrected by the rounding error of d - m, and the VJPs of the shift, in the same order; tested in
float64 and float32, numpy and torch),
in one record instead of seven. The forward keeps the gradient as the record's residual (``ops.Op.residual``);
the VJP is one multiplication, as in a hand-written backprop that reuses its softmax.

Cost: about 30 array operations on (batch, k) in the forward pass (where the generic path spends about as
many over both passes, plus six records' bookkeeping), one in the backward pass.
Recorded with ``Tape.apply`` (the path that knows residuals); ``Reverse.value_and_grad`` uses it for
objectives whose loss is exactly ``CrossEntropy``.
"""
from __future__ import annotations

from .ops import make_op, softmax_shifted


def _softmax_cross_entropy(B, z, onehot):
    # The value as nn.losses.CrossEntropy computes it, operation for operation; the gradient as the generic path's
    # VJPs compute it (logsumexp_vjp's softmax, then back through (z - z_y)(1 - onehot)): the same bits, in one record.
    c = 1.0 / onehot.shape[0]
    u = 1.0 - onehot
    zy = B.sum(onehot * z, axis=-1, keepdims=True)  # z_y (the one-hot row picks it exactly)
    d = (z - zy) * u
    value = B.sum(B.logsumexp(d, axis=-1)) * c
    q = (c * softmax_shifted(B, d, -1)) * u  # p_j / batch off the target, 0 on it (logsumexp_vjp's softmax)
    grad = q - onehot * B.sum(q, axis=-1, keepdims=True)  # the target: -sum_{j != y} p_j / batch
    return value, grad


SOFTMAX_CROSS_ENTROPY = make_op(
    "softmax_cross_entropy", _softmax_cross_entropy,
    lambda B, g, grad, z, onehot: g * grad,  # ``grad``: the forward's residual, d value / d z
    None,                                    # the targets are data
    saves=("out", ""), residual=True)
