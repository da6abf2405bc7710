"""SymPy expressions with numpy semantics: the ``xp`` of the symbolic differentiator and of the reference.

Values are ``SymArray``s, numpy object arrays of SymPy expressions (0-d for scalars), so ``*`` is
elementwise, ``@`` is matmul, broadcasting and slicing are numpy's. Every number that meets a
symbolic value becomes an *exact* SymPy number: a float enters as the Rational of its binary value
(0.1 -> 3602879701896397/36028797018963968), so nothing is rounded while expressions are built.

Kinks (DESIGN.md) are small SymPy functions with the conventions built into their derivatives:
``Max1(a, b)`` (maximum: d = a' T(a - b) + b' (1 - T(a - b)) with ``TieStep`` T(u) = [u >= 0], so
ties route to the first argument and relu = Max1(0, x) has relu'(0) = 0), ``Min1`` likewise,
``Abs0`` (|u| with derivative ``Sign0``, sign(0) = 0), ``Step`` (Heaviside(u, 0) = [u > 0]) whose
derivative is 0, as is that of ``TieStep`` and ``Sign0``. (``Piecewise`` expresses the same but
SymPy's assumption queries make it ~10x slower to build and differentiate.) ``sigmoid(x) = 1 / (1 +
exp(-x))`` and ``logsumexp = log(sum(exp(x)))``: exact, but in floats they overflow for |x| > ~709.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import sympy as sp

# numpy ufuncs that act on object arrays through the elements' own Python operators (SymPy's).
_OPERATOR_UFUNCS = {np.add, np.subtract, np.multiply, np.true_divide, np.power, np.negative, np.positive,
                    np.matmul}


def const(value: Any) -> sp.Expr:
    """An exact SymPy number: ints as Integer, floats as the Rational of their exact binary value."""
    if isinstance(value, sp.Basic):
        return value
    if isinstance(value, (bool, np.bool_, int, np.integer)):
        return sp.Integer(int(value))
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if not math.isfinite(f):
            raise ValueError(f"symbolic values need finite constants; got {f}. Clean the data or the constant.")
        return sp.Rational(f)  # exact: the float's binary value, never a rounded decimal
    raise TypeError(f"a symbolic expression can combine with numbers and arrays of numbers; got "
                    f"{type(value).__name__}. Convert it with numpy first.")


_const_array = np.frompyfunc(const, 1, 1)


def raw(x: Any) -> Any:
    """A plain object ndarray (or a single SymPy expression) for ``x``: numbers become exact constants."""
    if isinstance(x, SymArray):
        return x.view(np.ndarray)
    if isinstance(x, sp.Basic):
        return x
    if isinstance(x, np.ndarray) or isinstance(x, (list, tuple)):
        return _as_object(_const_array(np.asarray(x)))
    return const(x)


def _as_object(a: Any) -> Any:
    return a if not isinstance(a, np.ndarray) else a.astype(object, copy=False)


def wrap(x: Any) -> "SymArray":
    """``x`` (an object ndarray or one expression) as a SymArray; scalars become 0-d arrays."""
    if isinstance(x, SymArray):
        return x
    if isinstance(x, np.ndarray):
        return x.view(SymArray)
    out = np.empty((), dtype=object)
    out[()] = x
    return out.view(SymArray)


class SymArray(np.ndarray):
    """A numpy object array of SymPy expressions whose operators keep every constant exact."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or ufunc not in _OPERATOR_UFUNCS or kwargs:
            raise TypeError(f"numpy's {ufunc.__name__} ({method}) is not supported on symbolic values; use the "
                            "operators + - * / ** @ and the xp functions (xp.exp, xp.maximum, xp.sum, ...)")
        args = [raw(x) for x in inputs]
        if ufunc is np.matmul:
            return wrap(_matmul(*args))
        return wrap(ufunc(*args))

    def __getitem__(self, index):
        return wrap(np.ndarray.__getitem__(self, index))

    def __bool__(self):
        raise TypeError("the truth value of a symbolic value is not defined: a Python `if` would pick one branch "
                        "for every input. Use xp.maximum / xp.minimum / xp.step to express the branch.")

    def __float__(self):
        raise TypeError("a symbolic value has no float value; differentiate or evaluate it instead")

    def expr(self) -> sp.Expr:
        """The single expression of a size-1 array."""
        if self.size != 1:
            raise TypeError(f"expected a single expression; got shape {self.shape}")
        return self.view(np.ndarray).reshape(-1)[0]


def _matmul(a, b):
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    if a.ndim == 2 and b.ndim == 2 and a.shape[1] == b.shape[0]:
        # one flat Add per entry (numpy's object matmul would build it by repeated +, quadratic in width)
        out = np.empty((a.shape[0], b.shape[1]), dtype=object)
        for i in range(a.shape[0]):
            for j in range(b.shape[1]):
                out[i, j] = sp.Add(*[a[i, k] * b[k, j] for k in range(a.shape[1])])
        return out
    return np.matmul(a, b)  # other ranks, and numpy's own error for mismatched shapes


def symbol_array(name: str, shape: tuple[int, ...]) -> SymArray:
    """Real symbols named like ``MLP.param_names``: ``W1[0, 3]``, ``b0[1]``; a scalar is just ``name``."""
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        out[idx] = sp.Symbol(f"{name}[{', '.join(map(str, idx))}]" if shape else name, real=True)
    return wrap(out)


def _elementwise(fn, nin=1):
    ufunc = np.frompyfunc(fn, nin, 1)
    return lambda *xs: wrap(_as_object(ufunc(*[raw(x) for x in xs])))


class Step(sp.Function):
    """The perceptron's step [u > 0], i.e. Heaviside(u, 0); its derivative is 0 everywhere."""

    nargs = 1

    @classmethod
    def eval(cls, u):
        if u.is_Number:
            return sp.S.One if u > 0 else sp.S.Zero

    def fdiff(self, argindex=1):
        return sp.S.Zero


class TieStep(sp.Function):
    """[u >= 0]: which argument of Max1 / Min1 the derivative follows (ties: the first). Derivative 0."""

    nargs = 1

    @classmethod
    def eval(cls, u):
        if u.is_Number:
            return sp.S.One if u >= 0 else sp.S.Zero

    def fdiff(self, argindex=1):
        return sp.S.Zero


class Max1(sp.Function):
    """max(a, b); on ties the derivative is a's: d Max1 = a' TieStep(a - b) + b' (1 - TieStep(a - b))."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if a.is_Number and b.is_Number:
            return a if a >= b else b

    def fdiff(self, argindex=1):
        a, b = self.args
        t = TieStep(a - b)
        return t if argindex == 1 else 1 - t


class Min1(sp.Function):
    """min(a, b); on ties the derivative is a's."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if a.is_Number and b.is_Number:
            return a if a <= b else b

    def fdiff(self, argindex=1):
        a, b = self.args
        t = TieStep(b - a)
        return t if argindex == 1 else 1 - t


class Sign0(sp.Function):
    """sign(u) with sign(0) = 0; derivative 0."""

    nargs = 1

    @classmethod
    def eval(cls, u):
        if u.is_Number:
            return sp.S.One if u > 0 else sp.S.NegativeOne if u < 0 else sp.S.Zero

    def fdiff(self, argindex=1):
        return sp.S.Zero


class Abs0(sp.Function):
    """|u| with derivative Sign0(u), so abs'(0) = 0."""

    nargs = 1

    @classmethod
    def eval(cls, u):
        if u.is_Number:
            return abs(u)

    def fdiff(self, argindex=1):
        return Sign0(self.args[0])


def _reduce_add(x, axis, keepdims):
    a = np.asarray(raw(x), dtype=object)
    if axis is None:
        axes = tuple(range(a.ndim))
    else:
        axes = tuple(ax % a.ndim for ax in ((axis,) if isinstance(axis, (int, np.integer)) else axis))
    kept = [ax for ax in range(a.ndim) if ax not in axes]
    moved = np.transpose(a, kept + list(axes)).reshape(tuple(a.shape[ax] for ax in kept) + (-1,))
    out = np.empty(moved.shape[:-1], dtype=object)
    for idx in np.ndindex(*out.shape):
        out[idx] = sp.Add(*moved[idx])
    count = int(np.prod([a.shape[ax] for ax in axes]))
    if keepdims:
        out = out.reshape(tuple(1 if ax in axes else a.shape[ax] for ax in range(a.ndim)))
    return wrap(out), count


class SympyNamespace:
    """The ``xp`` models see under symbolic differentiation (see the module docstring for the kinks)."""

    name = "sympy"
    exp = staticmethod(_elementwise(sp.exp))
    log = staticmethod(_elementwise(sp.log))
    tanh = staticmethod(_elementwise(sp.tanh))
    sigmoid = staticmethod(_elementwise(lambda x: 1 / (1 + sp.exp(-x))))
    abs = staticmethod(_elementwise(Abs0))
    step = staticmethod(_elementwise(Step))
    maximum = staticmethod(_elementwise(Max1, 2))
    minimum = staticmethod(_elementwise(Min1, 2))

    @staticmethod
    def sum(x, axis=None, keepdims=False):
        return _reduce_add(x, axis, keepdims)[0]

    @staticmethod
    def mean(x, axis=None, keepdims=False):
        total, count = _reduce_add(x, axis, keepdims)
        return total * sp.Rational(1, count)

    @staticmethod
    def logsumexp(x, axis=-1, keepdims=False):
        return SympyNamespace.log(SympyNamespace.sum(SympyNamespace.exp(x), axis=axis, keepdims=keepdims))

    @staticmethod
    def reshape(x, shape):
        return wrap(np.reshape(raw(x), shape))

    @staticmethod
    def asarray(x):
        return wrap(raw(x))


SYMPY = SympyNamespace()
