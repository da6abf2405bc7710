"""The command line prints a warning as one line naming the command, without a source location: Python's own
format named '<frozen runpy>:88', a place no user of the command can look at."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPORTS = Path(__file__).resolve().parents[2] / "reports"


def test_a_store_warning_reads_as_one_line_of_the_command(tmp_path):
    shutil.copytree(REPORTS / "speed", tmp_path / "speed")
    with open(tmp_path / "speed" / "results.jsonl", "ab") as f:
        f.write(b'{"cell": "edited", "rows": "abc"}\n')
    env = dict(os.environ, PYTHONPATH=str(REPORTS.parent), MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, "-m", "diffsuite", "report", "--out", str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "not a stored cell" in line]
    assert warned and all(line.startswith("diffsuite report: warning: ") for line in warned), done.stderr
    assert "runpy" not in done.stderr and "StoreWarning" not in done.stderr
