"""``diffsuite check``: the committed quick baseline passes; a broken rule, a shrunk baseline cell and bad
baseline files are caught. The oracle for *which* cells regress: the broken rule (tanh's VJP) is only
on the path of the tanh problems, and only the cell whose stored error the test shrank may regress."""
import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from diffsuite.cli import main
from diffsuite.differentiators.reverse import ops, tape
from diffsuite.gradcheck import baseline as bl

COMMITTED = Path(__file__).parents[1] / "baselines" / "accuracy_quick.json"


def run(capsys, *args):
    rc = main(["check", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_the_committed_quick_baseline_holds(capsys):
    rc, out, err = run(capsys, "--quick", "--baseline", COMMITTED)
    assert rc == 0, out + err
    assert "ok: no cell lost accuracy" in out
    assert json.loads(COMMITTED.read_text())["reference"] == bl.EXACT


def test_the_default_baseline_is_found_from_any_directory(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no baselines/ here: the checkout's committed file is used
    rc, out, err = run(capsys, "--quick")
    assert rc == 0, out + err
    assert str(COMMITTED.resolve()) in out
    (tmp_path / "baselines").mkdir()  # a baselines/ of the current directory comes first
    (tmp_path / "baselines" / "accuracy_quick.json").write_text("{}")
    rc, out, err = run(capsys, "--quick")
    assert rc == 2 and "baselines/accuracy_quick.json" in err


def test_a_broken_rule_fails_the_check_with_a_table(capsys, monkeypatch):
    # a sign slip in tanh's VJP (the rule reads x, not out: tanh' = 4 sigmoid'(2x)): a wrong gradient, not an error
    bad = dataclasses.replace(ops.OPS["tanh"], vjps=(lambda B, g, out, x: -g * (4.0 * B.dsigmoid(2.0 * x)),))
    monkeypatch.setitem(ops.OPS, "tanh", bad)
    monkeypatch.setattr(tape, "TANH", bad)
    rc, out, err = run(capsys, "--quick", "--baseline", COMMITTED)
    assert rc == 1 and "REGRESSIONS" in out
    header, *table = out.split("REGRESSIONS", 1)[1].splitlines()[1:]
    assert header.split()[:9] == [*bl.KEY, "baseline", "now", "ratio"]
    # only the reverse engine uses the broken rule, and only on the tanh problems
    assert table and all(" tanh " in line and " reverse[" in line for line in table)
    assert any(" float64 " in line for line in table) and any(" float32 " in line for line in table)
    assert "TypeError" not in out + err  # the cells ran and measured a wrong gradient; none raised


def test_a_cell_whose_error_grew_is_named(capsys, tmp_path):
    data = json.loads(COMMITTED.read_text())
    victim = max(data["cells"], key=lambda c: c["error"])  # large enough to be above the rounding floor
    victim["error"] /= 1000
    path = tmp_path / "b.json"
    path.write_text(json.dumps(data))
    rc, out, _ = run(capsys, "--quick", "--baseline", path)
    rows = out.split("REGRESSIONS", 1)[1].splitlines()[2:]
    assert rc == 1 and len(rows) == 1
    assert rows[0].split()[:6] == [str(victim[k]) for k in bl.KEY]


def test_update_writes_a_baseline_that_then_holds(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(bl, "exact_available", lambda: False)  # reverse float64 as the reference: fast
    path = tmp_path / "b.json"
    rc, out, _ = run(capsys, "--quick", "--update", "--baseline", path)
    # the quick grid by hand: 2 activations x 2 losses (1 reg, 1 seed) = 4 problems, 8 methods x 2 dtypes each
    # (reverse[torch-cpu]'s 8 cells are skipped, not written, where torch is not installed)
    n = 64 if importlib.util.find_spec("torch") else 56
    assert rc == 0 and f"wrote {n} cells (quick grid, reference: reverse float64)" in out, out
    data = json.loads(path.read_text())
    assert data["format"] == bl.FORMAT and data["reference"] == bl.REVERSE and len(data["cells"]) == n
    assert all(set(bl.KEY) <= set(c) for c in data["cells"])
    errors = {(c["activation"], c["loss"], c["method"], c["dtype"]): c["error"] for c in data["cells"]}
    assert len(errors) == n and all(isinstance(e, float) and 0 <= e < 1e-2 for e in errors.values()), errors
    for (activation, loss, method, dtype), e in errors.items():
        if method == "reverse[numpy]" and dtype == "float64":
            assert e == 0.0, (activation, loss)  # the reference is this very computation
        elif method in ("finite_diff[forward]", "finite_diff[backward]") and dtype == "float64":
            assert 1e-12 < e < 1e-4, (activation, loss, method, e)  # O(sqrt(eps)): a truncation error, never 0
        elif dtype == "float32":
            assert e > 0, (activation, loss, method)  # float32 arithmetic against a float64 reference
    assert len(data["references"]) == 4
    assert run(capsys, "--quick", "--baseline", path)[0] == 0


def test_a_changed_problem_is_not_compared_with_a_stale_reference(capsys, tmp_path):
    data = json.loads(COMMITTED.read_text())
    pid = next(iter(data["references"]))
    data["references"][pid]["value"] *= 1.5
    path = tmp_path / "b.json"
    path.write_text(json.dumps(data))
    rc, out, _ = run(capsys, "--quick", "--baseline", path)
    assert rc == 1 and "changed since the baseline was written" in out


@pytest.mark.parametrize("content,message", [
    (None, "does not exist. The committed baselines come with a source checkout"),
    ("{not json", "is not valid JSON (line 1"),
    ('{"cells": []}', "is not a diffsuite accuracy baseline"),
    ('{"format": "diffsuite-accuracy-baseline", "version": 1, "cells": [{"model": "m"}]}', "cell #0 lacks activation"),
    ('{"format": "diffsuite-accuracy-baseline", "version": 1, "cells": {}}', 'needs a "cells" list'),
    ('{"format": "diffsuite-accuracy-baseline", "version": 7, "cells": []}', "has version 7"),
])
def test_a_missing_or_malformed_baseline_gets_a_clear_error(capsys, tmp_path, content, message):
    path = tmp_path / "b.json"
    if content is not None:
        path.write_text(content)
    rc, out, err = run(capsys, "--quick", "--baseline", path)
    assert rc == 2 and message in err and "--update" in err


def test_bad_error_values_are_refused(tmp_path):
    cell = dict.fromkeys(bl.KEY, "x")
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"format": bl.FORMAT, "version": 1, "cells": [{**cell, "error": -1}]}))
    with pytest.raises(bl.BaselineError, match="has error -1"):
        bl.load_baseline(path)


def test_compare_rules_floor_and_failed_cells():
    key = dict(model="m", activation="a", loss="l", dtype="float64", device="cpu")
    base = {"cells": {("m", "a", "l", "float64", "cpu", "reverse"): {**key, "method": "reverse", "error": 0.0},
                      ("m", "a", "l", "float64", "cpu", "central"): {**key, "method": "central", "error": 1e-10}}}
    ok = {"status": "ok", "message": ""}
    rows = [{**key, "method": "reverse", "error": 1e-15, **ok},          # rounding level: below the floor
            {**key, "method": "central", "error": 9e-10, **ok}]          # 9x: within the factor 10
    assert bl.compare(base, rows).ok
    rows[1]["error"] = 2e-9
    assert [r["method"] for r in bl.compare(base, rows).regressions] == ["central"]
    rows[1] = {**key, "method": "central", "error": None, "status": "error", "message": "boom"}
    assert bl.compare(base, rows).regressions[0]["why"] == "error: boom"


def test_compare_ratios_improvements_new_skipped_and_broken_cells_by_hand():
    """Hand arithmetic: floor(float64) = 100 eps = 2.22e-14; a cell's ratio is error / max(baseline, floor); it
    improved when error * factor < baseline and the baseline is above the floor (a rounding-level baseline cannot
    improve); a cell the baseline lacks is new (ok) or broken (error); a skipped cell is unmeasured."""
    key = dict(model="m", activation="a", loss="l", dtype="float64", device="cpu")
    floor64 = 100 * 2.0 ** -52
    base = {"cells": {("m", "a", "l", "float64", "cpu", m): {**key, "method": m, "error": e}
                      for m, e in (("big", 1e-6), ("tiny", 1e-20), ("grew", 1e-8), ("gone", 1e-9), ("none", None))}}
    ok = {"status": "ok", "message": ""}
    rows = [{**key, "method": "big", "error": 5e-8, **ok},           # 20x better than 1e-6: improved, ratio 0.05
            {**key, "method": "tiny", "error": 0.0, **ok},           # baseline below the floor: not "improved"
            {**key, "method": "grew", "error": 3e-7, **ok},          # 30x worse: ratio 30
            {**key, "method": "gone", "error": None, "status": "skipped", "message": "needs torch"},
            {**key, "method": "none", "error": 1.0, **ok},           # baseline null: no figure to compare: new
            {**key, "method": "fresh", "error": 1e-3, **ok},         # not in the baseline, measured: new
            {**key, "method": "crash", "error": None, "status": "error", "message": "ImportError: x"}]
    c = bl.compare(base, rows)
    assert [r["method"] for r in c.improved] == ["big"] and c.improved[0]["ratio"] == pytest.approx(0.05, rel=1e-12)
    assert [r["method"] for r in c.regressions] == ["grew"] and c.regressions[0]["ratio"] == pytest.approx(30.0)
    assert c.regressions[0]["why"] == "> 10 x baseline"
    assert [r["method"] for r in c.unmeasured] == ["gone"] and [r["method"] for r in c.new] == ["none", "fresh"]
    assert [r["method"] for r in c.broken] == ["crash"] and c.broken[0]["why"] == "error: ImportError: x"
    assert c.n_compared == 3 and not c.ok  # big, tiny, grew (not the skipped, the null and the absent ones)
    # a baseline cell the grid does not produce at all is unmeasured too (--fail-unmeasured fails on it)
    partial = bl.compare(base, [{**key, "method": "big", "error": 1e-6, **ok}])
    assert sorted(r["method"] for r in partial.unmeasured) == ["gone", "grew", "none", "tiny"]
    assert {r["status"] for r in partial.unmeasured} == {"absent"}
    # a rounding-level error against a rounding-level baseline: the ratio is taken against the floor
    small = bl.compare(base, [{**key, "method": "tiny", "error": 5 * floor64, **ok}])
    assert small.ok and small.improved == [] and small.regressions == []
    over = bl.compare(base, [{**key, "method": "tiny", "error": 11 * floor64, **ok}])
    assert over.regressions[0]["ratio"] == pytest.approx(11.0, rel=1e-12)


class _Spiked:
    """A differentiator whose gradient is reverse mode's with ``spike`` times its largest entry added to entry 0
    and half that to entry 1 (or that raises): its error in the check's metric, max_i |g_i - ref_i| / max_i |ref_i|,
    is ``spike`` by construction (an L2 or mean metric would give another number)."""

    def __init__(self, spike):
        self.spike = spike

    def value_and_grad(self, obj):
        from diffsuite.differentiators import get_differentiator
        inner = get_differentiator("reverse").value_and_grad(obj)

        def run(theta):
            if isinstance(self.spike, Exception):
                raise self.spike
            res = inner(theta)
            g = np.array(res.grad, dtype=np.float64)
            m = np.max(np.abs(g))
            g[0] += self.spike * m
            g[1] += 0.5 * self.spike * m
            return dataclasses.replace(res, grad=g)
        return run


def test_measure_grid_error_is_the_normwise_relative_error_and_the_worst_over_seeds(monkeypatch):
    """Oracles by construction: each seed's gradient carries a known spike (1e-3 for seed 0, 1e-2 for seed 1), so
    the cell's error is 1e-2, the larger; a method that raises on one seed and not the other is an error cell."""
    from diffsuite.study.studies import accuracy
    spikes = {"finite_diff[central]": [1e-3, 1e-2], "finite_diff[forward]": [2e-2, 1e-4],
              "reverse[numpy]": [1e-5, ValueError("seed 1 fails")]}
    calls = {label: 0 for label in spikes}

    def method(label, *args, **kwargs):
        k = calls[label]
        calls[label] += 1
        return _Spiked(spikes[label][k])
    monkeypatch.setattr(accuracy, "method", method)
    grid = bl.Grid(activations=("tanh",), losses=("quadratic",), regs=("none",), seeds=(0, 1), hidden=(3,), batch=4,
                   methods=tuple(spikes), dtypes=("float64",))
    rows, info = bl.measure_grid(grid, reference=bl.REVERSE)
    assert calls == {label: 2 for label in spikes}  # one call per seed
    by = {r["method"]: r for r in rows}
    assert len(rows) == 3 and info["reference"] == bl.REVERSE and len(info["references"]) == 2
    assert by["finite_diff[central]"]["status"] == "ok"
    assert by["finite_diff[central]"]["error"] == pytest.approx(1e-2, rel=1e-9)  # the worse seed, seed 1
    assert by["finite_diff[forward]"]["error"] == pytest.approx(2e-2, rel=1e-9)  # the worse seed, seed 0
    assert by["reverse[numpy]"]["status"] == "error" and by["reverse[numpy]"]["error"] is None
    assert by["reverse[numpy]"]["message"] == "ValueError: seed 1 fails"


@pytest.mark.parametrize("factor", ["1", "0.5", "inf", "nan"])
def test_a_factor_of_one_or_less_or_not_finite_is_refused(capsys, factor):
    rc, _, err = run(capsys, "--quick", "--factor", factor, "--baseline", COMMITTED)
    assert rc == 2 and "error: --factor must be a finite number > 1" in err  # (inf would turn the check off)


def test_devices_multiply_only_the_torch_cells():
    labels = ("finite_diff[central]", "reverse[numpy]", "reverse[torch-cpu]")
    assert bl.with_devices(labels, ("cpu", "cuda")) == (*labels, "reverse[torch-cuda]")
    assert bl.with_devices(labels, ("cuda",)) == ("finite_diff[central]", "reverse[numpy]", "reverse[torch-cuda]")


def test_cuda_without_a_gpu_is_a_clear_error(capsys):
    from diffsuite.study.metadata import gpu_info
    if gpu_info()["cuda_available"]:
        pytest.skip("a CUDA GPU is present")
    rc, _, err = run(capsys, "--quick", "--device", "cuda", "--baseline", COMMITTED)
    assert rc == 2 and "needs a CUDA GPU" in err


def test_the_full_grid_is_the_accuracy_studys_and_has_a_committed_baseline():
    from diffsuite.study.studies import accuracy
    grid, config = bl.full_grid(), accuracy.Config()
    assert grid.activations == tuple(config.activations) and grid.methods == tuple(config.methods())
    assert not any(m.startswith("symbolic") for m in bl.QUICK.methods)  # seconds per problem: full grid only
    full = bl.load_baseline(COMMITTED.with_name("accuracy_full.json"))
    assert full["grid"] == "full" and full["reference"] == bl.EXACT


def test_an_unknown_option_lists_the_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["check", "--bogus"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "diffsuite check: error: unknown option(s) --bogus" in err
    for opt in ("--baseline", "--update", "--quick", "--factor", "--device"):
        assert opt in err


def test_a_stored_gradient_of_the_wrong_length_is_a_malformed_baseline(capsys, tmp_path):
    data = json.loads(COMMITTED.read_text())
    pid = next(iter(data["references"]))
    data["references"][pid]["grad"] = data["references"][pid]["grad"][:-1]
    path = tmp_path / "b.json"
    path.write_text(json.dumps(data))
    rc, out, err = run(capsys, "--quick", "--baseline", path)
    assert rc == 2, out + err  # malformed (2), not a regression (1)
    assert "has " in err and "entries; the problem has" in err and "--update" in err


def test_a_folder_or_an_unwritable_path_as_baseline_is_one_line_and_exit_2(capsys, tmp_path):
    rc, out, err = run(capsys, "--quick", "--baseline", tmp_path)
    assert rc == 2 and err.count("\n") == 1 and f"baseline {tmp_path} is a folder" in err
    (tmp_path / "afile").write_text("")
    target = tmp_path / "afile" / "sub" / "b.json"  # its folder cannot be created: a file is in the way
    rc, out, err = run(capsys, "--quick", "--update", "--baseline", target)
    assert rc == 2 and "Traceback" not in err and f"cannot create the folder {target.parent}" in err


def test_a_baseline_written_with_the_old_exact_label_still_loads(capsys, tmp_path):
    """Baselines written before the label was corrected say "exact (mpmath)"; it is the same certified reference."""
    old = json.loads(COMMITTED.read_text())
    old["reference"] = "exact (mpmath)"
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    rc, out, err = run(capsys, "--quick", "--baseline", path)
    assert rc == 0, out + err
    assert "exact (certified, arb)" in out
