"""Where a study's cells are measured: in this process, in a local process pool, or on Dask workers.

The runner (``study/runner.py``) chooses the executor and hands it the cells still to measure (an
iterator it fills lazily, so that ``prune`` sees every row finished so far) and a callback
``done(cell, rows)``. Every executor calls ``done`` in the driver process, one cell at a time, as each
cell finishes; so only the driver appends to ``results.jsonl``, and durability and resume are the same
whichever executor measured the rows (a lost executor or worker costs at most the cells in flight).

- ``InProcess``: one cell after the other in this process (``--jobs 1``, the default).
- ``LocalPool``: ``--jobs N`` spawned worker processes (``concurrent.futures``). On Linux each worker
  asks the kernel for SIGKILL when the driver dies (``prctl(PR_SET_PDEATHSIG)``), so killing a driver
  never leaves workers measuring (and holding its stdout) behind it.
- ``DaskExecutor``: ``--scheduler tcp://HOST:PORT`` (a running Dask scheduler) or ``--scheduler local``
  (a ``LocalCluster`` of ``--jobs`` worker processes on this machine, one thread each). Needs
  ``pip install 'diffsuite[dask]'``. A worker lost mid-cell is retried on another one by Dask; a cell
  that kills every worker that tries it (``allowed-failures`` + 1 tries; Dask's setting, default 3) comes back as one
  ``error`` row (``KilledWorker``) instead of being retried for ever; a cell that came back KilledWorker while
  others were in flight is tried once more at the end, alone, since a neighbour on its worker may have been the
  culprit. Every row measured on Dask names
  the worker's hardware (``worker_host``, ``worker_cpu``, ``worker_threads``). Timing studies
  (``SERIAL``) run one cell at a time on the cluster, alone on their worker.

``docs/distributed.md`` shows how to start a scheduler and workers on several machines.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import fields as dataclass_fields
from importlib import import_module
from importlib.util import find_spec
from multiprocessing import get_context
from typing import Any, Callable, Iterator

from ..errors import StudyError
from . import metadata

LOCAL = "local"
CONNECT_TIMEOUT_S = 20
PR_SET_PDEATHSIG = 1  # linux/prctl.h

Done = Callable[[Any, list], None]  # done(cell, rows): called in the driver as each cell finishes
#: run_cell(module_name, config, params) -> rows: the runner's, which turns a failing measurement into rows
RunCell = Callable[[str, Any, dict], list]


class InProcess:
    """Every cell in this process, in order."""

    kind = "in-process"

    def describe(self) -> dict:
        return {"kind": self.kind}

    def run(self, run_cell: RunCell, module_name: str, config: Any, cells: Iterator, done: Done) -> None:
        for c in cells:
            done(c, run_cell(module_name, config, c.params))

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ----- the local process pool -----
def die_with_parent(parent_pid: int) -> None:
    """Worker initializer: be killed (SIGKILL) when the driver dies, also by ``kill -9``.

    Linux only (``prctl(PR_SET_PDEATHSIG)`` through ctypes); elsewhere a worker notices only when it next
    talks to the driver. If the driver died before this ran, exit at once."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # orphaned between the spawn and the prctl
        os._exit(1)


def start_worker(started, parent_pid: int) -> None:
    """Worker initializer: ignore SIGINT, record that a worker got through its start-up (``started``: an Event),
    then ``die_with_parent``. A worker runs this only after its bootstrap has re-imported the driver's main module;
    a pool that breaks before any worker set ``started`` died in that bootstrap (``LocalPool.run`` says so).

    A Ctrl-C in a terminal goes to the whole process group: a worker that kept SIGINT printed its own
    ``KeyboardInterrupt`` traceback above the driver's one-line message. Only the driver takes it now; it stops its
    workers itself (``LocalPool.run``), as the Dask path does (``_sigint_ignored``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    started.set()
    die_with_parent(parent_pid)


BOOTSTRAP_HINT = (
    "every worker died while starting, before it could measure anything. The usual cause is a script that "
    "calls run_study or run_all at its top level without `if __name__ == \"__main__\":`: worker processes are "
    "spawned, and each re-imports the main module, which starts the study again (the error above, if any, is "
    "that second start). Put the calls under that guard (docs/studies.md shows it); otherwise rerun with "
    "--jobs 1 to see the error in this process")


@contextmanager
def _environment(env: dict | None):
    """``os.environ`` updated with ``env`` while workers are spawned (BLAS reads its thread count at import)."""
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class LocalPool:
    """``jobs`` spawned worker processes on this machine (spawn, not fork: fork after torch or BLAS threads
    have started is unsafe), with ``env`` in their environment; at most ``jobs`` cells in flight."""

    kind = "local-pool"

    def __init__(self, jobs: int, env: dict | None = None, label: str = "study"):
        self.jobs, self.env, self.label = jobs, dict(env or {}), label
        self._pool = None

    def describe(self) -> dict:
        return {"kind": self.kind, "jobs": self.jobs}

    def run(self, run_cell: RunCell, module_name: str, config: Any, cells: Iterator, done: Done) -> None:
        with _environment(self.env):
            context = get_context("spawn")
            started = context.Event()
            self._pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=context,
                                             initializer=start_worker, initargs=(started, os.getpid()))
            in_flight: dict = {}
            try:
                while True:
                    while len(in_flight) < self.jobs:
                        c = next(cells, None)
                        if c is None:
                            break
                        in_flight[self._pool.submit(run_cell, module_name, config, c.params)] = c
                    if not in_flight:
                        break
                    finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        done(in_flight.pop(fut), fut.result())
            except KeyboardInterrupt:  # the workers ignore SIGINT: stop them, rather than wait for their cells
                self._stop_workers()
                raise
            except BrokenProcessPool:
                if not started.is_set():
                    raise RuntimeError(f"a worker process of study {self.label} died: {BOOTSTRAP_HINT}") from None
                raise RuntimeError(f"a worker process of study {self.label} died (out of memory, or killed); the "
                                   "cells finished so far are stored: rerun to resume, perhaps with fewer --jobs"
                                   ) from None
            finally:
                self.close()

    def _stop_workers(self) -> None:
        """Terminate the pool's worker processes (SIGTERM), whose cells' results nobody will store: after a Ctrl-C,
        which the workers ignore (``start_worker``). ``close`` then finds the pool broken and returns at once."""
        processes = getattr(self._pool, "_processes", None) or {}  # (Python 3.14 has terminate_workers())
        for p in list(processes.values()):
            try:
                p.terminate()
            except (OSError, ValueError):  # already gone, or closed
                pass
        for p in list(processes.values()):
            try:
                p.join(5)
            except (OSError, ValueError, AssertionError):
                pass

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ----- Dask -----
def _on_worker(run_cell: RunCell, module_name: str, fields: dict, params: dict) -> list[dict]:
    """``run_cell`` on a Dask worker, with the study's ``Config`` rebuilt here from plain ``fields`` (so that a
    worker that cannot import the study gives an error row, not a task the cluster cannot even unpickle);
    each row also names the worker's hardware."""
    try:
        config = import_module(module_name).Config(**fields)
    except Exception as e:  # noqa: BLE001 - e.g. a worker with another diffsuite: a row that says so
        rows = [{**params, "status": "error", "cell_failed": True, "cell_s": 0.0,
                 "message": f"{type(e).__name__}: {e} (on worker {metadata.host_info()['host']}: install the "
                            "driver's diffsuite version and extras on every worker)"}]
    else:
        rows = run_cell(module_name, config, params)
    hw = metadata.host_info()
    return [{**r, "worker_host": hw["host"], "worker_cpu": hw["cpu"], "worker_threads": hw["threads"]} for r in rows]


def _import_distributed():
    try:
        import distributed
    except ImportError as e:
        raise StudyError("--scheduler needs Dask's distributed scheduler, which is not installed: "
                         f"pip install 'diffsuite[dask]' ({e})") from None
    return distributed


#: Dask's comm schemes, named when ``distributed.comm.registry`` cannot be read (it is the authority)
KNOWN_SCHEMES = ("tcp", "tls", "ws", "wss")
#: a scheme no driver reaches a scheduler by: ``inproc://`` names a scheduler inside the same process only
UNREACHABLE_SCHEMES = ("inproc",)


def _scheme_problem(scheme: str) -> str | None:
    """None when distributed can connect by ``scheme`` here; else why not (``unknown``, or the error of making its
    connector: ``ucx`` is registered but needs the separate distributed-ucxx package)."""
    if scheme in UNREACHABLE_SCHEMES:
        return "unknown"
    try:
        import distributed.comm  # noqa: F401 - registers the built-in schemes
        from distributed.comm.registry import get_backend
    except Exception:  # noqa: BLE001 - a distributed that cannot be imported: the names it always had
        return None if scheme in KNOWN_SCHEMES else "unknown"
    try:
        backend = get_backend(scheme)  # the built-in ones, else a package's entry point
    except ValueError:
        return "unknown"
    try:
        backend.get_connector()
    except Exception as e:  # noqa: BLE001 - registered but unusable here (e.g. ucx without distributed-ucxx)
        return f"{type(e).__name__}: {e}"
    return None


def scheduler_schemes() -> tuple[str, ...]:
    """The address schemes Dask's distributed can connect to a scheduler by here (``tcp``, ``tls``, ``ws``, ...):
    the ones its comm registry holds that work, else ``KNOWN_SCHEMES``."""
    try:
        import distributed.comm  # noqa: F401
        from distributed.comm.registry import backends
        names = sorted(backends)
    except Exception:  # noqa: BLE001
        names = list(KNOWN_SCHEMES)
    return tuple(s for s in names if _scheme_problem(s) is None) or KNOWN_SCHEMES


def _scheduler_help(scheduler: str) -> str:
    """What a bad --scheduler gets told: the address given, the schemes accepted, and the dashboard mix-up."""
    schemes = [s + "://" for s in scheduler_schemes()]
    listed = schemes[0] if len(schemes) == 1 else ", ".join(schemes[:-1]) + " or " + schemes[-1]
    return (f"got {scheduler!r}; give 'local' (a Dask cluster on this machine) or a running scheduler's address "
            f"({listed}), e.g. tcp://HOST:8786 (http://HOST:8787 is the scheduler's dashboard, not the scheduler)")


def check_scheduler(scheduler: str) -> str:
    """``local`` or a scheduler address (``tcp://HOST:PORT``, or another scheme Dask's distributed connects by
    here, such as ``tls://``), with Dask's distributed installed: checked before any study's folder is touched.
    Whether distributed is installed is looked up without importing it; an address's scheme is checked against
    distributed's comm registry (which imports it: the run would anyway), so that ``http://HOST:8787`` (the
    dashboard) gets one line saying so, not a traceback from inside distributed."""
    if scheduler != LOCAL and not ("://" in scheduler and scheduler.split("://", 1)[1]):
        raise StudyError(f"--scheduler must be 'local' (a Dask cluster on this machine) or a scheduler address such "
                         f"as tcp://HOST:8786; got {scheduler!r}")
    if find_spec("distributed") is None:
        raise StudyError("--scheduler needs Dask's distributed scheduler, which is not installed: "
                         "pip install 'diffsuite[dask]'")
    if scheduler != LOCAL:
        scheme = scheduler.split("://", 1)[0]
        problem = _scheme_problem(scheme)
        if problem == "unknown":
            raise StudyError(f"--scheduler: {scheme}:// is not a scheme Dask's distributed connects to a scheduler "
                             f"by; {_scheduler_help(scheduler)}")
        if problem is not None:
            raise StudyError(f"--scheduler: Dask's distributed cannot connect by {scheme}:// on this machine "
                             f"({problem}); {_scheduler_help(scheduler)}")
    return scheduler


class DaskExecutor:
    """Cells on the workers of a Dask cluster; results come back to the driver, which alone stores them.

    ``scheduler``: ``"local"`` starts a ``LocalCluster`` of ``workers`` processes (one thread each; ``env``
    in their environment; ``allowed_failures`` as Dask's setting), closed again by ``close()``; an address
    connects to a running scheduler (whose own ``allowed-failures`` applies). ``serial``: one cell in flight
    on the whole cluster (timing studies); otherwise two per worker thread, so that no worker waits."""

    kind = "dask"

    def __init__(self, scheduler: str, *, workers: int = 1, env: dict | None = None, serial: bool = False,
                 allowed_failures: int | None = None, label: str = "study"):
        distributed = _import_distributed()
        self.scheduler, self.serial, self.label = check_scheduler(scheduler), serial, label
        self.cluster = None
        if scheduler == LOCAL:
            import dask
            # at most one task per worker thread where Dask queues (large task groups only, which a few cells in
            # flight never are: a crashing cell can still take a neighbour down, which ``run`` retries alone)
            settings = {"distributed.scheduler.worker-saturation": 1.0}
            if allowed_failures is not None:
                settings["distributed.scheduler.allowed-failures"] = allowed_failures
            with dask.config.set(settings), _sigint_ignored():
                # the worker processes inherit SIGINT ignored: a Ctrl-C reaches the driver alone, which stores
                # what it has and closes the cluster (workers that caught it too printed ~90 lines of tracebacks).
                # No dashboard; the scheduler's HTTP server (health, metrics) on a free port rather than 8787, which
                # another cluster on this machine may hold (distributed then warns "Port 8787 is already in use")
                self.cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                        dashboard_address=None, env=dict(env or {}),
                                                        scheduler_kwargs={"dashboard_address": ":0"})
            self.client = distributed.Client(self.cluster)
        else:
            try:
                self.client = distributed.Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
            except (OSError, TimeoutError) as e:
                raise StudyError(f"no Dask scheduler answered at {scheduler} within {CONNECT_TIMEOUT_S} s ({e}); start "
                                 "one with `dask scheduler` and workers with `dask worker tcp://HOST:8786` "
                                 "(docs/distributed.md), or use --scheduler local") from None
            except ValueError as e:  # an address distributed cannot parse (no port where one is needed, ...)
                raise StudyError(f"--scheduler: distributed cannot connect to this address ({e}); "
                                 f"{_scheduler_help(scheduler)}") from None

    def threads(self) -> int:
        """Worker threads in the cluster now (waits up to the connect timeout for the first worker)."""
        self.client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S * 3)
        return sum(w["nthreads"] for w in self.client.scheduler_info()["workers"].values())

    def describe(self) -> dict:
        info = self.client.scheduler_info()["workers"]
        return {"kind": self.kind, "scheduler": LOCAL if self.cluster is not None else self.scheduler,
                "workers": len(info), "threads": sum(w["nthreads"] for w in info.values()), "serial": self.serial}

    def run(self, run_cell: RunCell, module_name: str, config: Any, cells: Iterator, done: Done) -> None:
        from distributed import as_completed
        slots = 1 if self.serial else 2 * self.threads()
        fields = {f.name: getattr(config, f.name) for f in dataclass_fields(config)}  # plain values, no study class
        running = as_completed()
        in_flight: dict = {}
        crowded: set = set()  # keys of cells that shared the cluster with another cell at some time in flight

        def submit() -> bool:
            c = next(cells, None)
            if c is None:
                return False
            # pure=False: a fresh key per submission, so a rerun never reuses a result the cluster still holds
            fut = self.client.submit(_on_worker, run_cell, module_name, fields, c.params, pure=False)
            if in_flight:
                crowded.update(in_flight)
                crowded.add(fut.key)
            in_flight[fut.key] = c
            running.add(fut)
            return True

        while len(in_flight) < slots and submit():
            pass
        # A KilledWorker of a cell that had other cells in flight beside it may be a neighbour's doing: a cell that
        # kills its worker takes down every cell the scheduler had placed there, and Dask's placement does not keep
        # them apart (it queues only large "root-ish" task groups; with a few cells in flight two can share a
        # worker). Such a cell is tried once more at the end, alone among this run's cells, where a KilledWorker can
        # only be its own. (Before, the crash test of tests/study/test_executors.py lost an innocent neighbour in 5
        # of 6 runs, distributed 2026.8.0.)
        suspects = []
        for fut in running:
            c = in_flight.pop(fut.key)
            rows, killed = self._rows(fut, c)
            fut.release()
            if killed and fut.key in crowded:
                suspects.append(c)
            else:
                done(c, rows)
            while len(in_flight) < slots and submit():
                pass
        for c in suspects:
            fut = self.client.submit(_on_worker, run_cell, module_name, fields, c.params, pure=False)
            done(c, self._rows(fut, c)[0])
            fut.release()

    def _rows(self, fut, c) -> tuple[list[dict], bool]:
        """(the cell's rows, or one ``error`` row when the cell could not be measured on the cluster; whether that
        was a KilledWorker)."""
        try:
            return fut.result(), False
        except Exception as e:  # noqa: BLE001 - KilledWorker (the cell crashed its worker each time), lost data
            name = type(e).__name__
            why = ("the cell crashed the worker measuring it each time it was tried (Dask's allowed-failures); "
                   "it is not tried again in this run" if name == "KilledWorker" else "the cluster could not run it")
            return [{**c.params, "status": "error", "message": f"{name}: {why}: {e}", "cell_failed": True,
                     "cell_s": 0.0}], name == "KilledWorker"

    def close(self) -> None:
        if self.cluster is None:  # a user's cluster: its workers and their logs are theirs
            self.client.close()
            return
        # Our local cluster, its results all stored: its workers exit, and one that imported torch can take longer
        # than the 4 s its nanny waits (measured: 3.7 s for four idle workers on 2 cores), which then prints "Worker
        # process still alive after 4.0 seconds, killing" here and CommClosedError tracebacks from the workers'
        # heartbeats. None of that concerns the run: the workers' loggers are silenced (they are about to exit) and
        # this process's distributed loggers for the close only, then restored.
        try:
            self.client.run(_silence_distributed_logs)
        except Exception:  # noqa: BLE001 - workers already gone need no silencing
            pass
        with _distributed_logs_quiet():
            self.client.close()
            self.cluster.close()
        self.cluster = None

    def quiet_close(self) -> None:
        """Close after an interrupt: the cancelled cells and the closing nannies log warnings and tracebacks
        (``CancelledError``) that would bury the runner's one-line message, so distributed's loggers are
        silenced on the workers and here, and stay silenced in this process: the cluster's threads and exit
        handlers go on logging after ``close`` returns, and an interrupted run is ending."""
        _silence_distributed_logs()
        try:
            self.client.run(_silence_distributed_logs)
        except Exception:  # noqa: BLE001 - a cluster that is already gone needs no silencing
            pass
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interrupted: the runner's message is what matters now
            pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.quiet_close()
        else:
            self.close()


DISTRIBUTED_LOGGERS = ("distributed", "tornado", "asyncio")


def _distributed_logger_names() -> set[str]:
    """distributed's loggers (every one it configured, its children included) and its event loop's."""
    return {*DISTRIBUTED_LOGGERS,
            *(n for n in logging.root.manager.loggerDict if n.split(".")[0] in DISTRIBUTED_LOGGERS)}


def _silence_distributed_logs() -> None:
    """distributed's loggers above CRITICAL: called on the workers, and in the driver when a cluster closes."""
    for name in _distributed_logger_names():
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


@contextmanager
def _distributed_logs_quiet():
    """``_silence_distributed_logs`` in this process while the block runs; the loggers' levels restored after."""
    levels = {name: logging.getLogger(name).level for name in _distributed_logger_names()}
    _silence_distributed_logs()
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


@contextmanager
def _sigint_ignored():
    """SIGINT ignored in this process while the block runs (processes started in it inherit that); a no-op
    outside the main thread, where Python cannot change signal handlers."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def make_executor(*, jobs: int, env: dict | None, serial: bool, scheduler: str | None, label: str,
                  n_cells: int):
    """The executor for one study: Dask when ``scheduler`` is set; else a local pool when cells need their
    own environment (``env``) or ``jobs > 1`` (and there is more than one cell); else this process."""
    if scheduler is not None:
        if serial:
            print(f"{label}: measures time, so on Dask its cells run one at a time, each alone on a worker",
                  file=sys.stderr)
        return DaskExecutor(scheduler, workers=jobs, env=env, serial=serial, label=label)
    if env is None and (jobs == 1 or n_cells <= 1):
        return InProcess()
    return LocalPool(jobs, env, label=label)
