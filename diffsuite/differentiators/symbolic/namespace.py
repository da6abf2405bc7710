"""SymPy expressions with numpy semantics: the ``xp`` of the symbolic differentiator and of the reference.

Values are ``SymArray``s, numpy object arrays of SymPy expressions (0-d for scalars), so ``*`` is
elementwise, ``@`` is matmul, broadcasting and slicing are numpy's. Every number that meets a
symbolic value becomes an *exact* SymPy number: a float enters as the Rational of its binary value
(0.1 -> 3602879701896397/36028797018963968), so nothing is rounded while expressions are built.

Kinks (docs/architecture.md, "Kink conventions") are small SymPy functions with the conventions built into
their derivatives:
``Max1(a, b)`` (maximum: d = a' T(a - b) + b' Step(b - a) with ``TieStep`` T(u) = [u >= 0], so
ties route to the first argument and relu = Max1(0, x) has relu'(0) = 0), ``Min1`` likewise,
``Abs0`` (|u| with derivative ``Sign0``, sign(0) = 0), ``Step`` (Heaviside(u, 0) = [u > 0]) whose
derivative is 0, as is that of ``TieStep`` and ``Sign0``. (``Piecewise`` expresses the same but
SymPy's assumption queries make it ~10x slower to build and differentiate.) ``sigmoid(x) = 1 / (1 +
exp(-x))`` and ``logsumexp = log(sum(exp(x)))``: exact, but in floats they overflow for |x| > ~709.

The rest of the numpy subset (docs/language.md) uses standard SymPy functions (sqrt, sin, asin, atan2,
erf, log1p/expm1/log2/log10 from ``sympy.codegen.cfunctions``, Piecewise for ``where`` and for the
``sqrt0`` of ``norm``/``std``) and more custom functions, each with ``fdiff`` and a rewrite to
standard ones (``rewrite_standard``): ``Softplus`` (log(1 + e^x), printed stably), ``LogSumExp`` (the
pipeline's stable form of log(sum(exp)), see ``rewrite``), ``Tanh`` (tanh whose
derivative is cosh^-2, accurate in saturation where 1 - tanh^2 cancels), ``Atan2`` (atan2 whose gradient
at the origin is 0) and ``Pow0`` (x^y with a traced exponent: at x = 0 the gradient in y is 0 for y > 0, as autograd's, and the
gradient in x is y 0^(y-1): docs/language.md).

Masks (comparisons of values) are arrays of SymPy relations: ``& | ^ ~`` and ``np.logical_*`` combine them into
And/Or/Not, ``xp.where`` turns them into Piecewise, and a mask used as a number (``t * (t > 0)``,
``xp.sum(t > 0)``) is Piecewise((1, mask), (0, True)), whose derivative is 0, as reverse mode's.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import sympy as sp
from sympy.codegen.cfunctions import expm1 as sp_expm1
from sympy.codegen.cfunctions import log1p as sp_log1p
from sympy.codegen.cfunctions import log2 as sp_log2
from sympy.codegen.cfunctions import log10 as sp_log10

from ...namespace import (Composites, dispatch_function, dispatch_ufunc, einsum_arguments, normalize_axes,
                         parse_einsum)

# numpy ufuncs that act on object arrays through the elements' own Python operators (SymPy's).
_OPERATOR_UFUNCS = {np.add, np.subtract, np.multiply, np.true_divide, np.power, np.negative, np.positive,
                    np.matmul}


def const(value: Any, infinite: bool = False) -> sp.Expr:
    """An exact SymPy number: ints as Integer, floats as the Rational of their exact binary value.

    +-inf becomes +-oo only where ``infinite`` (an entry of an array, a ``where`` branch, a bound of ``maximum``,
    ``minimum`` or ``clip``, a side of a comparison); as an operand of arithmetic with a symbolic value it is
    refused: SymPy folds x - oo into -oo at build time, so x's gradient would be lost."""
    if isinstance(value, sp.Basic):
        return value
    if isinstance(value, (bool, np.bool_, int, np.integer)):
        return sp.Integer(int(value))
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if math.isnan(f):
            raise ValueError("symbolic values need constants that are numbers; got nan. Clean the data or the "
                             "constant.")
        if math.isinf(f):
            if infinite:
                return sp.oo if f > 0 else -sp.oo
            raise ValueError(f"symbolic values need finite constants in arithmetic; got {f}. SymPy would fold "
                             f"x {'+' if f > 0 else '-'} oo into the constant {'' if f > 0 else '-'}oo and lose x's "
                             "gradient. An infinite constant can be a branch of xp.where (a mask's -inf before "
                             "logsumexp, softmax or max: xp.where(mask, s, -np.inf)), a bound of xp.maximum, "
                             "xp.minimum or xp.clip, or an entry of xp.asarray / concatenate / pad; or use a large "
                             "finite number such as -1e30.")
        return sp.Rational(f)  # exact: the float's binary value, never a rounded decimal
    raise TypeError(f"a symbolic expression can combine with numbers and arrays of numbers; got "
                    f"{type(value).__name__}. Convert it with numpy first.")


_const_array = np.frompyfunc(const, 1, 1)
_const_array_inf = np.frompyfunc(lambda v: const(v, infinite=True), 1, 1)


def raw(x: Any, infinite: bool = True) -> Any:
    """A plain object ndarray (or a single SymPy expression) for ``x``: numbers become exact constants (+-inf
    as +-oo unless ``infinite`` is False: see ``const``)."""
    if isinstance(x, SymArray):
        return x.view(np.ndarray)
    if isinstance(x, sp.Basic):
        return x
    if isinstance(x, np.ndarray) or isinstance(x, (list, tuple)):
        return _as_object((_const_array_inf if infinite else _const_array)(np.asarray(x)))
    return const(x, infinite)


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
        if method == "__call__" and not kwargs and ufunc in _LOGICAL:  # masks combined: & | ^ ~, np.logical_*
            return _logical(ufunc, inputs)
        if method != "__call__" or kwargs or (ufunc not in _OPERATOR_UFUNCS and ufunc not in _COMPARISONS):
            return dispatch_ufunc(SYMPY, "symbolic", ufunc, method, inputs, kwargs)  # np.exp(x) -> xp.exp(x)
        args = [numeric(x, infinite=ufunc in _COMPARISONS) for x in inputs]
        if ufunc in _COMPARISONS:  # a mask of SymPy relations: no gradient; xp.where turns it into Piecewise
            return wrap(_as_object(np.frompyfunc(_COMPARISONS[ufunc], 2, 1)(*args)))
        if ufunc is np.matmul:
            return wrap(_matmul(*args))
        if ufunc is np.power:
            return SympyNamespace.power(*args)
        return wrap(ufunc(*args))

    def __array_function__(self, func, types, args, kwargs):
        if func in (np.shape, np.ndim, np.size):
            return func(np.asarray(self))  # a fact: no expression involved
        return dispatch_function(SYMPY, "symbolic", func, args, kwargs)

    def __getattr__(self, name):
        raise AttributeError(f"a symbolic value has no attribute {name!r}; use the xp functions (xp.sum, ...)")

    def __getitem__(self, index):
        parts = index if isinstance(index, tuple) else (index,)
        if any(isinstance(p, np.ndarray) and p.dtype == object for p in parts):
            raise TypeError("a mask that depends on theta (a comparison of symbolic values) cannot select entries in "
                            "symbolic mode: the expression is built once for every theta. Use xp.where(mask, a, b).")
        return wrap(np.ndarray.__getitem__(self, index))

    T = property(lambda self: wrap(np.ndarray.transpose(self)))
    def sum(self, axis=None, keepdims=False): return SympyNamespace.sum(self, axis=axis, keepdims=keepdims)
    def mean(self, axis=None, keepdims=False): return SympyNamespace.mean(self, axis=axis, keepdims=keepdims)
    def max(self, axis=None, keepdims=False): return SYMPY.max(self, axis=axis, keepdims=keepdims)
    def min(self, axis=None, keepdims=False): return SYMPY.min(self, axis=axis, keepdims=keepdims)
    def prod(self, axis=None, keepdims=False): return SYMPY.prod(self, axis=axis, keepdims=keepdims)

    def __bool__(self):
        raise TypeError("the truth value of a symbolic value is not defined: a Python `if` would pick one branch "
                        "for every input. Use xp.where, xp.maximum / xp.minimum or xp.step to express the branch."
                        + _float_argument_hint(self))

    def __float__(self):
        raise TypeError("a symbolic value (theta, or something computed from it) has no float value, which "
                        "float(), math.* functions and writing it into a numpy array (out = np.zeros(2); "
                        "out[0] = t[0]) need: use the xp functions, and build arrays with xp, e.g. "
                        "xp.stack([t[0], 2 * t[1]]) or xp.where(mask, a, b)")

    def expr(self) -> sp.Expr:
        """The single expression of a size-1 array."""
        if self.size != 1:
            raise TypeError(f"expected a single expression; got shape {self.shape}")
        return self.view(np.ndarray).reshape(-1)[0]


def _float_argument_hint(value: "SymArray") -> str:
    """What to do when a Python ``if`` looks only at f's float arguments (the symbols ``arg{k}``, build.py)."""
    symbols = {x for e in np.ravel(value.view(np.ndarray)) if isinstance(e, sp.Basic) for x in e.free_symbols}
    names = sorted({s.name.split("[")[0] for s in symbols})
    if not names or not all(n.startswith("arg") and n[3:].isdigit() for n in names):
        return ""
    which = ", ".join(f"argument {int(n[3:]) + 1} after theta" for n in names)
    return (f" Here it depends only on f's float {which}: float arguments become symbols, so that one compiled "
            "kernel serves all their values. To branch on a hyperparameter, keep it a constant: bind it into f "
            "(functools.partial(f, lam=0.5), or a closure), or pass it as an int or inside a tuple or list, which "
            "are compiled in as constants (one kernel per value).")


_COMPARISONS = {np.greater: lambda a, b: a > b, np.greater_equal: lambda a, b: a >= b, np.less: lambda a, b: a < b,
                np.less_equal: lambda a, b: a <= b, np.equal: lambda a, b: sp.Eq(a, b),
                np.not_equal: lambda a, b: sp.Ne(a, b)}


_BOOLEAN_TYPES = (sp.logic.boolalg.Boolean,)


def _is_boolean(e: Any) -> bool:
    """A SymPy truth value (a relation, And/Or/Not, true/false); a Symbol is a Boolean to SymPy, but a number here."""
    return isinstance(e, _BOOLEAN_TYPES) and not isinstance(e, sp.Expr)


def _as_number(e: Any) -> Any:
    """A truth value used as a number: 1 where it holds, else 0 (numpy's bool -> float); derivative 0."""
    if not _is_boolean(e):
        return e
    if e is sp.true or e is sp.false:
        return sp.Integer(e is sp.true)
    return sp.Piecewise((sp.S.One, e), (sp.S.Zero, True))


_as_numbers = np.frompyfunc(_as_number, 1, 1)


def numeric(x: Any, infinite: bool = False) -> Any:
    """``raw(x)`` for arithmetic: mask entries as numbers 0 / 1 (shape functions keep masks as they are); an
    infinite constant refused unless ``infinite`` (see ``const``)."""
    a = raw(x, infinite)
    if isinstance(a, np.ndarray):
        return _as_object(_as_numbers(a)) if any(_is_boolean(e) for e in a.flat) else a
    return _as_number(a)


def _as_truth(e: Any, strict: bool) -> Any:
    """A truth value for a logical operator: masks as they are, bools as true/false; a number (``strict=False``,
    np.logical_*) counts as true where nonzero, as numpy's; ``strict`` (& | ^ ~) refuses numbers."""
    if _is_boolean(e):
        return e
    if isinstance(e, (bool, np.bool_)):
        return sp.true if e else sp.false
    if strict:
        raise TypeError("& | ^ ~ on a symbolic value combine masks (comparisons such as t > 0, or bool arrays); got "
                        f"the number {e}. Compare it first (x != 0), or use np.logical_and / logical_or / logical_not, "
                        "which count a nonzero number as true")
    e = const(e, infinite=True) if not isinstance(e, sp.Basic) else e
    return sp.Ne(e, 0)


_LOGICAL = {np.bitwise_and: (sp.And, True), np.bitwise_or: (sp.Or, True), np.bitwise_xor: ("xor", True),
            np.invert: (sp.Not, True), np.logical_and: (sp.And, False), np.logical_or: (sp.Or, False),
            np.logical_xor: ("xor", False), np.logical_not: (sp.Not, False)}


def _xor(a, b):
    return sp.Or(sp.And(a, sp.Not(b)), sp.And(sp.Not(a), b))  # (And/Or/Not: the forms every evaluator reads)


def _logical(ufunc, inputs: tuple) -> "SymArray":
    """A mask combined elementwise: bitwise_and/or/xor, invert (& | ^ ~) and np.logical_* as And, Or, Not."""
    op, strict = _LOGICAL[ufunc]
    fn = _xor if op == "xor" else op
    arrays = [np.asarray(x.view(np.ndarray) if isinstance(x, SymArray) else x, dtype=object) for x in inputs]
    truth = np.frompyfunc(lambda e: _as_truth(e, strict), 1, 1)
    return wrap(_as_object(np.frompyfunc(fn, len(arrays), 1)(*[truth(a) for a in arrays])))


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


def _elementwise(fn, nin=1, infinite=False):
    ufunc = np.frompyfunc(fn, nin, 1)
    return lambda *xs: wrap(_as_object(ufunc(*[numeric(x, infinite) for x in xs])))


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
    """max(a, b); on ties the derivative is a's: d Max1 = a' TieStep(a - b) + b' Step(b - a)."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if a.is_Number and b.is_Number:
            return a if a >= b else b

    def fdiff(self, argindex=1):
        # b's share is [a < b] = Step(b - a), the same as 1 - TieStep(a - b) but one term: no "1 - t" for the
        # float kernel to add to other terms (0.7 e^z - 1 + 1 lost every digit of elu'(-300))
        a, b = self.args
        return TieStep(a - b) if argindex == 1 else Step(b - a)


class Min1(sp.Function):
    """min(a, b); on ties the derivative is a's."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if a.is_Number and b.is_Number:
            return a if a <= b else b

    def fdiff(self, argindex=1):
        a, b = self.args
        return TieStep(b - a) if argindex == 1 else Step(a - b)  # b's share: [b < a]


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


class Softplus(sp.Function):
    """log(1 + e^u), smooth everywhere; derivative 1 / (1 + e^-u). Printed as a stable helper (no overflow)."""

    nargs = 1

    @classmethod
    def eval(cls, u):
        if u.is_Number:
            return sp.log(1 + sp.exp(u))

    def fdiff(self, argindex=1):
        return 1 / (1 + sp.exp(-self.args[0]))

    def _eval_rewrite_as_log(self, u, **kwargs):
        return sp.log(1 + sp.exp(u))

    def _eval_evalf(self, prec):
        return self._eval_rewrite_as_log(*self.args)._eval_evalf(prec)


class LogSumExp(sp.Function):
    """log(e^a_1 + ... + e^a_n), printed max-shifted (no overflow, no underflow to log(0)); d/da_i is the softmax entry
    written 1 / (1 + sum_{k != i} e^(a_k - a_i)), which has no cancellation. The namespace's ``logsumexp`` builds
    log(sum(exp)); the symbolic differentiator's pipeline rewrites it to this (``rewrite.stable_forms``)."""

    @classmethod
    def eval(cls, *args):
        if len(args) == 1:
            return args[0]
        if all(a.is_Number for a in args):
            return sp.log(sp.Add(*[sp.exp(a) for a in args]))

    def fdiff(self, argindex=1):
        a_i = self.args[argindex - 1]
        return 1 / (1 + sp.Add(*[sp.exp(a - a_i) for k, a in enumerate(self.args) if k != argindex - 1]))

    def _eval_rewrite_as_log(self, *args, **kwargs):
        return sp.log(sp.Add(*[sp.exp(a) for a in args]))

    def _eval_evalf(self, prec):
        return self._eval_rewrite_as_log(*self.args)._eval_evalf(prec)


class Tanh(sp.tanh):
    """tanh whose derivative is written cosh(u)^-2: exact, and accurate in floats where 1 - tanh^2 cancels."""

    def fdiff(self, argindex=1):
        return sp.cosh(self.args[0]) ** -2

    def _eval_rewrite_as_tanh(self, u, **kwargs):
        return sp.tanh(u)


class Atan2(sp.atan2):
    """atan2(y, x) whose gradient at the origin (no derivative there) is 0 by convention, as in reverse mode."""

    def fdiff(self, argindex=1):
        y, x = self.args
        r2 = x * x + y * y
        return sp.Piecewise(((x if argindex == 1 else -y) / r2, sp.Ne(r2, 0)), (0, True))

    def _eval_rewrite_as_atan2(self, y, x, **kwargs):
        return sp.atan2(y, x)


class Pow0(sp.Function):
    """x ** y with a traced exponent. d/dy is x^y log x, and 0 where x = 0 (0^y = 0 for y > 0, flat from the
    right, the value autograd and torch give); d/dx is y x^(y-1), and 0 where x = y = 0 (x^0 = 1 is constant; the
    formula would be 0 * inf there). Elsewhere the formula itself, whose derivative in y at y = 0 is x^-1, not 0."""

    nargs = 2

    @classmethod
    def eval(cls, x, y):
        if x.is_Number and y.is_Number:
            return x ** y

    def fdiff(self, argindex=1):
        x, y = self.args
        if argindex == 1:
            d = y * Pow0(x, y - 1)  # (nested, not And: each condition a plain Eq, as the evaluators read them)
            return sp.Piecewise((sp.Piecewise((0, sp.Eq(x, 0)), (d, True)), sp.Eq(y, 0)), (d, True))
        return sp.Piecewise((0, sp.Eq(x, 0)), (Pow0(x, y) * sp.log(x), True))

    def _eval_rewrite_as_Pow(self, x, y, **kwargs):
        return sp.Pow(x, y)


#: the custom functions of this module -> their value in standard SymPy functions (for other evaluators)
_STANDARD = {Step: lambda u: sp.Piecewise((1, u > 0), (0, True)),
             TieStep: lambda u: sp.Piecewise((1, u >= 0), (0, True)),
             Max1: lambda a, b: sp.Piecewise((a, a >= b), (b, True)),
             Min1: lambda a, b: sp.Piecewise((a, a <= b), (b, True)),
             Sign0: sp.sign, Abs0: sp.Abs, Softplus: lambda u: sp.log(1 + sp.exp(u)), Tanh: sp.tanh,
             LogSumExp: lambda *a: sp.log(sp.Add(*[sp.exp(x) for x in a])),
             Atan2: sp.atan2, Pow0: sp.Pow}


def rewrite_standard(expr: sp.Basic) -> sp.Basic:
    """``expr`` with this module's custom functions replaced by standard SymPy ones of the same value.

    (Values only: derivatives of the result follow SymPy's rules, not this module's kink conventions.)
    """
    memo: dict = {}

    def walk(e):
        if e in memo:
            return memo[e]
        if not e.args:
            out = e
        else:
            args = [walk(a) for a in e.args]
            rule = _STANDARD.get(type(e))
            out = rule(*args) if rule is not None else e.func(*args)
        memo[e] = out
        return out

    return walk(expr)


def _axes_last(x, axis, who):
    """(an object array with the reduced axes moved last and merged, the kept axes' shape, the keepdims shape)."""
    a = np.asarray(numeric(x, infinite=who in ("max", "min")), dtype=object)
    axes = normalize_axes(axis, a.ndim, who)
    axes = tuple(range(a.ndim)) if axes is None else axes
    kept = [ax for ax in range(a.ndim) if ax not in axes]
    moved = np.transpose(a, kept + list(axes)).reshape(tuple(a.shape[ax] for ax in kept)
                                                       + (math.prod(a.shape[ax] for ax in axes),))  # (not -1: size 0)
    return moved, tuple(1 if ax in axes else a.shape[ax] for ax in range(a.ndim))


def _reduce(x, axis, keepdims, combine, who):
    moved, keep_shape = _axes_last(x, axis, who)
    out = np.empty(moved.shape[:-1], dtype=object)
    for idx in np.ndindex(*out.shape):
        out[idx] = combine(list(moved[idx]))
    return wrap(out.reshape(keep_shape) if keepdims else out)


def _first_extreme(fn):
    def combine(entries):
        if not entries:
            raise ValueError("zero-size array to reduction operation max/min which has no identity")
        # a balanced tree (depth log n, not n): the left half holds the earlier entries and comes first, so
        # ties go to the earliest extreme entry, as argmax's
        while len(entries) > 1:
            pairs = [fn(entries[i], entries[i + 1]) for i in range(0, len(entries) - 1, 2)]
            entries = pairs + ([entries[-1]] if len(entries) % 2 else [])
        return entries[0]
    return combine


def _where(c, a, b):
    """One entry of ``xp.where``: Piecewise((a, c), (b, True)), or, when a and b are both masks, the mask
    (c and a) or (not c and b). A number as the condition counts as true where nonzero (numpy's rule)."""
    masks = _is_boolean(a) and _is_boolean(b)
    if not _is_boolean(c):
        if not isinstance(c, sp.Basic) or c.is_Number:  # (Python's and numpy's bools and numbers too)
            c = sp.true if c != 0 else sp.false
        elif isinstance(c, sp.Piecewise) and c.args == ((sp.S.One, c.args[0].cond), (sp.S.Zero, sp.true)):
            c = c.args[0].cond  # a mask used as a number: the mask itself
        else:
            c = sp.Ne(c, 0)
    if c is sp.true or c is sp.false:
        chosen = a if c is sp.true else b
        return chosen if masks else _as_number(chosen)
    if masks:
        return sp.Or(sp.And(c, a), sp.And(sp.Not(c), b))
    return sp.Piecewise((_as_number(a), c), (_as_number(b), True))


def _reduce_add(x, axis, keepdims, who):
    a = np.asarray(numeric(x), dtype=object)
    axes = normalize_axes(axis, a.ndim, who)  # (out of range: a ValueError naming xp.sum / xp.mean)
    if axes is None:
        axes = tuple(range(a.ndim))
    elif not isinstance(axis, (int, np.integer)) and len(axes) != len(tuple(axis)):
        raise ValueError(f"xp.{who}: duplicate value in axis {tuple(axis)} (numpy's rule); name each axis once")
    kept = [ax for ax in range(a.ndim) if ax not in axes]
    count = math.prod(a.shape[ax] for ax in axes)  # (explicit, not -1: a zero-size array has no inferable axis)
    moved = np.transpose(a, kept + list(axes)).reshape(tuple(a.shape[ax] for ax in kept) + (count,))
    out = np.empty(moved.shape[:-1], dtype=object)
    for idx in np.ndindex(*out.shape):
        out[idx] = sp.Add(*moved[idx])
    if keepdims:
        out = out.reshape(tuple(1 if ax in axes else a.shape[ax] for ax in range(a.ndim)))
    return wrap(out), count


class SympyNamespace(Composites):
    """The ``xp`` models see under symbolic differentiation (see the module docstring for the kinks)."""

    name = "sympy"
    exp = staticmethod(_elementwise(sp.exp))
    log = staticmethod(_elementwise(sp.log))
    tanh = staticmethod(_elementwise(Tanh))
    sigmoid = staticmethod(_elementwise(lambda x: 1 / (1 + sp.exp(-x))))
    abs = staticmethod(_elementwise(Abs0))
    step = staticmethod(_elementwise(Step))
    maximum = staticmethod(_elementwise(Max1, 2, infinite=True))  # (an infinite bound: no absorption, see const)
    minimum = staticmethod(_elementwise(Min1, 2, infinite=True))
    sqrt = staticmethod(_elementwise(sp.sqrt))
    sin, cos, tan = (staticmethod(_elementwise(f)) for f in (sp.sin, sp.cos, sp.tan))
    arcsin, arccos, arctan = (staticmethod(_elementwise(f)) for f in (sp.asin, sp.acos, sp.atan))
    arctan2 = staticmethod(_elementwise(Atan2, 2))
    sinh, cosh = (staticmethod(_elementwise(f)) for f in (sp.sinh, sp.cosh))
    log1p, expm1, log2, log10 = (staticmethod(_elementwise(f)) for f in (sp_log1p, sp_expm1, sp_log2, sp_log10))
    erf = staticmethod(_elementwise(sp.erf))
    softplus = staticmethod(_elementwise(Softplus))
    log_sigmoid = staticmethod(_elementwise(lambda u: -Softplus(-u)))
    sign = staticmethod(_elementwise(Sign0))
    _sqrt0 = staticmethod(_elementwise(lambda s: sp.Piecewise((sp.sqrt(s), s > 0), (0, True))))

    @staticmethod
    def power(x, y):
        """x ** y; a traced exponent goes through ``Pow0`` (at x = 0, y > 0: gradient 0 in y, y 0^(y-1) in x)."""
        yr = raw(y)
        traced = any(getattr(e, "free_symbols", None) for e in np.ravel(np.asarray(yr, dtype=object)))
        return _elementwise(Pow0 if traced else (lambda a, b: a ** b), 2)(x, y)

    @staticmethod
    def where(cond, a, b):
        c = np.asarray(cond.view(np.ndarray) if isinstance(cond, SymArray) else cond, dtype=object)
        return wrap(_as_object(np.frompyfunc(_where, 3, 1)(c, raw(a), raw(b))))  # (masks: see _where)

    @staticmethod
    def sum(x, axis=None, keepdims=False):
        return _reduce_add(x, axis, keepdims, "sum")[0]

    @staticmethod
    def mean(x, axis=None, keepdims=False):
        total, count = _reduce_add(x, axis, keepdims, "mean")
        return total * sp.Rational(1, count)

    def clip(self, x, lo, hi):
        # an infinite bound is no bound (numpy's clip at +-inf leaves x as it is, and so does its gradient)
        lo, hi = (None if isinstance(b, (float, np.floating)) and math.isinf(b) else b for b in (lo, hi))
        return super().clip(x, lo, hi)

    @staticmethod
    def max(x, axis=None, keepdims=False):
        return _reduce(x, axis, keepdims, _first_extreme(Max1), "max")

    @staticmethod
    def min(x, axis=None, keepdims=False):
        return _reduce(x, axis, keepdims, _first_extreme(Min1), "min")

    @staticmethod
    def prod(x, axis=None, keepdims=False):
        return _reduce(x, axis, keepdims, lambda e: sp.Mul(*e), "prod")  # d/dx_i: the product of the others

    @staticmethod
    def cumsum(x, axis=None):
        a = np.asarray(numeric(x), dtype=object)
        if axis is not None and not isinstance(axis, (int, np.integer)):
            raise TypeError(f"xp.cumsum: axis must be an int or None (numpy's rule); got {axis!r}")
        a, axis = (a.reshape(-1), 0) if axis is None else (a, normalize_axes(axis, a.ndim, "cumsum")[0])
        m = np.moveaxis(a, axis, -1)
        out = np.empty(m.shape, dtype=object)
        for idx in np.ndindex(*m.shape[:-1]):
            total = sp.S.Zero
            for k in range(m.shape[-1]):
                total = total + m[idx + (k,)]
                out[idx + (k,)] = total
        return wrap(np.moveaxis(out, -1, axis))

    @staticmethod
    def logsumexp(x, axis=None, keepdims=False):
        if np.ndim(raw(x)) == 0:  # (as namespace._logsumexp)
            return x
        return SympyNamespace.log(SympyNamespace.sum(SympyNamespace.exp(x), axis=axis, keepdims=keepdims))

    @staticmethod
    def reshape(x, shape):
        return wrap(np.reshape(raw(x), shape))

    @staticmethod
    def transpose(x, axes=None):
        return wrap(np.transpose(raw(x), axes))

    @staticmethod
    def broadcast_to(x, shape):
        return wrap(np.array(np.broadcast_to(np.asarray(raw(x), dtype=object), tuple(shape))))

    @staticmethod
    def concatenate(xs, axis=0):
        return wrap(np.concatenate([np.asarray(raw(x), dtype=object) for x in xs], axis=axis))

    @staticmethod
    def _pad(x, widths, value):
        return wrap(np.pad(np.asarray(raw(x), dtype=object), widths, constant_values=const(value, infinite=True)))

    @staticmethod
    def einsum(subscripts, *operands):
        subscripts, operands = einsum_arguments(subscripts, operands)  # (numpy's sublist form too)
        arrays = [np.asarray(numeric(x), dtype=object) for x in operands]
        ins, out = parse_einsum(subscripts, [a.ndim for a in arrays])
        return wrap(_as_object(np.einsum(",".join(ins) + "->" + out, *arrays)))

    @staticmethod
    def asarray(x):
        return wrap(raw(x))


SYMPY = SympyNamespace()
