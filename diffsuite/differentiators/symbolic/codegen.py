"""Turning expressions into numbers: straight-line Python source, compiled once, and an mpmath DAG evaluator.

``generate_source`` writes ``def kernel(_t): ...; return value, [grads]`` from a CSE result (or plain
expressions), using ``math`` functions and float literals, so that one call is a few hundred
bytecodes and no numpy overhead. ``Kernel`` runs it on floats (fast path; ``math`` raises on overflow,
log(0), a division by zero and a real function outside its domain); when it raises, it reruns the same code
on mpmath numbers (binary floats with an unbounded exponent, so exp(1000) / (exp(1000) + exp(999)) is computed
as it should be, and arithmetic that IEEE 754 leaves undefined gives inf or nan instead of raising, so a value
that CSE computed for a ``where`` branch that is not taken is simply discarded), and only where that cannot run,
on numpy scalars (inf/nan returned as they are, never hidden).
``evaluate_mp`` evaluates SymPy expressions at any precision with a memoised walk over the DAG.
"""
from __future__ import annotations

import math
import re
from typing import Any

import mpmath
import numpy as np
import sympy as sp
from mpmath.libmp import from_rational, round_nearest
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.logic.boolalg import ITE, And, Not, Or
from sympy.printing.pycode import PythonCodePrinter

from sympy.codegen.cfunctions import expm1 as sp_expm1
from sympy.codegen.cfunctions import log1p as sp_log1p
from sympy.codegen.cfunctions import log2 as sp_log2
from sympy.codegen.cfunctions import log10 as sp_log10

from .namespace import Abs0, Atan2, LogSumExp, Max1, Min1, Pow0, Sign0, Softplus, Step, Tanh, TieStep


class _Printer(PythonCodePrinter):
    """Python source calling ``exp``, ``log``, ... unqualified (bound per kernel: ``math`` or numpy);
    numbers as float literals; symbols renamed to identifiers."""

    def __init__(self, names: dict[str, str]):
        super().__init__({"standard": "python3", "fully_qualified_modules": False})
        self.names = names

    def _print_Symbol(self, expr):
        name = self.names.get(expr.name)
        return name if name is not None else "_c_" + re.sub(r"\W", "_", expr.name)

    def _print_Rational(self, expr):
        return _number_literal(expr.p, expr.q)  # data constants are binary fractions: the literal is exact

    def _print_Integer(self, expr):
        return str(expr.p) if abs(expr.p) <= _MAX_EXACT_INT else _number_literal(expr.p, 1)

    def _print_Float(self, expr):
        return _number_literal(*map(int, sp.Rational(expr).as_numer_denom()))

    def _print_Piecewise(self, expr):
        # integer branches as floats: a sum of untaken branches' (0) must not become Python's int 0, which the
        # wide and numpy kernels would then divide by with ZeroDivisionError instead of giving inf or nan
        pairs = [(sp.Float(e) if e.is_Integer else e, c) for e, c in expr.args]
        return super()._print_Piecewise(sp.Piecewise(*pairs, evaluate=False))

    # the kink functions (namespace.py): each argument printed once
    def _print_Step(self, expr):
        return f"(1.0 if {self._print(expr.args[0])} > 0 else 0.0)"

    def _print_TieStep(self, expr):
        return f"(1.0 if {self._print(expr.args[0])} >= 0 else 0.0)"

    def _print_Max1(self, expr):
        return f"_max1({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_Min1(self, expr):
        return f"_min1({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_Sign0(self, expr):
        return f"_sign({self._print(expr.args[0])})"

    def _print_Abs0(self, expr):
        return f"abs({self._print(expr.args[0])})"

    # the smooth custom functions and the standard ones, each a name bound per kernel (math, mpmath or numpy)
    def _print_Softplus(self, expr):
        return f"_softplus({self._print(expr.args[0])})"

    def _print_LogSumExp(self, expr):
        return f"_logsumexp({', '.join(self._print(a) for a in expr.args)})"

    def _print_Tanh(self, expr):
        return f"tanh({self._print(expr.args[0])})"

    def _print_Atan2(self, expr):
        return f"atan2({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_Pow0(self, expr):
        return f"_pow({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_Function(self, expr):
        name = type(expr).__name__
        if name in _UNARY_NAMES:
            return f"{name}({', '.join(self._print(a) for a in expr.args)})"
        return super()._print_Function(expr)

    _print_sin = _print_cos = _print_tan = _print_asin = _print_acos = _print_atan = _print_Function
    _print_sinh = _print_cosh = _print_erf = _print_log1p = _print_expm1 = _print_log2 = _print_log10 = _print_Function

    def _print_atan2(self, expr):
        return f"atan2({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_Pow(self, expr, rational=False):
        # (not x*x, though it is faster in CPython: x*x overflows to inf silently, x**2 raises OverflowError, which
        # sends the call to the wide kernel. sigmoid'(-400) = e^400 / (1 + e^400)^2 came out 0 from x*x.)
        # A power that is neither an integer nor +-1/2 (sqrt) goes through _pow: Python's float ** gives a complex
        # number for a negative base (math.pow raises ValueError, a domain error like log's, so the fallbacks run).
        if expr.exp.is_Integer or expr.exp in (sp.S.Half, -sp.S.Half):
            return super()._print_Pow(expr, rational=rational)
        return f"_pow({self._print(expr.base)}, {self._print(expr.exp)})"


#: the largest integer printed as a Python int literal (larger ones, beyond float64's range, as ``_number``)
_MAX_EXACT_INT = 2 ** 1000
_SMALLEST_NORMAL = 2.2250738585072014e-308


def _number_literal(p: int, q: int) -> str:
    """The constant p / q as a float literal where float64 holds it (to its rounding); else ``_number(p, q)``.

    A constant that SymPy folded outside float64's range (1e-200 * 1e-200), or into its subnormal range where
    rounding loses digits, would print as 0.0, inf or a few-digit subnormal and silently change the result. As
    ``_number(p, q)`` it makes the float kernel raise OverflowError (the call reruns in the wide kernel, where it
    is p / q to 113 bits), and is the nearest float64 in the numpy kernel.
    """
    try:
        f = p / q  # (Python divides the integers exactly, then rounds once; OverflowError beyond float64's range)
    except OverflowError:
        return f"_number({p}, {q})"
    if p != 0 and (f == 0.0 or (abs(f) < _SMALLEST_NORMAL and sp.Rational(f) != sp.Rational(p, q))):
        return f"_number({p}, {q})"
    return f"({f!r})"


def generate_source(arg_names: list[str], replacements: list[tuple[Any, Any]], outputs: list[Any]) -> str:
    """``def kernel(_t)`` unpacking ``_t`` into the symbols ``arg_names`` and returning (outputs[0], outputs[1:])."""
    ids = {name: f"a{i}" for i, name in enumerate(arg_names)}
    printer = _Printer(ids)
    # the functions as default arguments: local-variable lookups, the fastest CPython has
    lines = [f"def kernel(_t, {', '.join(f'{f}={f}' for f in _LOCAL_FUNCTIONS)}):"]
    if ids:
        lines.append(f"    {', '.join(ids.values())}, = _t")
    for sym, rhs in replacements:
        lines.append(f"    {printer.doprint(sym)} = {printer.doprint(rhs)}")
    value, *grads = (printer.doprint(e) for e in outputs)
    lines.append(f"    return {value}, [{', '.join(grads)}]")
    return "\n".join(lines) + "\n"


_UNARY_NAMES = ("sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "cosh", "erf", "log1p", "expm1", "log2",
                "log10")
_LOCAL_FUNCTIONS = ("exp", "log", "tanh", "_max1", "_min1", "_sign")
_MATH_NAMES = ("exp", "log", "tanh", "sqrt", "copysign", "inf", "nan", "pi", "e", "sin", "cos", "tan", "asin", "acos",
               "atan", "atan2", "sinh", "cosh", "erf", "log1p", "expm1", "log2", "log10")
_FLOAT_MATH = {name: getattr(math, name) for name in _MATH_NAMES}
_NUMPY_NAMES = {"asin": "arcsin", "acos": "arccos", "atan": "arctan", "atan2": "arctan2"}
_NUMPY_MATH = {name: getattr(np, _NUMPY_NAMES.get(name, name)) for name in _MATH_NAMES if name != "erf"}
_NUMPY_MATH["erf"] = np.vectorize(math.erf, otypes=[np.float64])


def _softplus_float(x):
    return (x if x > 0 else 0.0) + math.log1p(math.exp(-abs(x)))  # no overflow, a few ulp


def _logsumexp_float(*xs):
    """m + log1p(sum of e^(x - m) over the others), m the largest: no overflow, no log(0), and a few ulp even where
    the result is tiny (log1p keeps the digits of log(1 + e^-40))."""
    k = max(range(len(xs)), key=xs.__getitem__)
    m = xs[k]
    if m == -math.inf:  # (every entry -inf: the sum of exps is 0; x - m would be nan)
        return m
    return m + math.log1p(math.fsum([math.exp(x - m) for i, x in enumerate(xs) if i != k]))


def _pow_float(x, y):
    return math.pow(x, y)  # a negative base with a fractional exponent raises (Python's ** would go complex)


def _number_float(p, q):
    raise OverflowError(f"the constant {p}/{q} is outside float64's range")  # (only such constants print as _number)


def _number_numpy(p, q):
    try:
        return np.float64(p / q)
    except OverflowError:
        return np.float64(math.copysign(math.inf, p) * math.copysign(1.0, q))


def _max1(a, b):
    return a if a >= b else b


def _min1(a, b):
    return a if a <= b else b


def _sign(u):
    return 1.0 if u > 0 else -1.0 if u < 0 else 0.0


_HELPERS = {"_max1": _max1, "_min1": _min1, "_sign": _sign}
_FLOAT_HELPERS = {"_softplus": _softplus_float, "_pow": _pow_float, "_logsumexp": _logsumexp_float,
                  "_number": _number_float}
_NUMPY_HELPERS = {"_softplus": lambda x: np.logaddexp(0.0, x), "_pow": np.power,
                  "_logsumexp": lambda *xs: np.logaddexp.reduce(np.array(xs, dtype=np.float64)),
                  "_number": _number_numpy}


# ----- the wide kernel's numbers: mpmath, 113-bit significand, unbounded exponent, IEEE 754's inf and nan -----
_WIDE = mpmath.MPContext()
_WIDE.prec = 113  # quadruple precision's significand; the exponent is unbounded
_WIDE_MPF = _WIDE.mpf  # (this context's own class: mpmath makes one per context, so the changes below stay here)


def _quotient_by_zero(a):
    """a / 0 as IEEE 754 has it (mpmath raises): nan for 0 / 0 and nan / 0, else inf with a's sign (mpmath has
    no signed zero: 1 / -0.0 is +inf here, -inf in numpy)."""
    if isinstance(a, _WIDE.mpc) or a != a or a == 0:
        return _WIDE.nan
    return _WIDE.inf if a > 0 else -_WIDE.inf


def _real(r):
    """A complex result of real arguments (log, sqrt, power of a negative number) as nan, numpy's value."""
    return _WIDE.nan if isinstance(r, _WIDE.mpc) else r


def _total(op, by_zero):
    def total(a, b):
        try:
            return _real(op(a, b))
        except ZeroDivisionError:
            return by_zero(a, b)
    total.__name__ = op.__name__
    return total


# x / 0 and 0 ** -k give inf or nan instead of raising, so that a subexpression CSE computed for an untaken
# ``where`` branch (1 / t beside t != 0) cannot stop the wide kernel; its value is discarded with the branch
_WIDE_MPF.__truediv__ = _total(_WIDE_MPF.__truediv__, lambda a, b: _quotient_by_zero(a))
_WIDE_MPF.__rtruediv__ = _total(_WIDE_MPF.__rtruediv__, lambda b, a: _quotient_by_zero(a))
_WIDE_MPF.__pow__ = _total(_WIDE_MPF.__pow__, lambda a, b: _WIDE.inf)  # 0 ** negative: +inf, as IEEE's pow
_WIDE_MPF.__rpow__ = _total(_WIDE_MPF.__rpow__, lambda b, a: _WIDE.inf)


def _wide_real(fn):
    """``fn`` with a complex result (an argument outside the real domain) given as nan."""
    return lambda *xs: _real(fn(*xs))


def _wide_pow(x, y):
    try:
        return _real(_WIDE.power(x, y))
    except ZeroDivisionError:  # 0 ** negative
        return _WIDE.inf


def _wide_number(p, q):
    return _WIDE.make_mpf(from_rational(p, q, _WIDE.prec, round_nearest))


_WIDE_MATH = {"exp": _WIDE.exp, "log": _wide_real(_WIDE.log), "tanh": _WIDE.tanh, "sqrt": _wide_real(_WIDE.sqrt),
              "copysign": lambda a, b: abs(a) if b >= 0 else -abs(a), "inf": _WIDE.inf, "nan": _WIDE.nan,
              "pi": _WIDE.pi, "e": _WIDE.e, "sin": _WIDE.sin, "cos": _WIDE.cos, "tan": _WIDE.tan,
              "asin": _wide_real(_WIDE.asin), "acos": _wide_real(_WIDE.acos), "atan": _WIDE.atan,
              "atan2": _WIDE.atan2, "sinh": _WIDE.sinh, "cosh": _WIDE.cosh, "erf": _WIDE.erf,
              "log1p": _wide_real(_WIDE.log1p), "expm1": _WIDE.expm1, "log2": _wide_real(lambda x: _WIDE.log(x, 2)),
              "log10": _wide_real(_WIDE.log10), "_softplus": lambda x: _WIDE.log1p(_WIDE.exp(x)), "_pow": _wide_pow,
              "_logsumexp": lambda *xs: _WIDE.log(_WIDE.fsum(_WIDE.exp(x) for x in xs)), "_number": _wide_number}


#: a float literal of a generated kernel: the printer writes floats only as their repr (``_number_literal``, the
#: kink printers' 1.0 / 0.0), and every name it writes starts with a letter or _, so no name holds a match
_FLOAT_LITERAL = re.compile(r"(?<![\w.])(\d+\.\d*(?:e[+-]?\d+)?|\d+e[+-]?\d+)")


def _typed_literals(source: str) -> str:
    """``source`` with each float literal ``c`` as ``_literal(c)`` (bound per kernel to its number type). (A regex
    over the printer's own output: an ``ast`` rewrite of a 2 000-line kernel took 10x the kernel's compile time.)"""
    return _FLOAT_LITERAL.sub(r"_literal(\1)", source)


class Kernel:
    """A generated ``kernel`` compiled for floats (``fast``), for mpmath numbers with an unbounded exponent
    (``wide``, used when floats overflow) and for numpy scalars (``safe``, no exceptions)."""

    def __init__(self, source: str):
        self.source = source
        code = compile(source, "<diffsuite.symbolic kernel>", "exec")
        # the wide and numpy kernels read each float literal as their own number type, so that arithmetic on
        # literals alone (the untaken branches' 0.0 summed, then divided by) follows their rules, not Python's
        typed = compile(_typed_literals(source), "<diffsuite.symbolic kernel>", "exec")
        fast_ns, wide_ns, safe_ns = ({**_FLOAT_MATH, **_HELPERS, **_FLOAT_HELPERS},
                                     {**_WIDE_MATH, **_HELPERS, "_literal": _WIDE_MPF},
                                     {**_NUMPY_MATH, **_HELPERS, **_NUMPY_HELPERS, "_literal": np.float64})
        exec(code, fast_ns)
        exec(typed, wide_ns)
        exec(typed, safe_ns)
        self.fast, self._wide, self._safe = fast_ns["kernel"], wide_ns["kernel"], safe_ns["kernel"]

    def wide(self, values: list[float]) -> tuple[float, list[float]]:
        """The same code on mpmath numbers (113-bit significand, unbounded exponent): no intermediate overflows
        or underflows, so exp(1000) / (1 + exp(1000)) is 1.0 and log(exp(1000) + exp(999)) is finite; only the
        results are rounded to float64 (a result beyond float64's range becomes +-inf). Where the code is undefined
        it follows IEEE 754 as numpy does (x / 0 is +-inf, 0 / 0 nan, log or sqrt of a negative number nan), so a
        value computed for a ``where`` branch that is not taken is discarded with it and cannot stop the call."""
        mpf = _WIDE.mpf
        value, grads = self._wide([mpf(v) for v in values])
        return float(value), [float(g) for g in grads]

    def safe(self, values: list[float]) -> tuple[float, list[float]]:
        """Numpy float64 arithmetic: overflow gives inf, invalid operations nan (the numpy way)."""
        with np.errstate(all="ignore"):
            value, grads = self._safe([np.float64(v) for v in values])
        return float(value), [float(g) for g in grads]

    def __call__(self, values: list[float]) -> tuple[float, list[float]]:
        try:
            return self.fast(values)
        except (OverflowError, ZeroDivisionError, ValueError):
            # an overflow, an underflow that became log(0) or x / 0 (a logsumexp of logits below -745, whose exact
            # value is finite), a constant outside float64's range, or an undefined operation (perhaps only in an
            # untaken where branch that CSE computed beforehand): the wide kernel settles each
            pass
        try:
            return self.wide(values)
        except (OverflowError, ZeroDivisionError, ValueError, TypeError):  # (what mpmath still cannot run)
            return self.safe(values)


# ----- high precision -----
class _Undefined:
    """A value that could not be computed (e.g. in a Piecewise branch that is not taken)."""


_UNDEFINED = _Undefined()

_RELATIONS = {
    sp.StrictGreaterThan: lambda a, b: a > b, sp.GreaterThan: lambda a, b: a >= b,
    sp.StrictLessThan: lambda a, b: a < b, sp.LessThan: lambda a, b: a <= b,
    sp.Equality: lambda a, b: a == b, sp.Unequality: lambda a, b: a != b,
}


def _mp_node(expr, args, ctx):
    if isinstance(expr, sp.Integer):
        return ctx.mpf(int(expr))
    if isinstance(expr, sp.Rational):
        return ctx.mpf(expr.p) / expr.q
    if isinstance(expr, sp.Float):
        return ctx.mpf(expr._mpf_)
    if isinstance(expr, sp.NumberSymbol):  # E (from exp(1) of constant data), pi
        return ctx.mpf(expr.evalf(ctx.dps + 10)._mpf_)
    if expr is sp.true or expr is sp.false:
        return bool(expr)
    if isinstance(expr, sp.Piecewise):
        for value, cond in args:
            if cond is _UNDEFINED:
                return _UNDEFINED
            if cond:
                return value
        return _UNDEFINED
    if isinstance(expr, ExprCondPair):
        return tuple(args)
    if isinstance(expr, ITE):  # SymEngine's Piecewise comes back to SymPy as ITE(cond, a, b)
        cond, a, b = args
        return _UNDEFINED if cond is _UNDEFINED else (a if cond else b)
    if isinstance(expr, (And, Or, Not)) and not any(a is _UNDEFINED for a in args):
        return {And: all, Or: any, Not: lambda xs: not xs[0]}[type(expr)](args)
    if any(a is _UNDEFINED for a in args):
        return _UNDEFINED
    if isinstance(expr, sp.Add):
        return ctx.fsum(args)
    if isinstance(expr, sp.Mul):
        return ctx.fprod(args)
    if isinstance(expr, sp.Pow):
        base, exponent = args
        return base ** int(expr.exp) if expr.exp.is_Integer else ctx.power(base, exponent)
    if type(expr) in _RELATIONS:
        return _RELATIONS[type(expr)](*args)
    unary = {sp.exp: ctx.exp, sp.log: ctx.log, sp.tanh: ctx.tanh, sp.Abs: abs, sp.sign: ctx.sign, Abs0: abs,
             Sign0: ctx.sign, Step: lambda u: ctx.mpf(u > 0), TieStep: lambda u: ctx.mpf(u >= 0),
             Max1: _max1, Min1: _min1, sp.sin: ctx.sin, sp.cos: ctx.cos, sp.tan: ctx.tan, sp.asin: ctx.asin,
             sp.acos: ctx.acos, sp.atan: ctx.atan, sp.atan2: ctx.atan2, Atan2: ctx.atan2, sp.sinh: ctx.sinh,
             sp.cosh: ctx.cosh, sp.erf: ctx.erf, sp_log1p: ctx.log1p, sp_expm1: ctx.expm1,
             sp_log2: lambda x: ctx.log(x, 2), sp_log10: ctx.log10, Tanh: ctx.tanh,
             Softplus: lambda x: ctx.log1p(ctx.exp(x)), Pow0: ctx.power,
             LogSumExp: lambda *xs: ctx.log(ctx.fsum(ctx.exp(x) for x in xs))}
    if type(expr) in unary:
        return unary[type(expr)](*args)
    if isinstance(expr, sp.Heaviside):
        x = args[0]
        return ctx.mpf(1) if x > 0 else ctx.mpf(0) if x < 0 else args[1]
    raise NotImplementedError(f"the high-precision evaluator has no rule for {type(expr).__name__} (in {expr}); "
                              "it knows + * ** exp log tanh Abs sign Piecewise ITE Heaviside, and/or/not and comparisons")


def evaluate_mp(exprs: list[sp.Basic], values: dict[str, Any], ctx) -> list[Any]:
    """Evaluate ``exprs`` with mpmath context ``ctx`` (its precision); ``values``: symbol name -> mpf.

    A memoised bottom-up walk: each distinct subexpression is computed once. Raises ValueError if an
    expression is undefined at the point (log of a negative number, division by zero).
    """
    memo: dict = {}
    for root in exprs:
        stack = [(root, False)]
        while stack:
            node, ready = stack.pop()
            if ready:
                if isinstance(node, sp.Symbol):
                    try:
                        memo[node] = values[node.name]
                    except KeyError:
                        raise ValueError(f"no value given for the symbol {node.name!r}") from None
                    continue
                try:
                    memo[node] = _mp_node(node, [memo[a] for a in node.args], ctx)
                except (ZeroDivisionError, ValueError):
                    memo[node] = _UNDEFINED
                if isinstance(memo[node], ctx.mpc):  # log or power of a negative number
                    memo[node] = _UNDEFINED
            elif node not in memo:
                stack.append((node, True))
                stack.extend((a, False) for a in node.args if a not in memo)
    out = [memo[e] for e in exprs]
    if any(v is _UNDEFINED for v in out):
        raise ValueError("the expression is not defined at this point (a log or a power of a non-positive "
                         "number, or a division by zero); choose another point")
    return out
