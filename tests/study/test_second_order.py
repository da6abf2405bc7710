"""The second_order study on a tiny grid: its cells measure what they say, its report states the data's numbers."""
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from diffsuite.study.report import fmt
from diffsuite.study.studies import second_order as so


@pytest.fixture(scope="module")
def table():
    config = replace(so.Config().quick(), accuracy_methods=("forward[fwd-rev]", "finite_diff[central]"),
                     cases=(("tanh", "quadratic"),), cost_nets=(((4, 4, 2), 4),), growth_depths=(1,),
                     symbolic_engine="symengine")
    rows = []
    for c in so.cells(config):
        for r in so.measure(config, c.params):
            rows.append({**c.params, **r, "status": "ok"})
    return pd.DataFrame(rows), config


def test_cells_measure_errors_costs_and_sizes(table):
    t, config = table
    acc = t[t["kind"] == "accuracy"].set_index("method")
    assert acc.loc["forward[fwd-rev]", "hessian_rel_err"] <= 1e-14           # AD: rounding only
    assert 1e-12 < acc.loc["finite_diff[central]", "hessian_rel_err"] < 1e-5  # a second difference: ~ sqrt(eps)
    cost = t[t["kind"] == "cost"]
    assert set(cost["method"]) == set(config.cost_methods) and (cost["ratio"] > 0).all()
    assert (cost["rel_diff_from_fwd_rev"] < 1e-5).all()
    growth = t[t["kind"] == "growth"].iloc[0]
    assert growth["hessian_dag_nodes"] > growth["grad_dag_nodes"] > 0 and growth["n_params"] == 9


def test_report_states_the_numbers_of_the_table(table, tmp_path):
    t, config = table
    rep = so.report(t, {"config": {"growth_width": 2}}, tmp_path)
    for name in ("hessian_error.png", "hvp_cost.png", "symbolic_growth.png"):
        assert (tmp_path / name).stat().st_size > 0
    acc = t[t["kind"] == "accuracy"].set_index("method")
    assert rep.findings["finite_diff[central]_max_hessian_err"] == acc.loc["finite_diff[central]", "hessian_rel_err"]
    c = t[(t["kind"] == "cost") & (t["method"] == "forward[fwd-rev]")].iloc[0]
    assert rep.findings["forward[fwd-rev]_ratio_at_largest"] == c["ratio"]
    text = " ".join(getattr(b, "text", "") for b in rep.blocks) + " ".join(
        " ".join(getattr(b, "items", [])) for b in rep.blocks)
    assert fmt(c["ratio"]) in text


def test_a_cost_cell_over_budget_is_refused_before_running():
    config = replace(so.Config().quick(), budget_s=1e-9)
    with pytest.raises(Exception, match="budget_s"):
        so.measure(config, {"kind": "cost", "net": "4x4x2", "batch": 4, "method": "finite_diff[central]"})
    assert so.prune(config, {"kind": "cost", "net": "16x16x2", "batch": 8, "method": "finite_diff[central]"},
                    {"x": [{"kind": "cost", "status": "budget", "method": "finite_diff[central]", "n_params": 30,
                            "net": "4x4x2"}]}).startswith("not attempted")
    assert np.isclose(so._n_params("4x4x2"), 4 * 4 + 4 + 4 * 2 + 2)


def test_a_budget_row_prunes_only_larger_nets_of_its_method():
    # a budget row has no measured n_params: the size comes from its net's name (4x4x2: 30, 8x8x2: 90)
    config = so.Config().quick()
    done = {"x": [{"kind": "cost", "status": "budget", "method": "finite_diff[central]", "net": "8x8x2"}]}
    smaller = {"kind": "cost", "net": "4x4x2", "batch": 4, "method": "finite_diff[central]"}
    larger = {"kind": "cost", "net": "16x16x2", "batch": 4, "method": "finite_diff[central]"}
    other = {"kind": "cost", "net": "16x16x2", "batch": 4, "method": "reverse"}
    assert so.prune(config, smaller, done) is None
    assert so.prune(config, larger, done).startswith("not attempted: 8x8x2")
    assert so.prune(config, other, done) is None
