"""Every study script in quick mode writes every artefact; the report's numbers are the data's; rebuilding
the reports measures nothing and gives the same bytes."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from diffsuite.study.report import fmt

ROOT = Path(__file__).resolve().parents[2]
STUDIES = ("expression_growth", "rounding_error", "accuracy", "speed", "training")

pytestmark = pytest.mark.slow


class _Out(type(Path())):
    """A Path that can carry the fixture's snapshot."""


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """All the scripts, run once per session even under pytest-xdist (the workers of one run share the
    base temp folder's parent; a lock lets the first build the reports and the others reuse them)."""
    import fcntl
    import os
    import pickle
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")  # set by xdist, the same in every worker of a run
    base = tmp_path_factory.getbasetemp()
    shared = base.parent / f"study_scripts_{run_id}" if run_id else base / "study_scripts"
    shared.mkdir(exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = shared / "snapshot.pickle"
        out = _Out(shared / "reports")
        if done.exists():
            out.before_rebuild = pickle.loads(done.read_bytes())
            return out
        out.mkdir()
        _run_scripts(out)
        done.write_bytes(pickle.dumps(out.before_rebuild))
        return out


def _run_scripts(out):
    """All the scripts, run at once (each is one process), into one output folder."""
    import os
    # the studies' own time budgets are part of their design (a budget row is a result): not stretched here
    env = {k: v for k, v in os.environ.items() if k != "DIFFSUITE_TIME_BUDGET_SCALE"}
    procs = {name: subprocess.Popen([sys.executable, str(ROOT / "studies" / f"{name}.py"), "--quick", "--out", str(out),
                                     "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    env=env)
             for name in STUDIES}
    logs = {name: p.communicate(timeout=300)[0] for name, p in procs.items()}
    for name, p in procs.items():
        assert p.returncode == 0, f"studies/{name}.py failed:\n{logs[name]}"
    # `diffsuite report` from the stored results alone: the figures are deleted first and must come back
    # byte for byte, the reports too, and no result may change (nothing is measured)
    before = {f.relative_to(out): f.read_bytes() for s in STUDIES for f in (out / s).iterdir()
              if f.suffix in (".png", ".md", ".jsonl")}
    for f in before:
        if f.suffix == ".png":
            (out / f).unlink()
    r = subprocess.run([sys.executable, "-m", "diffsuite", "report", "--out", str(out)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    out.before_rebuild = before  # for test_report_rebuilds_from_stored_results_alone


@pytest.mark.parametrize("study", STUDIES)
def test_every_artefact_is_written(out, study):
    d = out / study
    for name in ("results.jsonl", "results.csv", "meta.json", "report.md", "findings.json"):
        assert (d / name).stat().st_size > 0, name
    report = (d / "report.md").read_text()
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", report)
    assert figures, "the report embeds no figure"
    for f in figures:
        data = (d / f).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", f
    table = pd.read_csv(d / "results.csv")
    assert len(table) and {"cell", "status", "message"} <= set(table.columns)
    meta = json.loads((d / "meta.json").read_text())
    assert meta["quick"] is True and meta["study"] == study
    index = (out / "index.html").read_text()
    assert f'id="{study}"' in index
    for f in figures:
        assert f'src="{study}/{f}"' in index
    assert "/work/" not in report and "/home/" not in report  # no machine paths in what gets committed


def _in_report(out, study, value):
    text = (out / study / "report.md").read_text()
    html = (out / "index.html").read_text()
    s = fmt(value)
    return s in text and s in html


def test_rounding_report_numbers_are_the_data(out):
    t = pd.read_csv(out / "rounding_error" / "results.csv")
    found = json.loads((out / "rounding_error" / "findings.json").read_text())
    for problem in ("scalar", "mlp"):
        for dtype in ("float64", "float32"):
            c = t[(t.problem == problem) & (t.dtype == dtype) & (t.method == "finite_diff[central]")
                  & (t.status == "ok")]
            sweep = c[c.step_kind == "sweep"]
            best = sweep.rel_error.min()
            assert found[f"{problem}_{dtype}_central_best_sweep_error"] == best
            assert found[f"{problem}_{dtype}_central_best_sweep_h"] == sweep.loc[sweep.rel_error.idxmin(), "h"]
            auto = c[c.step_kind == "auto"].rel_error.iloc[0]
            assert found[f"{problem}_{dtype}_central_auto_error"] == auto
            assert found[f"{problem}_{dtype}_central_smallest_error"] == min(best, auto)  # the auto step counts
            if problem == "mlp":  # no known derivatives: the scaling rule, labelled as such
                assert found[f"{problem}_{dtype}_central_h_star_from"] == "scaling rule"
                assert found[f"{problem}_{dtype}_central_h_star"] == pytest.approx(
                    float(np.finfo(dtype).eps) ** (1 / 3), rel=1e-12)
            else:
                assert found[f"{problem}_{dtype}_central_h_star_from"] == "model"
            for v in (best, auto):
                assert _in_report(out, "rounding_error", v)


def test_accuracy_report_numbers_are_the_data(out):
    t = pd.read_csv(out / "accuracy" / "results.csv")
    t = t[~t.reference.str.startswith("reverse[numpy]")]  # problems without the exact reference are left out
    found = json.loads((out / "accuracy" / "findings.json").read_text())
    for dtype in ("float64", "float32"):
        rev = t[(t.method == "reverse[numpy]") & (t.dtype == dtype) & (t.status == "ok")].rel_error
        cen = t[(t.method == "finite_diff[central]") & (t.dtype == dtype) & (t.status == "ok")].rel_error
        assert found[f"reverse_numpy_{dtype}_median"] == pytest.approx(float(np.median(rev)), rel=1e-12)
        assert found[f"central_{dtype}_median"] == pytest.approx(float(np.median(cen)), rel=1e-12)
        assert _in_report(out, "accuracy", np.median(rev)) and _in_report(out, "accuracy", np.median(cen))


def test_speed_report_numbers_are_the_data(out):
    t = pd.read_csv(out / "speed" / "results.csv")
    found = json.loads((out / "speed" / "findings.json").read_text())
    r = t[(t.method == "reverse[numpy]") & (t.status == "ok")].sort_values("n_params")
    slope = np.polyfit(np.log10(r.n_params), np.log10(r.grad_s), 1)[0]  # quick mode: 3 sizes, all fitted
    assert found["reverse[numpy]_slope"] == pytest.approx(slope, rel=1e-9)
    ratio = r.grad_s.iloc[-1] / r.forward_s.iloc[-1]
    assert found["reverse[numpy]_ratio_largest"] == pytest.approx(ratio, rel=1e-12)
    assert _in_report(out, "speed", slope) and _in_report(out, "speed", ratio)


def test_speed_rows_carry_memory_and_the_report_a_memory_figure(out):
    t = pd.read_csv(out / "speed" / "results.csv")
    ok = t[t.status == "ok"]
    assert len(ok)
    # each call returns a float64 gradient of n_params entries, allocated during the call: the peak is at least that
    # (oracle: the array's own size, 8 bytes an entry; a measurement of what is left after the call sees ~nothing)
    short = ok[~(ok.grad_peak_bytes >= 8 * ok.n_params)]
    assert short.empty, short[["method", "n_params", "grad_peak_bytes"]].to_string()
    # minor faults per call: a whole count of faults (getrusage's ru_minflt difference) over 1 or 5 calls, so five
    # times it is a finite whole number >= 0 (a missing, infinite or fractional value is a broken measurement)
    faults = ok.grad_minor_faults.to_numpy(dtype=float)
    assert np.isfinite(faults).all() and (faults >= 0).all(), faults
    np.testing.assert_allclose(5 * faults, np.round(5 * faults), rtol=0, atol=1e-9)
    report = (out / "speed" / "report.md").read_text()
    assert "memory_vs_params.png" in report and "Conditions:" in report
    assert (out / "speed" / "memory_vs_params.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_growth_report_numbers_are_the_data(out):
    t = pd.read_csv(out / "expression_growth" / "results.csv")
    found = json.loads((out / "expression_growth" / "findings.json").read_text())
    sym = t[(t.kind == "symbolic") & (t.status == "ok")].set_index("depth")
    tape = t[(t.kind == "tape") & (t.status == "ok")].set_index("depth")
    ratio = (sym.cse_all_ops / tape.tape_scalar_ops).dropna()
    assert found["w2_ratio_min"] == pytest.approx(ratio.min(), rel=1e-12)
    assert found["w2_ratio_max"] == pytest.approx(ratio.max(), rel=1e-12)
    growth = 10 ** np.polyfit(sym.index, np.log10(sym.grad_tree_nodes), 1)[0]
    assert found["w2_grad_tree_nodes_factor"] == pytest.approx(growth, rel=1e-9)
    for v in (ratio.min(), ratio.max(), growth):
        assert _in_report(out, "expression_growth", v)


def test_training_report_numbers_are_the_data(out):
    t = pd.read_csv(out / "training" / "results.csv")
    found = json.loads((out / "training" / "findings.json").read_text())
    ok = t[(t.status == "ok") & (t.method == "reverse[numpy]") & (t.dtype == "float64")]
    digits = ok[(ok.problem == "digits") & (ok.activation == "tanh") & (ok.reg == "none")].sort_values("step")
    assert found["digits_tanh_reverse_test_acc"] == digits.test_acc.iloc[-1]
    l1 = ok[(ok.problem == "digits") & (ok.activation == "tanh") & (ok.reg == "l1")].sort_values("step")
    assert found["digits_tanh_l1_near_zero"] == l1["near_zero_1e-3"].iloc[-1]
    fd = t[(t.problem == "digits") & (t.method == "finite_diff[central]") & (t.reg == "none")].sort_values("step")
    assert found["digits_tanh_finite_diff[central]_final_distance"] == fd.dist_to_reverse.iloc[-1]
    for v in (digits.test_acc.iloc[-1], l1["near_zero_1e-3"].iloc[-1], fd.dist_to_reverse.iloc[-1]):
        assert _in_report(out, "training", v)


def test_report_rebuilds_from_stored_results_alone(out):
    """The fixture deleted every figure and ran `diffsuite report`: same bytes back, results untouched."""
    assert any(f.suffix == ".png" for f in out.before_rebuild)
    for rel, data in out.before_rebuild.items():
        assert (out / rel).read_bytes() == data, f"{rel} differs after the rebuild"
    index = (out / "index.html").read_text()
    assert all(f'id="{s}"' in index for s in STUDIES)


@pytest.mark.parametrize("study", STUDIES)
def test_the_quick_run_has_no_error_rows(out, study):
    """What the demo shows: measurements, budgets, steps refused by design, methods not run for a missing package;
    never an error row that reads like a result (the rounding study's refused float32 steps used to be 117 of them)."""
    t = pd.read_csv(out / study / "results.csv")
    assert set(t["status"]) <= {"ok", "budget", "refused", "unavailable"}, t[t["status"] == "error"]["message"].tolist()
