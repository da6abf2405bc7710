"""The certified reference against the reference it replaced, on the same random small problems, in one run.

    python benchmarks/bench_reference.py                # 20 problems of the random campaign (seeds 0-19)
    python benchmarks/bench_reference.py --n 5 --seed 100
    python benchmarks/bench_reference.py --agreement    # the agreement tests' problems: MLP (3, 4, 3), batch 5

Contenders, each in its own process (wall clock per problem, peak memory of the process):

- ``certified``: ``reference_gradient`` (arb ball arithmetic, precision raised until every entry rounds
  to one float64; the chain rule over the exact, unevaluated loss DAG);
- ``legacy``: what ``reference_gradient`` did before: the loss built with SymPy's evaluation, differentiated
  by SymEngine, converted back to SymPy and evaluated by mpmath at a fixed 50 digits (the pipeline is
  rebuilt here from the library's own pieces).

Each process first solves one untimed problem (imports, caches), then times every problem once. The
report gives per-problem seconds, the ratio legacy / certified per problem (median, min) and in total,
and whether the two float64 gradients agree (they need not: 50 digits can be wrong in saturation).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def _legacy(obj, theta):
    import mpmath
    import numpy as np

    from diffsuite.budget import Budget
    from diffsuite.differentiators.symbolic.build import build_objective, differentiate
    from diffsuite.differentiators.symbolic.codegen import evaluate_mp
    from diffsuite.differentiators.symbolic.symengine_bridge import from_symengine
    problem, data_values = build_objective(obj)
    _, grads = differentiate(problem, "symengine", Budget())
    memo: dict = {}
    grads = [from_symengine(g, memo) for g in grads]
    ctx = mpmath.MPContext()
    ctx.dps = 50
    names = [p.name for p in problem.params] + [d.name for d in problem.data]
    values = {n: ctx.mpf(v) for n, v in zip(names, list(theta) + data_values)}
    out = evaluate_mp([problem.loss] + grads, values, ctx)
    return np.array([mpmath.libmp.to_float(v._mpf_, rnd="n") for v in out[1:]])


def _certified(obj, theta):
    from diffsuite.reference import reference_gradient
    return reference_gradient(obj, theta).grad


AGREEMENT = [(a, "quadratic", "l1+l2") for a in ("tanh", "sigmoid", "relu", "elu", "maxout")] + \
            [("tanh", lo, "l1+l2") for lo in ("binary_cross_entropy", "cross_entropy", "hinge")]


def _agreement_problem(k: int):
    """tests/cases.py's agreement problem k of AGREEMENT (MLP (3, 4, 3), batch 5, seed 0)."""
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from cases import make_case
    act, loss, reg = AGREEMENT[k]
    obj, theta = make_case(act, loss, reg)
    return obj, theta, {"activation": act, "loss": loss, "reg": reg, "layers": "(3, 4, 3)"}


def worker(contender: str, seeds: list[int], agreement: bool) -> None:
    """Run in a child process: print one JSON line per problem."""
    import resource

    from diffsuite.reference.campaign import random_problem
    fn = {"legacy": _legacy, "certified": _certified}[contender]
    fn(*random_problem(10_000)[:2])  # warm-up, untimed
    for seed in seeds:
        obj, theta, desc = _agreement_problem(seed) if agreement else random_problem(seed)
        t = time.perf_counter()
        try:
            g, err = [float(v) for v in fn(obj, theta)], None
        except Exception as e:  # noqa: BLE001 - a failure is a result
            g, err = None, f"{type(e).__name__}: {str(e)[:80]}"
        dt = time.perf_counter() - t
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"seed": seed, "s": dt, "grad": g, "error": err, "peak_mb": rss,
                          "problem": f"{desc['activation']}/{desc['loss']}/{desc['reg']} {desc['layers']}"}),
              flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=20, help="problems (default 20)")
    p.add_argument("--seed", type=int, default=0, help="first campaign seed (default 0)")
    p.add_argument("--agreement", action="store_true", help="the agreement tests' 8 problems instead (slow: legacy)")
    p.add_argument("--worker", choices=["legacy", "certified"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    seeds = list(range(len(AGREEMENT))) if args.agreement else list(range(args.seed, args.seed + args.n))
    if args.worker:
        worker(args.worker, seeds, args.agreement)
        return
    results = {}
    for contender in ("certified", "legacy"):
        out = subprocess.run([sys.executable, __file__, "--worker", contender, "--n", str(args.n), "--seed",
                              str(args.seed)] + (["--agreement"] if args.agreement else []),
                             capture_output=True, text=True, check=True)
        results[contender] = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    import numpy as np
    print(f"{'seed':>4}  {'problem':<46} {'certified s':>11} {'legacy s':>9} {'ratio':>7}  same float64")
    ratios = []
    for c, lg in zip(results["certified"], results["legacy"]):
        ratio = lg["s"] / c["s"]
        ratios.append(ratio)
        same = "error" if c["grad"] is None or lg["grad"] is None else ("yes" if c["grad"] == lg["grad"] else "NO")
        print(f"{c['seed']:>4}  {c['problem']:<46} {c['s']:>11.4f} {lg['s']:>9.3f} {ratio:>7.1f}  {same}")
    tc = sum(r["s"] for r in results["certified"])
    tl = sum(r["s"] for r in results["legacy"])
    print(f"total: certified {tc:.2f} s, legacy {tl:.2f} s, ratio {tl / tc:.1f}x; per-problem ratio median "
          f"{np.median(ratios):.1f}x, min {min(ratios):.1f}x; peak memory certified "
          f"{results['certified'][-1]['peak_mb']:.0f} MB, legacy {results['legacy'][-1]['peak_mb']:.0f} MB")


if __name__ == "__main__":
    main()
