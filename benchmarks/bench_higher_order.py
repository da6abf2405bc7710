"""Cost of second derivatives and of forward mode, against one reverse-mode gradient, each in its own process.

    python benchmarks/bench_higher_order.py            # both cases, 1 s per contender
    python benchmarks/bench_higher_order.py --quick    # a smoke run (0.2 s per contender)

Cases and targets (issue: higher order):

- ``[784,128,128,10] b64 relu cross_entropy``: Hessian-vector products against one gradient. Target:
  forward-over-reverse HVP <= 4x the reverse gradient (Pearlmutter's bound says about 2-4).
  Contenders: ``grad`` (``get_differentiator("reverse").value_and_grad``), ``hvp_fwd_rev``
  (``get_differentiator("forward").hvp``), ``hvp_rev_rev`` (``get_differentiator("reverse").hvp``),
  ``torch_grad`` and ``torch_hvp`` (torch.autograd, ``torch.autograd.functional.hvp``: double backward).
- ``[3,2,1] b1 sigmoid quadratic`` (the lecture's net): forward-mode ``grad`` (n = 11 JVPs in one pass of
  batched tangents) against reverse mode. Target: within 2x.

Each contender runs in a fresh Python process (``--contender``), so no contender inherits another's heap,
caches or threads: warm-up, then samples of ``number`` calls (each sample >= 10 ms) for ``min_time``,
median per call, wall clock; the child reports its peak resident memory (VmHWM) too. ``--rounds``
(default 3) rounds run every contender in turn; the ratio to ``grad`` is taken per round (so a change of
the machine's load hits both sides of a ratio) and its median reported with every round's value. Threads: BLAS
and torch get ``--threads`` (default 1). Results are checked before timing: every HVP is compared with
torch's (relative 1e-10), forward mode's gradient with reverse mode's.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CASES = {
    "mnist": dict(layers=(784, 128, 128, 10), batch=64, activation="relu", output="identity", loss="cross_entropy"),
    "lecture": dict(layers=(3, 2, 1), batch=1, activation="sigmoid", output="sigmoid", loss="quadratic"),
}
CONTENDERS = {
    "mnist": ("grad", "hvp_fwd_rev", "hvp_rev_rev", "torch_grad", "torch_hvp"),
    "lecture": ("grad", "fwd_grad"),
}
TARGETS = {("mnist", "hvp_fwd_rev", "grad"): 4.0, ("lecture", "fwd_grad", "grad"): 2.0}


def problem(case: str):
    import numpy as np

    import diffsuite as ds

    c = CASES[case]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(c["batch"], c["layers"][0]))
    T = (rng.integers(0, c["layers"][-1], size=c["batch"]) if c["loss"] == "cross_entropy"
         else rng.uniform(size=(c["batch"], c["layers"][-1])))
    model = ds.MLP(c["layers"], activation=c["activation"], output_activation=c["output"])
    obj = ds.Objective(model, c["loss"], X, T)
    theta = model.init(seed=0)
    return obj, theta, rng.normal(size=theta.size)


def torch_fns(obj, case):
    import torch

    X = torch.as_tensor(obj.inputs)
    T = torch.as_tensor(obj.prepared_targets)
    layout = list(obj.model.layout.values())
    c = CASES[case]
    act = {"relu": torch.relu, "sigmoid": torch.sigmoid, "identity": lambda z: z}
    acts = [act[c["activation"]]] * (len(layout) // 2 - 1) + [act[c["output"]]]

    def loss(t):
        h = X
        for k, f in enumerate(acts):
            (a, b, sw), (p, q, _) = layout[2 * k], layout[2 * k + 1]
            h = f(h @ t[a:b].view(sw) + t[p:q])
        if c["loss"] == "cross_entropy":
            return (torch.logsumexp(h, dim=1).sum() - (T * h).sum()) / h.shape[0]
        return 0.5 * ((h - T) ** 2).sum() / h.shape[0]

    def grad(theta):
        t = torch.as_tensor(theta).requires_grad_()
        (g,) = torch.autograd.grad(loss(t), t)
        return g.numpy()

    def hvp(theta, v):
        return torch.autograd.functional.hvp(loss, torch.as_tensor(theta), torch.as_tensor(v))[1].numpy()

    return grad, hvp


def make(case: str, name: str):
    """``(fn(), result)`` for one contender: a call to time and what it computes (for the check)."""
    import diffsuite as ds

    obj, theta, v = problem(case)
    if name == "grad":
        f = ds.get_differentiator("reverse").value_and_grad(obj)
        return lambda: f(theta), lambda: f(theta).grad
    if name == "fwd_grad":
        f = ds.get_differentiator("forward").value_and_grad(obj)
        return lambda: f(theta), lambda: f(theta).grad
    if name in ("hvp_fwd_rev", "hvp_rev_rev"):
        f = ds.get_differentiator("forward" if name == "hvp_fwd_rev" else "reverse").hvp(obj)
        return lambda: f(theta, v), lambda: f(theta, v)
    grad, hvp = torch_fns(obj, case)
    if name == "torch_grad":
        return lambda: grad(theta), lambda: grad(theta)
    return lambda: hvp(theta, v), lambda: hvp(theta, v)


def child(case: str, name: str, min_time: float) -> dict:
    """Time one contender in this (fresh) process: median seconds per call, peak RSS in MB."""
    import gc
    import time

    fn, _ = make(case, name)
    t0, n = time.perf_counter(), 0
    while n < 3 or time.perf_counter() - t0 < 0.2 * min_time:  # warm-up and calibration
        fn()
        n += 1
    number = max(1, int(0.01 / ((time.perf_counter() - t0) / n)))
    samples, start = [], time.perf_counter()
    while len(samples) < 5 or time.perf_counter() - start < min_time:
        gc.collect()
        gc.disable()
        t = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t) / number)
        gc.enable()
    return {"case": case, "contender": name, "seconds": statistics.median(samples), "samples": len(samples),
            "peak_rss_mb": _peak_rss_mb()}


def _peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM (reset by exec, unlike ru_maxrss, which keeps the forking
    parent's peak on Linux); ru_maxrss where /proc is missing."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


CHECKS = {"mnist": [("hvp_fwd_rev", "torch_hvp"), ("hvp_rev_rev", "torch_hvp"), ("grad", "torch_grad")],
          "lecture": [("fwd_grad", "grad")]}


def check(case: str) -> None:
    """Refuse to time wrong code: HVPs against torch's, forward mode's gradient against reverse mode's."""
    import numpy as np

    for name, ref_name in CHECKS[case]:
        r, ref = make(case, name)[1](), make(case, ref_name)[1]()
        err = float(np.max(np.abs(r - ref)) / max(np.max(np.abs(ref)), 1e-300))
        if err > 1e-10:
            raise SystemExit(f"{case}: {name} differs from {ref_name} by {err:.2e} (relative): not timed")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="0.2 s per contender")
    p.add_argument("--threads", type=int, default=1, help="BLAS and torch threads in each child (default 1)")
    p.add_argument("--cases", default=",".join(CASES), help=f"comma list of {', '.join(CASES)}")
    p.add_argument("--rounds", type=int, default=3, help="rounds of one process per contender (default 3)")
    p.add_argument("--contender", nargs=3, metavar=("CASE", "NAME", "MIN_TIME"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.contender:
        case, name, min_time = args.contender
        if name.startswith("torch"):  # only torch's contenders load torch (its memory is not charged to ours)
            import torch
            torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        print(json.dumps(child(case, name, float(min_time))))
        return
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads),
               MKL_NUM_THREADS=str(args.threads))
    min_time = 0.2 if args.quick else 1.0
    for case in args.cases.split(","):
        check(case)
        runs: dict = {name: [] for name in CONTENDERS[case]}
        for _ in range(args.rounds):  # rounds of every contender in turn: load changes hit all of a round alike
            for name in CONTENDERS[case]:
                out = subprocess.run([sys.executable, __file__, "--contender", case, name, str(min_time)], env=env,
                                     capture_output=True, text=True, check=True).stdout
                runs[name].append(json.loads(out.strip().splitlines()[-1]))
        print(f"\n{case}: {CASES[case]}  (threads={args.threads}, wall clock; median over {args.rounds} rounds of the "
              "per-round median time and of the per-round ratio to grad)")
        ratios = {name: [r["seconds"] / g["seconds"] for r, g in zip(rs, runs["grad"])] for name, rs in runs.items()}
        for name, rs in runs.items():
            sec = statistics.median(r["seconds"] for r in rs)
            rss = max(r["peak_rss_mb"] for r in rs)
            q = ratios[name]
            print(f"  {name:12s} {sec * 1e3:9.3f} ms   {statistics.median(q):5.2f}x grad (rounds: "
                  f"{', '.join(f'{x:.2f}' for x in q)})   peak RSS {rss:7.1f} MB")
        for (c, a, b), bound in TARGETS.items():
            if c == case:
                ratio = statistics.median(r["seconds"] / g["seconds"] for r, g in zip(runs[a], runs[b]))
                print(f"  target {a}/{b} <= {bound}: {ratio:.2f} {'met' if ratio <= bound else 'NOT MET'}")

if __name__ == "__main__":
    main()
