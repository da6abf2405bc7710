"""Losses of the lecture, averaged over the batch, written once against ``xp``.

A loss is a frozen object with ``prepare(targets, n_out)`` (validate the targets once, in numpy,
and turn them into the float array the formula uses) and ``loss(xp, outputs, prepared)`` -> scalar.
Outputs are (batch, n_out). "Averaged over the batch" means summed over outputs, divided by batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


def _as_column_targets(targets, n_out: int, loss: str) -> np.ndarray:
    t = np.asarray(targets, dtype=np.float64)
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


@dataclass(frozen=True)
class Quadratic(Loss):
    """The lecture's J = 1/2 (y - y*)^2, summed over outputs, averaged over the batch; dJ/dy = y - y*."""

    name: ClassVar[str] = "quadratic"

    def __call__(self, xp, outputs, targets):
        r = outputs - targets
        return xp.sum(r * r) * (0.5 / targets.shape[0])


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
            return xp.sum((1.0 - targets) * xp.softplus(outputs) + targets * xp.softplus(-outputs)) * (1.0 / n)
        ll = targets * xp.log(outputs) + (1.0 - targets) * xp.log(1.0 - outputs)
        return xp.sum(ll) * (-1.0 / n)


@dataclass(frozen=True)
class CrossEntropy(Loss):
    """Softmax + negative log-likelihood on integer class targets, from logits z:
    mean_b [logsumexp(z_b) - z_b[y_b]]. log-sum-exp keeps it finite for any z."""

    name: ClassVar[str] = "cross_entropy"

    def prepare(self, targets, n_out):
        t = np.asarray(targets)
        if t.ndim == 2 and t.shape[1] == 1:
            t = t[:, 0]
        if t.ndim != 1 or not (np.issubdtype(t.dtype, np.integer) or np.all(np.mod(t, 1) == 0)):
            raise ValueError(f"cross_entropy needs integer class indices of shape (batch,); "
                             f"got shape {np.shape(targets)} and dtype {np.asarray(targets).dtype}")
        t = t.astype(np.int64)
        if t.size and (t.min() < 0 or t.max() >= n_out):
            raise ValueError(f"cross_entropy class indices must lie in 0..{n_out - 1} (the network has {n_out} "
                             f"outputs); got values from {t.min()} to {t.max()}")
        return np.eye(n_out)[t]  # one-hot rows: picking z[b, y_b] becomes sum(onehot * z)

    def __call__(self, xp, outputs, targets):
        n = targets.shape[0]
        return (xp.sum(xp.logsumexp(outputs, axis=-1)) - xp.sum(targets * outputs)) * (1.0 / n)


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
        return xp.sum(xp.maximum(0.0, 1.0 - targets * outputs)) * (1.0 / targets.shape[0])


LOSSES: dict[str, type[Loss]] = {cls.name: cls for cls in (Quadratic, BinaryCrossEntropy, CrossEntropy, Hinge)}


def get_loss(spec: str | Loss, **options) -> Loss:
    """A loss from its name (options as keywords) or an instance."""
    if isinstance(spec, Loss):
        return spec
    try:
        cls = LOSSES[spec]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {spec!r}; choose one of {', '.join(LOSSES)}") from None
    try:
        return cls(**options)
    except TypeError as e:
        raise TypeError(f"loss {spec!r} does not take options {sorted(options)}: {e}") from None
