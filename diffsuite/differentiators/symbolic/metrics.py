"""How big a symbolic expression is: tree nodes, DAG nodes, operation counts, and the size after CSE.

A *node* is one SymPy (or SymEngine) object in the expression's internal tree, what ``srepr`` shows:
operators, functions, symbols and numbers alike. ``-x`` is ``Mul(-1, x)`` (3 nodes), ``x/y`` is
``Mul(x, Pow(y, -1))`` (5 nodes), ``max(a, b)`` is ``Piecewise(ExprCondPair(a, a >= b), ...)``.

- **tree nodes**: the expression as printed, every shared subtree counted at every use. For a deep
  network's derivative this is astronomically large, so it is computed by a memoised walk over the
  DAG (size(e) = 1 + sum of the sizes of its arguments, each distinct subexpression visited once),
  never by expanding or printing the expression.
- **DAG nodes**: distinct subexpressions (structural equality), over all given expressions jointly.
- **count_ops**: SymPy's ``count_ops`` (arithmetic operations and function calls of the printed tree;
  it walks the tree, so callers only ask for it below a tree-size limit).
- **CSE nodes / ops**: after common-subexpression elimination, the size of the straight-line program:
  tree nodes (resp. count_ops) summed over every right-hand side and every reduced expression, each
  CSE symbol counting as one leaf.

All walks are iterative (no recursion limit) and work on any object with ``.args``.
"""
from __future__ import annotations

from typing import Any, Iterable

import sympy as sp

from .symengine_bridge import from_symengine


def tree_nodes(exprs: Iterable[Any], memo: dict | None = None) -> int:
    """Sum over ``exprs`` of their tree sizes, shared subtrees counted at every use (a memoised DAG walk)."""
    memo = {} if memo is None else memo
    total = 0
    for root in exprs:
        stack = [(root, False)]
        while stack:
            node, ready = stack.pop()
            if ready:
                memo[node] = 1 + sum(memo[a] for a in node.args)
            elif node not in memo:
                stack.append((node, True))
                stack.extend((a, False) for a in node.args if a not in memo)
        total += memo[root]
    return total


def dag_nodes(exprs: Iterable[Any], seen: set | None = None) -> int:
    """The number of distinct subexpressions of ``exprs`` jointly; ``seen`` (updated) accumulates across calls."""
    seen = set() if seen is None else seen
    stack = list(exprs)
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(node.args)
    return len(seen)


def count_ops(exprs: Iterable[Any]) -> int:
    """Sum of SymPy's ``count_ops`` over ``exprs`` (walks the printed tree: call it on small trees only)."""
    return sum(int(sp.count_ops(from_symengine(e))) for e in exprs)


def cse_size(replacements: list[tuple[Any, Any]], reduced: list[Any]) -> tuple[int, int]:
    """(nodes, ops) of a CSE result: the straight-line program's right-hand sides plus reduced expressions."""
    parts = [rhs for _, rhs in replacements] + list(reduced)
    return tree_nodes(parts), count_ops(parts)
