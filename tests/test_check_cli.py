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


def test_a_broken_rule_fails_the_check_with_a_table(capsys, monkeypatch):
    bad = dataclasses.replace(ops.OPS["tanh"], vjps=(lambda B, g, out, x: g * (out * out - 1.0),))
    monkeypatch.setitem(ops.OPS, "tanh", bad)
    monkeypatch.setattr(tape, "TANH", bad)
    rc, out, err = run(capsys, "--quick", "--baseline", COMMITTED)
    assert rc == 1 and "REGRESSIONS" in out
    table = out.split("REGRESSIONS", 1)[1].splitlines()[2:]
    assert table and all(" tanh " in line for line in table)
    assert "model" in out and "baseline" in out and "ratio" in out


def test_update_writes_a_baseline_that_then_holds_and_catches_a_shrunk_cell(capsys, tmp_path):
    path = tmp_path / "b.json"
    assert run(capsys, "--quick", "--update", "--baseline", path)[0] == 0
    data = json.loads(path.read_text())
    assert data["format"] == bl.FORMAT and data["cells"]
    assert all(set(bl.KEY) <= set(c) for c in data["cells"])
    assert run(capsys, "--quick", "--baseline", path)[0] == 0
    victim = max(data["cells"], key=lambda c: c["error"])  # large enough to be above the rounding floor
    victim["error"] /= 1000
    path.write_text(json.dumps(data))
    rc, out, _ = run(capsys, "--quick", "--baseline", path)
    rows = out.split("REGRESSIONS", 1)[1].splitlines()[2:]
    assert rc == 1 and len(rows) == 1
    assert all(str(victim[k]) in rows[0] for k in bl.KEY)


@pytest.mark.parametrize("content,message", [
    (None, "does not exist; create it with: diffsuite check --baseline"),
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
