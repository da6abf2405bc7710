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
