"""Where the reverse engine's time goes beyond the hand-written code's on one net: its compiled plan alone, theta's
finiteness check at several places in it, and the whole call (a diagnostic, in one process; not the user's conditions).

    python benchmarks/bench_theta_check.py            # [784,128,128,10] b64 relu, 600 rounds
    python benchmarks/bench_theta_check.py --net 3 --rounds 200
    python benchmarks/bench_theta_check.py --own-theta   # the hand-written code on a copy of theta

Contenders, all in this process on the same theta (``--own-theta``: the hand-written code on a copy): ``hand``
(benchmarks/handwritten.py), ``engine`` (the whole ``value_and_grad`` call), ``plan`` (the gradient buffer, theta's blocks as views and the engine's compiled plan,
without any check), ``witness`` (the same with its witness rows checked: what the engine's call runs since the
sixteenth session, plan.py), and the plan with the older check (``np.einsum("i->", theta)``, the engine's fast path
before that) inserted ``first``, ``after_matmul`` (the first layer's product), ``after_bias`` (its bias), ``end``
(after the backward pass). Each round times every contender once (three calls), in a shuffled order, so that what ran before a sample
(which decides what is in the caches) is the same for all on average. Reported: the median over the rounds of a
contender's sample over ``hand``'s sample in the same round, and the middle half of those ratios.

Nets below 10,000 parameters (bench_reverse's row 0, [3,2,1]; row 1 has 25,450) are refused: there the engine
calls its plan's ``run`` without gradient slots and sums theta by ``add.reduce`` or as Python floats, a path these
variants do not copy.

bench_reverse.py gives the user's figure (a process per contender, wall clock); this one says which part of the
engine's call makes the difference.
"""
from __future__ import annotations

import argparse
import gc
import inspect
import math
import os
import random
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_reverse import CASES, make_problem  # noqa: E402
from handwritten import HandwrittenMLP  # noqa: E402

from diffsuite.differentiators.reverse import SLOTS_FROM, Reverse  # noqa: E402

# The engine's fast path (diffsuite/differentiators/reverse/__init__.py: n_params >= 10_000) writes the gradient into
# slots with the plan's run_into and sums theta with einsum: the path the variants below copy. Smaller nets take
# another (run, add.reduce or a Python sum), which this script does not mirror: it refuses them.
MIN_PARAMS = SLOTS_FROM


def plan_variants(plan, theta) -> dict:
    """``run_into`` of the compiled plan, and copies with the check inserted at each place (by the plan's source)."""
    lines = ("def run_into" + plan.source.split("\ndef run_into", 1)[1]).split("\n")
    first_matmul = next(i for i, line in enumerate(lines) if "= F0(" in line)
    places = {"first": 1, "after_matmul": first_matmul + 1, "after_bias": first_matmul + 3,
              "end": max(i for i, line in enumerate(lines) if line.lstrip().startswith("return"))}
    run_into = plan._runs[1]
    variants = {"plan": lambda B, blocks, into: run_into(B, blocks, into, False),
                "witness": lambda B, blocks, into: run_into(B, blocks, into, True)}
    for name, at in places.items():
        code = lines[:at] + ["    if not _isfinite(_einsum('i->', _THETA)): raise ValueError('theta is not finite')"] \
            + lines[at:]
        names = dict(run_into.__globals__, _isfinite=math.isfinite, _einsum=np.einsum, _THETA=theta)
        exec("\n".join(code), names)
        variants[name] = lambda B, blocks, into, run=names["run_into"]: run(B, blocks, into, False)
    return variants


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--net", type=int, default=2, help="row of bench_reverse's table (default 2: [784,128,128,10] b64); "
                   f"nets below {MIN_PARAMS:,} parameters (row 0) are refused: the engine takes another path there")
    p.add_argument("--rounds", type=int, default=600, help="rounds (default 600)")
    p.add_argument("--own-theta", action="store_true",
                   help="the hand-written code on its own copy of theta, so that its reads cannot warm the engine's check")
    args = p.parse_args(argv)
    case = CASES[args.net]
    obj, theta, X, T = make_problem(case)
    if obj.n_params < MIN_PARAMS:
        p.error(f"{case.label} has {obj.n_params} parameters. Below {MIN_PARAMS:,} the engine takes another path than "
                "the one this script times: its plan's run (no gradient slots, the blocks' gradients concatenated) and "
                "theta summed by add.reduce or as Python floats, not run_into with gradient slots and einsum. Use a "
                f"net of {MIN_PARAMS:,} parameters or more: --net " + ", ".join(
                    str(i) for i, c in enumerate(CASES) if make_problem(c)[0].n_params >= MIN_PARAMS))
    engine = Reverse(dtype=case.dtype).value_and_grad(obj)
    engine(theta)  # the first call records the tape and compiles the plan
    plan = inspect.getclosurevars(engine).nonlocals["plan"][0]
    if plan is None:
        raise SystemExit(f"{case.label}: the engine made no plan for this objective")
    hand = HandwrittenMLP(case.layers, case.activation, case.output_activation, case.loss, X, T, case.dtype)
    B = Reverse(dtype=case.dtype).load()
    layout = list(obj.model.layout.items())
    sizes = [b - a for _, (a, b, _) in layout]
    shapes = [shape if len(shape) != 1 else None for _, (_, _, shape) in layout]
    flat = B.asarray(theta)

    def with_buffers(run):
        def call():
            grad = B.empty(obj.n_params)
            return run(B, B.split(flat, sizes, shapes), B.split(grad, sizes, shapes))
        return call

    theta_hand = theta.copy() if args.own_theta else theta
    fns = {"hand": lambda: hand.value_and_grad(theta_hand), "engine": lambda: engine(theta)}
    fns.update({name: with_buffers(run) for name, run in plan_variants(plan, flat).items()})
    for fn in fns.values():
        fn()
    samples: dict = {name: [] for name in fns}
    order = list(fns)
    for _ in range(args.rounds):
        random.shuffle(order)
        for name in order:
            fn = fns[name]
            gc.disable()
            t = time.perf_counter()
            fn(), fn(), fn()
            samples[name].append((time.perf_counter() - t) / 3)
            gc.enable()
    print(f"# {case.label}: {args.rounds} rounds in one process, shuffled; ratios paired with hand's sample of the round")
    print(f"{'contender':14s} {'median us':>10s}  {'/hand':>6s}  (middle half)")
    for name, s in samples.items():
        ratios = [a / b for a, b in zip(s, samples["hand"])]
        q1, q2, q3 = statistics.quantiles(ratios, n=4)
        print(f"{name:14s} {statistics.median(s) * 1e6:10.1f}  {q2:6.3f}  ({q1:.3f}-{q3:.3f})")


if __name__ == "__main__":
    main()
