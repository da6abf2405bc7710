"""The array namespace ``xp`` that models, losses and users' functions are written against.

Each differentiator supplies its own ``xp``: numpy values for finite differences (``NUMPY`` here),
tape values for reverse mode, SymPy expressions for symbolic. Values support ``+ - * / ** @``,
unary minus and numpy broadcasting; everything else is one of the functions of ``Namespace``.

Kink conventions (DESIGN.md), honoured by every implementation of the namespace:
``maximum``/``minimum`` route the gradient to their *first* argument on ties, ``abs'(0) = 0``,
``step'(x) = 0`` everywhere. So ``relu = maximum(0, x)`` has ``relu'(0) = 0``.
"""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np

#: The names every namespace provides. A new one is a design decision: all three differentiators
#: (numpy here, the reverse tape, the symbolic namespace) must implement it, and tests check that.
NAMESPACE_FUNCTIONS = (
    "exp", "log", "tanh", "sigmoid", "abs", "step",
    "maximum", "minimum",
    "sum", "mean", "logsumexp",
    "reshape", "asarray",
)


class Namespace(Protocol):
    """The few array functions a model, loss or user function may call besides the operators."""

    def exp(self, x: Any) -> Any: ...
    def log(self, x: Any) -> Any: ...
    def tanh(self, x: Any) -> Any: ...
    def sigmoid(self, x: Any) -> Any:
        """1 / (1 + exp(-x)), evaluated without overflow."""
    def abs(self, x: Any) -> Any:
        """|x|, with abs'(0) = 0."""
    def step(self, x: Any) -> Any:
        """The perceptron's step: 1.0 where x > 0, else 0.0; its derivative is 0 everywhere."""
    def maximum(self, a: Any, b: Any) -> Any:
        """Elementwise max; on ties the gradient goes to ``a``."""
    def minimum(self, a: Any, b: Any) -> Any:
        """Elementwise min; on ties the gradient goes to ``a``."""
    def sum(self, x: Any, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any: ...
    def mean(self, x: Any, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any: ...
    def logsumexp(self, x: Any, axis: int = -1, keepdims: bool = False) -> Any:
        """log(sum(exp(x), axis)), shifted by the max so that it cannot overflow."""
    def reshape(self, x: Any, shape: tuple[int, ...]) -> Any: ...
    def asarray(self, x: Any) -> Any:
        """A constant (no gradient flows into it) in this namespace's array type."""


def _sigmoid(x):
    # exp of a non-positive number never overflows; both branches are accurate to an ulp or two.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _logsumexp(x, axis=-1, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _step(x):
    x = np.asarray(x)
    return (x > 0).astype(x.dtype if x.dtype.kind == "f" else np.float64)


class NumpyNamespace:
    """Plain evaluation: numbers in, numbers out. Used by finite differences and forward passes."""

    name = "numpy"
    # staticmethod matters: np.mean is a plain function and would otherwise become a bound method.
    exp = staticmethod(np.exp)
    log = staticmethod(np.log)
    tanh = staticmethod(np.tanh)
    sigmoid = staticmethod(_sigmoid)
    abs = staticmethod(np.abs)
    step = staticmethod(_step)
    maximum = staticmethod(np.maximum)
    minimum = staticmethod(np.minimum)
    sum = staticmethod(np.sum)
    mean = staticmethod(np.mean)
    logsumexp = staticmethod(_logsumexp)
    reshape = staticmethod(np.reshape)
    asarray = staticmethod(np.asarray)


NUMPY = NumpyNamespace()
