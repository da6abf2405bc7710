"""The symbolic differentiator's setup and per-call cost, against its peers in the same run.

    python benchmarks/bench_symbolic.py            # the lecture's [3, 2, 1] sigmoid net + a deeper one
    python benchmarks/bench_symbolic.py --quick    # fewer repeats, shorter timings (seconds)

Problem: the lecture's [3, 2, 1] sigmoid network (sigmoid output), quadratic loss, one sample, target 1
(``diffsuite.lecture.lecture_network``), and [2, 2, 2, 2, 1] sigmoid (the same loss) to show the trend.

Process model: a diagnostic of the call path's overhead, not the user's conditions. Every contender runs in
this one process, BLAS is forced to one thread and the garbage collector is paused during each sample: the
quieter in-process mode, which shows what each layer of the call adds around a 1 us kernel. The user's
conditions (a process per contender, wall clock, default allocator and threads) are bench_reverse.py's: its
``--nets 0`` is the same [3, 2, 1] sigmoid architecture (engine against the hand-written code).

Setup: ``value_and_grad(objective)`` wall time. ``first in process`` (first net only) is the first setup in this
process, after ``sympy.core.cache.clear_cache()``: it pays lazy imports. The others are medians of ``--repeats``
setups, each after ``clear_cache()`` so that SymPy's cache cannot answer from a previous run: ``cse`` (CSE, no
metrics: the production path), ``cse+metrics`` (the default options: every expression metric measured too),
``no-cse``, ``symengine``.

Correctness first: before anything is timed, every contender's value and gradient (float64) is compared with the
hand-written numpy backprop's (benchmarks/handwritten.py, which shares no code with diffsuite), and the
hand-written gradient itself with reverse mode's; a relative difference above 1e-12 (of max |gradient|; of
|value| for the value) makes the script exit non-zero, naming the contender and its error.

Per call, interleaved rounds (every contender sampled in each round): ``kernel`` (the bare compiled CSE function
on a list of floats), ``symbolic`` (the full ``theta -> Gradient`` call: checks, kernel, numpy array out),
``reverse`` (our tape on numpy), ``hand`` (hand-written numpy backprop), ``torch`` (torch.autograd float64 CPU,
if installed). Reported: the median sample (the headline) and its ratio to ``symbolic``'s median; the fastest
sample (secondary: what a loaded machine disturbs least); the peak memory of one warm call above the level
before it (``tracemalloc``; for torch its allocator's statistics plus tracemalloc's peak,
``diffsuite.study.memory.peak_bytes``).
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402

import diffsuite as ds  # noqa: E402
from diffsuite.lecture import LECTURE_INPUT, lecture_network  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from handwritten import HandwrittenMLP  # noqa: E402


def problems():
    model, theta = lecture_network()
    yield "[3,2,1] sigmoid (lecture)", ds.Objective(model, "quadratic", LECTURE_INPUT, np.array([[1.0]])), theta
    model = ds.MLP((2, 2, 2, 2, 1), activation="sigmoid", output_activation="sigmoid")
    yield "[2,2,2,2,1] sigmoid", ds.Objective(model, "quadratic", np.array([[0.5, -1.0]]), np.array([[1.0]])), \
        model.init(seed=0)


def setup_time(obj, repeats, **options):
    import sympy
    times = []
    for _ in range(repeats):
        sympy.core.cache.clear_cache()
        t = time.perf_counter()
        ds.get_differentiator("symbolic", **options).value_and_grad(obj)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure_all(fns: dict, min_time: float) -> dict:
    """(median, min) seconds per call of each ``fn()``, sampled in interleaved rounds (robust to changing load)."""
    number = {}
    for name, fn in fns.items():
        t0, n = time.perf_counter(), 0
        while n < 2 or time.perf_counter() - t0 < 0.05:
            fn()
            n += 1
        number[name] = max(1, int(0.005 / ((time.perf_counter() - t0) / n)))
    samples = {name: [] for name in fns}
    start, rounds = time.perf_counter(), 0
    while rounds < 7 or time.perf_counter() - start < min_time * len(fns):
        for name, fn in fns.items():
            k = number[name]
            gc.disable()
            try:
                t = time.perf_counter()
                for _ in range(k):
                    fn()
                samples[name].append((time.perf_counter() - t) / k)
            finally:
                gc.enable()
        rounds += 1
    return {name: (statistics.median(s), min(s)) for name, s in samples.items()}


def torch_fn(obj):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    X, T = torch.tensor(obj.inputs), torch.tensor(obj.prepared_targets)
    layout = list(obj.model.layout.values())

    def value_and_grad(theta):
        t = torch.as_tensor(theta).requires_grad_(True)
        p = [t[a:b].view(shape) for a, b, shape in layout]
        h = X
        for k in range(len(p) // 2):
            h = torch.sigmoid(torch.addmm(p[2 * k + 1], h, p[2 * k]))
        loss = 0.5 * ((h - T) ** 2).sum() / X.shape[0]
        loss.backward()
        return loss.item(), t.grad.numpy()

    return value_and_grad


RTOL = 1e-12  # float64 on nets this small: the contenders agree to a few ulps (measured: below 1e-15)


def relative_error(result: tuple, reference: tuple) -> tuple[float, float]:
    """(value's difference over |reference value|, gradient's largest difference over max |reference gradient|)."""
    v, g = result
    v0, g0 = reference
    g, g0 = np.asarray(g, dtype=np.float64), np.asarray(g0, dtype=np.float64)
    if g.shape != g0.shape:
        return abs(v - v0) / max(abs(v0), 1e-300), float("inf")
    return (abs(v - v0) / max(abs(v0), 1e-300),
            float(np.max(np.abs(g - g0)) / max(float(np.max(np.abs(g0))), 1e-300)))


def check_contenders(label: str, results: dict, reference: tuple, ref_name: str, rtol: float = RTOL) -> dict:
    """``{name: gradient error}`` of each contender's ``(value, gradient)`` against ``reference``; SystemExit naming
    the first contender whose value or gradient is off by more than ``rtol`` (relative), so that nothing wrong is
    timed. A NaN error counts as off."""
    errors = {}
    for name, result in results.items():
        verr, gerr = relative_error(result, reference)
        if not (verr <= rtol and gerr <= rtol):
            what = f"value {result[0]!r} against {reference[0]!r}" if not verr <= rtol else "gradient"
            raise SystemExit(f"{label}: {name}'s {what} differs from {ref_name}'s: relative error "
                             f"{max(verr, gerr) if verr == verr and gerr == gerr else float('nan'):.2e} "
                             f"(tolerance {rtol:g}). The benchmark refuses to time wrong code.")
        errors[name] = gerr
    return errors


def as_pair(r) -> tuple:
    """A contender's result as (value, float64 gradient array): a Gradient or a (value, gradient) pair."""
    if hasattr(r, "grad"):
        return float(r.value), np.asarray(r.grad, dtype=np.float64)
    return float(r[0]), np.asarray(r[1], dtype=np.float64)


def main(argv=None):
    import sympy

    from diffsuite.study.memory import how_for, peak_bytes

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=None, help="setups timed per variant (default 5, quick 2)")
    args = p.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    min_time = 0.05 if args.quick else 0.4
    print(f"# bench_symbolic: {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"numpy {np.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print("# in-process diagnostic of the call path's overhead (one process for all contenders, 1 BLAS thread, "
          "GC paused during samples): not the user's conditions, for which see bench_reverse.py --nets 0")
    for i, (label, obj, theta) in enumerate(problems()):
        sympy.core.cache.clear_cache()
        t = time.perf_counter()
        vg = ds.get_differentiator("symbolic", metrics=False).value_and_grad(obj)
        first = time.perf_counter() - t  # the first in the process only for i == 0 (later: imports already paid)
        setups = {"cse": setup_time(obj, repeats, metrics=False),
                  "cse+metrics": setup_time(obj, repeats),
                  "no-cse": setup_time(obj, repeats, cse=False, metrics=False)}
        try:
            setups["symengine"] = setup_time(obj, repeats, engine="symengine", metrics=False)
        except ImportError:
            pass
        stats = vg(theta).stats
        rev = ds.get_differentiator("reverse").value_and_grad(obj)
        values = theta.tolist()
        fns = {"kernel": lambda: vg.kernel.fast(values), "symbolic": lambda: vg(theta), "reverse": lambda: rev(theta)}
        hand = HandwrittenMLP(obj.model.layers, "sigmoid", "sigmoid", "quadratic", obj.inputs, obj.prepared_targets)
        fns["hand"] = lambda: hand.value_and_grad(theta)
        if (tf := torch_fn(obj)) is not None:
            fns["torch"] = lambda: tf(theta)
        # Correctness before timing: every contender against the hand-written float64 backprop (no diffsuite code),
        # and the hand-written code itself against reverse mode (two independent implementations must agree).
        results = {name: as_pair(fn()) for name, fn in fns.items()}
        errors = check_contenders(label, {k: v for k, v in results.items() if k != "hand"}, results["hand"],
                                  "the hand-written float64 backprop")
        errors.update(check_contenders(label, {"hand": results["hand"]}, results["reverse"], "reverse mode"))
        per_call = measure_all(fns, min_time)
        for fn in fns.values():  # warm again after the timing (peak_bytes: one warm call)
            fn()
        peaks = {name: peak_bytes(fn, how_for(name)) for name, fn in fns.items()}
        print(f"\n## {label}: {stats['n_params']} parameters, kernel {stats['kernel_lines']} lines; every "
              f"gradient within {RTOL:g} of the hand-written one (largest: {max(errors.values()):.1e})")
        print("setup (s): " + (f"first in process {first:.3f}; " if i == 0 else "")
              + "; ".join(f"{k} {v:.3f}" for k, v in setups.items()) + " (medians, SymPy cache cleared)")
        which = "the first setup" if i == 0 else "this net's first setup (SymPy cache cleared)"
        print(f"stages of {which} (s): build {stats['build_s']:.3f}, "
              f"diff {stats['diff_s']:.3f}, cse {stats['cse_s']:.3f}, compile {stats['compile_s']:.3f}")
        base = per_call["symbolic"][0]
        print(f"{'per call':10s} {'median us':>10s} {'/symbolic':>10s} {'fastest us':>11s} {'peak KB':>8s} "
              f"{'grad err':>9s}")
        for k, (median, fastest) in per_call.items():
            print(f"{k:10s} {median * 1e6:10.2f} {median / base:10.2f} {fastest * 1e6:11.2f} "
                  f"{peaks[k] / 1e3:8.2f} {errors[k]:9.1e}")
        print("median: of the interleaved samples (the headline; /symbolic: ratio of medians); fastest: the fastest "
              "sample; peak KB: one warm call above the level before it; grad err: relative to max |gradient| "
              "(hand: against reverse mode, the others against hand)")


if __name__ == "__main__":
    main()
