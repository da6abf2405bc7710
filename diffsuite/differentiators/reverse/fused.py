"""Fused rules: a known piece of an objective recorded as one primitive whose VJP reuses the forward's work.

``SOFTMAX_CROSS_ENTROPY(z, onehot)``: the batch mean of softmax cross-entropy on logits ``z`` (batch, k)
with one-hot targets, in the formulation of ``nn.losses.CrossEntropy`` (per row b, with y the target class):

    d = (z - z_y) * (1 - onehot)        (d_y = 0 exactly; the other entries z_j - z_y)
    CE_b = logsumexp(d) = m + log(sum_j exp(d_j - m)),  m = max_j d_j
    value = sum_b CE_b * (1 / batch)

and its gradient with respect to z, (softmax(d) - onehot) / batch, written without cancellation: the target
entry is -sum_{j != y} p_j (not p_y - 1, which loses every digit when p_y is near 1). The softmax is the
one ``ops.logsumexp_vjp`` computes (exp(d - m) corrected by the rounding error of d - m, TwoSum), so the
fused rule is as accurate as the generic path it replaces. The forward keeps that gradient as the record's
residual (``ops.Op.residual``); the VJP is one multiplication, as in a hand-written backprop that reuses
its softmax. The generic path records six primitives and recomputes the softmax in the backward pass.

Cost: about 25 array operations on (batch, k) in the forward pass, one in the backward pass.
Recorded with ``Tape.apply`` (the path that knows residuals); ``Reverse.value_and_grad`` uses it for
objectives whose loss is exactly ``CrossEntropy``.
"""
from __future__ import annotations

import math

from .ops import make_op


def _softmax_cross_entropy(B, z, onehot):
    n = onehot.shape[0]
    u = 1.0 - onehot
    zy = B.sum(onehot * z, axis=-1, keepdims=True)  # z_y (the one-hot row picks it exactly)
    d = (z - zy) * u
    m = B.amax(d, axis=-1, keepdims=True)
    dm = d - m
    e = B.exp(dm)
    value = B.sum(B.log(B.sum(e, axis=-1, keepdims=True)) + m) * (1.0 / n)
    if not math.isfinite(B.item(value)):  # an infinite logit: the backend's logsumexp handles it
        value = B.sum(B.logsumexp(d, axis=-1)) * (1.0 / n)
    # the gradient, as ops.logsumexp_vjp's softmax: TwoSum recovers the rounding error of d - m
    bv = dm - d
    err = (d - (dm - bv)) + (-m - bv)
    err = B.where(err - err == 0, err, 0.0)  # (an infinite entry: no correction)
    e = e * (1.0 + err)
    q = (e / B.sum(e, axis=-1, keepdims=True)) * u  # p_j off the target, 0 on it
    grad = (q - onehot * B.sum(q, axis=-1, keepdims=True)) * (1.0 / n)  # the target: -sum_{j != y} p_j
    return value, grad


SOFTMAX_CROSS_ENTROPY = make_op(
    "softmax_cross_entropy", _softmax_cross_entropy,
    lambda B, g, grad, z, onehot: g * grad,  # ``grad``: the forward's residual, d value / d z
    None,                                    # the targets are data
    saves=("out", ""), residual=True)
