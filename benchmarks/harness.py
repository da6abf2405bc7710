"""What the benchmarks share: a contender's worker process, spoken to in JSON lines, and cachegrind's count of the
instructions a command executes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Callable


class JsonWorker:
    """A worker process: ``ask(**cmd)`` writes ``cmd`` as a JSON line to its stdin and reads one JSON line back
    (with no ``cmd``, only reads: the worker's first message). ``quit``: a message to send before closing, if the
    worker's loop waits for one (otherwise closing its stdin ends it)."""

    def __init__(self, argv: list[str], name: str, env: dict | None = None, quit: dict | None = None):
        self.name, self.quit = name, quit
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})

    def ask(self, **cmd) -> dict:
        if cmd:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the {self.name} worker exited (status {self.proc.wait()}); its error is above")
        return json.loads(line)

    def close(self):
        if self.proc.poll() is None:
            try:
                if self.quit is not None:
                    self.proc.stdin.write(json.dumps(self.quit) + "\n")
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        self.proc.wait()


# One BLAS and OpenMP thread: idle pool threads spin under valgrind and would be counted
COUNT_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def instruction_count(argv: list, what: str) -> int | None:
    """Instructions cachegrind counts for ``python argv`` (one BLAS thread, the whole process: start-up and imports
    included); None if the command printed "unavailable" (not installed)."""
    proc = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                           sys.executable] + argv, capture_output=True, text=True, env={**os.environ, **COUNT_ENV})
    if "unavailable" in proc.stdout:
        return None
    refs = [line for line in proc.stderr.splitlines() if "I" in line and "refs" in line]
    if proc.returncode or not refs:
        raise SystemExit(f"valgrind on {what} failed (status {proc.returncode}):\n{proc.stderr[-2000:]}")
    return int(refs[-1].split()[-1].replace(",", ""))


def instructions_per_call(argv_for: Callable[[int], list], what: str, calls: tuple = (10, 30)) -> float | None:
    """Instructions per call by cachegrind (what the CPU executes, whatever the machine's load): the command
    ``argv_for(n)``, which makes ``n`` calls, run for both counts in ``calls``; the difference over the difference in
    calls, so that start-up and imports cancel. None if the command printed "unavailable" (not installed)."""
    counts = []
    for n in calls:
        count = instruction_count(argv_for(n), what)
        if count is None:
            return None
        counts.append(count)
    return (counts[1] - counts[0]) / (calls[1] - calls[0])
