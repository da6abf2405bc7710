"""The reverse engine of an earlier commit against today's, side by side in one process, interleaved.

    python benchmarks/bench_before_after.py                  # against the foundation commit (0a2c899)
    python benchmarks/bench_before_after.py --commit REV --threads 1 --clock cpu --malloc steady

The old ``diffsuite`` package is extracted from git (``git archive REV diffsuite``) into a temporary folder
as ``diffsuite_old`` (its imports are relative, so it runs beside today's package), and both engines time
``theta -> (value, grad)`` on the benchmark's nets against the same hand-written backprop, with
``bench_reverse``'s harness and options.
"""
from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--commit", default="0a2c899", help="the earlier commit (default: the foundation commit)")
    p.add_argument("--min-time", type=float, default=0.5)
    args, rest = p.parse_known_args()
    os.environ["BENCH_REVERSE_ARGS"] = " ".join(rest)  # --threads, --clock, --malloc go to bench_reverse
    tmp = Path(tempfile.mkdtemp(prefix="diffsuite_old_"))
    blob = subprocess.run(["git", "archive", args.commit, "diffsuite"], cwd=HERE.parent, check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(tmp, filter="data")
    (tmp / "diffsuite").rename(tmp / "diffsuite_old")
    sys.path[:0] = [str(tmp), str(HERE)]

    import bench_reverse as br  # parses --threads/--clock/--malloc and sets the threads before numpy
    import numpy as np
    import time

    import diffsuite as ds
    import diffsuite_old as dso
    from diffsuite_old.differentiators.reverse import Reverse as OldReverse
    from handwritten import HandwrittenMLP

    clock = time.process_time if br.ARGS.clock == "cpu" else time.perf_counter
    info = br.machine()
    print(f"before = commit {args.commit}, after = the working tree; {br.describe_machine(info)}")
    print(f"{'net':32s} {'hand ms':>9s} {'before ms':>10s} {'/hand':>6s} {'after ms':>9s} {'/hand':>6s} {'speed-up':>8s}")
    for case in br.CASES:
        obj, theta, X, T = br.make_problem(case)
        old_model = dso.MLP(layers=case.layers, activation=case.activation, output_activation=case.output_activation)
        old = OldReverse(dtype=case.dtype).value_and_grad(dso.Objective(old_model, case.loss, X, T))
        new = ds.get_differentiator("reverse", dtype=case.dtype).value_and_grad(obj)
        hand = HandwrittenMLP(case.layers, case.activation, case.output_activation, case.loss, X, T, case.dtype)
        g0 = hand.value_and_grad(theta)[1]
        for f in (old, new):
            assert np.max(np.abs(f(theta).grad - g0)) <= 1e-4 * np.max(np.abs(g0)), case.label
        t = br.measure_all({"hand": lambda: hand.value_and_grad(theta), "before": lambda: old(theta),
                            "after": lambda: new(theta)}, args.min_time, clock)
        print(f"{case.label:32s} {t['hand'] * 1e3:9.3f} {t['before'] * 1e3:10.3f} {t['before'] / t['hand']:6.2f} "
              f"{t['after'] * 1e3:9.3f} {t['after'] / t['hand']:6.2f} {t['before'] / t['after']:8.2f}")


if __name__ == "__main__":
    main()
