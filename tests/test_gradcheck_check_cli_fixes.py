"""``diffsuite check`` after the CI user's review (M5, F4, D1, D2, U3). Oracles: an import failure injected into
the finite-difference methods only (so exactly their cells, 48 of the quick grid's 64, must fail), a missing
optional package injected into the torch cells only, and baseline files whose grid/mode the test sets."""
import json
import os
from pathlib import Path

import pytest

from diffsuite.cli import main
from diffsuite.gradcheck import baseline as bl
from diffsuite.study.studies import accuracy

COMMITTED = Path(__file__).parents[1] / "baselines" / "accuracy_quick.json"
N_FD = 4 * 6 * 2     # quick grid: 4 problems x 6 finite-difference schemes x 2 dtypes
N_TORCH = 4 * 1 * 2  # 4 problems x reverse[torch-cpu] x 2 dtypes


def run(capsys, *args):
    rc = main(["check", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def broken_fd_import(monkeypatch):
    """What a typo in finite_diff/__init__.py (``from .steps import auto_step``) raises for every such method."""
    real = accuracy.method

    def method(label, *args, **kwargs):
        if label.startswith("finite_diff"):
            raise ImportError("cannot import name 'auto_step' from 'diffsuite.differentiators.finite_diff.steps'")
        return real(label, *args, **kwargs)
    monkeypatch.setattr(accuracy, "method", method)


@pytest.fixture
def torch_missing(monkeypatch):
    real = accuracy.method

    def method(label, *args, **kwargs):
        if "torch" in label:
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
        return real(label, *args, **kwargs)
    monkeypatch.setattr(accuracy, "method", method)


def test_a_broken_import_is_a_failure_not_a_missing_backend(capsys, broken_fd_import):
    rc, out, err = run(capsys, "--quick", "--baseline", COMMITTED)
    assert rc == 1, out + err  # before: "not measured ... ok: no cell lost accuracy", exit 0
    assert f"REGRESSIONS: {N_FD} cell(s) lost accuracy" in out and "cannot import name 'auto_step'" in out
    table = out.split("REGRESSIONS", 1)[1].splitlines()[2:]
    assert len(table) == N_FD and all("finite_diff[" in line for line in table)
    assert "ok: no cell lost accuracy" not in out


def test_a_broken_import_fails_also_for_cells_the_baseline_lacks(capsys, tmp_path, broken_fd_import):
    data = json.loads(COMMITTED.read_text())
    data["cells"] = [c for c in data["cells"] if not c["method"].startswith("finite_diff")]
    path = tmp_path / "b.json"
    path.write_text(json.dumps(data))
    rc, out, err = run(capsys, "--quick", "--baseline", path)
    assert rc == 1 and f"FAILURES: {N_FD} cell(s) not in the baseline raise an error now" in out


def test_update_refuses_to_write_when_cells_fail_to_measure(capsys, tmp_path, monkeypatch, broken_fd_import):
    monkeypatch.setattr(bl, "exact_available", lambda: False)  # reverse float64 as the reference: fast
    path = tmp_path / "b.json"
    rc, out, err = run(capsys, "--quick", "--update", "--baseline", path)
    assert rc == 1 and not path.exists()  # before: wrote the 16 other cells and exited 0
    assert f"{N_FD} cell(s) failed to measure" in err and "was not written" in err
    assert "cannot import name 'auto_step'" in out


def test_a_missing_optional_package_is_not_measured_unless_asked_to_fail(capsys, tmp_path, monkeypatch,
                                                                         torch_missing):
    rc, out, err = run(capsys, "--quick", "--baseline", COMMITTED)
    assert rc == 0, out + err
    assert f"not measured ({N_TORCH} cells" in out and "needs torch" in out
    rc, out, err = run(capsys, "--quick", "--baseline", COMMITTED, "--fail-unmeasured")
    assert rc == 1 and f"UNMEASURED: {N_TORCH} cell(s) of the baseline were not measured" in out
    monkeypatch.setattr(bl, "exact_available", lambda: False)
    path = tmp_path / "b.json"  # --update may leave an optional backend's cells out
    rc, out, err = run(capsys, "--quick", "--update", "--baseline", path)
    assert rc == 0 and len(json.loads(path.read_text())["cells"]) == 64 - N_TORCH


def test_only_known_optional_packages_count_as_missing_backends():
    torch = ModuleNotFoundError("No module named 'torch'", name="torch")
    ours = ModuleNotFoundError("No module named 'diffsuite.differentiators.foo'", name="diffsuite.differentiators.foo")
    other = ModuleNotFoundError("No module named 'numpyy'", name="numpyy")
    assert bl.optional_missing(torch) == "torch"
    assert bl.optional_missing(ours) is None and bl.optional_missing(other) is None
    assert bl.optional_missing(ImportError("cannot import name 'x' from 'torch'")) is None
    from diffsuite.errors import MissingDependency
    assert bl.optional_missing(MissingDependency("reverse[torch-cpu]", "torch")) == "torch"


# ----- F4: the baseline's grid -----
def test_a_baseline_of_the_other_grid_is_refused(capsys, tmp_path):
    rc, out, err = run(capsys, "--baseline", COMMITTED)  # the quick baseline, the full grid
    assert rc == 2 and "was written for the quick grid" in err and "add --quick" in err
    full = tmp_path / "full.json"
    full.write_text(COMMITTED.read_text().replace('"grid": "quick"', '"grid": "full"', 1))
    assert json.loads(full.read_text())["grid"] == "full"
    rc, out, err = run(capsys, "--quick", "--baseline", full)  # before: passed silently
    assert rc == 2 and "was written for the full grid" in err and "drop --quick" in err


# ----- D1, D2: writing the baseline -----
def test_update_refuses_a_read_only_baseline(capsys, tmp_path):
    path = tmp_path / "b.json"
    path.write_text(COMMITTED.read_text())
    os.chmod(path, 0o444)
    try:
        rc, out, err = run(capsys, "--quick", "--update", "--baseline", path)
        assert rc == 2 and "is read-only; not replacing it" in err  # before: replaced, mode 0644, exit 0
        assert path.read_text() == COMMITTED.read_text() and (path.stat().st_mode & 0o777) == 0o444
    finally:
        os.chmod(path, 0o644)


def test_an_interrupt_while_writing_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "b.json"
    real = Path.write_text

    def interrupted(self, text, *args, **kwargs):
        real(self, text[: len(text) // 2], *args, **kwargs)  # half written, then Ctrl-C
        raise KeyboardInterrupt
    monkeypatch.setattr(Path, "write_text", interrupted)
    document = {"format": bl.FORMAT, "version": bl.VERSION, "grid": "quick", "references": {},
                "cells": [{**dict.fromkeys(bl.KEY, "x"), "error": 1e-3}]}
    with pytest.raises(KeyboardInterrupt):
        bl.write_baseline(path, document)
    assert list(tmp_path.iterdir()) == []  # before: b.json.<pid>.tmp was left behind


# ----- U3: Ctrl-C -----
def test_ctrl_c_does_not_claim_results_were_kept(capsys, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(bl, "measure_grid", interrupted)
    path = tmp_path / "b.json"
    rc, out, err = run(capsys, "--quick", "--update", "--baseline", path)
    assert rc == 130 and "kept" not in err and f"the baseline {path} was not written or changed" in err
    assert not path.exists()
