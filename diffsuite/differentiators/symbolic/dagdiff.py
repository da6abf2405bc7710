"""SymPy's derivative of an expression DAG, computed once per distinct subexpression.

``sympy.diff(loss, x)`` gives the right answer but costs time exponential in the network's depth: at
every subexpression ``Derivative.__new__`` walks that subexpression as a *tree* (``free_symbols``) and
walks its derivative as a tree again (``replace``), and a network's loss shares its hidden units
between many parents, so its tree is exponentially larger than its DAG (10 hidden sigmoid layers of
width 10: a DAG of ~10^4 nodes, a tree of ~10^13). The node budget counts DAG nodes, so it never saw
that work: a budget of 10^6 nodes let one parameter's derivative run for minutes.

``diff_dag(expr, x)`` applies the *same* rules as SymPy (``Add``, ``Mul``'s Leibniz rule, ``Pow``,
``Function``'s chain rule through ``fdiff``, ``Piecewise`` branch by branch), in the same order of
operations, so the result is the identical expression (``==``) that ``sympy.diff`` returns; but each
distinct subexpression is differentiated once (a memo over the DAG) and nothing walks a tree. Node types
with a rule of their own beyond these are handed to ``sympy.diff`` (correct, and as slow as SymPy).
Cost: one SymPy construction per distinct subexpression that depends on ``x`` (a Mul of m factors: m).
"""
from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.core.basic import Basic
from sympy.core.function import ArgumentIndexError, Function


def post_order(expr: Basic) -> list[Basic]:
    """The distinct subexpressions of ``expr``, every one after all of its arguments (iterative)."""
    order, done, stack = [], set(), [(expr, False)]
    while stack:
        node, ready = stack.pop()
        if ready:
            if node not in done:
                done.add(node)
                order.append(node)
        elif node not in done:
            stack.append((node, True))
            stack.extend((a, False) for a in reversed(node.args) if a not in done)
    return order


def _default_function_rule(node: Basic) -> bool:
    cls = type(node)
    return (isinstance(node, Function) and cls._eval_derivative is Function._eval_derivative
            and cls._eval_derivative_n_times is Basic._eval_derivative_n_times)


def diff_dag(expr: Basic, x: sp.Symbol, order: list[Basic] | None = None) -> Any:
    """``sympy.diff(expr, x)``, identical, without SymPy's tree walks. ``order``: ``post_order(expr)``, if at hand."""
    d: dict = {}  # subexpression -> its derivative; absent: it does not depend on x (derivative 0)
    for node in post_order(expr) if order is None else order:
        if not node.args:
            if node == x:
                d[node] = sp.S.One
        elif any(a in d for a in node.args) and isinstance(node, sp.Expr):
            d[node] = _rule(node, x, d)
        elif any(a in d for a in node.args):
            d[node] = None  # a condition or an (expression, condition) pair: no derivative, but depends on x
    out = d.get(expr, sp.S.Zero)
    return sp.S.Zero if out is None else out


def _d(a: Basic, d: dict) -> Any:
    return d.get(a, sp.S.Zero)


def _rule(node: sp.Expr, x: sp.Symbol, d: dict) -> Any:
    """The derivative of ``node`` from its arguments' derivatives, written as SymPy writes it (same operations)."""
    cls = type(node)
    if any(d.get(a, 0) is None for a in node.args):  # a condition as an argument of an expression: SymPy's rule
        return sp.diff(node, x)
    if cls is sp.Add:  # Add._eval_derivative
        return sp.Add(*[_d(a, d) for a in node.args])
    if cls is sp.Mul:  # Mul._eval_derivative_n_times with n = 1: one product per factor, that factor differentiated
        args = node.args
        return sp.Add(*[1 * sp.Mul(*[_d(a, d) if k == i else a for k, a in enumerate(args)])
                        for i in range(len(args))])
    if cls is sp.Pow:  # Pow._eval_derivative
        dbase, dexp = _d(node.base, d), _d(node.exp, d)
        if dexp is sp.S.Zero and not (node.base.is_zero or node.base.is_infinite):
            # 0 * log(base) is 0 unless log(base) is infinite (base 0 or oo); building log(base) only to multiply
            # it by 0 costs SymPy a walk of base's tree (log's eval asks for its sign)
            return node * (sp.S.Zero + dbase * node.exp / node.base)
        return node * (dexp * sp.log(node.base) + dbase * node.exp / node.base)
    if cls is sp.Piecewise:  # Piecewise._eval_derivative: each branch's expression, conditions kept
        return node.func(*[(_d(e, d), c) for e, c in node.args])
    if _default_function_rule(node):  # Function._eval_derivative: sum of fdiff(i) * d arg_i
        terms = []
        for i, a in enumerate(node.args, start=1):
            da = _d(a, d)
            if da.is_zero:
                continue
            try:
                df = node.fdiff(i)
            except ArgumentIndexError:
                df = Function.fdiff(node, i)
            terms.append(df * da)
        return sp.Add(*terms)
    return sp.diff(node, x)  # a node type with its own rule: SymPy's (it walks this subexpression's tree)
