"""Memory of one call, next to its time: the peak bytes it allocates and the minor page faults it takes.

- ``peak_bytes(fn, how)``: the highest memory in use during one call of ``fn()`` above the level just
  before it. ``how="tracemalloc"`` (numpy and plain Python: numpy reports every array's data to
  ``tracemalloc``, and Python objects are counted too; objects served from CPython's free lists are not);
  ``how="torch"``: torch's allocator totals ("Total Allocated") as its profiler reports them with
  ``profile_memory=True``, per device (CPU and CUDA apart; the larger peak is returned), the CPU's plus the
  tracemalloc peak of the same call (numpy memory behind CPU tensors: diffsuite's torch backend allocates its
  per-call buffers there; the sum is an upper bound where the two peaks fall apart in time). Cost: one call,
  slowed down by the bookkeeping; call it after timing, never inside a timed loop.
- ``minor_faults_per_call(fn, calls)``: minor page faults (``getrusage``) per call over ``calls`` calls:
  pages the allocator handed back to the system and touches again. 0 in a steady state.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

HOW = ("tracemalloc", "torch")


def how_for(method: str) -> str:
    """The measurement that sees a method's arrays: torch's allocator for torch backends, else tracemalloc."""
    return "torch" if "torch" in method else "tracemalloc"


def peak_bytes(fn: Callable[[], Any], how: str = "tracemalloc") -> float:
    """Peak bytes in use during one call of ``fn()`` above the level before it (see the module docstring)."""
    if how == "tracemalloc":
        return _traced_peak(fn)
    if how == "torch":
        return _torch_peak(fn)
    raise ValueError(f"how must be one of {', '.join(HOW)}; got {how!r}")


def _traced_peak(fn: Callable[[], Any]) -> float:
    import tracemalloc

    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return float(tracemalloc.get_traced_memory()[1] - base)
    finally:
        if not was_tracing:
            tracemalloc.stop()


def _torch_peak(fn: Callable[[], Any]) -> float:
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    stderr = os.dup(2)  # the profiler's C++ side prints start/stop lines to stderr: keep them out of the output
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            with profile(activities=activities, profile_memory=True) as prof:
                numpy_peak = _traced_peak(fn)
    finally:
        os.dup2(stderr, 2)
        os.close(stderr)
    with tempfile.TemporaryDirectory() as tmp:  # the allocator's running totals are in the trace's events
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        events = json.loads(path.read_text())["traceEvents"]
    memory = sorted((e for e in events if e.get("name") == "[memory]"), key=lambda e: e["ts"])
    peaks = {}
    for device in {e["args"].get("Device Type") for e in memory}:
        seq = [e["args"] for e in memory if e["args"].get("Device Type") == device]
        start = seq[0]["Total Allocated"] - seq[0]["Bytes"]  # the total before the call's first event
        peaks[device] = max(a["Total Allocated"] for a in seq) - start
    cpu = peaks.pop(0, 0.0)  # (device type 0 is the CPU)
    return max([cpu + numpy_peak, *peaks.values()])


def minor_faults_per_call(fn: Callable[[], Any], calls: int = 5) -> float:
    """Minor page faults per call of ``fn()`` over ``calls`` calls (the whole process, every thread)."""
    import resource  # (Unix only: imported where it is used)

    if calls < 1:
        raise ValueError(f"calls must be >= 1; got {calls}")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


__all__ = ["HOW", "how_for", "minor_faults_per_call", "peak_bytes"]
