"""Activation functions of the lecture, written once against ``xp``.

An activation is a small frozen object: ``act(xp, z)`` maps pre-activations ``z`` of shape
(batch, pieces * width) to outputs of shape (batch, width). Only maxout has ``pieces > 1``: its layer
carries ``k`` linear pieces, so its weight matrix is ``k`` times wider (the layer's "own weights").
Kinks follow the namespace conventions: relu'(0) = 0, leaky_relu'(0) = slope, elu'(0) = alpha,
step' = 0, maxout routes to the first maximal piece.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


def _is_real(v: Any) -> bool:
    """A real number (int or float, numpy's too), not a bool or a string."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


@dataclass(frozen=True)
class Activation:
    """Base class: ``pieces`` linear pieces per unit (1 except maxout); ``kinks`` if not smooth."""

    name: ClassVar[str] = "activation"
    pieces: ClassVar[int] = 1
    has_kink: ClassVar[bool] = False

    def __call__(self, xp: Any, z: Any) -> Any:
        raise NotImplementedError

    def n_pieces(self) -> int:
        return self.pieces


@dataclass(frozen=True)
class Identity(Activation):
    name: ClassVar[str] = "identity"

    def __call__(self, xp, z):
        return z


@dataclass(frozen=True)
class Step(Activation):
    """The perceptron's step: 1 where z > 0, else 0. Its derivative is 0 everywhere (no signal)."""

    name: ClassVar[str] = "step"
    has_kink: ClassVar[bool] = True

    def __call__(self, xp, z):
        return xp.step(z)


@dataclass(frozen=True)
class Sigmoid(Activation):
    """1 / (1 + e^-z); sigmoid' = sigmoid (1 - sigmoid)."""

    name: ClassVar[str] = "sigmoid"

    def __call__(self, xp, z):
        return xp.sigmoid(z)


@dataclass(frozen=True)
class Tanh(Activation):
    name: ClassVar[str] = "tanh"

    def __call__(self, xp, z):
        return xp.tanh(z)


@dataclass(frozen=True)
class ReLU(Activation):
    """max(0, z); the 0 comes first so that relu'(0) = 0 (maximum routes ties to its first argument)."""

    name: ClassVar[str] = "relu"
    has_kink: ClassVar[bool] = True

    def __call__(self, xp, z):
        return xp.maximum(0.0, z)


@dataclass(frozen=True)
class LeakyReLU(Activation):
    """max(slope z, z), the lecture's max(0.1x, x); leaky_relu'(0) = slope. Needs 0 <= slope < 1."""

    slope: float = 0.1
    name: ClassVar[str] = "leaky_relu"
    has_kink: ClassVar[bool] = True

    def __post_init__(self):
        if not (_is_real(self.slope) and 0.0 <= self.slope < 1.0):
            raise ValueError(f"leaky_relu needs a number 0 <= slope < 1 (max(slope*x, x) is then leaky relu); "
                             f"got {self.slope!r}")

    def __call__(self, xp, z):
        return xp.maximum(self.slope * z, z)


@dataclass(frozen=True)
class ELU(Activation):
    """z if z > 0 else alpha (e^z - 1); elu'(0) = alpha (the lecture puts 0 in the second branch).

    Written as max(0, z) + alpha expm1(min(z, 0)): expm1 only ever sees z <= 0, so it cannot overflow,
    and it keeps its digits near 0 where exp(z) - 1 cancels; the derivative alpha exp(z) is exact.
    """

    alpha: float = 1.0
    name: ClassVar[str] = "elu"
    has_kink: ClassVar[bool] = True

    def __post_init__(self):
        if not (_is_real(self.alpha) and 0 < self.alpha < np.inf):
            raise ValueError(f"elu needs a finite number alpha > 0; got {self.alpha!r}")

    def __call__(self, xp, z):
        return xp.maximum(0.0, z) + self.alpha * xp.expm1(xp.minimum(z, 0.0))


@dataclass(frozen=True)
class Softplus(Activation):
    """log(1 + e^z), the smooth relu: a primitive of every namespace, so softplus'(0) = 1/2 exactly (written
    as max(z, 0) + log1p(e^-|z|) its two kinks' conventions would give 1 there)."""

    name: ClassVar[str] = "softplus"

    def __call__(self, xp, z):
        return xp.softplus(z)


@dataclass(frozen=True)
class Maxout(Activation):
    """max over ``k`` linear pieces: unit j outputs max_p z[:, p * width + j] (first piece wins ties)."""

    k: int = 2
    name: ClassVar[str] = "maxout"
    has_kink: ClassVar[bool] = True

    def __post_init__(self):
        if not (isinstance(self.k, (int, np.integer)) and not isinstance(self.k, bool) and self.k >= 2):
            raise ValueError(f"maxout needs k >= 2 linear pieces (an int); got {self.k!r}")

    def n_pieces(self) -> int:
        return self.k

    def __call__(self, xp, z):
        width = z.shape[-1] // int(self.k)
        out = z[..., 0:width]
        for p in range(1, self.k):
            out = xp.maximum(out, z[..., p * width:(p + 1) * width])
        return out


@dataclass(frozen=True)
class Softmax(Activation):
    """exp(z_i) / sum_j exp(z_j) over the last axis, as exp(z - logsumexp(z)): it cannot overflow.

    Error model: the relative error of each output is about eps * |logsumexp(z)| (the rounding of the
    shift), i.e. ~1e-16 for logits of order 1 and ~1e-13 for logits of order 1000.

    Where the namespace has a softmax primitive (``xp._softmax``: reverse and forward mode, reverse/ops.py's
    ``softmax``) it is used: same value bit for bit, but a derivative that does not cancel when one logit
    dominates (the composite's p_m (g_m - sum_i p_i g_i) is 0 once p_m rounds to 1, where the truth is
    -p_m sum_{i != m} p_i (g_i - g_m)). The other namespaces compute the composite.
    """

    name: ClassVar[str] = "softmax"

    def __call__(self, xp, z):
        primitive = getattr(xp, "_softmax", None)
        if primitive is not None:
            return primitive(z, axis=-1)
        return xp.exp(z - xp.logsumexp(z, axis=-1, keepdims=True))


ACTIVATIONS: dict[str, type[Activation]] = {
    cls.name: cls for cls in (Step, Sigmoid, Tanh, ReLU, LeakyReLU, ELU, Softplus, Maxout, Softmax, Identity)
}


def get_activation(spec: str | Activation, **options) -> Activation:
    """An activation from its name (``"elu"``, options as keywords: ``alpha=0.5``) or an instance."""
    if isinstance(spec, Activation):
        if options:
            raise TypeError(f"options {sorted(options)} were given with an activation instance {spec!r}; "
                            "pass them to its constructor instead")
        return spec
    try:
        cls = ACTIVATIONS[spec]
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {spec!r}; choose one of {', '.join(ACTIVATIONS)}") from None
    try:
        return cls(**options)
    except TypeError as e:
        raise TypeError(f"activation {spec!r} does not take options {sorted(options)}: {e}") from None
