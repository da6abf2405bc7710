"""SymPy <-> SymEngine conversion for ``engine="symengine"``: memoised (each distinct node converted once).

SymEngine knows Piecewise but neither our kink functions nor the derivative of abs, so they cross as
Piecewise with the same values and derivative conventions: Max1(a, b) -> Piecewise((a, a >= b), (b, True))
(ties: a), Step(u) -> [u > 0], Abs0(u) -> Piecewise((u, u > 0), (-u, u < 0), (0, True)) (abs'(0) = 0).

Functions SymEngine lacks (log1p, expm1, log2, log10, softplus, logsumexp), differentiates with cancellation
(tanh' as 1 - tanh^2, 0 in saturation) or without our conventions (atan2 at the origin and 0^y gave nan;
namespace.Atan2 and Pow0 give 0) cross as opaque SymEngine functions of the same name (``OPAQUE``): the code
generator prints their values as stable calls (``log1p``, ``_softplus``, ``_logsumexp``), never as the naive
log(1 + exp(u)) (0 where the exact value is exp(u) < 1e-16). SymEngine leaves their derivatives as
``Derivative``/``Subs``; ``diff`` writes them out with ``OPAQUE``'s rules. Anything else SymEngine cannot
express raises NotImplementedError naming it.
"""
from __future__ import annotations

from typing import Any, Callable

import sympy as sp
from sympy.core.containers import Tuple
from sympy.functions.elementary.piecewise import ExprCondPair

from sympy.codegen.cfunctions import expm1 as sp_expm1
from sympy.codegen.cfunctions import log1p as sp_log1p
from sympy.codegen.cfunctions import log2 as sp_log2
from sympy.codegen.cfunctions import log10 as sp_log10

from ...errors import MissingDependency
from .namespace import Abs0, Atan2, LogSumExp, Max1, Min1, Pow0, Sign0, Softplus, Step, Tanh, TieStep


#: SymPy function -> (the opaque SymEngine function's name, rule(se, args, i): its partial derivative in argument i
#: at args, written with SymEngine's functions). Each is accurate in floats over the whole domain (tanh' as
#: cosh^-2; softplus' = 1 / (1 + e^-u); logsumexp's the softmax entry without cancellation).
OPAQUE: dict[type, tuple[str, Callable[[Any, tuple, int], Any]]] = {
    Softplus: ("Softplus", lambda se, a, i: 1 / (1 + se.exp(-a[0]))),
    Tanh: ("Tanh", lambda se, a, i: se.cosh(a[0]) ** -2),
    sp_log1p: ("log1p", lambda se, a, i: 1 / (1 + a[0])),
    sp_expm1: ("expm1", lambda se, a, i: se.exp(a[0])),
    sp_log2: ("log2", lambda se, a, i: 1 / (a[0] * se.log(2))),
    sp_log10: ("log10", lambda se, a, i: 1 / (a[0] * se.log(10))),
    LogSumExp: ("LogSumExp", lambda se, a, i: 1 / (1 + se.Add(*[se.exp(x - a[i]) for k, x in enumerate(a) if k != i]))),
    # the kink conventions of namespace.py's Atan2 and Pow0 (SymEngine's atan2 and pow give nan at the origin / 0^y)
    Atan2: ("Atan2", lambda se, a, i: _atan2_partial(se, *a, i)),
    Pow0: ("Pow0", lambda se, a, i: _pow0_partial(se, *a, i)),
}


def _atan2_partial(se, y, x, i):
    """d atan2(y, x) / dy = x / r^2, d / dx = -y / r^2, both 0 at the origin (as namespace.Atan2)."""
    r2 = x * x + y * y
    return se.Piecewise(((x if i == 0 else -y) / r2, se.Ne(r2, 0)), (0, True))


def _pow0_partial(se, x, y, i):
    """d x^y / dx = y x^(y-1) (0 where x = y = 0), d / dy = x^y log x (0 where x = 0), as namespace.Pow0."""
    pow0 = se.Function("Pow0")
    if i == 0:
        d = y * pow0(x, y - 1)
        return se.Piecewise((se.Piecewise((0, se.Eq(x, 0)), (d, True)), se.Eq(y, 0)), (d, True))
    return se.Piecewise((0, se.Eq(x, 0)), (pow0(x, y) * se.log(x), True))
_OPAQUE_BY_NAME = {name: (cls, rule) for cls, (name, rule) in OPAQUE.items()}


def load_symengine():
    try:
        import symengine
    except ImportError as e:
        raise MissingDependency("engine='symengine'", "symengine", "symengine", "or use engine='sympy'") from e
    return symengine


def _memoised(root: Any, convert_node: Callable[[Any, list], Any], memo: dict | None = None) -> Any:
    memo = {} if memo is None else memo
    stack = [(root, False)]
    while stack:
        node, ready = stack.pop()
        if ready:
            memo[node] = convert_node(node, [memo[a] for a in node.args])
        elif node not in memo:
            stack.append((node, True))
            stack.extend((a, False) for a in node.args if a not in memo)
    return memo[root]


def _opaque_rule(f: Any) -> Callable | None:
    """The derivative rule of an opaque function application ``f`` (a SymEngine FunctionSymbol), or None."""
    if type(f).__name__ != "FunctionSymbol":
        return None
    entry = _OPAQUE_BY_NAME.get(f.get_name())
    return None if entry is None else entry[1]


def diff(expr: Any, x: Any) -> Any:
    """SymEngine's d expr / d x with the derivatives of the opaque functions (``OPAQUE``) written out.

    SymEngine writes d F(u) / dx as Subs(Derivative(F(xi), xi), xi, u) * du/dx, or Derivative(F(x), x) when u
    is x itself; both become F'(u). Others are left for the caller's check for unevaluated derivatives.
    """
    se = load_symengine()
    d = se.diff(expr, x)
    subs, derivatives = _unevaluated(d)
    table = {}
    for s in subs:  # Subs(Derivative(F(..., xi, ...), xi), xi, u): the partial in xi's place, at xi = u
        inner, xi, point = s.args
        if type(inner).__name__ != "Derivative" or len(inner.args) != 2:
            continue
        f = inner.args[0]
        rule, places = _opaque_rule(f), [k for k, a in enumerate(f.args) if a == xi]
        if rule is not None and inner.args[1] == xi and len(places) == 1:
            table[s] = rule(se, tuple(point if k == places[0] else a for k, a in enumerate(f.args)), places[0])
    for s in derivatives:  # Derivative(F(..., x, ...), x): the partials in x's places
        f, *wrt = s.args
        rule = _opaque_rule(f)
        if rule is None or len(wrt) != 1:
            continue
        places = [k for k, a in enumerate(f.args) if a == wrt[0]]
        if all(k in places or wrt[0] not in a.free_symbols for k, a in enumerate(f.args)):
            table[s] = se.Add(*[rule(se, tuple(f.args), k) for k in places])
    return d.xreplace(table) if table else d


def _unevaluated(expr: Any) -> tuple[list, list]:
    """(the Subs nodes, the Derivative nodes outside them) of a SymEngine expression: one walk over its DAG (each
    distinct node once; SymEngine's ``atoms`` walks the printed tree, 100x slower on a network's derivative)."""
    seen, subs, derivatives, stack = set(), [], [], [expr]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        kind = type(node).__name__
        if kind == "Subs":
            subs.append(node)
        elif kind == "Derivative":
            derivatives.append(node)
        else:
            stack.extend(node.args)
    return subs, derivatives


def to_symengine(expr: sp.Basic) -> Any:
    """A SymEngine expression equal to ``expr`` (symbols keep their names; constants stay exact)."""
    se = load_symengine()
    piecewise = {
        Max1: lambda a, b: se.Piecewise((a, se.Ge(a, b)), (b, True)),
        Min1: lambda a, b: se.Piecewise((a, se.Le(a, b)), (b, True)),
        Step: lambda u: se.Piecewise((1, se.Gt(u, 0)), (0, True)),
        TieStep: lambda u: se.Piecewise((1, se.Ge(u, 0)), (0, True)),
        Sign0: lambda u: se.Piecewise((1, se.Gt(u, 0)), (-1, se.Lt(u, 0)), (0, True)),
        Abs0: lambda u: se.Piecewise((u, se.Gt(u, 0)), (-u, se.Lt(u, 0)), (0, True)),
    }
    ops = {sp.Add: se.Add, sp.Mul: se.Mul, sp.Pow: se.Pow, sp.exp: se.exp, sp.log: se.log, sp.tanh: se.tanh,
           sp.sin: se.sin, sp.cos: se.cos, sp.tan: se.tan, sp.asin: se.asin, sp.acos: se.acos, sp.atan: se.atan,
           sp.sinh: se.sinh, sp.cosh: se.cosh, sp.erf: se.erf, sp.atan2: se.atan2,
           **{cls: se.Function(name) for cls, (name, _) in OPAQUE.items()},  # see the module docstring

           sp.Piecewise: lambda *pairs: se.Piecewise(*pairs),
           sp.functions.elementary.piecewise.ExprCondPair: lambda e, c: (e, c),
           sp.StrictGreaterThan: se.Gt, sp.GreaterThan: se.Ge, sp.StrictLessThan: se.Lt, sp.LessThan: se.Le,
           sp.Equality: se.Eq, sp.Unequality: se.Ne, sp.And: se.And, sp.Or: se.Or, sp.Not: se.Not,
           **piecewise}

    def convert(node, args):
        if isinstance(node, sp.Symbol):
            return se.Symbol(node.name)
        if isinstance(node, sp.Integer):
            return se.Integer(int(node))
        if isinstance(node, sp.Rational):
            return se.Integer(node.p) / se.Integer(node.q)
        if isinstance(node, sp.Float):
            return se.RealDouble(float(node))
        if node is sp.true or node is sp.false:
            return se.true if node is sp.true else se.false
        rule = ops.get(type(node))
        if rule is None and not args and node.is_number:
            return se.sympify(node)  # E, pi
        if rule is None:
            raise NotImplementedError(f"engine='symengine' cannot express {type(node).__name__} here; "
                                      "use engine='sympy'")
        return rule(*args)

    return _memoised(expr, convert)


_RELATIONS = {"GreaterThan": sp.GreaterThan, "StrictGreaterThan": sp.StrictGreaterThan, "LessThan": sp.LessThan, "StrictLessThan": sp.StrictLessThan, "Equality": sp.Equality,
              "Unequality": sp.Unequality}
_FUNCTIONS = {  # unevaluated: SymEngine's result is already canonical, and SymPy's re-sorting is the slow part
    "Add": lambda *a: sp.Add(*a, evaluate=False),
    "Mul": lambda *a: sp.Mul(*a, evaluate=False),
    "Pow": lambda b, e: sp.exp(e) if b is sp.E else sp.Pow(b, e, evaluate=False),  # SymEngine's exp is E**x
    "exp": sp.exp, "log": sp.log, "tanh": sp.tanh, "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "asin": sp.asin,
    "acos": sp.acos, "atan": sp.atan, "sinh": sp.sinh, "cosh": sp.cosh, "erf": sp.erf, "atan2": sp.atan2,
}


def _piecewise(args: list) -> sp.Basic:
    """SymPy's Piecewise of SymEngine's flat (value, condition, ...) arguments, built as they are.

    ``sp.Piecewise(...)`` would pass each pair through ``ExprCondPair``, which folds a condition holding a
    Piecewise (hinge's [1 - y out > 0] on an elu or relu network: the output is a Piecewise) and rewrites it
    with ``as_set``, failing with "BooleanAtom not allowed in this context". The pairs are already canonical:
    only a false condition is dropped and a true one ends the list, as Piecewise itself would.
    """
    pairs = []
    for value, cond in zip(args[::2], args[1::2]):
        if cond is sp.false:
            continue
        pairs.append(Tuple.__new__(ExprCondPair, value, cond))
        if cond is sp.true:
            break
    if len(pairs) == 1 and pairs[0].cond is sp.true:
        return pairs[0].expr
    return sp.Basic.__new__(sp.Piecewise, *pairs)


_BOOLEANS = {"And": sp.And, "Or": sp.Or, "Not": sp.Not}
_INFINITIES = {"Infinity": sp.oo, "NegativeInfinity": -sp.oo}  # (SymEngine gives them an argument, the sign)


def from_symengine(expr: Any, memo: dict | None = None) -> sp.Basic:
    """A SymPy expression equal to the SymEngine ``expr`` (Piecewise kept unevaluated, as SymEngine made it).

    Pass one ``memo`` dict to several calls to convert their shared subexpressions once.
    """
    if isinstance(expr, sp.Basic):
        return expr

    def convert(node, args):
        kind = type(node).__name__
        if kind in _INFINITIES:
            return _INFINITIES[kind]
        if not args:
            return sp.Symbol(node.name) if kind == "Symbol" else sp.sympify(node)
        if kind in _FUNCTIONS:
            return _FUNCTIONS[kind](*args)
        if kind in _RELATIONS:
            return _RELATIONS[kind](*args, evaluate=False)
        if kind in _BOOLEANS:
            return _BOOLEANS[kind](*args)
        if kind == "Piecewise":
            return _piecewise(args)
        if kind == "FunctionSymbol" and node.get_name() in _OPAQUE_BY_NAME:
            return _OPAQUE_BY_NAME[node.get_name()][0](*args)
        raise NotImplementedError(f"cannot bring SymEngine's {kind} back to SymPy; use engine='sympy'")

    return _memoised(expr, convert, memo)
