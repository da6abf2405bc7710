"""Losses of the lecture, averaged over the batch, written once against ``xp``.

A loss is a frozen object with ``prepare(targets, n_out)`` (validate the targets once, in numpy,
and turn them into the float array the formula uses) and ``loss(xp, outputs, prepared)`` -> scalar.
Outputs are (batch, n_out). "Averaged over the batch" means summed over outputs, divided by batch.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..labels import label_values, plain
from .activations import Activation, Sigmoid, Softmax


def _as_column_targets(targets, n_out: int, loss: str) -> np.ndarray:
    raw = np.asarray(targets)
    if raw.dtype.kind in "USV":  # (numpy would parse "1.5" as the number 1.5)
        raise ValueError(f"loss {loss!r} needs numeric targets; got text (dtype {raw.dtype})")
    try:
        t = np.asarray(targets, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"loss {loss!r} needs numeric targets of shape (batch, {n_out}); got values that are "
                         f"not numbers (dtype {raw.dtype})") from None
    if t.ndim == 1 and n_out == 1:
        t = t[:, None]
    if t.ndim != 2 or t.shape[1] != n_out:
        raise ValueError(f"loss {loss!r} needs targets of shape (batch, {n_out})"
                         f"{' or (batch,)' if n_out == 1 else ''}; got shape {np.shape(targets)}")
    return t


@dataclass(frozen=True)
class Loss:
    name: ClassVar[str] = "loss"
    has_kink: ClassVar[bool] = False

    def prepare(self, targets, n_out: int) -> np.ndarray:
        return _as_column_targets(targets, n_out, self.name)

    def __call__(self, xp: Any, outputs: Any, targets: Any) -> Any:
        raise NotImplementedError

    def on_logits(self, activation: Activation) -> Loss | None:
        """This loss of ``activation(z)`` written as a loss of the pre-activations z, where that program is better
        conditioned in floating point (the same function: ``Objective.evaluate`` uses it); None where there is none."""
        return None


@dataclass(frozen=True)
class Quadratic(Loss):
    """The lecture's J = 1/2 (y - y*)^2, summed over outputs, averaged over the batch; dJ/dy = y - y*."""

    name: ClassVar[str] = "quadratic"

    def __call__(self, xp, outputs, targets):
        r = outputs - targets
        # divided by 2n, not multiplied by 0.5 / n: the symbolic build (and the exact reference) read a float constant
        # as its exact binary value, and fl(1/3) is not 1/3 (the mean would be off in the last bit). A whole float,
        # exact either way, which the tape takes without converting it (an int would be a new array per call)
        return xp.sum(r * r) / (2.0 * targets.shape[0])


@dataclass(frozen=True)
class BinaryCrossEntropy(Loss):
    """-[y* log y + (1 - y*) log(1 - y)], averaged over batch (and summed over outputs).

    The lecture's slide drops the leading minus sign (and its dJ/dy the matching signs); the
    loss to *minimise* is the negative log-likelihood, as here. With ``from_logits=True`` the outputs
    are logits z and the loss is softplus(z) - y* z, which cannot overflow and is smooth everywhere (softplus
    is a primitive of every namespace, so the gradient at z = 0 is sigmoid(0) - y*, not a kink convention).
    """

    from_logits: bool = False
    name: ClassVar[str] = "binary_cross_entropy"

    def prepare(self, targets, n_out):
        t = super().prepare(targets, n_out)
        if np.any((t < 0) | (t > 1)):
            raise ValueError(f"binary_cross_entropy needs targets in [0, 1]; got values from {t.min()} to {t.max()}")
        return t

    def __call__(self, xp, outputs, targets):
        n = targets.shape[0]
        if self.from_logits:
            # softplus(z) - y z written as (1 - y) softplus(z) + y softplus(-z) (softplus(z) - z = softplus(-z)):
            # softplus is a smooth primitive, so the gradient at z = 0 is sigmoid(0) - y exactly, and neither the
            # value nor the gradient cancels in saturation (softplus(30) - 30 would lose 2% of 9e-14)
            # (divided by n: see Quadratic)
            return xp.sum((1.0 - targets) * xp.softplus(outputs) + targets * xp.softplus(-outputs)) / float(n)
        ll = targets * xp.log(outputs) + (1.0 - targets) * xp.log(1.0 - outputs)
        return xp.sum(ll) / -float(n)

    def on_logits(self, activation):
        """On a sigmoid output p = sigmoid(z): the from-logits form of z, as PyTorch's BCEWithLogitsLoss. On
        probabilities, log(1 - p) after p was rounded amplifies that rounding by p / (1 - p) (the whole loss is
        inf once p rounds to 1, from z = 36.8 in float64); on z it is softplus(z), accurate to a few ulp.
        On a softmax output: ``SoftmaxBinaryCrossEntropy``, the same idea per unit."""
        if self.from_logits:
            return None
        if isinstance(activation, Sigmoid):
            return BinaryCrossEntropy(from_logits=True)
        if isinstance(activation, Softmax):
            return SoftmaxBinaryCrossEntropy()
        return None


@functools.lru_cache(maxsize=None)
def _others(n_out: int) -> np.ndarray:
    """Row j: the indices 0..n_out-1 without j (built once per width, not per call)."""
    others = np.array([[k for k in range(n_out) if k != j] for j in range(n_out)], dtype=np.intp)
    others.flags.writeable = False
    return others


@dataclass(frozen=True)
class SoftmaxBinaryCrossEntropy(Loss):
    """Binary cross-entropy of p = softmax(z) per unit, from the logits z (what ``Objective`` evaluates for
    ``binary_cross_entropy`` on a softmax output of two or more units).

    p_j = sigmoid(u_j) with u_j = z_j - logsumexp_{k != j} z_k (the log-odds of unit j against the others), so
    the loss is the from-logits form of u: (1 - y*) softplus(u) + y* softplus(-u), summed over units, averaged
    over the batch. Neither log p_j nor log(1 - p_j) is computed from a rounded p, and no derivative is a
    difference like 1 - p_j. Cost: one log-sum-exp over n - 1 entries per unit (n^2 per sample).
    """

    name: ClassVar[str] = "binary_cross_entropy"

    def __call__(self, xp, outputs, targets):
        others = _others(outputs.shape[-1])  # (n_out, n_out - 1)
        # (batch, n_out, n_out - 1) -> (batch, n_out); `...`: finite differences' batched calls add a leading axis
        u = outputs - xp.logsumexp(outputs[..., others], axis=-1)
        return BinaryCrossEntropy(from_logits=True)(xp, u, targets)


@dataclass(frozen=True)
class CrossEntropy(Loss):
    """Softmax + negative log-likelihood on integer class targets, from logits z:
    mean_b [logsumexp(z_b) - z_b[y_b]], computed as mean_b logsumexp(d_b) with d_bj = (z_bj - z_by) for j != y_b
    and d_by = 0 (the same number: shift invariance). It is finite for any z, and no derivative cancels:
    written as a difference, dCE/dz_y = p_y - 1 is all rounding once p_y is near 1 (z_y 40 above the rest);
    here d_by is the constant 0 and dCE/dz_y = -sum_{j != y} p_j, a sum of positive terms, in every
    differentiator (reverse, complex step, symbolic alike)."""

    name: ClassVar[str] = "cross_entropy"

    def prepare(self, targets, n_out):
        t = np.asarray(targets)
        if t.ndim == 2 and t.shape[1] == 1:
            t = t[:, 0]
        if t.ndim != 1:
            raise ValueError(f"cross_entropy needs integer class indices of shape (batch,); "
                             f"got shape {np.shape(targets)}")
        # (the labels' own checks: text, None, nan, 2.5 named by entry; the range tested before the int64 cast,
        # which would wrap 2**64 - 1 to -1 and make 1e20 negative)
        values = label_values(t, "cross_entropy", "targets")
        out = np.flatnonzero((values < 0) | (values >= n_out))
        if len(out):
            raise ValueError(f"cross_entropy class indices must lie in 0..{n_out - 1} (the network has {n_out} "
                             f"outputs); targets[{out[0]}] is {plain(t[out[0]])!r} ({len(out)} out of range)")
        return np.eye(n_out)[values.astype(np.int64)]  # one-hot rows: picking z[b, y_b] becomes sum(onehot * z)

    def __call__(self, xp, outputs, targets):
        n = targets.shape[0]
        picked = xp.sum(targets * outputs, axis=-1, keepdims=True)  # z_by, exactly (one-hot rows)
        shifted = (outputs - picked) * (1.0 - targets)  # z_j - z_y off the target; at it the constant 0, not z_y - z_y
        return xp.sum(xp.logsumexp(shifted, axis=-1)) / float(n)  # (see Quadratic)


@dataclass(frozen=True)
class Hinge(Loss):
    """max(0, 1 - t y) with t in {-1, +1}, averaged over the batch; hinge'(at the hinge) = 0."""

    name: ClassVar[str] = "hinge"
    has_kink: ClassVar[bool] = True

    def prepare(self, targets, n_out):
        t = super().prepare(targets, n_out)
        if not np.all(np.isin(t, (-1.0, 1.0))):
            raise ValueError(f"hinge needs targets in {{-1, +1}}; got values {np.unique(t)[:6]}")
        return t

    def __call__(self, xp, outputs, targets):
        return xp.sum(xp.maximum(0.0, 1.0 - targets * outputs)) / float(targets.shape[0])  # (see Quadratic)


LOSSES: dict[str, type[Loss]] = {cls.name: cls for cls in (Quadratic, BinaryCrossEntropy, CrossEntropy, Hinge)}


def get_loss(spec: str | Loss, **options) -> Loss:
    """A loss from its name (options as keywords) or an instance."""
    if isinstance(spec, Loss):
        if options:
            raise TypeError(f"options {sorted(options)} cannot be applied to a loss instance ({spec!r}): give them "
                            f"to its constructor, or pass the name {spec.name!r} with the options")
        return spec
    try:
        cls = LOSSES[spec]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {spec!r}; choose one of {', '.join(LOSSES)}") from None
    try:
        return cls(**options)
    except TypeError as e:
        raise TypeError(f"loss {spec!r} does not take options {sorted(options)}: {e}") from None
