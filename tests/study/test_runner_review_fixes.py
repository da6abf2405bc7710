"""Review fixes of the runner: a run that fails to start or is interrupted before its first new cell leaves the
stored results, their meta.json and the report as they were; the run history counts the cells each run stored
(not those it planned), records no run that stored nothing, and the report's provenance follows the runs that
measured the rows."""
import json
import socket
import sys
import textwrap

import pytest

from diffsuite.errors import StudyError
from diffsuite.study import executors, metadata, runner
from diffsuite.study.report import rebuild
from diffsuite.study.store import RESULTS

TOY = textwrap.dedent('''
    """A toy study: the cell named by FIXTOY_INTERRUPT_AT raises KeyboardInterrupt (a Ctrl-C while it runs)."""
    import os
    from dataclasses import dataclass
    from diffsuite.study.report import Para, Report
    from diffsuite.study.runner import cell

    TITLE = "Toy"
    QUESTION = "Which runs measured these rows?"

    @dataclass(frozen=True)
    class Config:
        n: int = 6
        def quick(self):
            return Config(n=3)

    def cells(config):
        return [cell(i=i) for i in range(config.n)]

    def measure(config, params):
        if str(params["i"]) == os.environ.get("FIXTOY_INTERRUPT_AT"):
            raise KeyboardInterrupt
        return [{"square": params["i"] ** 2}]

    def report(table, meta, out_dir):
        return Report(TITLE, QUESTION, [Para(f"{len(table)} rows")], {"rows": len(table)})
''')


@pytest.fixture
def toy(tmp_path, monkeypatch):
    (tmp_path / "fix_toy_mod.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(runner.STUDIES, "fixtoy", "fix_toy_mod")
    return tmp_path / "out"


def _snapshot(directory):
    """Every file of a study's folder and its bytes."""
    return {f.name: f.read_bytes() for f in sorted(directory.iterdir())}


def _runs(out):
    return json.loads((out / "fixtoy" / "meta.json").read_text())["runs"]


def _unused_address() -> str:
    with socket.socket() as s:  # a port nothing listens on: a scheduler that does not answer
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def test_a_scheduler_that_does_not_answer_touches_no_folder(toy, tmp_path, monkeypatch):
    runner.run_study("fixtoy", out=toy, progress=False)
    before = _snapshot(toy / "fixtoy")
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT_S", 1)
    address = _unused_address()
    with pytest.raises(StudyError, match="no Dask scheduler answered"):  # another configuration (quick), no cluster
        runner.run_study("fixtoy", out=toy, quick=True, progress=False, scheduler=address)
    assert _snapshot(toy / "fixtoy") == before  # nothing moved aside, meta.json and the report unchanged
    with pytest.raises(StudyError, match="no Dask scheduler answered"):
        runner.run_all(quick=True, out=tmp_path / "new", studies=["fixtoy"], progress=False, scheduler=address)
    assert not (tmp_path / "new").exists()
    again = runner.run_study("fixtoy", out=toy, progress=False)  # the original configuration still resumes
    assert (again.measured, again.resumed) == (0, 6)


def test_a_missing_dask_touches_no_folder(toy, monkeypatch):
    runner.run_study("fixtoy", out=toy, progress=False)
    before = _snapshot(toy / "fixtoy")
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` now fails: not installed
    with pytest.raises(StudyError, match="distributed scheduler, which is not installed"):
        runner.run_study("fixtoy", out=toy, quick=True, progress=False, scheduler="local")
    assert _snapshot(toy / "fixtoy") == before


def test_an_interrupt_before_the_first_new_cell_keeps_the_stored_results(toy, monkeypatch):
    runner.run_study("fixtoy", out=toy, progress=False)
    before = _snapshot(toy / "fixtoy")
    monkeypatch.setenv("FIXTOY_INTERRUPT_AT", "0")
    with pytest.raises(KeyboardInterrupt):
        runner.run_study("fixtoy", out=toy, quick=True, progress=False)
    assert _snapshot(toy / "fixtoy") == before
    monkeypatch.delenv("FIXTOY_INTERRUPT_AT")
    quick = runner.run_study("fixtoy", out=toy, quick=True, progress=False)  # a new cell: now the old go aside
    assert quick.measured == 3
    h = json.loads(before["meta.json"])["config_hash"]
    assert (toy / "fixtoy" / f"results.{h}.jsonl").read_bytes() == before[RESULTS]


def test_the_history_counts_the_cells_each_run_stored(toy, monkeypatch):
    monkeypatch.setenv("FIXTOY_INTERRUPT_AT", "3")
    with pytest.raises(KeyboardInterrupt):
        runner.run_study("fixtoy", out=toy, progress=False)  # cells 0, 1, 2 stored
    assert [r["cells"] for r in _runs(toy)] == [3]
    monkeypatch.setenv("FIXTOY_INTERRUPT_AT", "3")
    with pytest.raises(KeyboardInterrupt):
        runner.run_study("fixtoy", out=toy, progress=False)  # interrupted at once: stores nothing, not a run
    monkeypatch.setenv("FIXTOY_INTERRUPT_AT", "5")
    with pytest.raises(KeyboardInterrupt):
        runner.run_study("fixtoy", out=toy, progress=False)  # cells 3, 4
    monkeypatch.delenv("FIXTOY_INTERRUPT_AT")
    last = runner.run_study("fixtoy", out=toy, progress=False)  # cell 5
    assert [r["cells"] for r in _runs(toy)] == [3, 2, 1] and last.measured == 1
    assert len((toy / "fixtoy" / RESULTS).read_text().splitlines()) == 6
    assert "| run 3 |" in (toy / "fixtoy" / "report.md").read_text()


def test_a_rerun_that_measures_nothing_changes_no_provenance(toy, monkeypatch):
    monkeypatch.setattr(metadata, "git_commit", lambda: "aaaa")
    runner.run_study("fixtoy", out=toy, progress=False)
    meta = (toy / "fixtoy" / "meta.json").read_bytes()
    monkeypatch.setattr(metadata, "git_commit", lambda: "bbbb")
    again = runner.run_study("fixtoy", out=toy, progress=False)
    assert again.measured == 0
    assert (toy / "fixtoy" / "meta.json").read_bytes() == meta  # no run added, commit and libraries kept
    report = (toy / "fixtoy" / "report.md").read_text()
    assert "| git commit | aaaa |" in report and "bbbb" not in report and "**Warning:**" not in report


def test_runs_that_stored_nothing_are_no_provenance_in_the_report(toy):
    """meta.json of older versions recorded a rerun that measured nothing: the report ignores it."""
    runner.run_study("fixtoy", out=toy, progress=False)
    path = toy / "fixtoy" / "meta.json"
    meta = json.loads(path.read_text())
    meta["runs"][0]["git_commit"] = "aaaa"
    meta["runs"].append({**meta["runs"][0], "git_commit": "bbbb", "cells": 0})
    meta["git_commit"] = "bbbb"
    path.write_text(json.dumps(meta))
    rebuild(toy)
    report = (toy / "fixtoy" / "report.md").read_text()
    assert "**Warning:**" not in report and "| run 2 |" not in report
    assert "| git commit | aaaa |" in report
    assert "run_commits" not in json.loads((toy / "fixtoy" / "findings.json").read_text())


def test_a_changed_configuration_interrupted_leaves_no_report_of_moved_results(toy, monkeypatch):
    """The old results go aside with everything made from them (table, report, findings, index section, figures):
    before, a run of a new configuration interrupted before its report left the old report and CSV describing
    results no longer in results.jsonl."""
    runner.run_study("fixtoy", out=toy, progress=False)  # 6 cells, with their report
    folder = toy / "fixtoy"
    assert "6 rows" in (toy / "index.html").read_text()
    (folder / "toy_figure.png").write_bytes(b"a figure of the 6 cells")  # as a study's report would draw one
    before = _snapshot(folder)
    h = json.loads(before["meta.json"])["config_hash"]
    monkeypatch.setenv("FIXTOY_INTERRUPT_AT", "1")
    with pytest.raises(KeyboardInterrupt):
        runner.run_study("fixtoy", out=toy, quick=True, progress=False)  # cell 0 stored, then Ctrl-C
    after = _snapshot(folder)
    for name in ("results.csv", "report.md", "findings.json", "section.html", "toy_figure.png", "meta.json"):
        stem, suffix = name.rsplit(".", 1)
        assert after[f"{stem}.{h}.{suffix}"] == before[name], name  # kept, beside the results they describe
    assert after[f"results.{h}.jsonl"] == before[RESULTS]
    assert not {"results.csv", "report.md", "findings.json", "section.html", "toy_figure.png"} & set(after)
    assert len(after[RESULTS].splitlines()) == 1  # the new configuration's one cell
    assert "6 rows" not in (toy / "index.html").read_text()  # the index no longer shows the moved section
    monkeypatch.delenv("FIXTOY_INTERRUPT_AT")
    runner.run_study("fixtoy", out=toy, quick=True, progress=False)  # resumes, and writes its own report
    assert "3 rows" in (folder / "report.md").read_text()


def test_a_file_where_the_study_folder_goes_is_named_with_the_right_fix(toy):
    toy.mkdir(parents=True)
    (toy / "fixtoy").write_text("keep")
    with pytest.raises(StudyError, match=r"fixtoy is a file, not a folder; move or remove the file .*fixtoy, or give "
                                         r"--out another folder"):
        runner.run_study("fixtoy", out=toy, progress=False)
    assert (toy / "fixtoy").read_text() == "keep"
    (toy.parent / "plain").write_text("keep")
    with pytest.raises(StudyError, match=r"plain is a file, not a folder; give --out a folder"):
        runner.run_study("fixtoy", out=toy.parent / "plain", progress=False)
