"""meta.json: library versions (the reference's python-flint, training's scikit-learn, the executor's dask), the
command line, and a history of the runs that measured into a folder, with a warning when they span commits."""
import json
import textwrap

import pytest

from diffsuite.study import metadata, runner
from diffsuite.study.report import Para

TOY = textwrap.dedent('''
    """A toy study: one cell raises while METATOY_FAIL is set, so a later run resumes."""
    from dataclasses import dataclass
    import os
    from diffsuite.study.report import Para, Report
    from diffsuite.study.runner import cell

    TITLE = "Toy"
    QUESTION = "Which runs measured these rows?"

    @dataclass(frozen=True)
    class Config:
        n: int = 3
        def quick(self):
            return self

    def cells(config):
        return [cell(i=i) for i in range(config.n)]

    def measure(config, params):
        if params["i"] == 1 and os.environ.get("METATOY_FAIL"):
            raise RuntimeError("fails while METATOY_FAIL is set")
        return [{"square": params["i"] ** 2}]

    def report(table, meta, out_dir):
        return Report(TITLE, QUESTION, [Para(f"{len(table)} rows")], {"rows": len(table)})
''')


@pytest.fixture
def toy(tmp_path, monkeypatch):
    (tmp_path / "meta_toy_mod.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(runner.STUDIES, "metatoy", "meta_toy_mod")
    return tmp_path / "out"


def test_meta_records_the_reference_and_executor_libraries_and_the_command(toy, monkeypatch):
    # the command line as a shell takes it: the entry point by name (not this machine's path), arguments quoted
    monkeypatch.setattr("sys.argv", ["/opt/venv/lib/site-packages/diffsuite/__main__.py", "run", "metatoy", "--out",
                                     "my results"])
    runner.run_study("metatoy", out=toy, progress=False)
    meta = json.loads((toy / "metatoy" / "meta.json").read_text())
    for lib in ("python-flint", "scikit-learn", "dask", "distributed"):
        assert lib in meta["libraries"]
    assert meta["libraries"]["python-flint"] == metadata._version("python-flint")
    assert meta["command"] == "python -m diffsuite run metatoy --out 'my results'"  # by hand
    assert meta["runs"][0]["command"] == meta["command"]
    monkeypatch.setattr("sys.argv", ["/home/someone/.local/bin/diffsuite", "run", "--quick"])
    assert metadata.command_line() == "diffsuite run --quick"
    monkeypatch.setattr("sys.argv", ["my script.py", "--x=1;rm"])  # anything else: as given, quoted
    assert metadata.command_line() == "'my script.py' '--x=1;rm'"
    assert len(meta["runs"]) == 1 and meta["runs"][0]["executor"] == {"kind": "in-process"}
    assert meta["runs"][0]["cells"] == 3 and meta["runs"][0]["git_commit"] == meta["git_commit"]


def test_a_resume_keeps_the_history_and_the_report_warns_across_commits(toy, monkeypatch):
    monkeypatch.setattr(metadata, "git_commit", lambda: "aaaa")
    monkeypatch.setenv("METATOY_FAIL", "1")
    runner.run_study("metatoy", out=toy, progress=False)
    monkeypatch.delenv("METATOY_FAIL")
    monkeypatch.setattr(metadata, "git_commit", lambda: "bbbb")
    runner.run_study("metatoy", out=toy, progress=False)  # resumes: only the failed cell
    meta = json.loads((toy / "metatoy" / "meta.json").read_text())
    assert [r["git_commit"] for r in meta["runs"]] == ["aaaa", "bbbb"]
    assert [r["cells"] for r in meta["runs"]] == [3, 1]
    assert all(r["executor"] == {"kind": "in-process"} and r["started"] for r in meta["runs"])
    report = (toy / "metatoy" / "report.md").read_text()
    assert "**Warning:**" in report and "`aaaa`, `bbbb`" in report
    assert json.loads((toy / "metatoy" / "findings.json").read_text())["run_commits"] == ["aaaa", "bbbb"]


def test_a_resume_from_the_same_commit_gives_no_warning(toy, monkeypatch):
    """Two runs (a resume), one commit: the history has both runs, and the report no mixed-commits warning."""
    monkeypatch.setattr(metadata, "git_commit", lambda: "cccc")
    monkeypatch.setenv("METATOY_FAIL", "1")
    runner.run_study("metatoy", out=toy, progress=False)
    monkeypatch.delenv("METATOY_FAIL")
    runner.run_study("metatoy", out=toy, progress=False)
    meta = json.loads((toy / "metatoy" / "meta.json").read_text())
    assert [(r["git_commit"], r["cells"]) for r in meta["runs"]] == [("cccc", 3), ("cccc", 1)]
    report = (toy / "metatoy" / "report.md").read_text()
    assert "**Warning:**" not in report and "different commits" not in report
    assert "run_commits" not in json.loads((toy / "metatoy" / "findings.json").read_text())


def test_one_commit_gives_no_warning_and_an_old_meta_becomes_one_run():
    assert metadata.previous_runs({"git_commit": "cccc", "executor": {"kind": "dask"}})[0]["git_commit"] == "cccc"
    assert metadata.commits_of({"runs": [{"git_commit": "a"}, {"git_commit": "a"}]}) == ["a"]
    assert metadata.previous_runs(None) == []
