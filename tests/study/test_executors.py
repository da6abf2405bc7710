"""The executors on a real Dask LocalCluster (2 worker processes) and the local process pool.

A toy study whose cells compute known numbers: Dask gives the same rows as the local pool; a worker
killed mid-cell costs no finished row (the cell is retried elsewhere); a cell that kills every worker
that tries it becomes one error row; a driver killed with SIGKILL resumes with no row lost or doubled;
the local pool's workers die with their driver. Time limits here are hang ceilings only.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from diffsuite.study import runner
from diffsuite.study.store import RESULTS

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[2]
HANG_S = 120  # a ceiling only a hang (or a bug) reaches

TOY = textwrap.dedent('''
    """A toy study for the executor tests: cell i gives rows with i*i and a seeded random number."""
    import os
    import signal
    import time
    from dataclasses import dataclass
    from pathlib import Path

    import numpy as np

    from diffsuite.study.report import Para, Report
    from diffsuite.study.runner import cell

    TITLE = "Toy"
    QUESTION = "Do the executors keep every row?"

    @dataclass(frozen=True)
    class Config:
        n: int = 8
        sleep_s: float = 0.0
        kill_once: int = -1      # this cell SIGKILLs its worker the first time it runs
        crash: int = -1          # this cell kills every worker that runs it
        marks: str = ""          # a folder: each cell writes its worker's pid there
        env: bool = False        # cells run in spawned workers with TOY_ENV=1
        log: str = ""            # a file: each cell appends "start i" and "end i" lines to it
        devices: tuple = ("cpu",)
        def quick(self):
            return self

    def worker_env(config):
        return {"TOY_ENV": "1"} if config.env else None

    def cells(config):
        return [cell(i=i) for i in range(config.n)]

    def measure(config, params):
        i = params["i"]
        if config.marks:
            Path(config.marks, f"{i}.{os.getpid()}").write_text(str(os.getpid()))
        if i == config.kill_once and not Path(config.marks, f"killed-{i}").exists():
            Path(config.marks, f"killed-{i}").write_text("")
            os.kill(os.getpid(), signal.SIGKILL)
        if i == config.crash:
            os._exit(3)
        if config.log:
            with open(config.log, "a") as f:
                f.write(f"start {i}\\n")
        time.sleep(config.sleep_s)
        if config.log:
            with open(config.log, "a") as f:
                f.write(f"end {i}\\n")
        r = float(np.random.default_rng(i).normal())
        return [{"square": i * i, "r": r, "env": os.environ.get("TOY_ENV", "")}, {"square": -i * i, "r": -r}]

    def report(table, meta, out_dir):
        return Report(TITLE, QUESTION, [Para(f"{len(table)} rows")], {"rows": len(table)})
''')

# columns that depend on where and when a cell ran, not on what it measured
WHERE_WHEN = ["cell_s", "worker_host", "worker_cpu", "worker_threads", "env"]


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy_study")
    (d / "dist_toy.py").write_text(TOY)
    return d


@pytest.fixture(scope="module")
def cluster(toy_dir):
    """A LocalCluster of 2 worker processes that can import the toy study; a cell may kill 2 workers."""
    import dask
    sys.path.insert(0, str(toy_dir))  # spawned workers start with the driver's sys.path
    try:
        with dask.config.set({"distributed.scheduler.allowed-failures": 1,  # a crashing cell: 2 workers killed per try
                              "distributed.scheduler.worker-saturation": 1.0}):  # as DaskExecutor's LocalCluster
            c = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    finally:
        sys.path.remove(str(toy_dir))
    yield c
    c.close()


@pytest.fixture
def toy(toy_dir, monkeypatch):
    monkeypatch.syspath_prepend(str(toy_dir))
    monkeypatch.setitem(runner.STUDIES, "toy", "dist_toy")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(toy_dir), str(ROOT)]))  # spawned local workers
    return toy_dir


def _config(tmp_path, **settings) -> Path:
    """A TOML configuration of the toy study."""
    path = tmp_path / "toy.toml"
    body = "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
    path.write_text(f'study = "toy"\n{body}')
    return path


def _cells(out: Path) -> list[str]:
    return [json.loads(line)["cell"] for line in (out / "toy" / RESULTS).read_text().splitlines()]


def _expected(n: int) -> pd.DataFrame:
    """The rows every executor must give, computed here, not by the study."""
    rows = []
    for i in range(n):
        r = float(np.random.default_rng(i).normal())
        rows += [{"cell": f"i={i}", "i": i, "square": i * i, "r": r}, {"cell": f"i={i}", "i": i, "square": -i * i, "r": -r}]
    return pd.DataFrame(rows)


def _measured(out: Path) -> pd.DataFrame:
    t = pd.read_csv(out / "toy" / "results.csv")
    return t.drop(columns=[c for c in WHERE_WHEN if c in t]).sort_values(["i", "square"], ascending=[True, False],
                                                                       ignore_index=True)


def test_dask_gives_the_local_pools_rows(toy, cluster, tmp_path):
    config = _config(tmp_path, n=8)
    runner.run_study("toy", out=tmp_path / "pool", jobs=2, config=config, progress=False)
    runner.run_study("toy", out=tmp_path / "dask", config=config, scheduler=cluster.scheduler_address, progress=False)
    pool, dask_rows = _measured(tmp_path / "pool"), _measured(tmp_path / "dask")
    pd.testing.assert_frame_equal(pool, dask_rows)
    pd.testing.assert_frame_equal(pool[["cell", "i", "square", "r"]], _expected(8), check_dtype=False)
    assert (pool["status"] == "ok").all()
    raw = pd.read_csv(tmp_path / "dask" / "toy" / "results.csv")
    assert raw["worker_host"].notna().all() and raw["worker_cpu"].notna().all()
    assert raw["worker_threads"].eq(1).all()  # Dask's nannies start workers with OMP_NUM_THREADS=1
    meta = json.loads((tmp_path / "dask" / "toy" / "meta.json").read_text())
    pool_meta = json.loads((tmp_path / "pool" / "toy" / "meta.json").read_text())
    assert meta["executor"]["kind"] == "dask" and meta["executor"]["workers"] == 2
    assert meta["config_hash"] == pool_meta["config_hash"]  # where cells ran is not part of the configuration


def test_a_timing_study_runs_one_cell_at_a_time_on_dask(toy, cluster, tmp_path, monkeypatch, capsys):
    import dist_toy
    monkeypatch.setattr(dist_toy, "SERIAL", True, raising=False)  # what speed declares
    log = tmp_path / "cells.log"
    config = _config(tmp_path, n=4, sleep_s=0.5, log=str(log))  # long enough for 2 workers to overlap if allowed
    runner.run_study("toy", out=tmp_path, config=config, scheduler=cluster.scheduler_address, progress=False)
    lines = log.read_text().split()
    events = list(zip(lines[0::2], lines[1::2]))
    assert len(events) == 8
    # one at a time: every start is followed by the end of the same cell, never by another start
    assert all(events[k][0] == "start" and events[k + 1] == ("end", events[k][1]) for k in range(0, 8, 2)), events
    assert "on Dask its cells run one at a time" in capsys.readouterr().err
    pd.testing.assert_frame_equal(_measured(tmp_path)[["cell", "i", "square", "r"]], _expected(4), check_dtype=False)


def _driver(out: Path, config: Path, toy_dir: Path, scheduler: str | None, jobs: int = 1) -> subprocess.Popen:
    code = ("import sys; from diffsuite.study import runner; runner.STUDIES['toy'] = 'dist_toy'; "
            f"runner.run_study('toy', out={str(out)!r}, config={str(config)!r}, scheduler={scheduler!r}, "
            f"jobs={jobs}, progress=False)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(toy_dir), str(ROOT)])}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(predicate, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + HANG_S
    while not predicate():
        assert proc.poll() is None, f"the driver ended before {what}: " + proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, f"no {what} within {HANG_S} s"
        time.sleep(0.02)


def _lines(out: Path) -> list[bytes]:
    path = out / "toy" / RESULTS
    return path.read_bytes().split(b"\n")[:-1] if path.exists() else []


def test_driver_killed_then_resumed_has_every_row_once(toy, cluster, tmp_path):
    n = 16
    config = _config(tmp_path, n=n, sleep_s=0.15)
    proc = _driver(tmp_path, config, toy, cluster.scheduler_address)
    _wait_for(lambda: len(_lines(tmp_path)) >= 3, proc, "3 stored cells")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=HANG_S)
    kept = _lines(tmp_path)
    assert 3 <= len(kept) < n, "the kill came too late to test anything"
    summary = runner.run_study("toy", out=tmp_path, config=config, scheduler=cluster.scheduler_address,
                               progress=False)
    assert summary.resumed == len(kept) and summary.measured == n - len(kept)
    lines = _lines(tmp_path)
    assert lines[:len(kept)] == kept  # finished cells untouched
    assert sorted(_cells(tmp_path)) == sorted(f"i={i}" for i in range(n))  # none missing, none twice
    pd.testing.assert_frame_equal(_measured(tmp_path)[["cell", "i", "square", "r"]], _expected(n), check_dtype=False)


def test_worker_killed_mid_cell_costs_no_row(toy, cluster, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    config = _config(tmp_path, n=8, kill_once=3, marks=str(marks))
    summary = runner.run_study("toy", out=tmp_path, config=config, scheduler=cluster.scheduler_address,
                               progress=False)
    assert (marks / "killed-3").exists()  # the worker did die mid-cell
    assert len(list(marks.glob("3.*"))) == 2  # and cell 3 ran again, on a fresh worker
    assert sorted(_cells(tmp_path)) == sorted(f"i={i}" for i in range(8))  # each cell once
    pd.testing.assert_frame_equal(_measured(tmp_path)[["cell", "i", "square", "r"]], _expected(8), check_dtype=False)
    assert summary.statuses == {"ok": 16}


def test_cell_that_crashes_its_worker_is_an_error_row(toy, cluster, tmp_path, monkeypatch):
    monkeypatch.setattr(cluster.scheduler, "allowed_failures", 0)  # one crash is enough (each costs a restart)
    config = _config(tmp_path, n=5, crash=2)
    runner.run_study("toy", out=tmp_path, config=config, scheduler=cluster.scheduler_address, progress=False)
    t = pd.read_csv(tmp_path / "toy" / "results.csv")
    bad = t[t["i"] == 2]
    assert list(bad["status"]) == ["error"]
    assert bad["message"].iloc[0].startswith("KilledWorker: the cell crashed the worker")
    assert (t[t["i"] != 2]["status"] == "ok").all() and len(t) == 1 + 2 * 4


def test_a_cell_that_crashed_alone_is_not_tried_again(toy, cluster, tmp_path, monkeypatch):
    """A KilledWorker with no other cell in flight can only be the cell's own: no retry (each would cost a worker)."""
    monkeypatch.setattr(cluster.scheduler, "allowed_failures", 0)
    marks = tmp_path / "marks"
    marks.mkdir()
    config = _config(tmp_path, n=1, crash=0, marks=str(marks))
    runner.run_study("toy", out=tmp_path, config=config, scheduler=cluster.scheduler_address, progress=False)
    t = pd.read_csv(tmp_path / "toy" / "results.csv")
    assert list(t["status"]) == ["error"]
    assert len(list(marks.glob("0.*"))) == 1  # one try: allowed-failures 0, and no retry alone


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state  # a zombie has died; only its exit status is left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
@pytest.mark.parametrize("jobs,env", [(2, False), (1, True)], ids=["jobs-2", "own-environment"])
def test_local_pool_workers_die_with_their_driver(toy, tmp_path, jobs, env):
    marks = tmp_path / "marks"
    marks.mkdir()
    config = _config(tmp_path, n=4, sleep_s=3600.0, marks=str(marks), env=env)  # cells outlast any ceiling
    proc = _driver(tmp_path, config, toy, None, jobs=jobs)
    _wait_for(lambda: len(list(marks.iterdir())) >= jobs, proc, f"{jobs} running cells")
    pids = {int(p.name.split(".")[1]) for p in marks.iterdir()}  # written as <cell>.<pid>
    assert len(pids) == jobs and proc.pid not in pids  # the cells run in worker processes
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=HANG_S)
    deadline = time.monotonic() + HANG_S
    try:
        while any(_alive(p) for p in pids):
            assert time.monotonic() < deadline, f"workers {pids} outlived their driver"
            time.sleep(0.05)
    finally:
        for p in pids:  # a failing run must not leave them sleeping
            if _alive(p):
                os.kill(p, signal.SIGKILL)
