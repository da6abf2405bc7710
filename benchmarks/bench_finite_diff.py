"""Finite differences measured against their peers in one run: accuracy per evaluation, and loop overhead.

    python benchmarks/bench_finite_diff.py            # both parts (about a minute on 2 cores)
    python benchmarks/bench_finite_diff.py --quick    # a smaller overhead net, fewer repeats (seconds)
    python benchmarks/bench_finite_diff.py --csv out.csv

Part 1, accuracy: the gradient of the lecture's [3, 2, 1] sigmoid network (quadratic loss, target 1) by
every scheme at its automatic step, by numdifftools' ``Gradient`` (default: adaptive central differences
with Richardson extrapolation; and its complex step) and by scipy's ``approx_fprime`` (default step),
each with its max relative error against the high-precision reference, its objective evaluations
(counted by wrapping the function) and its time per gradient (median).

Part 2, overhead: on [784, 32, 10] batch 16, sigmoid, softmax cross-entropy (25 450 parameters), the
time of one central gradient against a bare loop of n_evals plain evaluations ``objective(NUMPY, theta)``,
timed alternately in the same run (fastest of the repeats). The ratio is what the loop around the evaluations costs (target <= 1.2);
it is given with kink tracking on and off, the cost of kink tracking on a relu network of that size, and
for the batched mode (``batch=32``: 32 stencil points per objective call).
BLAS runs single-threaded (set before numpy is imported) so that the baseline and the loop see the same.
"""
from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="[784, 8, 10] for the overhead part, fewer repeats")
    p.add_argument("--repeats", type=int, default=None, help="gradients timed per overhead row (default 5, quick 1)")
    p.add_argument("--csv", metavar="PATH", help="also write every row to PATH")
    return p.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else parse_args([])
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import csv  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

import diffsuite as ds  # noqa: E402
from diffsuite.lecture import LECTURE_INPUT, lecture_network  # noqa: E402
from diffsuite.differentiators.finite_diff.namespaces import COMPLEX  # noqa: E402
from diffsuite.namespace import NUMPY  # noqa: E402

SCHEMES = ("forward", "backward", "central", "five_point", "richardson", "complex_step")


def reference(obj, theta):
    """The 50-digit reference gradient if ``diffsuite.reference`` exists, else reverse mode in float64."""
    try:
        from diffsuite.reference import reference_gradient
    except ImportError:
        return ds.get_differentiator("reverse").value_and_grad(obj)(theta).grad, "reverse float64"
    return np.asarray(reference_gradient(obj, theta, dps=50).grad, dtype=np.float64), "mpmath 50 digits"


def median_time(fn, min_total=0.2, min_repeats=5, clock=time.perf_counter):
    fn()
    times, spent = [], 0.0
    while spent < min_total or len(times) < min_repeats:
        t = clock()
        fn()
        times.append(clock() - t)
        spent += times[-1]
    return statistics.median(times)


def accuracy_rows():
    model, theta = lecture_network()
    obj = ds.Objective(model, "quadratic", LECTURE_INPUT, np.array([[1.0]]))
    ref, ref_name = reference(obj, theta)
    calls = [0]

    def f(x):  # a plain float function, as the peers expect; counts its evaluations
        calls[0] += 1
        return obj(NUMPY, x)

    def fc(x):  # complex-safe, for numdifftools' complex step
        calls[0] += 1
        return obj(COMPLEX, x)

    def fxp(xp, x):  # ours: the same objective through the xp seam, counted the same way
        calls[0] += 1
        return obj(xp, x)

    def ours(**options):
        return lambda: ds.get_differentiator("finite_diff", **options).value_and_grad(fxp)(theta).grad

    contenders = {f"ours {s}": ours(scheme=s) for s in SCHEMES}
    for levels in (2, 3, 5):
        contenders[f"ours richardson levels={levels}"] = ours(scheme="richardson", levels=levels)
    try:
        import numdifftools as nd
        contenders["numdifftools Gradient (default)"] = lambda: nd.Gradient(f)(theta)
        contenders["numdifftools Gradient complex"] = lambda: nd.Gradient(fc, method="complex")(theta)
    except ImportError:
        print("numdifftools not installed: its rows are left out")
    try:
        from scipy.optimize import approx_fprime
        contenders["scipy approx_fprime (default)"] = lambda: approx_fprime(theta, f)
    except ImportError:
        print("scipy not installed: its row is left out")
    rows = []
    for label, run in contenders.items():
        calls[0] = 0
        grad = np.asarray(run(), dtype=np.float64)
        n_evals = calls[0]
        rows.append({"part": "accuracy", "method": label, "n_evals": n_evals,
                     "max_rel_err": float(np.max(np.abs(grad - ref) / np.abs(ref))),
                     "time_s": median_time(run, clock=time.process_time), "reference": ref_name})
    return rows


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.process_time() - cpu, time.perf_counter() - wall


def overhead_rows(quick: bool, repeats: int):
    """Per row, alternately: one gradient, then the same number of plain evaluations in a bare loop.
    The fastest of ``repeats`` tries of each is kept (interference from other jobs only adds time)."""
    rng = np.random.default_rng(0)
    layers = (784, 8, 10) if quick else (784, 32, 10)
    rows = []
    for activation in ("sigmoid", "relu"):
        model = ds.MLP(layers, activation=activation)
        obj = ds.Objective(model, "cross_entropy", rng.normal(size=(16, 784)), rng.integers(0, 10, size=16))
        theta = model.init(seed=0)
        for kink_check, batch in ((True, 1), (False, 1), (True, 32)):
            vg = ds.get_differentiator("finite_diff", kink_check=kink_check, batch=batch).value_and_grad(obj)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                n_evals = vg(theta).stats["n_evals"]  # warm-up, and the count for the baseline loop

                params, (inputs, targets) = model.unpack(theta.copy()), obj.data(np.float64)

                def bare_loop():  # what a user would write: evaluate the objective at a flat theta
                    for _ in range(n_evals):
                        obj(NUMPY, theta)

                def strict_loop():  # exactly the call inside our loop, blocks unpacked once
                    for _ in range(n_evals):
                        obj.evaluate(NUMPY, params, inputs, targets)

                tries = {"grad": [], "grad_wall": [], "loop": [], "loop_wall": [], "strict": [], "strict_wall": []}
                for _ in range(repeats):
                    for key, fn in (("grad", lambda: vg(theta)), ("loop", bare_loop), ("strict", strict_loop)):
                        out, cpu, wall = _timed(fn)
                        tries[key].append(cpu), tries[f"{key}_wall"].append(wall)
                        res = out if key == "grad" else res
            t = {k: min(v) for k, v in tries.items()}
            rows.append({"part": "overhead", "method": f"central {activation} kink_check={kink_check}"
                                                      f"{f' batch={batch}' if batch > 1 else ''}",
                         "net": f"{list(layers)} batch 16 {activation} cross_entropy", "n_params": theta.size,
                         "n_evals": n_evals, "grad_s": t["grad"], "eval_s": t["loop"] / n_evals,
                         "ratio": t["grad"] / t["loop"], "ratio_wall": t["grad_wall"] / t["loop_wall"],
                         "ratio_strict": t["grad"] / t["strict"], "ratio_strict_wall": t["grad_wall"] / t["strict_wall"],
                         "kink_params": len(res.stats["kink_params"])})
        on, off = rows[-3], rows[-2]
        on["kink_check_cost"] = on["grad_s"] / off["grad_s"]
    return rows


def loop_cost_rows(rounds: int = 15, m: int = 200):
    """The inner loop alone, in short alternating rounds (robust on a busy machine): 2m evaluations through
    the stencil loop (central, kink tracking off and on) against 2m bare ``objective.evaluate`` calls."""
    from diffsuite.differentiators.finite_diff.namespaces import KinkTracker
    from diffsuite.differentiators.finite_diff import _evaluate_stencil
    rng = np.random.default_rng(1)
    rows = []
    for activation in ("sigmoid", "relu"):
        model = ds.MLP((784, 32, 10), activation=activation)
        obj = ds.Objective(model, "cross_entropy", rng.normal(size=(16, 784)), rng.integers(0, 10, size=16))
        theta, (inputs, targets) = model.init(seed=0), obj.data(np.float64)
        buffer = theta.copy()
        params, tracker = model.unpack(buffer), KinkTracker(NUMPY)

        def call(xp, p):
            return obj.evaluate(xp, p, inputs, targets)

        tracker.start(), call(tracker, params)
        centre = tracker.record()
        points = [buffer + 1e-5, buffer - 1e-5]
        runs = {"bare": lambda: [call(NUMPY, params) for _ in range(2 * m)],
                "loop": lambda: _evaluate_stencil(buffer[:m], params, points, call, NUMPY, None, None, 0),
                "loop_tracked": lambda: _evaluate_stencil(buffer[:m], params, points, call, tracker, tracker, centre, 0)}
        best = {k: float("inf") for k in runs}
        for _ in range(rounds):
            for k, fn in runs.items():
                cpu = time.process_time()
                fn()
                best[k] = min(best[k], (time.process_time() - cpu) / (2 * m))
        rows.append({"part": "loop", "method": f"{activation} [784, 32, 10]", "eval_s": best["bare"],
                     "ratio": best["loop"] / best["bare"], "ratio_tracked": best["loop_tracked"] / best["bare"]})
    return rows


def main(args=ARGS):
    print(f"# finite differences: {platform.processor() or platform.machine()}, numpy {np.__version__}, "
          f"BLAS threads {os.environ['OPENBLAS_NUM_THREADS']}")
    rows = accuracy_rows()
    print(f"\n## accuracy on the lecture's [3, 2, 1] network (reference: {rows[0]['reference']})\n")
    print(f"| {'method':34} | evals | max rel err | cpu per gradient |")
    print(f"|{'-' * 36}|------:|------------:|-----------------:|")
    for r in rows:
        print(f"| {r['method']:34} | {r['n_evals']:5d} | {r['max_rel_err']:11.2e} | {r['time_s'] * 1e6:13.0f} us |")
    over = overhead_rows(args.quick, args.repeats or (1 if args.quick else 5))
    print(f"\n## overhead: {over[0]['net']}, {over[0]['n_params']} parameters, central\n")
    print("Baselines, timed right after each gradient, fastest of the repeats: the same number of plain\n"
          "evaluations `objective(NUMPY, theta)` in a bare loop (ratio), and of the very call our loop makes,\n"
          "`objective.evaluate(NUMPY, blocks, inputs, targets)` with the blocks unpacked once (strict ratio).\n"
          "CPU time of this process (robust to a shared machine); wall-clock ratios in brackets.\n")
    print("| row | evals | gradient (cpu) | one evaluation (cpu) | ratio (wall) | strict ratio (wall) | kink check cost |")
    print("|-----|------:|---------------:|---------------------:|-------------:|--------------------:|----------------:|")
    for r in over:
        cost = f"{r['kink_check_cost']:.3f}x" if "kink_check_cost" in r else ""
        print(f"| {r['method']} | {r['n_evals']} | {r['grad_s']:.2f} s | {r['eval_s'] * 1e6:.1f} us "
              f"| {r['ratio']:.3f} ({r['ratio_wall']:.3f}) | {r['ratio_strict']:.3f} ({r['ratio_strict_wall']:.3f}) "
              f"| {cost} |")
    loop = loop_cost_rows(rounds=5 if args.quick else 15)
    print("\n## the inner loop alone: per-evaluation cost against bare `objective.evaluate` calls\n")
    print("Short alternating rounds (200 parameters, central, 400 evaluations each), fastest round, CPU time.\n")
    print("| net | one evaluation | loop / bare | loop with kink tracking / bare |")
    print("|-----|---------------:|------------:|-------------------------------:|")
    for r in loop:
        print(f"| {r['method']} | {r['eval_s'] * 1e6:.1f} us | {r['ratio']:.3f} | {r['ratio_tracked']:.3f} |")
    everything = rows + over + loop
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=sorted({k for r in everything for k in r}))
            w.writeheader()
            w.writerows(everything)
    return everything


if __name__ == "__main__":
    main()
