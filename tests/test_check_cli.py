"""``diffsuite check``: the committed quick baseline passes; a broken rule, a shrunk baseline cell and bad
baseline files are caught. The oracle for *which* cells regress: the broken rule (tanh's VJP) is only
on the path of the tanh problems, and only the cell whose stored error the test shrank may regress."""
import dataclasses
import json
from pathlib import Path

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
    assert rc == 0 and "wrote" in out
    data = json.loads(path.read_text())
    assert data["format"] == bl.FORMAT and data["reference"] == bl.REVERSE and data["cells"]
    assert all(set(bl.KEY) <= set(c) for c in data["cells"])
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
