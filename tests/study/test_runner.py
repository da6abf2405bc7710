"""The runner with a toy study: failing and over-budget cells become rows, workers, resume, devices, pruning."""
import json
import textwrap

import pandas as pd
import pytest

from diffsuite.study import runner
from diffsuite.study.store import RESULTS

TOY = textwrap.dedent('''
    """A toy study for the runner's tests."""
    from dataclasses import dataclass
    from diffsuite.errors import BudgetExceeded
    from diffsuite.study.report import Para, Report
    from diffsuite.study.runner import cell

    TITLE = "Toy"
    QUESTION = "Does the runner survive failing cells?"

    @dataclass(frozen=True)
    class Config:
        n: int = 6
        devices: tuple = ("cpu",)
        def quick(self):
            return Config(n=3)

    def cells(config):
        return [cell(i=i) for i in range(config.n)]

    def prune(config, params, done):
        over = [r for rows in done.values() for r in rows if r.get("status") == "budget"]
        return "not attempted: a smaller cell ran out of budget" if over and params["i"] == 5 else None

    def measure(config, params):
        i = params["i"]
        if i == 1:
            raise ZeroDivisionError("cell 1 divides by zero")
        if i == 2:
            raise BudgetExceeded("toy work", "1 s", "half of it")
        return [{"square": i * i}, {"square": -i * i, "status": "error", "message": "one method failed"}]

    def report(table, meta, out_dir):
        return Report(TITLE, QUESTION, [Para(f"{len(table)} rows")], {"rows": len(table)})
''')


@pytest.fixture
def toy(tmp_path, monkeypatch):
    (tmp_path / "toy_study_mod.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(runner.STUDIES, "toy", "toy_study_mod")
    return tmp_path / "out"


@pytest.mark.parametrize("jobs", [1, 2])
def test_failing_and_over_budget_cells_become_rows(toy, jobs):
    summary = runner.run_study("toy", out=toy, jobs=jobs, progress=False)
    t = pd.read_csv(toy / "toy" / "results.csv")
    by_cell = {i: g for i, g in t.groupby("i")}
    assert set(by_cell) == set(range(6))
    assert list(by_cell[1]["status"]) == ["error"]
    assert "ZeroDivisionError: cell 1 divides by zero" in by_cell[1]["message"].iloc[0]
    assert list(by_cell[2]["status"]) == ["budget"]
    assert "toy work exceeded its budget of 1 s" in by_cell[2]["message"].iloc[0]
    assert list(by_cell[3]["status"]) == ["ok", "error"] and list(by_cell[3]["square"]) == [9, -9]
    if jobs == 1:  # in order, cell 5 comes after cell 2's budget row and is pruned
        assert list(by_cell[5]["status"]) == ["budget"] and "not attempted" in by_cell[5]["message"].iloc[0]
    assert summary.cells == 6 and summary.measured == 6
    for name in ("results.jsonl", "results.csv", "meta.json", "report.md", "findings.json"):
        assert (toy / "toy" / name).exists(), name
    assert (toy / "index.html").exists()


def test_rerun_retries_only_cells_that_raised(toy):
    runner.run_study("toy", out=toy, progress=False)
    again = runner.run_study("toy", out=toy, progress=False)
    assert (again.measured, again.resumed) == (1, 5)  # only cell 1 (an exception) is measured again
    cells = [json.loads(line)["cell"] for line in (toy / "toy" / RESULTS).read_text().splitlines()]
    assert sorted(cells) == sorted([f"i={i}" for i in range(6)] + ["i=1"])
    assert len(pd.read_csv(toy / "toy" / "results.csv").query("i == 1")) == 1  # the table keeps the latest


def test_a_changed_configuration_starts_afresh(toy):
    runner.run_study("toy", out=toy, progress=False)
    quick = runner.run_study("toy", out=toy, quick=True, progress=False)
    assert (quick.cells, quick.measured, quick.resumed) == (3, 3, 0)
    assert set(pd.read_csv(toy / "toy" / "results.csv")["i"]) == {0, 1, 2}


def test_a_changed_configuration_keeps_the_old_results_aside(toy, capsys):
    runner.run_study("toy", out=toy, progress=False)
    d = toy / "toy"
    full_lines, full_meta = (d / RESULTS).read_text(), json.loads((d / "meta.json").read_text())
    h = full_meta["config_hash"]
    runner.run_study("toy", out=toy, quick=True, progress=False)
    err = capsys.readouterr().err
    assert "starts afresh" in err and f"results.{h}.jsonl" in err and "6 stored cells are kept" in err
    assert (d / f"results.{h}.jsonl").read_text() == full_lines  # every old row survives, byte for byte
    assert json.loads((d / f"meta.{h}.json").read_text()) == full_meta
    assert len((d / RESULTS).read_text().splitlines()) == 3
    # back to the full grid: the quick results go aside too, and no backup is ever overwritten
    qh = json.loads((d / "meta.json").read_text())["config_hash"]
    runner.run_study("toy", out=toy, progress=False)
    runner.run_study("toy", out=toy, quick=True, progress=False)
    assert (d / f"results.{h}.jsonl").read_text() == full_lines
    second = [json.loads(x)["cell"] for x in (d / f"results.{h}.1.jsonl").read_text().splitlines()]
    assert sorted(second) == sorted(f"i={i}" for i in range(6))  # the second full run, in a backup of its own
    assert (d / f"meta.{h}.1.json").exists() and (d / f"results.{qh}.jsonl").exists()


def test_metadata_is_written_beside_the_results(toy):
    runner.run_study("toy", out=toy, progress=False)
    meta = json.loads((toy / "toy" / "meta.json").read_text())
    for key in ("diffsuite", "git_commit", "python", "libraries", "cpu", "gpu", "threads", "config", "seeds"):
        assert key in meta, key
    assert meta["config"] == {"n": 6, "devices": ["cpu"]}
    assert {"numpy", "sympy", "torch"} <= set(meta["libraries"])
    # the values, from the libraries, the interpreter, the system and git themselves
    import os
    import platform
    import subprocess
    from pathlib import Path

    import numpy
    import sympy
    assert meta["libraries"]["numpy"] == numpy.__version__ and meta["libraries"]["sympy"] == sympy.__version__
    assert meta["python"] == platform.python_version() and meta["threads"]["cpu_count"] == os.cpu_count()
    assert meta["study"] == "toy" and meta["quick"] is False and meta["device"] == "cpu"
    assert meta["seeds"] is None  # the toy's configuration has neither seeds nor seed
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(runner.__file__).parent, capture_output=True,
                             text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    if sha:  # a git checkout: the full commit, with "+dirty" at most
        assert meta["git_commit"] in (sha, sha + "+dirty"), (meta["git_commit"], sha)
    else:
        assert meta["git_commit"] == "unknown"


def test_unknown_study_device_and_jobs_are_refused_with_the_choices(toy):
    with pytest.raises(runner.StudyError, match="choose from expression_growth, rounding_error, accuracy, speed"):
        runner.run_study("nope", out=toy)
    with pytest.raises(runner.StudyError, match="choose from cpu, cuda, all"):
        runner.run_study("toy", out=toy, device="tpu")
    with pytest.raises(runner.StudyError, match="--jobs"):
        runner.run_study("toy", out=toy, jobs=0)


def test_cuda_without_a_gpu_is_an_error_and_all_records_the_skip(toy):
    from diffsuite.study import metadata
    if metadata.gpu_info()["cuda_available"]:
        pytest.skip("a GPU is present: the no-GPU behaviour cannot be observed here")
    with pytest.raises(runner.StudyError, match="--device cuda needs a CUDA GPU"):
        runner.run_study("toy", out=toy, device="cuda")
    assert not (toy / "toy").exists()  # nothing measured, nothing written
    runner.run_study("toy", out=toy, device="all", progress=False)
    meta = json.loads((toy / "toy" / "meta.json").read_text())
    assert meta["config"]["devices"] == ["cpu"]
    assert "no CUDA GPU" in meta["skipped"]["reverse[torch-cuda]"]
