"""The fixed cost of one primitive, forward and backward, on 0-d values: our tape against torch.autograd and HIPS autograd.

    python benchmarks/bench_per_op.py            # every contender available, each in a process of its own
    python benchmarks/bench_per_op.py --quick

Each contender differentiates ``f(x, w) = t_L`` with ``t_0 = x``, ``t_k = tanh(t_{k-1} * w)``: a chain of
``2 L`` primitives (a multiply of two traced values, then a tanh) on 0-d values, so the array work is as
small as it gets and what is left is each tool's own bookkeeping per primitive. Times per gradient call are
taken for several ``L`` (median over rounds); the slope of time over the number of primitives (least
squares) is the cost per primitive, forward + backward, and the intercept the cost per call. Conditions
are bench_reverse's defaults: wall clock, one process per contender; ``--clock cpu`` measures CPU time.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

LENGTHS = (4, 16, 32, 64, 128)  # L: steps of the chain (2 L primitives)
CONTENDERS = ("engine", "torch", "autograd")


def chain(name: str, L: int):
    """``() -> (value, (dx, dw))`` for contender ``name`` and chain length ``L``; ImportError if unavailable."""
    x0, w0 = 0.3, 0.9
    if name == "engine":
        import numpy as np
        import diffsuite as ds

        def f(xp, p):
            t, w = p["x"], p["w"]
            for _ in range(L):
                t = xp.tanh(t * w)
            return t

        vg = ds.get_differentiator("reverse").value_and_grad_fn(f)
        p = {"x": np.array(x0), "w": np.array(w0)}
        return lambda: (lambda r: (r.value, (float(r.grad["x"]), float(r.grad["w"]))))(vg(p))
    if name == "torch":
        import torch

        def run():
            x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
            w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
            t = x
            for _ in range(L):
                t = torch.tanh(t * w)
            t.backward()
            return t.item(), (x.grad.item(), w.grad.item())
        return run
    if name == "autograd":
        import autograd
        import autograd.numpy as anp

        def f(x, w):
            t = x
            for _ in range(L):
                t = anp.tanh(t * w)
            return t

        vg = autograd.value_and_grad(f, argnum=(0, 1))
        return lambda: (lambda v, g: (float(v), (float(g[0]), float(g[1]))))(*vg(x0, w0))
    raise ValueError(f"unknown contender {name!r}; known: {', '.join(CONTENDERS)}")


def reference(L: int):
    """The chain's value and gradient in plain Python floats (the hand-derived chain rule)."""
    import math

    x0, w0 = 0.3, 0.9
    ts = [x0]
    for _ in range(L):
        ts.append(math.tanh(ts[-1] * w0))
    dt, dw = 1.0, 0.0  # cotangent of t_k, accumulated gradient of w
    for k in range(L, 0, -1):
        da = dt * (1.0 - ts[k] ** 2)  # through tanh
        dw += da * ts[k - 1]
        dt = da * w0
    return ts[-1], (dt, dw)


def worker(name: str, rounds: int, min_time: float, clock_name: str):
    clock = time.process_time if clock_name == "cpu" else time.perf_counter
    out = {}
    try:
        fns = {L: chain(name, L) for L in LENGTHS}
    except ImportError as e:
        print(json.dumps({"unavailable": str(e)}))
        return
    for L, fn in fns.items():
        v, g = fn()
        v0, g0 = reference(L)
        if abs(v - v0) > 1e-12 or max(abs(a - b) for a, b in zip(g, g0)) > 1e-12:
            raise SystemExit(f"{name}, L={L}: gradient {g} differs from the reference {g0}")
    for L, fn in fns.items():  # calibrate: a sample lasts min_time / rounds
        t0, n = time.perf_counter(), 0
        while n < 3 or time.perf_counter() - t0 < 0.2 * min_time / rounds:
            fn()
            n += 1
        out[L] = {"number": max(1, int(min_time / rounds / ((time.perf_counter() - t0) / n))), "seconds": []}
    for _ in range(rounds):  # lengths interleaved within the process
        for L, fn in fns.items():
            n = out[L]["number"]
            t = clock()
            for _ in range(n):
                fn()
            out[L]["seconds"].append((clock() - t) / n)
    print(json.dumps({str(L): d["seconds"] for L, d in out.items()}))


def fit(per_length: dict) -> tuple[float, float, list]:
    """(seconds per primitive, seconds per call, medians): least squares of the median time over 2 L."""
    import numpy as np

    xs = [2 * int(L) for L in per_length]
    meds = [statistics.median(s) for s in per_length.values()]
    slope, intercept = np.polyfit(xs, meds, 1)
    return float(slope), float(intercept), meds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--rounds", type=int, default=None, help="samples per length (default 7, quick 3)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    p.add_argument("--only", default=None, help="comma list of contenders")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 7)
    min_time = 0.1 if args.quick else 1.0  # seconds per length
    if args.worker:
        return worker(args.worker, rounds, min_time, args.clock)
    names = [n for n in CONTENDERS if not args.only or n in args.only.split(",")]
    load = os.getloadavg()[0]
    results = {}
    for name in names:  # one after the other, each in a fresh process
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", name, "--rounds",
                               str(rounds), "--clock", args.clock] + (["--quick"] if args.quick else []),
                              capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"{name} failed:\n{proc.stderr}")
        msg = json.loads(proc.stdout.strip().splitlines()[-1])
        if "unavailable" in msg:
            print(f"({name} skipped: {msg['unavailable']})", file=sys.stderr)
            continue
        results[name] = fit(msg)
    load_after = os.getloadavg()[0]
    print(f"per-primitive cost (forward + backward, 0-d values), {args.clock} clock, one process per contender; "
          f"chain t = tanh(t * w), 2 primitives per step; 1-min load {load:.2f} -> {load_after:.2f}")
    print(f"{'contender':10s} {'us/primitive':>13s} {'us/call':>8s}   median us per call at L = {', '.join(map(str, LENGTHS))}")
    for name, (slope, intercept, meds) in results.items():
        print(f"{name:10s} {slope * 1e6:13.2f} {intercept * 1e6:8.1f}   " + ", ".join(f"{m * 1e6:.0f}" for m in meds))
    if abs(load_after - load) > max(0.5, 0.25 * load) or max(load, load_after) > (os.cpu_count() or 1):
        print(f"load: the machine's load changed or exceeded its {os.cpu_count()} cores during the run; "
              "rerun with --clock cpu for figures other processes do not inflate")
    return results


if __name__ == "__main__":
    main()
