"""Resume: a real study process killed (SIGKILL, SIGINT) part-way; the rerun measures only the missing cells.

The study is a toy with 30 cells of about 0.1 s each, run through the same script entry point as
``studies/<name>.py`` (``diffsuite.cli.run.script_main``): what is tested is the runner and the store, so the
cells need not be real measurements (a real quick study made this test take minutes)."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

N_CELLS = 30
HANG = 240  # seconds: a ceiling only a hung process reaches

TOY = textwrap.dedent('''
    """Thirty cells of a tenth of a second each."""
    import time
    from dataclasses import dataclass
    from diffsuite.study.report import Para, Report, Table
    from diffsuite.study.runner import cell

    TITLE = "Slow toy"
    QUESTION = "Does a killed run resume?"

    @dataclass(frozen=True)
    class Config:
        n: int = 30
        def quick(self):
            return self

    def cells(config):
        return [cell(i=i) for i in range(config.n)]

    def measure(config, params):
        time.sleep(0.1)  # stands in for a measurement: long enough for the kill to land part-way
        return [{"square": params["i"] ** 2}]

    def report(table, meta, out_dir):
        blocks = [Para(f"{len(table)} rows"), Table(table[["i", "square"]])]
        return Report(TITLE, QUESTION, blocks, {"rows": len(table)})
''')

RUN = textwrap.dedent('''
    import sys
    sys.path.insert(0, sys.argv[1])
    from diffsuite.study.studies import STUDIES
    STUDIES["slowtoy"] = "slow_toy_study"
    from diffsuite.cli.run import script_main
    sys.exit(script_main("slowtoy", sys.argv[2:]))
''')


def _complete_lines(path: Path) -> list[bytes]:
    if not path.exists():
        return []
    data = path.read_bytes()
    return data.split(b"\n")[:-1]  # whatever follows the last newline is a torn line


def _run(tmp_path: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", RUN, str(tmp_path), "--quick", "--out", str(out), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_study_resumes_without_recomputing_finished_cells(tmp_path, sig):
    (tmp_path / "slow_toy_study.py").write_text(TOY)
    out = tmp_path / "out"
    results = out / "slowtoy" / "results.jsonl"
    proc = _run(tmp_path, out)
    deadline = time.monotonic() + HANG
    while len(_complete_lines(results)) < 5:
        assert proc.poll() is None, "the study ended before it could be interrupted:\n" + proc.stderr.read()
        assert time.monotonic() < deadline, "no cells finished: the study hangs"
        time.sleep(0.01)
    os.kill(proc.pid, sig)
    proc.communicate(timeout=HANG)
    assert proc.returncode in (-sig, 130) and proc.returncode != 0
    kept = _complete_lines(results)
    assert 5 <= len(kept) < N_CELLS, "the kill came too late to test anything"
    finished = [json.loads(line)["cell"] for line in kept]  # every complete line parses

    again = _run(tmp_path, out)
    _, err = again.communicate(timeout=HANG)
    assert again.returncode == 0, err
    assert f"resuming, {len(kept)} of {N_CELLS} cells already measured" in err

    data = results.read_bytes()
    assert data.endswith(b"\n")
    lines = data.split(b"\n")[:-1]
    assert lines[:len(kept)] == kept  # finished cells untouched
    cells = [json.loads(line)["cell"] for line in lines]
    assert len(cells) == len(set(cells)) == N_CELLS  # each cell exactly once: none measured twice
    assert set(finished) <= set(cells)
    table = pd.read_csv(out / "slowtoy" / "results.csv")
    assert set(table["cell"]) == set(cells) and list(table["square"]) == [int(c.split("=")[1]) ** 2 for c in cells]
    assert (out / "slowtoy" / "report.md").exists()
    assert not list((out / "slowtoy").glob("*.tmp")), "a temporary file was left behind"
