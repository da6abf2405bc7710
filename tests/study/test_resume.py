"""Resume: a real study process killed with SIGKILL part-way; the rerun measures only the missing cells."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
STUDY = "rounding_error"
N_CELLS = 30  # its quick grid: 2 problems x (6 schemes x 2 dtypes + reverse x 2 + symbolic x 1)

pytestmark = pytest.mark.slow


def _complete_lines(path: Path) -> list[bytes]:
    if not path.exists():
        return []
    data = path.read_bytes()
    return data.split(b"\n")[:-1]  # whatever follows the last newline is a torn line


def _run(out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "studies" / f"{STUDY}.py"), "--quick", "--out", str(out),
                             "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_study_resumes_without_recomputing_finished_cells(tmp_path, sig):
    results = tmp_path / STUDY / "results.jsonl"
    proc = _run(tmp_path)
    deadline = time.monotonic() + 240
    while len(_complete_lines(results)) < 5:
        assert proc.poll() is None, "the study ended before it could be interrupted:\n" + proc.stderr.read()
        assert time.monotonic() < deadline, "no cells finished in time"
        time.sleep(0.01)
    os.kill(proc.pid, sig)
    proc.communicate(timeout=60)
    assert proc.returncode in (-sig, 130) and proc.returncode != 0
    kept = _complete_lines(results)
    assert 5 <= len(kept) < N_CELLS, "the kill came too late to test anything"
    finished = [json.loads(line)["cell"] for line in kept]  # every complete line parses

    again = _run(tmp_path)
    _, err = again.communicate(timeout=240)
    assert again.returncode == 0, err
    assert f"resuming, {len(kept)} of {N_CELLS} cells already measured" in err

    data = results.read_bytes()
    assert data.endswith(b"\n")
    lines = data.split(b"\n")[:-1]
    assert lines[:len(kept)] == kept  # finished cells untouched
    cells = [json.loads(line)["cell"] for line in lines]
    assert len(cells) == len(set(cells)) == N_CELLS  # each cell exactly once: none measured twice
    assert set(finished) <= set(cells)
    table = pd.read_csv(tmp_path / STUDY / "results.csv")
    assert set(table["cell"]) == set(cells)
    assert (tmp_path / STUDY / "report.md").exists()
