"""The node budget bounds SymPy's tree walks: a node-budget-only setup finishes or refuses, never runs for minutes.

SymPy walks expressions as printed trees (``free_symbols``, sign queries); a deep network's loss shares its
hidden units, so its tree is exponentially larger than its DAG. These tests count the tree nodes SymPy visits
(calls of ``Basic.free_symbols``, which visits one node per call) instead of timing anything: past a ceiling
that only the exponential walk reaches, the counter stops the test.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from sympy.core.basic import Basic

import diffsuite as ds
from diffsuite.budget import Budget
from diffsuite.differentiators.symbolic.build import build_objective, differentiate
from diffsuite.differentiators.symbolic.dagdiff import diff_dag, post_order
from diffsuite.differentiators.symbolic.metrics import tree_nodes
from diffsuite.differentiators.symbolic.rewrite import stable_forms


class WalkedTooFar(BaseException):
    """Raised by the counter: a BaseException, so that SymPy's ``except Exception`` cannot swallow it."""


@pytest.fixture
def tree_walk_counter(monkeypatch):
    """A list whose [0] counts tree nodes SymPy visits; [1] is the ceiling (raises WalkedTooFar past it)."""
    state = [0, None]
    plain = Basic.free_symbols

    def counting(self):
        state[0] += 1
        if state[1] is not None and state[0] > state[1]:
            raise WalkedTooFar(f"SymPy visited more than {state[1]} tree nodes")
        return plain.fget(self)

    monkeypatch.setattr(Basic, "free_symbols", property(counting))
    return state


def test_a_node_budget_alone_stops_a_deep_build_before_sympy_walks_its_trees(tree_walk_counter):
    # 10 sigmoid layers of width 4 with data as constants: ~2,000 distinct nodes, far under the budget, but the
    # printed trees grow 4x per layer and SymPy's evaluation (exp, 1/(1 + e), sign queries) walks them. Before:
    # no check ever tripped and the build ran past 60 s (visiting well over 10^6 tree nodes); now the tree size
    # of each namespace call's arguments is checked first (the fixed build visits ~25,000).
    tree_walk_counter[1] = 1_000_000
    model = ds.MLP((3,) + (4,) * 10 + (1,), activation="sigmoid")
    obj = ds.Objective(model, "quadratic", np.random.default_rng(0).normal(size=(4, 3)), np.ones((4, 1)))
    with pytest.raises(ds.BudgetExceeded) as info:
        ds.get_differentiator("symbolic", node_budget=100_000, time_budget_s=None).value_and_grad(obj)
    assert info.value.stage == "build" and "printed trees" in info.value.progress
    assert info.value.budget == "100000 expression nodes"


def _study_cell(width: int, depth: int) -> ds.Objective:
    model = ds.MLP((width,) * (depth + 1) + (1,), activation="sigmoid")
    return ds.Objective(model, "quadratic", np.array([[0.5, -1.0]]), np.array([[1.0]]))


def test_differentiating_walks_the_loss_tree_a_bounded_number_of_times(tree_walk_counter):
    # before: sympy.diff walked every subexpression's tree, and its derivative's, once per parameter: 1.65
    # million tree nodes for this 6-layer net (800x its loss tree). Now each distinct subexpression is
    # differentiated once; only SymPy's sign queries walk, once per subexpression (cached on it): ~1.5x the tree.
    problem, _ = build_objective(_study_cell(2, 6), symbolic_data=True)
    size = tree_nodes([problem.loss])
    tree_walk_counter[:] = [0, 10 * size]
    loss, grads = differentiate(problem, "sympy", Budget())
    assert len(grads) == len(problem.params) and tree_walk_counter[0] <= 10 * size


def test_the_sympy_engine_refuses_a_loss_tree_over_the_node_budget():
    problem, _ = build_objective(_study_cell(2, 6), symbolic_data=True)
    assert tree_nodes([problem.loss]) == 2031  # 136 distinct nodes: only the tree is over the budget
    with pytest.raises(ds.BudgetExceeded, match="printed tree"):
        differentiate(problem, "sympy", Budget(nodes=2000))
    differentiate(problem, "symengine", Budget(nodes=2000))  # SymEngine differentiates without walking trees


@pytest.mark.parametrize("activation, loss, n_out", [("sigmoid", "binary_cross_entropy", 1), ("relu", "hinge", 1),
                                                     ("maxout", "cross_entropy", 3)])
def test_diff_dag_is_sympy_diff_exactly(activation, loss, n_out):
    # the oracle is sympy.diff itself: the same expression (==), so every expression metric is unchanged
    rng = np.random.default_rng(1)
    targets = {"binary_cross_entropy": np.array([[1.0], [0.0]]), "hinge": np.array([[1.0], [-1.0]]),
               "cross_entropy": np.array([2, 0]), "quadratic": rng.normal(size=(2, n_out))}[loss]
    out = "sigmoid" if loss == "binary_cross_entropy" else "identity"
    model = ds.MLP((2, 2, n_out), activation=activation, output_activation=out)
    problem, _ = build_objective(ds.Objective(model, loss, rng.normal(size=(2, 2)), targets, l1=0.25, l2=0.5))
    for expr in (problem.loss, stable_forms(problem.loss)):  # as built, and as setup differentiates it (LogSumExp)
        order = post_order(expr)
        for p in problem.params:
            assert diff_dag(expr, p, order) == sp.diff(expr, p)


def test_diff_dag_keeps_sympys_rules_for_powers_pieces_and_functions():
    x, y = sp.symbols("x y", real=True)
    for e in (x ** y, (1 + x ** 2) ** -1, sp.Piecewise((x ** 2, x > y), (sp.exp(y * x), True)),
              sp.log(1 + sp.exp(-x * y)) * sp.tanh(x), sp.atan2(y, x) + sp.Abs(x), 0 ** x, sp.Max(x, y)):
        assert diff_dag(e, x) == sp.diff(e, x) and diff_dag(e, y) == sp.diff(e, y)
    assert diff_dag(sp.Integer(3), x) == 0 and diff_dag(y, x) == 0 and diff_dag(x, x) == 1
