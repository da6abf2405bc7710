"""The diffsuite command: --help, --version, demo, bad input."""
import doctest
import subprocess
import sys

import pytest

import diffsuite
from diffsuite.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "diffsuite", *args], capture_output=True, text=True, timeout=300)


def test_version_and_help():
    # ``python -m diffsuite`` (diffsuite/__main__.py) is the same command as the ``diffsuite`` script
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"diffsuite {diffsuite.__version__}"
    out = run_cli("--help")
    assert out.returncode == 0 and "usage: diffsuite" in out.stdout
    for command in ("demo", "check", "list", "run", "report"):
        assert f"    {command} " in out.stdout, command


def test_unknown_command_lists_the_choices(capsys):
    with pytest.raises(SystemExit) as e:
        main(["frobnicate"])
    assert e.value.code == 2
    assert "invalid choice: 'frobnicate' (choose from" in capsys.readouterr().err


def test_doctests_of_pure_modules():
    import diffsuite.nn.mlp
    failures, tried = doctest.testmod(diffsuite.nn.mlp)
    assert tried > 0 and failures == 0


def test_help_imports_neither_pandas_nor_matplotlib():
    """`diffsuite --help` builds every subcommand's parser: the study machinery (pandas, matplotlib) loads only
    when a command runs, so the first thing a new user types answers at once."""
    code = ("import sys; from diffsuite.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('pandas', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_the_cli_device_choices_are_the_runners():
    from diffsuite.cli.options import DEVICES
    from diffsuite.study.runner import DEVICES as RUNNER_DEVICES
    assert DEVICES == RUNNER_DEVICES


def test_ctrl_c_says_results_are_kept_only_where_results_are_stored(capsys, monkeypatch):
    from argparse import Namespace

    from diffsuite.cli import interrupted
    assert "measured so far are stored" in interrupted(Namespace(command="run"))
    assert "measured so far are stored" in interrupted(Namespace(command="demo", no_studies=False))
    for command in ("check", "train", "list"):
        assert interrupted(Namespace(command=command)) == "interrupted"
    assert interrupted(Namespace(command="demo", no_studies=True)) == "interrupted"
    assert "unchanged" in interrupted(Namespace(command="report"))

    import diffsuite.cli.demo as demo

    def ctrl_c(**kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(demo, "run_demo", ctrl_c)
    assert main(["demo", "--no-studies"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "diffsuite demo: interrupted" and "kept" not in err


def test_demo_jobs_is_a_usage_error_like_runs(capsys):
    for command in ("demo", "run"):
        with pytest.raises(SystemExit) as e:
            main([command, "--jobs", "0"])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert f"diffsuite {command}: error: argument --jobs: --jobs needs a whole number >= 1" in err, err
