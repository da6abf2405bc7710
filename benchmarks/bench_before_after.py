"""The reverse engine of an earlier commit against today's, side by side, each in a process of its own.

    python benchmarks/bench_before_after.py --commit REV            # the user's conditions (wall clock, defaults)
    python benchmarks/bench_before_after.py --commit REV --clock cpu --threads 1

The old ``diffsuite`` package is extracted from git (``git archive REV diffsuite``) into a temporary folder,
and ``bench_reverse``'s harness runs three contenders on the benchmark's nets, interleaved: the hand-written
backprop, the engine of REV (a worker process whose ``PYTHONPATH`` starts with the old package) and today's.
Every other option (``--threads``, ``--clock``, ``--malloc``, ``--rounds``, ``--min-time``, ``--nets``) is
``bench_reverse``'s.
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
    p.add_argument("--commit", required=True, help="the earlier commit")
    args, rest = p.parse_known_args()
    os.environ["BENCH_REVERSE_ARGS"] = " ".join(rest)  # the harness's own options
    sys.path.insert(0, str(HERE))
    import bench_reverse as br

    with tempfile.TemporaryDirectory(prefix="diffsuite_before_") as tmp:
        blob = subprocess.run(["git", "archive", args.commit, "diffsuite"], cwd=HERE.parent, check=True,
                              capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            tar.extractall(tmp, filter="data")
        now = os.pathsep.join([str(HERE.parent)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
        envs = {"before": ("engine", {"PYTHONPATH": tmp}), "after": ("engine", {"PYTHONPATH": now})}
        rounds, min_time = br.ARGS.rounds or 7, br.ARGS.min_time or 1.0
        cases = [br.CASES[int(i)] for i in br.ARGS.nets.split(",")] if br.ARGS.nets else br.CASES
        print(f"before = commit {args.commit}, after = the working tree; {br.describe_machine(br.machine())}")
        print(f"{'net':34s} {'hand ms':>9s} {'before ms':>10s} {'/hand':>6s} {'after ms':>9s} {'/hand':>6s} "
              f"{'speed-up':>8s} {'MB before':>9s} {'MB after':>9s} {'faults b/a':>11s}")
        for case in cases:
            # the harness's own conditions: the settle pause and several processes per contender (bench_reverse's
            # options), so that no one process's heap or thread placement decides a row
            c = br.measure_case(case, ["hand"], rounds, min_time, envs, settle=br.ARGS.settle,
                                processes=br.ARGS.processes)["contenders"]
            t = {k: sorted(v["seconds"])[len(v["seconds"]) // 2] for k, v in c.items()}
            print(f"{case.label:34s} {t['hand'] * 1e3:9.3f} {t['before'] * 1e3:10.3f} {t['before'] / t['hand']:6.2f} "
                  f"{t['after'] * 1e3:9.3f} {t['after'] / t['hand']:6.2f} {t['before'] / t['after']:8.2f} "
                  f"{c['before']['peak_bytes'] / 1e6:9.2f} {c['after']['peak_bytes'] / 1e6:9.2f} "
                  f"{sorted(c['before']['faults'])[len(c['before']['faults']) // 2]:5.0f}/"
                  f"{sorted(c['after']['faults'])[len(c['after']['faults']) // 2]:<5.0f}")


if __name__ == "__main__":
    main()
