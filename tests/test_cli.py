"""The diffsuite command: --help, --version, demo, bad input."""
import doctest
import subprocess
import sys

import pytest

import diffsuite
from diffsuite.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "diffsuite.cli", *args], capture_output=True, text=True, timeout=300)


def test_version_and_help():
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"diffsuite {diffsuite.__version__}"
    out = run_cli("--help")
    assert out.returncode == 0 and "demo" in out.stdout and "usage: diffsuite" in out.stdout


def test_unknown_command_lists_the_choices(capsys):
    with pytest.raises(SystemExit) as e:
        main(["frobnicate"])
    assert e.value.code == 2
    assert "invalid choice: 'frobnicate' (choose from" in capsys.readouterr().err


def test_doctests_of_pure_modules():
    import diffsuite.nn.mlp
    failures, tried = doctest.testmod(diffsuite.nn.mlp)
    assert tried > 0 and failures == 0
