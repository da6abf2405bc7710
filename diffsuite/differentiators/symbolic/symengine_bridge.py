"""SymPy <-> SymEngine conversion for ``engine="symengine"``: memoised (each distinct node converted once).

SymEngine knows Piecewise but neither our kink functions nor the derivative of abs, so they cross as
Piecewise with the same values and derivative conventions: Max1(a, b) -> Piecewise((a, a >= b), (b, True))
(ties: a), Step(u) -> [u > 0], Abs0(u) -> Piecewise((u, u > 0), (-u, u < 0), (0, True)) (abs'(0) = 0).
Anything else it cannot express raises NotImplementedError naming it.
"""
from __future__ import annotations

from typing import Any, Callable

import sympy as sp

from ...errors import MissingDependency
from .namespace import Abs0, Max1, Min1, Sign0, Step, TieStep


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
        rule = ops.get(type(node))
        if rule is None and not args and node.is_number:
            return se.sympify(node)  # E, pi
        if rule is None:
            raise NotImplementedError(f"engine='symengine' cannot express {type(node).__name__} here; "
                                      "use engine='sympy'")
        return rule(*args)

    return _memoised(expr, convert)


_RELATIONS = {"LessThan": sp.LessThan, "StrictLessThan": sp.StrictLessThan, "Equality": sp.Equality,
              "Unequality": sp.Unequality}
_FUNCTIONS = {  # unevaluated: SymEngine's result is already canonical, and SymPy's re-sorting is the slow part
    "Add": lambda *a: sp.Add(*a, evaluate=False),
    "Mul": lambda *a: sp.Mul(*a, evaluate=False),
    "Pow": lambda b, e: sp.exp(e) if b is sp.E else sp.Pow(b, e, evaluate=False),  # SymEngine's exp is E**x
    "exp": sp.exp, "log": sp.log, "tanh": sp.tanh,
}


def from_symengine(expr: Any, memo: dict | None = None) -> sp.Basic:
    """A SymPy expression equal to the SymEngine ``expr`` (Piecewise kept unevaluated, as SymEngine made it).

    Pass one ``memo`` dict to several calls to convert their shared subexpressions once.
    """
    if isinstance(expr, sp.Basic):
        return expr

    def convert(node, args):
        kind = type(node).__name__
        if not args:
            return sp.Symbol(node.name) if kind == "Symbol" else sp.sympify(node)
        if kind in _FUNCTIONS:
            return _FUNCTIONS[kind](*args)
        if kind in _RELATIONS:
            return _RELATIONS[kind](*args, evaluate=False)
        if kind == "Piecewise":
            return sp.Piecewise(*zip(args[::2], args[1::2]), evaluate=False)
        raise NotImplementedError(f"cannot bring SymEngine's {kind} back to SymPy; use engine='sympy'")

    return _memoised(expr, convert, memo)
