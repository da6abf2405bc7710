"""The status vocabulary, the same in every study: a missing package is "unavailable" (not run: needs X) and
measured again once it is installed; a step refused by design is "refused"; both are named in the run summary
and the report, never counted as errors."""
import json
import sys
import textwrap

import pytest

from diffsuite.cli import main
from diffsuite.errors import BudgetExceeded, MissingDependency, RefusedByDesign
from diffsuite.study import runner
from diffsuite.study.status import describe, failure_row, needs_rerun

PACKAGE = "diffsuite_test_missing_pkg"  # made importable by the test, half-way

TOY = textwrap.dedent(f'''
    """A study with a method that needs an optional package, and steps refused by design."""
    from dataclasses import dataclass
    from diffsuite.errors import RefusedByDesign
    from diffsuite.study.report import Para, Report, Table
    from diffsuite.study.runner import cell
    from diffsuite.study.status import failure_row

    TITLE = "Status toy"
    QUESTION = "Are missing packages and refusals named?"

    @dataclass(frozen=True)
    class Config:
        def quick(self):
            return self

    def cells(config):
        return [cell(method=m) for m in ("plain", "optional")]

    def measure(config, params):
        if params["method"] == "optional":
            import {PACKAGE}  # raises ModuleNotFoundError until the test creates it
            return [{{"value": {PACKAGE}.VALUE}}]
        rows = [{{"step": 1.0, "value": 1.0}}]
        try:
            raise RefusedByDesign("theta + h == theta in float32")
        except RefusedByDesign as e:  # a sweep's refused step: a row of its own status, the sweep goes on
            rows.append({{"step": 1e-30, **failure_row(e)}})
        return rows

    def report(table, meta, out_dir):
        methods = sorted(set(table["method"]))
        return Report(TITLE, QUESTION, [Para("methods: " + ", ".join(methods)), Table(table[["method", "status"]])],
                      {{"methods": methods}})
''')


@pytest.fixture
def toy(tmp_path, monkeypatch):
    (tmp_path / "status_toy_mod.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(runner.STUDIES, "statustoy", "status_toy_mod")
    monkeypatch.delitem(sys.modules, PACKAGE, raising=False)
    return tmp_path


def test_failure_rows_say_what_happened():
    missing = failure_row(MissingDependency("backend 'torch'", "torch"))
    assert missing == {"status": "unavailable", "needs": "torch",
                       "message": "not run: needs torch, `pip install 'diffsuite[torch]'`"}
    try:  # an ImportError raised from a ModuleNotFoundError names the package through its cause
        try:
            import diffsuite_surely_absent_pkg  # noqa: F401
        except ImportError as e:
            raise ImportError("wrapped") from e
    except ImportError as e:
        assert failure_row(e)["needs"] == "diffsuite_surely_absent_pkg"
    assert failure_row(RefusedByDesign("too small"))["status"] == "refused"
    assert failure_row(BudgetExceeded("build", "1 s"))["status"] == "budget"
    assert failure_row(ZeroDivisionError("x"))["status"] == "error"
    from diffsuite.differentiators.finite_diff import StepUnderflowError
    assert failure_row(StepUnderflowError("theta + h == theta"))["status"] == "refused"


def test_a_missing_package_is_named_then_measured_once_installed(toy, capsys):
    out = toy / "out"
    assert main(["run", "statustoy", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    # the summary: no "error", the refusal and the missing package named, with the command that installs it
    assert f"1 not run: needs {PACKAGE}, `pip install {PACKAGE}`" in printed
    assert "1 refused (by design" in printed and "error" not in printed
    report = (out / "statustoy" / "report.md").read_text()
    assert f"Not run on this machine: `optional` (1 row): needs {PACKAGE}, `pip install {PACKAGE}`" in report
    assert "methods: plain" in report  # the study's own report never saw the row that was not run
    assert json.loads((out / "statustoy" / "findings.json").read_text())["not_run"] == [PACKAGE]

    assert main(["run", "statustoy", "--out", str(out), "--no-progress"]) == 0  # still missing: not tried again
    assert "resuming, 2 of 2 cells" in capsys.readouterr().err
    (toy / f"{PACKAGE}.py").write_text("VALUE = 42.0\n")  # now "installed"
    assert main(["run", "statustoy", "--out", str(out), "--no-progress"]) == 0
    assert "not run" not in capsys.readouterr().out
    rows = [r for line in (out / "statustoy" / "results.jsonl").read_text().splitlines()
            for r in json.loads(line)["rows"]]
    assert [r.get("value") for r in rows if r["method"] == "optional"] == [None, 42.0]  # appended, newest wins
    assert "Not run on this machine" not in (out / "statustoy" / "report.md").read_text()


def test_needs_rerun_only_when_the_package_is_there_now():
    assert needs_rerun([{"status": "unavailable", "needs": "json"}])  # importable: measure again
    assert not needs_rerun([{"status": "unavailable", "needs": "diffsuite_surely_absent_pkg"}])
    assert needs_rerun([{"status": "error", "cell_failed": True}])
    assert not needs_rerun([{"status": "refused"}, {"status": "ok"}, {"status": "budget"}])


def test_the_summary_counts_in_words():
    rows = [{"status": "unavailable", "needs": "torch"}] * 3
    text = describe({"ok": 5, "refused": 2, "unavailable": 3, "error": 1}, rows)
    assert text == ("5 ok, 3 not run: needs torch, `pip install 'diffsuite[torch]'`, "
                    "2 refused (by design: a documented limit of the method), 1 error")


def test_accuracy_without_torch_says_not_run(monkeypatch):
    """The accuracy study with PyTorch hidden (as on a machine without it): its torch rows are "unavailable",
    with the install command, and every other method is measured."""
    from diffsuite.study.studies import accuracy
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ModuleNotFoundError
    # and the backend module is imported afresh (another test in this process may have imported it with torch)
    monkeypatch.delitem(sys.modules, "diffsuite.differentiators.reverse.backends.torch_backend", raising=False)
    config = accuracy.Config(schemes=("central",), dtypes=("float64",), symbolic=False).quick()
    rows = accuracy.measure(config, accuracy.cells(config)[0].params)
    by_method = {r["method"]: r for r in rows}
    assert by_method["reverse[torch-cpu]"]["status"] == "unavailable"
    assert by_method["reverse[torch-cpu]"]["message"] == "not run: needs torch, `pip install 'diffsuite[torch]'`"
    assert by_method["reverse[numpy]"].get("status", "ok") == "ok" and by_method["reverse[numpy]"]["rel_error"] < 1e-12


def test_agreement_without_torch_says_not_run(monkeypatch):
    """The agreement study, too: a method whose package is missing is "unavailable", not a crash."""
    from diffsuite.study.studies import agreement
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "diffsuite.differentiators.reverse.backends.torch_backend", raising=False)
    config = agreement.Config(methods=("reverse[numpy]", "reverse[torch-cpu]")).quick()
    rows = agreement.measure(config, agreement.cells(config)[0].params)
    by_method = {r["method"]: r for r in rows}
    assert by_method["reverse[torch-cpu]"]["status"] == "unavailable", rows
    assert by_method["reverse[numpy]"].get("status", "ok") == "ok"
