"""The symbolic differentiator's setup and per-call cost, against its peers in the same run.

    python benchmarks/bench_symbolic.py            # the lecture's [3, 2, 1] sigmoid net + a deeper one
    python benchmarks/bench_symbolic.py --quick    # fewer repeats, shorter timings (seconds)

Problem: the lecture's [3, 2, 1] sigmoid network (sigmoid output), quadratic loss, one sample, target 1
(``diffsuite.lecture.lecture_network``), and [2, 2, 2, 2, 1] sigmoid (the same loss) to show the trend.

Setup: ``value_and_grad(objective)`` wall time. ``first`` is the first setup in this process (it pays
lazy imports); the others are medians of ``--repeats`` setups, each after ``sympy.core.cache.clear_cache()``
so that SymPy's cache cannot answer from a previous run: ``cse`` (CSE, no metrics: the production path),
``cse+metrics`` (the default options: every expression metric measured too), ``no-cse``, ``symengine``.

Per call, interleaved rounds (every contender sampled in each round, garbage collector paused; the
median sample, and the fastest, which a loaded machine disturbs least): ``kernel`` (the bare compiled
CSE function on a list of floats), ``symbolic`` (the full ``theta -> Gradient`` call: checks, kernel,
numpy array out), ``reverse`` (our tape on numpy), ``hand`` (hand-written numpy backprop,
benchmarks/handwritten.py), ``torch`` (torch.autograd float64 CPU, if installed). Ratios: other /
symbolic. Gradients are checked against reverse mode in the same run.
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=None, help="setups timed per variant (default 5, quick 2)")
    args = p.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    min_time = 0.05 if args.quick else 0.4
    print(f"# bench_symbolic: {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"numpy {np.__version__}, 1 BLAS thread, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    for label, obj, theta in problems():
        t = time.perf_counter()
        vg = ds.get_differentiator("symbolic", metrics=False).value_and_grad(obj)
        first = time.perf_counter() - t
        setups = {"cse": setup_time(obj, repeats, metrics=False),
                  "cse+metrics": setup_time(obj, repeats),
                  "no-cse": setup_time(obj, repeats, cse=False, metrics=False)}
        try:
            setups["symengine"] = setup_time(obj, repeats, engine="symengine", metrics=False)
        except ImportError:
            pass
        res = vg(theta)
        stats = res.stats
        rev = ds.get_differentiator("reverse").value_and_grad(obj)
        err = np.max(np.abs(res.grad - rev(theta).grad)) / np.max(np.abs(rev(theta).grad))
        values = theta.tolist()
        fns = {"kernel": lambda: vg.kernel.fast(values), "symbolic": lambda: vg(theta), "reverse": lambda: rev(theta)}
        hand = HandwrittenMLP(obj.model.layers, "sigmoid", "sigmoid", "quadratic", obj.inputs, obj.prepared_targets)
        fns["hand"] = lambda: hand.value_and_grad(theta)
        if (tf := torch_fn(obj)) is not None:
            fns["torch"] = lambda: tf(theta)
        per_call = measure_all(fns, min_time)
        print(f"\n## {label}: {stats['n_params']} parameters, kernel {stats['kernel_lines']} lines, "
              f"max rel. difference to reverse {err:.1e}")
        print(f"setup (s): first in process {first:.3f}; " + "; ".join(f"{k} {v:.3f}" for k, v in setups.items()))
        print(f"stages (s, first): build {stats['build_s']:.3f}, diff {stats['diff_s']:.3f}, "
              f"cse {stats['cse_s']:.3f}, compile {stats['compile_s']:.3f}")
        for i, what in enumerate(("median", "fastest sample")):
            base = per_call["symbolic"][i]
            print(f"per call (us, {what}), ratio to symbolic: " + "; ".join(
                f"{k} {v[i] * 1e6:.2f} ({v[i] / base:.2f}x)" for k, v in per_call.items()))


if __name__ == "__main__":
    main()
