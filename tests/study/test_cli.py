"""`diffsuite list | run | report`: the choices are listed whenever a name or an option is wrong."""
import json

import pytest

from diffsuite.cli import main

STUDIES = ("expression_growth", "rounding_error", "accuracy", "speed", "training", "second_order", "agreement")


def test_list_names_every_study_with_its_question(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == list(STUDIES)
    assert all(line.rstrip().endswith("?") for line in out)


def test_unknown_study_lists_the_studies(capsys, tmp_path):
    assert main(["run", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown study 'nope'" in err and ", ".join(STUDIES) in err
    assert not any(tmp_path.iterdir())  # nothing was measured or written


def test_unknown_option_lists_the_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "--fast"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown option(s) --fast" in err
    for opt in ("--quick", "--jobs", "--device", "--out"):
        assert opt in err


@pytest.mark.parametrize("args, words", [(["run", "--device", "tpu"], ["cpu", "cuda", "all"]),
                                         (["run", "--jobs", "0"], ["--jobs", ">= 1"])])
def test_bad_option_values_say_what_is_allowed(capsys, args, words):
    with pytest.raises(SystemExit):
        main(args)
    err = capsys.readouterr().err
    assert all(w in err for w in words)


def test_report_without_results_says_what_to_do(capsys, tmp_path):
    assert main(["report", "--out", str(tmp_path)]) == 2
    assert "diffsuite run" in capsys.readouterr().err


@pytest.mark.parametrize("sub", [None, "nonexist", "nested/nonexist"])
def test_report_on_a_missing_or_empty_folder_writes_nothing(capsys, tmp_path, sub):
    out = tmp_path if sub is None else tmp_path / sub
    assert main(["report", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"no stored results under {out}" in err and "run `diffsuite run` first" in err
    assert "Traceback" not in err
    assert list(tmp_path.rglob("*")) == []  # no index.html, no folder created


# ----- the environment's errors: one line (what, where, what to do), exit 2, never a traceback -----
TINY = '''
from dataclasses import dataclass
from diffsuite.study.report import Para, Report
from diffsuite.study.runner import cell
TITLE, QUESTION = "Tiny", "Does the CLI report environment errors in one line?"

@dataclass(frozen=True)
class Config:
    n: int = 2
    def quick(self):
        return self

def cells(config):
    return [cell(i=i) for i in range(config.n)]

def measure(config, params):
    return [{"x": params["i"]}]

def report(table, meta, out_dir):
    return Report(TITLE, QUESTION, [Para(f"{len(table)} rows")])
'''


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    from diffsuite.study import runner
    (tmp_path / "tiny_cli_study.py").write_text(TINY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(runner.STUDIES, "tiny", "tiny_cli_study")
    return tmp_path


def _one_line_error(capsys, argv, *words):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


def test_a_regular_file_as_out_is_one_line(capsys, tiny):
    (tiny / "afile").write_text("")
    _one_line_error(capsys, ["run", "tiny", "--out", str(tiny / "afile")], "is a file, not a folder", "--out")
    _one_line_error(capsys, ["run", "tiny", "--out", str(tiny / "afile" / "sub")], "is a file, not a folder")


def test_an_unwritable_out_is_one_line(capsys, tiny, monkeypatch):
    from pathlib import Path

    def refuse(self, *a, **kw):  # what a read-only folder does (root would be allowed by chmod alone)
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    _one_line_error(capsys, ["run", "tiny", "--out", str(tiny / "out")], "cannot create the results folder",
                    "Permission denied", "give --out a folder you can write to")


def test_report_into_a_read_only_folder_is_one_line(capsys, tiny, monkeypatch):
    assert main(["run", "tiny", "--out", str(tiny / "out"), "--no-progress"]) == 0
    capsys.readouterr()
    import os

    def read_only(src, dst):
        raise OSError(30, "Read-only file system", str(dst))

    monkeypatch.setattr(os, "replace", read_only)
    _one_line_error(capsys, ["report", "--out", str(tiny / "out")], "cannot write", "Read-only file system",
                    "the file system is read-only")
    assert not list((tiny / "out" / "tiny").glob("*.tmp"))  # the failed write left nothing behind


def test_a_second_concurrent_writer_is_one_line(capsys, tiny):
    from diffsuite.study.store import ResultStore
    with ResultStore(tiny / "out" / "tiny"):  # another process is writing this study
        _one_line_error(capsys, ["run", "tiny", "--out", str(tiny / "out")], "another diffsuite process is writing",
                        "another --out folder")


def test_malformed_results_and_a_crafted_config_hash_are_handled(capsys, tiny):
    out = tiny / "out"
    assert main(["run", "tiny", "--out", str(out), "--no-progress"]) == 0
    with open(out / "tiny" / "results.jsonl", "a") as f:
        f.write('{"cell": "i=9", "rows": "abc"}\n')
    with pytest.warns(UserWarning, match="line 3 is not a stored cell"):
        assert main(["report", "--out", str(out)]) == 0  # the report is rebuilt from the good lines
    meta = json.loads((out / "tiny" / "meta.json").read_text())
    meta["config_hash"] = "../../../escaped"
    (out / "tiny" / "meta.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning):
        assert main(["run", "tiny", "--out", str(out), "--no-progress"]) == 0
    assert (out / "tiny" / "results.unknown-config.jsonl").exists()  # the old results kept, inside the folder
    assert not (tiny / "escaped.jsonl").exists() and not list(tiny.parent.glob("*escaped*"))
