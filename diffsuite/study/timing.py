"""The one timing harness every study uses.

``measure(fn)`` runs ``fn`` a few times to warm up (caches, lazy compilation, CUDA kernels), then
repeats it until at least ``min_total_s`` seconds *and* ``min_repeats`` calls have been spent, and
returns the median time per call with its spread (interquartile range, min, max). ``sync`` (for
CUDA: ``torch.cuda.synchronize``) is called before the clock starts and after every call, so
asynchronous devices are timed to completion. Setup is timed apart with ``time_once``: the studies
time ``value_and_grad(objective)`` (building, compiling, moving data) once and the returned function
per call, so one-time cost and steady state never mix.

All times are seconds from ``time.perf_counter``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class Timing:
    """Seconds per call: ``median`` (the number studies plot), ``q1``/``q3`` (spread), ``min``, ``max``;
    ``repeats`` timed calls spending ``total`` seconds, after ``warmup`` untimed ones."""

    median: float
    q1: float
    q3: float
    min: float
    max: float
    repeats: int
    warmup: int
    total: float

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    def as_row(self, prefix: str) -> dict:
        """Columns ``{prefix}_s`` (the median), ``{prefix}_q1_s``, ``{prefix}_q3_s``, ``{prefix}_min_s``, ``{prefix}_repeats``."""
        return {f"{prefix}_s": self.median, f"{prefix}_q1_s": self.q1, f"{prefix}_q3_s": self.q3,
                f"{prefix}_min_s": self.min, f"{prefix}_repeats": self.repeats}


def _noop() -> None:
    return None


def measure(fn: Callable[[], Any], *, warmup: int = 1, min_total_s: float = 0.2, min_repeats: int = 3,
            max_repeats: int = 10_000, max_total_s: float | None = None,
            sync: Callable[[], None] | None = None) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then repeats until ``min_total_s`` and ``min_repeats`` are met.

    ``max_total_s`` stops early (after at least one timed call) when a single call is slow, so a
    slow method costs at most about ``max(max_total_s, one call)``. ``sync`` runs after every call.
    """
    if min_repeats < 1 or warmup < 0:
        raise ValueError(f"need min_repeats >= 1 and warmup >= 0; got min_repeats={min_repeats}, warmup={warmup}")
    sync = sync or _noop
    for _ in range(warmup):
        fn()
        sync()
    times: list[float] = []
    spent = 0.0
    clock = time.perf_counter
    while len(times) < max_repeats:
        sync()
        t0 = clock()
        fn()
        sync()
        dt = clock() - t0
        times.append(dt)
        spent += dt
        if spent >= min_total_s and len(times) >= min_repeats:
            break
        if max_total_s is not None and spent >= max_total_s:
            break
    a = np.asarray(times)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return Timing(median=float(med), q1=float(q1), q3=float(q3), min=float(a.min()), max=float(a.max()),
                  repeats=len(times), warmup=warmup, total=float(spent))


def time_once(fn: Callable[[], Any], sync: Callable[[], None] | None = None) -> tuple[Any, float]:
    """``(fn(), seconds)`` for one call: how setup is timed (it is paid once, so it is not repeated)."""
    sync = sync or _noop
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t0


def cuda_sync(device: str) -> Callable[[], None] | None:
    """``torch.cuda.synchronize`` for ``device="cuda"``, else None (nothing to wait for on the CPU)."""
    if device != "cuda":
        return None
    import torch
    return torch.cuda.synchronize


__all__ = ["Timing", "cuda_sync", "measure", "time_once"]
