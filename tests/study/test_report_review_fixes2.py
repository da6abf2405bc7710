"""Review fixes in the reports: no failed cell is dropped silently, old step refusals are counted as refusals,
growth with depth is described as the successive depths show it (no fitted factor that misstates it), the HVP
cost maxima skip rows whose timing rounds disagree, the docs name every study that ignores --jobs, the machine
table gives the cells' threads and the runs' dates, and the first symbolic build of a worker is not timed."""
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_text import report_text

from diffsuite.study import metadata
from diffsuite.study.common import describe_growth, fit_growth
from diffsuite.study.report import Table, _meta_table, build, fmt
from diffsuite.study.studies import STUDIES, study_module
from diffsuite.study.studies import expression_growth as eg
from diffsuite.study.studies import rounding_error as re_
from diffsuite.study.studies import second_order as so

ROOT = Path(__file__).resolve().parents[2]

# the committed expression_growth run, width 2, depths 1-8 (reports/expression_growth/results.csv)
TAPE_OPS = [41, 73, 105, 137, 169, 201, 233, 265]
TREE = [651, 4089, 17395, 60317, 185591, 528337, 1424619, 3691269]
CSE_OPS = [37, 97, 211, 371, 572, 802, 1077, 1400]


def _store(tmp_path: Path, study: str, cells: dict, meta: dict | None = None) -> Path:
    """A study folder written as the runner writes it: one JSON line per cell, and meta.json."""
    folder = tmp_path / study
    folder.mkdir(parents=True)
    with open(folder / "results.jsonl", "w") as f:
        for cid, rows in cells.items():
            f.write(json.dumps({"cell": cid, "rows": rows}) + "\n")
    (folder / "meta.json").write_text(json.dumps({"study": study, **(meta or {})}))
    return tmp_path


def _tables(rep, caption_start: str) -> list:
    return [b for b in rep.blocks if isinstance(b, Table) and b.caption.startswith(caption_start)]


# ----- 1. failed cells are listed, a row without cell parameters does not break a report -----
def _training_cells() -> dict:
    cells = {}
    for m, d in (("reverse[numpy]", "float64"), ("finite_diff[central]", "float64")):
        params = {"problem": "moons", "activation": "tanh", "reg": "none", "method": m, "dtype": d}
        cid = "|".join(f"{k}={v}" for k, v in params.items())
        cells[cid] = [{**params, "step": s, "wall_s": 0.01 * k, "train_loss": 1.0 / (k + 1), "test_loss": 1.0,
                       "train_acc": 0.5, "test_acc": 0.5 + 0.2 * k, "dist_to_reverse": 0.0, "first_grad_error": 0.0,
                       "setup_s": 0.0, "n_params": 33, "max_steps": 0, "underflow_zeroed": 0, "diverged_at": 0,
                       "near_zero_1e-3": 0.0, "near_zero_1e-2": 0.0, "status": "ok", "message": ""}
                      for k, s in enumerate((0, 10, 20))]
    sym = {"problem": "moons", "activation": "tanh", "reg": "none", "method": "symbolic[cse]", "dtype": "float64"}
    cells["|".join(f"{k}={v}" for k, v in sym.items())] = [
        {**sym, "status": "budget", "message": "setup exceeded its budget of 60 s", "cell_failed": False}]
    cells["hand-edited"] = [{"status": "error", "message": "RuntimeError: edited by hand"}]  # no cell parameters
    return cells


def test_training_lists_its_failed_cells_and_survives_a_row_without_cell_parameters(tmp_path):
    out = _store(tmp_path, "training", _training_cells(), {"config": {"target_acc": 0.9}})
    rep = build("training", out)
    text = report_text(rep)
    assert "could not be drawn" not in text and "No results to show" not in text
    (table,) = _tables(rep, "Cells that did not finish")
    t = table.df
    budget = t[t["status"] == "budget"].iloc[0]  # the cell's parameters, read back from its id
    assert (budget["method"], budget["reg"], budget["rows"]) == ("symbolic[cse]", "none", 1)
    assert "setup exceeded its budget of 60 s" in budget["message"]
    bare = t[t["status"] == "error"].iloc[0]
    assert bare["cell"] == "hand-edited" and bare["message"] == "RuntimeError: edited by hand"
    assert rep.findings["unlisted_failed_rows"] == 2
    assert "2 rows of 2 cells did not finish" in text


def _growth_cells(depths=range(1, 9), tape=TAPE_OPS, tree=TREE, cse=CSE_OPS) -> dict:
    cells = {}
    for i, d in enumerate(depths):
        cells[f"width=2|depth={d}|kind=tape|engine=-"] = [
            {"width": 2, "depth": d, "kind": "tape", "engine": "-", "n_params": 6 * d + 3, "status": "ok",
             "message": "", "tape_scalar_ops": tape[i], "tape_records": 5 * d + 8}]
        cells[f"width=2|depth={d}|kind=symbolic|engine=symengine"] = [
            {"width": 2, "depth": d, "kind": "symbolic", "engine": "symengine", "n_params": 6 * d + 3,
             "status": "ok", "message": "", "grad_tree_nodes": tree[i], "grad_dag_nodes": 44 + 60 * i,
             "cse_all_ops": cse[i], "cse_one_ops": 24 + 28 * i, "loss_tree_nodes": 47 * 2 ** i,
             "cse_all_nodes": 2 * cse[i], "build_s": 0.01, "diff_s": 0.01, "cse_s": 0.01}]
    return cells


def test_a_study_that_lists_its_failures_is_not_listed_twice(tmp_path):
    cells = _growth_cells(depths=(1, 2, 3), tape=TAPE_OPS[:3], tree=TREE[:3], cse=CSE_OPS[:3])
    cells["width=2|depth=4|kind=symbolic|engine=symengine"] = [
        {"width": 2, "depth": 4, "kind": "symbolic", "engine": "symengine", "status": "budget",
         "message": "over the node budget"}]
    cells["hand-edited"] = [{"status": "error", "message": "RuntimeError: edited by hand"}]
    rep = build("expression_growth", _store(tmp_path, "expression_growth", cells, {"config": {}}))
    own = _tables(rep, "Cells that did not finish")
    assert len(own) == 2  # the study's own (its budget row) and build's (the row it cannot place)
    assert list(own[0].df["status"]) == ["budget"]
    assert list(own[1].df["cell"]) == ["hand-edited"] and "budget" not in set(own[1].df["status"])


# ----- 2. step refusals stored as errors before the refused status existed -----
def _rounding_cells(failures: list[tuple[str, str]]) -> dict:
    rows = []
    for h, e in ((1e-2, 1e-6), (1e-4, 1e-9)):
        rows.append({"h": h, "step_kind": "sweep", "rel_error": e, "status": "ok", "message": ""})
    for k, (status, msg) in enumerate(failures):
        rows.append({"h": 10.0 ** (-10 - k), "step_kind": "sweep", "status": status, "message": msg})
    rows.append({"h": 6e-6, "step_kind": "auto", "rel_error": 1e-8, "status": "ok", "message": ""})
    params = {"problem": "mlp", "method": "finite_diff[central]", "dtype": "float32"}
    return {"|".join(f"{k}={v}" for k, v in params.items()): [{**params, "reference": "arb", "n_params": 11, **r}
                                                               for r in rows]}


REFUSALS = [
    "StepUnderflowError: finite_diff[central,float32]: in float32, for 11 parameter(s) the step vanishes: "
    "theta_i + h == theta_i, so the difference quotient would be exactly 0. W0[0, 0] = 1 (step 1e-10)",
    "diffsuite.differentiators.finite_diff.StepUnderflowError: finite_diff[central,float32]: in float32 ...",
    "  StepUnderflowError: f(theta_i +- h) == f(theta) exactly (at __init__.py:448)",
]


@pytest.mark.parametrize("status", ["error", "refused"])
def test_step_refusals_are_counted_whatever_status_stored_them(tmp_path, status):
    cells = _rounding_cells([(status, m) for m in REFUSALS] + [("error", "ValueError: something else broke")])
    rep = build("rounding_error", _store(tmp_path, "rounding_error", cells, {"config": {"richardson_levels": 4}}))
    (best,) = _tables(rep, "Per scheme")
    assert best.df["refused steps"].tolist() == [3]
    assert rep.findings["refused_steps"] == 3
    assert rep.findings["refused_steps_stored_as_error"] == (3 if status == "error" else 0)
    text = report_text(rep)
    assert "3 steps were refused" in text
    (left,) = _tables(rep, "Cells that did not finish")  # what is not a refusal is listed, with its message
    assert left.df["message"].tolist() == ["ValueError: something else broke"]


def test_step_refusal_messages_are_recognised_by_the_exception_name_only():
    t = pd.DataFrame({"status": ["error", "error", "error", "refused", "ok"],
                      "message": [REFUSALS[0], REFUSALS[1], "ValueError: no StepUnderflowError here",
                                  "anything", ""]})
    assert re_.step_refusals(t).tolist() == [True, True, False, True, False]


# ----- 3. growth with depth, as the successive depths show it -----
def test_growth_is_linear_for_the_tape_and_a_falling_factor_for_the_tree():
    tape = describe_growth(range(1, 9), TAPE_OPS)
    assert tape.shape == "linear" and tape.increase == 32
    tree = describe_growth(range(1, 9), TREE)
    assert tree.shape == "falling"
    assert tree.first[2] == pytest.approx(TREE[1] / TREE[0]) and tree.last[2] == pytest.approx(TREE[7] / TREE[6])
    assert fmt(tree.last[2]) == "2.59"
    # the fit this replaces depends on the depths fitted: 4.05 over depths 1-5, 3.33 over 1-8
    assert fmt(fit_growth(range(1, 6), TREE[:5])) == "4.05" and fmt(fit_growth(range(1, 9), TREE)) == "3.33"
    assert describe_growth([1, 2, 3, 4], [3, 6, 12, 24]).factor == 2
    assert describe_growth([1, 3], [4, 16]).last[2] == 2  # a factor per layer across a gap of two layers
    assert describe_growth([2], [5]).shape == "single"


def test_expression_growth_describes_linear_and_falling_growth_and_quotes_no_fitted_factor(tmp_path):
    rep = build("expression_growth", _store(tmp_path, "expression_growth", _growth_cells(), {"config": {}}))
    text = report_text(rep)
    line = next(b for b in text.splitlines() if b.startswith("Width 2, from depth to depth"))
    assert "linearly, by **+32** scalar operations per layer" in line
    assert "falling factor per layer: **6.28** from depth 1 to 2, **2.59** from depth 7 to 8" in line
    assert fmt(fit_growth(range(1, 9), TREE)) not in text  # 3.33: a fit, only in the growth table's reference column
    assert rep.findings["w2_tape_scalar_ops_shape"] == "linear"
    assert rep.findings["w2_tape_scalar_ops_increase_per_layer"] == 32
    assert rep.findings["w2_grad_tree_nodes_last_step_factor"] == pytest.approx(TREE[7] / TREE[6])
    assert "tree 2.59" in text  # CSE's effect compared at the same (deepest) step


def _second_order_growth_rows() -> list[dict]:
    grad, hess = TREE[:5], [4334, 79593, 677626, 3894251, 17867304]
    return [{"kind": "growth", "depth": d, "width": 2, "status": "ok", "n_params": 6 * d + 3,
             "grad_tree_nodes": g, "hessian_tree_nodes": h, "grad_dag_nodes": 40 * d, "hessian_dag_nodes": 100 * d,
             "grad_cse_nodes": 80 * d, "hessian_cse_nodes": 400 * d}
            for d, g, h in zip(range(1, 6), grad, hess)]


# ----- 4. HVP cost: spread of the rounds in the table, maxima over the rows whose rounds agree -----
def _cost_rows() -> list[dict]:
    # (method, net, n, ratio, ratio_spread): the committed run's forward-over-reverse and reverse-over-reverse rows
    cost = [("forward[fwd-rev]", "8x8x2", 90, 3.39, 0.499), ("forward[fwd-rev]", "32x32x10", 1386, 3.26, 0.382),
            ("forward[fwd-rev]", "64x64x10", 4810, 3.28, 0.367), ("forward[fwd-rev]", "784x32x10", 25450, 17.5, 18.5),
            ("forward[fwd-rev]", "784x128x128x10", 118282, 2.68, 1.88),
            ("reverse[rev-rev]", "8x8x2", 90, 5.9, 3.1), ("reverse[rev-rev]", "64x64x10", 4810, 21.5, 9.03),
            ("reverse[rev-rev]", "784x128x128x10", 118282, 2.25, 1.59)]
    return [{"kind": "cost", "method": m, "net": net, "batch": 64, "n_params": n, "status": "ok", "grad_s": 1e-3,
             "hvp_s": r * 1e-3, "ratio": r, "ratio_spread": s, "rounds": 3, "rel_diff_from_fwd_rev": 0.0}
            for m, net, n, r, s in cost]


def test_second_order_flags_noisy_cost_rows_and_quotes_maxima_over_the_others(tmp_path):
    rep = so.report(pd.DataFrame(_cost_rows() + _second_order_growth_rows()), {"config": {"growth_width": 2}},
                    tmp_path)
    (table,) = _tables(rep, "HVP cost")
    t = table.df.set_index(["method", "net"])
    assert "ratio_spread" in t and t.loc[("forward[fwd-rev]", "784x32x10"), "spread check"] == "noisy"
    assert t.loc[("forward[fwd-rev]", "8x8x2"), "spread check"] == "ok"  # 0.499 <= 0.5 x 3.39
    assert t.loc[("reverse[rev-rev]", "64x64x10"), "spread check"] == "ok"  # 9.03 <= 0.5 x 21.5
    assert (t["spread check"] == "noisy").sum() == 4
    assert f"{fmt(so.SPREAD_FLAG)} times the ratio" in table.caption
    text = report_text(rep)
    fwd = next(b for b in text.splitlines() if b.startswith("forward[fwd-rev]: an HVP costs"))
    assert "at most 3.39 over the 3 measured sizes not flagged (2 of 5 flagged noisy)" in fwd and "17.5" not in fwd
    assert "flagged noisy: the range of its rounds' ratios, 1.88" in fwd  # the largest net's own ratio is noisy
    assert rep.findings["forward[fwd-rev]_ratio_max_unflagged"] == 3.39
    assert "at most 3.39 on the 3 nets not flagged noisy (2 of 5 flagged" in text and "at most 17.5" not in text
    # growth: the falling factors at the deepest step, not a fit over depths 1-5 (4.05 for the gradient)
    assert "4.05" not in text and "factor of 4.59 against the gradient's 3.08" in text


def test_second_order_quotes_no_maximum_when_every_size_is_noisy(tmp_path):
    rows = [dict(r, ratio_spread=r["ratio"]) for r in _cost_rows()]
    text = report_text(so.report(pd.DataFrame(rows), {"config": {}}, tmp_path))
    assert "every one of its 5 sizes is flagged noisy, so no maximum is quoted" in text
    assert "every net flagged noisy" in text


def test_higher_order_doc_quotes_the_stored_hvp_costs():
    doc = " ".join((ROOT / "docs" / "higher_order.md").read_text().split())
    assert "but 10-17 on [784, 32, 10] b64 and [64, 64, 10] b64" not in doc
    assert "3x a plain matmul" not in doc or "guess" in doc


# ----- 5. the docs name every study that ignores --jobs -----
def test_docs_name_every_study_that_runs_its_cells_one_at_a_time():
    doc = (ROOT / "docs" / "studies.md").read_text()
    workers = " ".join(doc[doc.index("- **Workers.**"):].split("\n- ")[0].split())
    serial = [s for s in STUDIES if getattr(study_module(s), "SERIAL", False)]
    assert serial and all(f"`{s}`" in workers for s in serial), (serial, workers)
    assert "`--jobs N` uses N of them" not in " ".join(doc.split())


# ----- 6. the machine table: the cells' threads, the runs' dates and commands -----
def test_machine_table_gives_the_cells_threads_and_says_when_no_run_history_was_recorded():
    meta = {"threads": {"affinity": 2, "cpu_count": 2}, "cell_env": {"OMP_NUM_THREADS": "1"}}
    t = dict(_meta_table(meta).itertuples(index=False))
    assert t["threads of the cells"].startswith("OMP_NUM_THREADS=1") and t["threads of the driver"] == \
        "affinity=2, cpu_count=2"
    assert "threads" not in t
    assert t["measured"].startswith("before run history was recorded")
    assert dict(_meta_table({"threads": {"affinity": 2}}).itertuples(index=False))["threads"] == "affinity=2"


def test_machine_table_gives_each_runs_date_and_command():
    meta = {"runs": [{"git_commit": "aaaa", "executor": {"kind": "local"}, "cells": 3,
                      "started": "2026-01-02T03:04:05+00:00", "command": "python -m diffsuite run speed"}]}
    t = dict(_meta_table(meta).itertuples(index=False))
    assert t["run 1"] == ("2026-01-02T03:04:05+00:00, commit aaaa, local, 3 cells, "
                          "command: python -m diffsuite run speed")
    assert "measured" not in t


def test_meta_records_python_flint_and_scikit_learn_where_installed():
    libs = metadata.collect("speed", {"seed": 0}, quick=True, device="cpu")["libraries"]
    for dist, module in (("python-flint", "flint"), ("scikit-learn", "sklearn")):
        assert dist in libs
        try:
            __import__(module)
        except ImportError:
            continue
        assert libs[dist], dist


# ----- 7. the first symbolic build of a process is not timed -----
def test_expression_growth_builds_once_untimed_before_its_first_timed_cell(monkeypatch):
    calls = []
    monkeypatch.setattr(eg, "_WARMED", set())
    monkeypatch.setattr(eg, "_symbolic_metrics", lambda obj, config, engine: calls.append(
        (len(obj.model.layers), engine)) or {"build_s": 0.0})
    config = eg.Config()
    eg.measure(config, {"width": 2, "depth": 3, "kind": "symbolic", "engine": "sympy"})
    eg.measure(config, {"width": 2, "depth": 4, "kind": "symbolic", "engine": "sympy"})
    eg.measure(config, {"width": 2, "depth": 2, "kind": "symbolic", "engine": "symengine"})
    # layers = depth + 2: the depth-1 warm-up (untimed, result dropped) once per engine, then each timed cell
    assert calls == [(3, "sympy"), (5, "sympy"), (6, "sympy"), (3, "symengine"), (4, "symengine")]


def test_machine_table_names_no_machine_folder_in_a_command():
    meta = {"runs": [{"git_commit": "aaaa", "executor": {"kind": "local"}, "cells": 1, "started": "2026-01-02",
                      "command": "/home/me/src/studies/speed.py --quick --out=/home/me/r --no-progress"}]}
    run = dict(_meta_table(meta).itertuples(index=False))["run 1"]
    assert run.endswith("command: .../speed.py --quick --out=.../r --no-progress") and "/home/" not in run
