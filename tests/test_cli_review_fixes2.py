"""Review fixes from a new user's first hour: a --scheduler that is not a scheduler's address, `diffsuite report` on
a folder of another study's (or an older version's) results, Ctrl-C on a --jobs run, `check --update` that cannot
write its baseline or runs without torch, a --config that is a folder, and the run/train/demo help texts."""
import json
import os
import re
import signal
import textwrap
from pathlib import Path

import pytest

from diffsuite.cli import main
from diffsuite.errors import StudyError
from diffsuite.gradcheck import baseline as bl
from diffsuite.study import executors, runner

ROOT = Path(__file__).resolve().parents[1]
DEBUG = "DIFFSUITE_DEBUG"  # set: a report that cannot be drawn raises with its traceback


def _one_line(err: str) -> str:
    assert "Traceback" not in err, err
    assert err.count("\n") == 1, err
    return err


# ----- 1. --scheduler -----
@pytest.mark.parametrize("address", ["http://HOST:8787", "inproc://x", "https://HOST:8787/status"])
def test_a_scheduler_address_of_no_dask_scheme_is_one_line_before_any_folder(address, tmp_path, capsys):
    pytest.importorskip("distributed")
    out = tmp_path / "out"
    rc = main(["run", "expression_growth", "--quick", "--no-progress", "--scheduler", address, "--out", str(out)])
    err = _one_line(capsys.readouterr().err)
    assert rc == 2
    assert repr(address) in err  # the address given
    assert "tcp://" in err and "tls://" in err  # the schemes accepted
    assert "http://HOST:8787 is the scheduler's dashboard, not the scheduler" in err and "tcp://HOST:8786" in err
    assert not out.exists()


def test_check_scheduler_lists_the_schemes_distributed_connects_by():
    pytest.importorskip("distributed")
    with pytest.raises(StudyError, match=r"http:// is not a scheme .*tcp://"):
        executors.check_scheduler("http://localhost:8787")
    assert "inproc" not in executors.scheduler_schemes()  # in-process only: no driver reaches a scheduler by it
    assert "tcp" in executors.scheduler_schemes()
    assert executors.check_scheduler("tcp://HOST:8786") == "tcp://HOST:8786"
    assert executors.check_scheduler("local") == "local"


def test_an_address_distributed_cannot_parse_is_a_study_error(monkeypatch):
    distributed = pytest.importorskip("distributed")

    def client(address, timeout=None):
        raise ValueError(f"missing port number in address {address!r}")
    monkeypatch.setattr(distributed, "Client", client)
    with pytest.raises(StudyError) as e:
        executors.DaskExecutor("tcp://HOST")
    assert "missing port number" in str(e.value) and "'tcp://HOST'" in str(e.value)
    assert "dashboard" in str(e.value)


# ----- 2. diffsuite report -----
TOY_REPORT = textwrap.dedent('''
    from dataclasses import dataclass
    from diffsuite.study.report import Para, Report
    from diffsuite.study.runner import cell

    TITLE = "{title}"
    QUESTION = "Does the report rebuild?"

    @dataclass(frozen=True)
    class Config:
        n: int = 1
        def quick(self):
            return self

    def cells(config):
        return [cell(i=i) for i in range(config.n)]

    def measure(config, params):
        return [{{"x": 1.0}}]

    def report(table, meta, out_dir):
        {body}
        return Report(TITLE, QUESTION, [Para(f"{{len(table)}} rows")], {{"rows": len(table)}})
''')


def _store(out: Path, study: str, meta_study: str, rows=({"i": 0, "x": 1.0, "status": "ok", "message": ""},)):
    folder = out / study
    folder.mkdir(parents=True)
    (folder / "results.jsonl").write_text(json.dumps({"cell": "i=0", "rows": list(rows)}) + "\n")
    (folder / "meta.json").write_text(json.dumps({"study": meta_study, "diffsuite": "0.0.1"}))


@pytest.fixture
def toys(tmp_path, monkeypatch):
    """Two toy studies: ``toyok`` (its report draws) and ``toyold`` (its report needs a column old rows lack)."""
    (tmp_path / "toy_ok_mod.py").write_text(TOY_REPORT.format(title="Toy ok", body="pass"))
    (tmp_path / "toy_old_mod.py").write_text(TOY_REPORT.format(title="Toy old", body='table["dtype"]'))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(runner.STUDIES, "toyok", "toy_ok_mod")
    monkeypatch.setitem(runner.STUDIES, "toyold", "toy_old_mod")
    monkeypatch.delenv(DEBUG, raising=False)
    return tmp_path / "out"


def test_report_on_a_folder_holding_another_studys_results_names_both(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(DEBUG, raising=False)
    _store(tmp_path, "accuracy", "agreement")  # before: KeyError 'dtype' deep in accuracy's report
    rc = main(["report", "--out", str(tmp_path)])
    err = _one_line(capsys.readouterr().err)
    assert rc == 2
    assert str(tmp_path / "accuracy") in err and "'agreement'" in err and "'accuracy'" in err


def test_a_report_that_cannot_be_drawn_is_one_line_naming_the_folder_and_the_others_are_rebuilt(toys, capsys,
                                                                                                  monkeypatch):
    _store(toys, "toyok", "toyok")
    _store(toys, "toyold", "toyold")
    rc = main(["report", "--out", str(toys)])
    captured = capsys.readouterr()
    err = _one_line(captured.err)
    assert rc == 2
    assert str(toys / "toyold") in err and "KeyError: 'dtype'" in err and f"{DEBUG}=1" in err
    assert "diffsuite 0.0.1" in err  # what measured them
    assert "rebuilt toyok" in captured.out
    assert (toys / "toyok" / "report.md").exists() and (toys / "index.html").exists()
    # a real bug must stay findable: DIFFSUITE_DEBUG=1 raises it with its traceback
    monkeypatch.setenv(DEBUG, "1")
    with pytest.raises(KeyError, match="dtype"):
        main(["report", "--out", str(toys)])


# ----- 3. Ctrl-C on --jobs N: the pool's workers ignore SIGINT, the driver stops them -----
SIGNAL_TOY = textwrap.dedent('''
    import os, signal, time
    from pathlib import Path

    def measure(config, params):
        folder = Path(config)
        if params["i"] == "handler":
            return [{"sigint": str(signal.getsignal(signal.SIGINT))}]
        if params["i"] == "slow":
            (folder / "slow-started").write_text("")
            time.sleep(30)
            (folder / "slow-finished").write_text("")
            return [{"x": 1}]
        deadline = time.monotonic() + 120  # "fast": finish once the slow cell is running
        while not (folder / "slow-started").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return [{"x": 0}]
''')


@pytest.fixture
def signal_toy(tmp_path, monkeypatch):
    (tmp_path / "sig_toy_mod.py").write_text(SIGNAL_TOY)
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers get the driver's sys.path
    return tmp_path


def test_local_pool_workers_ignore_sigint(signal_toy):
    rows = []
    with executors.LocalPool(1, label="toy") as pool:
        pool.run(runner.run_cell, "sig_toy_mod", str(signal_toy), iter([runner.cell(i="handler")]),
                 lambda c, r: rows.extend(r))
    assert rows and rows[0]["status"] == "ok", rows
    assert rows[0]["sigint"] == str(signal.SIG_IGN)


def test_an_interrupted_local_pool_stops_its_workers_instead_of_waiting_for_their_cells(signal_toy):
    """Workers that ignore Ctrl-C must be stopped by the driver: the cell in flight is not waited for."""
    def done(c, rows):
        raise KeyboardInterrupt  # Ctrl-C in the driver while the slow cell is being measured

    with pytest.raises(KeyboardInterrupt):
        with executors.LocalPool(2, label="toy") as pool:
            pool.run(runner.run_cell, "sig_toy_mod", str(signal_toy),
                     iter([runner.cell(i="fast"), runner.cell(i="slow")]), done)
    assert (signal_toy / "slow-started").exists()
    assert not (signal_toy / "slow-finished").exists()  # before: shutdown waited for the slow cell to finish


# ----- 4. check --update: can the baseline be written? asked before measuring -----
@pytest.fixture
def no_measuring(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("measured before checking that the baseline can be written")
    monkeypatch.setattr(bl, "measure_grid", refuse)


def test_update_with_a_file_in_the_way_of_the_baseline_folder_says_so_before_measuring(tmp_path, capsys,
                                                                                        no_measuring):
    (tmp_path / "afile").write_text("")
    target = tmp_path / "afile" / "b.json"  # the folder afile/ cannot exist: a file has its name
    rc = main(["check", "--quick", "--update", "--baseline", str(target)])
    err = _one_line(capsys.readouterr().err)
    assert rc == 2
    assert str(target) in err and f"{tmp_path / 'afile'} is a file, not a folder" in err and "in the way" in err
    deeper = tmp_path / "afile" / "sub" / "b.json"
    with pytest.raises(bl.BaselineError, match="a file is in the way"):
        bl.require_writable(deeper)


def test_update_creates_the_baseline_folder_and_leaves_no_probe_file(tmp_path):
    target = tmp_path / "new" / "deeper" / "b.json"
    bl.require_writable(target)
    assert target.parent.is_dir() and list(target.parent.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write into a read-only folder")
def test_update_into_a_read_only_folder_says_so_before_measuring(tmp_path, capsys, no_measuring):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        rc = main(["check", "--quick", "--update", "--baseline", str(folder / "b.json")])
    finally:
        folder.chmod(0o755)
    err = _one_line(capsys.readouterr().err)
    assert rc == 2 and f"the folder {folder} is not writable" in err


def test_the_read_only_probe_is_made_in_the_baseline_folder(tmp_path, monkeypatch):
    """(Runs as root too:) a folder where no file can be created is refused, naming the path and the cause."""
    import builtins
    real_open = builtins.open

    def refusing_open(file, mode="r", *a, **k):
        if "x" in mode and Path(file).parent == tmp_path:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, mode, *a, **k)
    monkeypatch.setattr(builtins, "open", refusing_open)
    with pytest.raises(bl.BaselineError, match=r"the folder .* is not writable \(Permission denied\)"):
        bl.require_writable(tmp_path / "b.json")


# ----- 5. check --update without torch keeps the baseline's torch cells -----
PID = "MLP(3,3,2) tanh quadratic seed=0"
KEY = {"model": "MLP(3,3,2)", "activation": "tanh", "loss": "quadratic", "device": "cpu"}


def _row(method, dtype="float64", status="ok", error=1e-16, message=""):
    return {**KEY, "dtype": dtype, "method": method, "error": error if status == "ok" else None, "status": status,
            "message": message}


def _old_baseline(path: Path, reference=bl.EXACT, value=0.5):
    rows = [_row("reverse[numpy]", error=2e-16), _row("reverse[torch-cpu]", error=3e-16),
            _row("reverse[torch-cpu]", dtype="float32", error=4e-8)]
    info = {"reference": reference, "references": {PID: {"value": value, "grad": [0.1, 0.2]}}}
    bl.write_baseline(path, bl.baseline_document(rows, info, "quick"))


@pytest.fixture
def without_torch(monkeypatch):
    """measure_grid as on a machine without torch: the torch cells skipped for the missing package."""
    def measure(grid, devices=("cpu",), reference=None, references=None):
        why = "needs torch: backend 'torch' needs PyTorch, which is not installed: pip install 'diffsuite[torch]'"
        rows = [_row("reverse[numpy]", error=1e-16),
                _row("reverse[torch-cpu]", status="skipped", message=why),
                _row("reverse[torch-cpu]", dtype="float32", status="skipped", message=why)]
        return rows, {"reference": bl.EXACT, "references": {PID: {"value": 0.5, "grad": [0.1, 0.2]}}}
    monkeypatch.setattr(bl, "measure_grid", measure)


def test_update_without_torch_carries_the_torch_cells_over(tmp_path, capsys, without_torch):
    path = tmp_path / "b.json"
    _old_baseline(path)
    rc = main(["check", "--quick", "--update", "--baseline", str(path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    cells = {(c["method"], c["dtype"]): c["error"] for c in json.loads(path.read_text())["cells"]}
    assert cells == {("reverse[numpy]", "float64"): 1e-16,  # measured now
                     ("reverse[torch-cpu]", "float64"): 3e-16, ("reverse[torch-cpu]", "float32"): 4e-8}  # kept
    assert "2 cells carried over from the old baseline" in out
    assert "carried over (2 cells, e.g. reverse[torch-cpu]" in out and "needs torch" in out


def test_update_carries_nothing_over_from_a_baseline_with_another_reference_or_a_changed_problem(tmp_path, capsys,
                                                                                                 without_torch):
    path = tmp_path / "b.json"
    _old_baseline(path, reference=bl.REVERSE)
    assert main(["check", "--quick", "--update", "--baseline", str(path)]) == 0
    out = capsys.readouterr().out
    assert [c["method"] for c in json.loads(path.read_text())["cells"]] == ["reverse[numpy]"]
    assert "not carried over from the old baseline: the old baseline's errors are against another reference" in out
    _old_baseline(path, value=0.75)  # the problem's loss differs from the one measured now
    assert main(["check", "--quick", "--update", "--baseline", str(path)]) == 0
    out = capsys.readouterr().out
    assert [c["method"] for c in json.loads(path.read_text())["cells"]] == ["reverse[numpy]"]
    assert "2 cell(s) not carried over because their problem changed" in out


def test_update_carries_the_cuda_cells_over_when_device_all_finds_no_gpu(tmp_path, without_torch):
    cuda = {**KEY, "device": "cuda", "dtype": "float64", "method": "reverse[torch-cuda]", "error": 5e-16}
    old = {"grid": "quick", "reference": bl.EXACT, "references": {PID: {"value": 0.5, "grad": [0.1, 0.2]}},
           "cells": {tuple(str(cuda[f]) for f in bl.KEY): cuda}}
    rows, info = bl.measure_grid(bl.QUICK)
    carried, why_not = bl.carry_over(old, rows, info, "quick", {"reverse[torch-cuda]": "no CUDA GPU"})
    assert why_not == "" and [(c["method"], c["error"], c["status"]) for c in carried] == [
        ("reverse[torch-cuda]", 5e-16, bl.CARRIED)]
    assert "no CUDA GPU" in carried[0]["message"]


# ----- 6. --config that is a folder -----
def test_a_config_that_is_a_folder_is_an_error_about_reading_config(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["run", "agreement", "--config", str(tmp_path), "--out", str(out), "--no-progress"])
    err = _one_line(capsys.readouterr().err)
    assert rc == 2
    assert "--config" in err and str(tmp_path) in err and "folder" in err
    assert "give --out" not in err  # before: "cannot write <folder>: Is a directory; give --out a folder ..."
    assert not out.exists()


# ----- 7 and 8. help texts, train's early checks, the benchmark's sample output -----
def _help(capsys, *argv) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_quick_help_says_honestly_how_long_a_quick_study_takes(capsys):
    text = _help(capsys, "run")
    assert "well under a minute" not in text
    assert "about a minute and a half (agreement is the longest)" in text


def test_train_help_states_the_schedule_default_and_demo_help_names_out_a_dir(capsys):
    assert re.search(r"--schedule \{constant,step,cosine\} [^-]*\(default constant\)", _help(capsys, "train"))
    text = _help(capsys, "demo")
    assert "--out DIR" in text and "--out OUT" not in text


@pytest.mark.parametrize("argv, option", [(["--l1", "-1"], "--l1"), (["--l2", "nan"], "--l2"),
                                          (["--l2", "inf"], "--l2")])
def test_train_refuses_a_bad_penalty_before_printing_anything(argv, option, capsys):
    rc = main(["train", *argv, "--max-steps", "1"])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    err = _one_line(captured.err)  # before: the header and an empty progress bar first
    assert err.startswith(f"diffsuite train: error: {option} must be a finite number >= 0")


def test_the_training_benchmarks_sample_output_is_explained():
    """bench_training.py times epochs - 1 epochs per process (the first is warm-up) and compares the parameters
    after all of them: the docs' sample says "x 2 epochs each" and "after 3 epochs", and says why."""
    text = (ROOT / "docs" / "training.md").read_text()
    timed = int(re.search(r"median of \d+ processes x (\d+) epochs each", text).group(1))
    total = int(re.search(r"theta_torch\| after (\d+) epochs", text).group(1))
    assert timed == total - 1
    flat = " ".join(text.split())
    assert "the first is warm-up and is not timed" in flat
    bench = (ROOT / "benchmarks" / "bench_training.py").read_text()
    assert "max(args.epochs - 1, 1)} epochs each" in bench and "after {args.epochs} epochs" in bench
