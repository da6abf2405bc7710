"""`diffsuite list | run | report`: the choices are listed whenever a name or an option is wrong."""
import pytest

from diffsuite.cli import main

STUDIES = ("expression_growth", "rounding_error", "accuracy", "speed", "training", "second_order")


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
