"""Metadata written beside every result set (``meta.json``): what ran, where, with what.

diffsuite version and git commit, Python and library versions, CPU model, GPU model if any, thread
counts, the seeds and the whole study configuration, and the differentiators that were skipped with
the reason, and the command line. ``runs`` is the history of the invocations that measured into the folder
(commit, executor, UTC start time, cells measured): a resume appends to it, so a result set built across
commits or executors says so (the report warns when the runs span several commits).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, is_dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

#: distributions whose versions meta.json records (None where not installed): python-flint is the arb engine of
#: the certified reference, scikit-learn supplies training's digits, dask/distributed the cluster executor
LIBRARIES = ("numpy", "sympy", "symengine", "mpmath", "python-flint", "pandas", "matplotlib", "torch", "scikit-learn",
             "dask", "distributed")
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def git_commit() -> str:
    """The commit of the source tree diffsuite runs from (``+dirty`` with uncommitted changes), or ``unknown``."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        if not sha:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/diffsuite"],
                               cwd=here, capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def gpu_names() -> list[str]:
    """GPU names from ``nvidia-smi -L`` (no torch import: that costs seconds), or [] without one."""
    import shutil
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.split(":", 1)[1].split("(UUID")[0].strip() for line in out.splitlines() if line.startswith("GPU")]


def gpu_info(import_torch: bool = True) -> dict:
    """``{"cuda_available": bool, "gpu": name or None, ...}``. With ``import_torch=False`` (CPU-only runs)
    torch is consulted only if it is already imported; the GPU name then comes from ``nvidia-smi``."""
    if not import_torch and "torch" not in sys.modules:
        names = gpu_names()
        return {"cuda_available": None, "gpu": names[0] if names else None,
                "gpu_reason": "not checked through torch (CPU run)" + ("" if names else "; nvidia-smi lists no GPU")}
    if _version("torch") is None:
        return {"cuda_available": False, "gpu": None, "gpu_reason": "torch is not installed"}
    try:
        import torch
        if torch.cuda.is_available():
            return {"cuda_available": True, "gpu": torch.cuda.get_device_name(0),
                    "gpu_count": torch.cuda.device_count()}
        return {"cuda_available": False, "gpu": None, "gpu_reason": "torch.cuda.is_available() is False"}
    except Exception as e:  # a broken torch install must not stop a study
        return {"cuda_available": False, "gpu": None, "gpu_reason": f"torch failed to load: {e}"}


def threads() -> dict:
    out: dict[str, Any] = {"cpu_count": os.cpu_count()}
    try:
        out["affinity"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    for k in THREAD_ENV:
        out[k] = os.environ.get(k)
    if "torch" in sys.modules:
        out["torch_threads"] = sys.modules["torch"].get_num_threads()
    return out


def config_dict(config: Any) -> dict:
    return asdict(config) if is_dataclass(config) else dict(config)


def config_hash(config: Any) -> str:
    """A short hash of the configuration: results are resumed only under the same one."""
    text = json.dumps(config_dict(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def command_line() -> str:
    """This process's command line, as a shell would take it (``python -m diffsuite run ...``; the interpreter
    and diffsuite's own entry point by name, not by this machine's path)."""
    import shlex
    argv = list(sys.argv)
    if argv and Path(argv[0]).name == "__main__.py" and Path(argv[0]).parent.name == "diffsuite":
        argv[0:1] = ["python", "-m", "diffsuite"]
    elif argv and Path(argv[0]).name in ("diffsuite", "diffsuite.exe"):
        argv[0] = "diffsuite"
    return shlex.join(argv)


def run_entry(meta: dict, executor: dict | None, cells: int) -> dict:
    """One line of ``meta["runs"]``: the commit, the executor, the UTC start and how many cells it measured."""
    from datetime import datetime, timezone
    return {"git_commit": meta.get("git_commit"), "executor": executor or {"kind": "unknown"}, "cells": cells,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": meta.get("command")}


def previous_runs(old: dict | None) -> list[dict]:
    """The run history of a stored ``meta.json``; a file written before histories existed gives its one run."""
    if not old:
        return []
    if isinstance(old.get("runs"), list):
        return [r for r in old["runs"] if isinstance(r, dict)]
    return [{"git_commit": old.get("git_commit"), "executor": old.get("executor") or {"kind": "unknown"},
             "cells": None, "started": None, "command": old.get("command")}]


def measuring_runs(meta: dict | None) -> list[dict]:
    """The runs of ``meta`` that stored cells (or may have: ``cells`` unknown). Older versions also recorded runs
    that measured nothing, e.g. a rerun of a complete study; those say nothing about where the rows come from."""
    return [r for r in (meta or {}).get("runs") or [] if isinstance(r, dict) and r.get("cells") != 0]


def commits_of(meta: dict | None) -> list[str]:
    """The distinct commits of the runs that measured the stored rows, in order of first use."""
    return list(dict.fromkeys(str(r.get("git_commit")) for r in measuring_runs(meta)))


def collect(study: str, config: Any, *, quick: bool, device: str, skipped: dict[str, str] | None = None) -> dict:
    """Everything ``meta.json`` holds for one study run."""
    from .. import __version__
    cfg = config_dict(config)
    return {
        "study": study,
        "quick": quick,
        "device": device,
        "config": cfg,
        "config_hash": config_hash(config),
        "seeds": cfg.get("seeds", cfg.get("seed")),
        "skipped": dict(sorted((skipped or {}).items())),
        "diffsuite": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "libraries": {lib: _version(lib) for lib in LIBRARIES},
        "cpu": cpu_model(),
        **gpu_info(import_torch=device != "cpu"),
        "threads": threads(),
        "command": command_line(),
    }


_HOST: dict | None = None


def host_info() -> dict:
    """This machine as a worker row names it: ``host`` (hostname), ``cpu`` (model), ``threads`` (the BLAS/OpenMP
    thread setting, ``OMP_NUM_THREADS``, or the usable CPU count when unset). Computed once per process."""
    global _HOST
    if _HOST is None:
        t = threads()
        _HOST = {"host": platform.node() or "unknown", "cpu": cpu_model(),
                 "threads": int(t["OMP_NUM_THREADS"]) if (t.get("OMP_NUM_THREADS") or "").isdigit()
                 else t.get("affinity", t["cpu_count"])}
    return _HOST
