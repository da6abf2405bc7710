"""The study runner: a grid of cells, measured with a progress bar, optionally in worker processes,
each finished cell appended to the result store at once.

A *study* is a module (see ``STUDIES``) that defines

- ``Config``: a frozen dataclass of decisions (the grid), with ``quick()`` returning the small version
  and a ``devices`` field the runner fills from ``--device``;
- ``cells(config) -> list[Cell]``: the grid; a ``Cell`` has a stable id built from its parameters;
- ``measure(config, params) -> list[dict]``: one cell's tidy rows (it may give a row its own
  ``status``/``message``, e.g. one step of a sweep that failed);
- ``report(table, meta, out_dir) -> Report``: figures and the text, from stored rows only;
- optionally ``prune(config, params, done)`` (skip a cell that cannot fit, see ``_measure_all``),
  ``worker_env(config) -> dict`` (cells then run in spawned workers with these environment variables,
  e.g. BLAS thread counts) and ``SERIAL = True`` (timings: never more than one cell at a time).

``run_cell`` wraps ``measure``: an exception becomes one row with ``status="error"`` and the message, a
``BudgetExceeded`` one with ``status="budget"``; the study goes on. ``run_study`` resumes: cells
whose id is already in the store are not measured again (except cells whose measurement raised,
stored with status ``error``: they are retried, since a missing dependency may have been installed), as long as the configuration is the same
(its hash is in ``meta.json``; a different configuration starts afresh, after moving the stored
results aside to ``results.<old config hash>.jsonl`` and ``meta.<old config hash>.json``: never deleted).
"""
from __future__ import annotations

import os
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, fields, replace
from importlib import import_module
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from ..errors import BudgetExceeded
from . import metadata
from .store import ResultStore, dumps, write_atomic_text

#: study name -> module. The order is the order of ``diffsuite list`` and of the report.
STUDIES = {
    "expression_growth": "diffsuite.study.expression_growth",
    "rounding_error": "diffsuite.study.rounding_error",
    "accuracy": "diffsuite.study.accuracy",
    "speed": "diffsuite.study.speed",
}
DEVICES = ("cpu", "cuda", "all")
REPORTS = Path("reports")


def default_out(quick: bool) -> Path:
    """``reports`` for full runs, ``reports/quick`` for quick ones: a demo never overwrites full results."""
    return REPORTS / "quick" if quick else REPORTS
META = "meta.json"


class StudyError(ValueError):
    """A study, option or device that cannot be used; the message lists the choices."""


@dataclass(frozen=True)
class Cell:
    """One measurement of the grid. ``id`` is built from ``params`` (in order) and never changes."""

    params: dict
    id: str = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "id", "|".join(f"{k}={v}" for k, v in self.params.items()))


def cell(**params: Any) -> Cell:
    return Cell(dict(params))


def study_module(name: str):
    try:
        return import_module(STUDIES[name])
    except KeyError:
        raise StudyError(f"unknown study {name!r}; choose from {', '.join(STUDIES)}") from None


def check_studies(names) -> list[str]:
    names = list(names) or list(STUDIES)
    unknown = [n for n in names if n not in STUDIES]
    if unknown:
        raise StudyError(f"unknown study {', '.join(map(repr, unknown))}; choose from {', '.join(STUDIES)}")
    return names


def resolve_devices(device: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """``--device`` as a tuple of devices to measure, and ``{"cuda": reason}`` when ``all`` skips CUDA.

    ``cuda`` without a usable GPU is an error (nothing asked for could be measured); ``all`` measures
    the CPU and records why CUDA was skipped.
    """
    if device not in DEVICES:
        raise StudyError(f"unknown device {device!r}; choose from {', '.join(DEVICES)}")
    if device == "cpu":
        return ("cpu",), {}
    info = metadata.gpu_info()
    if info["cuda_available"]:
        return (("cuda",) if device == "cuda" else ("cpu", "cuda")), {}
    reason = f"no CUDA GPU: {info.get('gpu_reason')}"
    if device == "cuda":
        raise StudyError(f"--device cuda needs a CUDA GPU and PyTorch built with CUDA; {reason}. "
                         "Use --device cpu (or --device all, which measures the CPU and records why CUDA was skipped).")
    return ("cpu",), {"reverse[torch-cuda]": reason}


def _prepare_out(quick: bool, out) -> Path:
    """The output folder; the default quick folder gets a ``.gitignore`` so demo output is never committed."""
    if out is not None:
        return Path(out)
    out = default_out(quick)
    if quick:
        out.mkdir(parents=True, exist_ok=True)
        ignore = out / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# quick (demo) results: regenerated by `make demo`, never committed\n*\n")
    return out


def _config_without_devices(config) -> dict:
    d = metadata.config_dict(config)
    d.pop("devices", None)
    return d


def run_cell(module_name: str, config: Any, params: dict) -> list[dict]:
    """Measure one cell; never raises for a failing measurement (it becomes a row with a status)."""
    t0 = time.perf_counter()
    try:
        rows = import_module(module_name).measure(config, dict(params))
    except BudgetExceeded as e:
        rows = [{"status": "budget", "message": str(e), "cell_failed": False}]
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 - one failing cell must not end the study
        frames = [f for f in traceback.extract_tb(e.__traceback__) if not f.filename.startswith("<")]
        where = frames[-1] if frames else None
        loc = f" (at {Path(where.filename).name}:{where.lineno})" if where else ""
        rows = [{"status": "error", "message": f"{type(e).__name__}: {e}{loc}", "cell_failed": True}]
    wall = time.perf_counter() - t0
    out = []
    for r in rows or [{"status": "error", "message": "the cell produced no rows", "cell_failed": True}]:
        row = {**params, **r}
        row.setdefault("status", "ok")
        row.setdefault("message", "")
        row["cell_s"] = wall
        out.append(row)
    return out


@dataclass
class RunSummary:
    study: str
    directory: Path
    cells: int
    measured: int
    resumed: int
    statuses: dict


def run_study(name: str, *, quick: bool = False, out: Path | str | None = None, jobs: int = 1, device: str = "cpu",
              progress: bool = True, report: bool = True) -> RunSummary:
    """Measure every cell of study ``name`` not yet in ``out/name/results.jsonl``, then write its report.

    ``out`` defaults to ``default_out(quick)``: ``reports`` or ``reports/quick``."""
    module = study_module(name)
    out = _prepare_out(quick, out)
    if not isinstance(jobs, int) or jobs < 1:
        raise StudyError(f"--jobs must be a whole number >= 1; got {jobs!r}")
    devices, skipped = resolve_devices(device)
    if jobs > 1 and getattr(module, "SERIAL", False):
        print(f"{name}: measures time, so its cells run one at a time (--jobs {jobs} ignored)", file=sys.stderr)
        jobs = 1
    config = module.Config()
    if quick:
        config = config.quick()
    if "devices" in {f.name for f in fields(config)}:
        config = replace(config, devices=devices)
    directory = Path(out) / name
    directory.mkdir(parents=True, exist_ok=True)
    meta = metadata.collect(name, config, quick=quick, device=device, skipped=skipped)
    if hasattr(module, "worker_env"):
        meta["cell_env"] = module.worker_env(config)
    meta["config_hash"] = metadata.config_hash(_config_without_devices(config))
    grid = module.cells(config)
    ids = [c.id for c in grid]
    if len(set(ids)) != len(ids):
        raise RuntimeError(f"study {name}: two cells share an id; cell ids must be unique")

    with ResultStore(directory) as store:
        old = _read_meta(directory)
        if store.done and (old is None or old.get("config_hash") != meta["config_hash"]):
            # never delete results already written: move them (and their meta.json) aside, then start afresh
            n_old = len(store.done)
            moved = store.move_aside(str((old or {}).get("config_hash") or "unknown-config"), companions=(META,))
            print(f"{name}: the configuration differs from the stored results' ({directory / META}); "
                  f"the {n_old} stored cells are kept, moved aside to {' and '.join(map(str, moved))}; "
                  "this study starts afresh", file=sys.stderr)
        write_atomic_text(directory / META, dumps(meta, sort_keys=True) + "\n")
        todo = [c for c in grid if c.id not in store.finished]
        resumed = len(grid) - len(todo)
        if resumed:
            print(f"{name}: resuming, {resumed} of {len(grid)} cells already measured", file=sys.stderr)
        _measure_all(module, config, todo, store, jobs, progress, label=name)
        store.write_table()
        table = store.table()
    statuses = table["status"].value_counts().to_dict() if len(table) else {}
    if report:
        from .report import write_index, write_study_report
        write_study_report(name, Path(out))
        write_index(Path(out))
    return RunSummary(name, directory, len(grid), len(todo), resumed, statuses)


def _read_meta(directory: Path) -> dict | None:
    import json
    try:
        return json.loads((directory / META).read_text())
    except (OSError, ValueError):
        return None


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    disable=not enabled, transient=False)


def _measure_all(module, config, todo: list[Cell], store: ResultStore, jobs: int, progress: bool,
                 label: str) -> None:
    """Measure ``todo`` in order (at most ``jobs`` cells in flight), appending each as it finishes.

    A study may define ``prune(config, params, done) -> reason | None``: a cell it prunes (e.g. a deeper
    network after a shallower one ran out of budget) is stored as a ``budget`` row without measuring.
    """
    prune = getattr(module, "prune", None)
    env = module.worker_env(config) if hasattr(module, "worker_env") else None

    def runnable(bar, task):
        for c in todo:
            reason = prune(config, c.params, store.cells()) if prune else None
            if reason:
                store.append(c.id, [{**c.params, "status": "budget", "message": reason, "cell_s": 0.0}])
                bar.advance(task)
                continue
            yield c

    with _progress(progress) as bar:
        task = bar.add_task(label, total=len(todo))
        if env is None and (jobs == 1 or len(todo) <= 1):
            for c in runnable(bar, task):
                bar.update(task, description=f"{label}: {c.id}")
                store.append(c.id, run_cell(module.__name__, config, c.params))
                bar.advance(task)
            bar.update(task, description=label)
            return
        ctx = get_context("spawn")  # fork after torch/BLAS threads have started is unsafe
        saved = {k: os.environ.get(k) for k in (env or {})}
        os.environ.update(env or {})  # workers are spawned with it (BLAS reads its thread count at import)
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx)
        pending = runnable(bar, task)
        in_flight: dict = {}
        try:
            while True:
                while len(in_flight) < jobs:
                    c = next(pending, None)
                    if c is None:
                        break
                    in_flight[pool.submit(run_cell, module.__name__, config, c.params)] = c
                if not in_flight:
                    break
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for fut in finished:
                    c = in_flight.pop(fut)
                    store.append(c.id, fut.result())
                    bar.advance(task)
        except BrokenProcessPool:
            raise RuntimeError(f"a worker process of study {label} died (out of memory, or killed); the cells "
                               "finished so far are stored: rerun to resume, perhaps with fewer --jobs") from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def run_all(*, quick: bool = True, out: Path | str | None = None, jobs: int = 1, device: str = "cpu",
            studies: list[str] | None = None, progress: bool = True) -> list[RunSummary]:
    """Run every study (or ``studies``) and write the reports and ``out/index.html``: ``make demo``'s job.

    ``out`` defaults to ``reports/quick`` for quick runs and ``reports`` for full ones."""
    names = check_studies(studies or [])
    out = _prepare_out(quick, out)
    summaries = [run_study(n, quick=quick, out=out, jobs=jobs, device=device, progress=progress, report=False)
                 for n in names]
    from .report import write_index, write_study_report
    for n in names:
        write_study_report(n, Path(out))
    write_index(Path(out))
    return summaries


def default_jobs() -> int:
    return max(1, min(4, (os.cpu_count() or 1)))
