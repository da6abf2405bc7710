"""The fixed cost of one primitive, forward and backward, on 0-d values: our tape against torch.autograd and HIPS autograd.

    python benchmarks/bench_per_op.py            # every contender available, each in a process of its own
    python benchmarks/bench_per_op.py --quick

Each contender differentiates ``f(x, w) = t_L`` with ``t_0 = x``, ``t_k = tanh(t_{k-1} * w)``: a chain of
``2 L`` primitives (a multiply of two traced values, then a tanh) on 0-d values, so the array work is as
small as it gets and what is left is each tool's own bookkeeping per primitive. Times per gradient call are
taken for several ``L``; the slope of time over the number of primitives (least squares) is the cost per
primitive, forward + backward, and the intercept the cost per call.

Conditions are bench_reverse's defaults: wall clock, one process per contender (``--clock cpu``: CPU time).
The contenders' processes live side by side and are sampled in turn: in each round every contender times every
``L`` once, in a shuffled order, so that a change in the machine's speed during the run (this benchmark's
development machine has phases 1.5-2x apart, lasting seconds to minutes) reaches all of them alike. Reported per
contender: the slope of the medians over the rounds; the slope in the round where it was smallest and largest;
and each contender's slope over the first contender's in the same round (median over the rounds), the ratio a
phase divides out of.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

from harness import JsonWorker, instruction_count

LENGTHS = (4, 16, 32, 64, 128)  # L: steps of the chain (2 L primitives)
COUNT_LENGTHS = (64, 128)  # --instructions: the two chain lengths whose difference gives the count per primitive
COUNT_CALLS = 20  # --instructions: calls counted at each length
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


def worker(name: str, clock_name: str, calls: int | None = None, length: int = 128, warm: tuple = ()):
    """Serve samples on stdin/stdout: ``{"L": L, "number": n}`` -> ``{"seconds": per call}``; first line: ready.
    With ``calls`` (for ``--instructions``): build the chains of ``length`` and ``warm`` steps, check them, call each
    3 times, then make ``calls`` calls of the chain of ``length`` steps and exit; two such processes that differ only
    in ``length`` differ only by the ``calls`` calls' instructions."""
    clock = time.process_time if clock_name == "cpu" else time.perf_counter
    try:
        fns = {L: chain(name, L) for L in (sorted({length, *warm}) if calls is not None else LENGTHS)}
    except ImportError as e:
        print(json.dumps({"unavailable": str(e)}), flush=True)
        return
    for L, fn in fns.items():  # the benchmark refuses to time (or count) a wrong gradient
        v, g = fn()
        v0, g0 = reference(L)
        if abs(v - v0) > 1e-12 or max(abs(a - b) for a, b in zip(g, g0)) > 1e-12:
            raise SystemExit(f"{name}, L={L}: gradient {g} differs from the reference {g0}")
    if calls is not None:
        for fn in fns.values():
            fn(), fn(), fn()
        for _ in range(calls):
            fns[length]()
        return
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        fn = fns[cmd["L"]]
        if "calibrate" in cmd:  # calls per sample, so that a sample lasts about cmd["calibrate"] seconds (warm)
            for phase in (0.05, 0.3 * cmd["calibrate"]):
                t0, n = time.perf_counter(), 0
                while n < 3 or time.perf_counter() - t0 < phase:
                    fn()
                    n += 1
            print(json.dumps({"number": max(1, int(cmd["calibrate"] / ((time.perf_counter() - t0) / n)))}), flush=True)
            continue
        n = cmd["number"]
        for _ in range(max(1, n // 10)):  # warm (untimed): the other contenders ran in between
            fn()
        t = clock()
        for _ in range(n):
            fn()
        print(json.dumps({"seconds": (clock() - t) / n}), flush=True)


def count_instructions(name: str, lengths: tuple = COUNT_LENGTHS, calls: int = COUNT_CALLS) -> float | None:
    """Instructions per primitive of contender ``name``, as the time column is: a slope over the chain's length, so
    that each call's fixed cost (the gradient's setup, its result) cancels. Cachegrind counts two processes that
    build, check and warm the chains of both ``lengths`` and then make ``calls`` calls of one of them (one BLAS
    thread); ``instruction_slope`` turns the two counts into instructions per primitive. None if not installed."""
    counts = {}
    for L in lengths:
        counts[L] = instruction_count([str(Path(__file__).resolve()), "--calls", str(calls), "--worker", name,
                                       "--length", str(L), "--warm", ",".join(map(str, lengths))], f"{name} (L={L})")
        if counts[L] is None:
            return None
    return instruction_slope(counts, calls)


def instruction_slope(counts: dict, calls: int) -> float:
    """Instructions per primitive from ``{L: instructions of a process making calls calls of the chain of L steps}``
    at two lengths (start-up, imports and warm-up the same in both): ``(I(L2) - I(L1)) / (2 L2 - 2 L1)`` with
    ``I(L)`` the instructions per call. (Dividing ``I(128)`` by its 256 primitives instead, as before, added each
    call's fixed cost: 15,779 against a slope of 14,930 for the engine at c05ec30, cachegrind.)"""
    (L1, c1), (L2, c2) = sorted(counts.items())
    return (c2 - c1) / calls / (2 * L2 - 2 * L1)


def fit(medians: dict) -> tuple[float, float]:
    """(seconds per primitive, seconds per call): least squares of time per call over 2 L."""
    import numpy as np

    slope, intercept = np.polyfit([2 * L for L in medians], list(medians.values()), 1)
    return float(slope), float(intercept)


def start_worker(name: str, clock: str) -> JsonWorker:
    return JsonWorker([sys.executable, str(Path(__file__).resolve()), "--worker", name, "--clock", clock], name)


def measure(names: list, rounds: int, min_time: float, clock: str) -> dict:
    """{name: {L: [seconds per call, one per round]}}, the contenders sampled in turn (see the module docstring)."""
    workers = {name: start_worker(name, clock) for name in names}
    try:
        for name in list(workers):
            msg = workers[name].ask()
            if "unavailable" in msg:
                print(f"({name} skipped: {msg['unavailable']})", file=sys.stderr)
                workers.pop(name).close()
        if not workers:
            raise SystemExit(f"none of {', '.join(names)} is installed here: nothing to time (the engine needs only "
                             "diffsuite; torch and HIPS autograd come with the bench extra)")
        sample = min_time / rounds
        number = {(name, L): w.ask(L=L, calibrate=sample)["number"] for name, w in workers.items() for L in LENGTHS}
        seconds = {name: {L: [] for L in LENGTHS} for name in workers}
        order = random.Random(0)
        for _ in range(rounds):
            pairs = [(name, L) for name in workers for L in LENGTHS]
            order.shuffle(pairs)
            for name, L in pairs:
                seconds[name][L].append(workers[name].ask(L=L, number=number[name, L])["seconds"])
    finally:
        for w in workers.values():
            w.close()
    return seconds


def summarise(seconds: dict) -> dict:
    """Per contender: slope and intercept of the medians, the smallest and largest slope of one round, and the
    median over the rounds of its slope over the first contender's in the same round."""
    rounds = len(next(iter(next(iter(seconds.values())).values())))
    per_round = {name: [fit({L: s[r] for L, s in by_L.items()})[0] for r in range(rounds)]
                 for name, by_L in seconds.items()}
    first = next(iter(seconds))
    out = {}
    for name, by_L in seconds.items():
        slope, intercept = fit({L: statistics.median(s) for L, s in by_L.items()})
        out[name] = {"slope": slope, "intercept": intercept, "slope_min": min(per_round[name]),
                     "slope_max": max(per_round[name]),
                     "ratio": statistics.median(a / b for a, b in zip(per_round[name], per_round[first])),
                     "medians": [statistics.median(by_L[L]) for L in LENGTHS]}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short timings (3 rounds, 0.1 s per length and contender)")
    p.add_argument("--rounds", type=int, default=None, help="samples per length and contender (default 9, quick 3)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall (default: what a user waits) or cpu (process CPU time: other processes do not inflate it)")
    p.add_argument("--only", default=None, help="comma list of contenders (default: %s)" % ",".join(CONTENDERS))
    p.add_argument("--instructions", action="store_true",
                   help="also count instructions per primitive under valgrind (load-independent; a few minutes)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--calls", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--length", type=int, default=128, help=argparse.SUPPRESS)
    p.add_argument("--warm", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.clock, args.calls, args.length,
                      tuple(int(L) for L in args.warm.split(",") if L))
    if args.instructions and shutil.which("valgrind") is None:
        p.error("--instructions needs valgrind (e.g. apt install valgrind); run without it for times only")
    rounds = args.rounds or (3 if args.quick else 9)
    min_time = 0.1 if args.quick else 1.0  # seconds per length and contender, over all rounds
    names = [n for n in CONTENDERS if not args.only or n in args.only.split(",")]
    unknown = set((args.only or "").split(",")) - set(CONTENDERS) - {""}
    if unknown:
        p.error(f"unknown contender(s) {', '.join(sorted(unknown))}; known: {', '.join(CONTENDERS)}")
    load = os.getloadavg()[0]
    results = summarise(measure(names, rounds, min_time, args.clock))
    load_after = os.getloadavg()[0]
    first = next(iter(results))
    print(f"per-primitive cost (forward + backward, 0-d values), {args.clock} clock, one process per contender, "
          f"sampled in turn over {rounds} rounds; chain t = tanh(t * w), 2 primitives per step; "
          f"1-min load {load:.2f} -> {load_after:.2f}")
    print(f"{'contender':10s} {'us/primitive':>13s} {'(min-max of a round)':>21s} {'/' + first:>10s} {'us/call':>8s}"
          f"   median us per call at L = {', '.join(map(str, LENGTHS))}")
    for name, r in results.items():
        spread = f"({r['slope_min'] * 1e6:.2f}-{r['slope_max'] * 1e6:.2f})"
        print(f"{name:10s} {r['slope'] * 1e6:13.2f} {spread:>21s} {r['ratio']:10.3f} {r['intercept'] * 1e6:8.1f}   "
              + ", ".join(f"{m * 1e6:.0f}" for m in r["medians"]))
    print(f"us/primitive: the slope of the medians over the rounds; min-max: the slope of the fastest and slowest "
          f"round; /{first}: the slope over {first}'s in the same round, median over the rounds")
    if args.instructions:
        print(f"instructions per primitive (cachegrind, one thread; the slope between L = {COUNT_LENGTHS[0]} and "
              f"{COUNT_LENGTHS[1]}: {COUNT_CALLS} calls of each, fixed cost per call excluded, as in us/primitive):")
        for name in results:
            n = count_instructions(name)
            print(f"{name:10s} {n:13,.0f}" if n is not None else f"{name:10s} (not installed)")
    if abs(load_after - load) > max(0.5, 0.25 * load) or max(load, load_after) > (os.cpu_count() or 1):
        print(f"load: the machine's load changed or exceeded its {os.cpu_count()} cores during the run; "
              "rerun with --clock cpu for figures other processes do not inflate")
    return results


if __name__ == "__main__":
    main()
