"""Speed of the contraction primitives: einsum / tensordot value and gradient against numpy + a hand-written VJP.

    python benchmarks/bench_einsum.py                # [256, 512] x [512, 512], one BLAS thread, CPU time
    python benchmarks/bench_einsum.py --threads 2 --clock wall --repeats 15

Contenders, each in its own process (so neither warms the other's caches or allocator), each timing
``(A, B) -> (value, dA, dB)`` of ``f = sum(G * contract(A, B))`` with a fixed cotangent G:

- ``numpy+hand``   ``np.einsum(..., optimize=True)`` (BLAS) forward, and the hand-written VJP ``G @ B.T``, ``A.T @ G``
- ``einsum``       ``get_differentiator("reverse").grad`` of ``xp.einsum("ij,jk->ik", A, B)``
- ``tensordot``    the same with ``xp.tensordot(A, B, axes=1)``

Reported: the median of ``--repeats`` calls after a warm-up, and each contender's ratio to ``numpy+hand``.
CPU time (``--clock cpu``, the default) is what other processes on a shared machine cannot inflate.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

SHAPE_A, SHAPE_B = (256, 512), (512, 512)


def run_one(name: str, repeats: int, clock: str) -> float:
    import time

    import numpy as np
    rng = np.random.default_rng(0)
    A, B, G = rng.normal(size=SHAPE_A), rng.normal(size=SHAPE_B), rng.normal(size=(SHAPE_A[0], SHAPE_B[1]))
    if name == "numpy+hand":
        def call():
            out = np.einsum("ij,jk->ik", A, B, optimize=True)
            return float(np.sum(G * out)), G @ B.T, A.T @ G
    else:
        import diffsuite as ds
        contract = {"einsum": lambda xp, a, b: xp.einsum("ij,jk->ik", a, b),
                    "tensordot": lambda xp, a, b: xp.tensordot(a, b, axes=1)}[name]
        vg = ds.get_differentiator("reverse").value_and_grad_fn(lambda xp, p: xp.sum(G * contract(xp, p[0], p[1])))

        def call():
            res = vg((A, B))
            return res.value, res.grad[0], res.grad[1]
    timer = time.process_time if clock == "cpu" else time.perf_counter
    for _ in range(3):
        call()
    samples = []
    for _ in range(repeats):
        t = timer()
        call()
        samples.append(timer() - t)
    return float(np.median(samples))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.repeats, args.clock)))
        return
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads),
               MKL_NUM_THREADS=str(args.threads))
    times = {}
    for name in ("numpy+hand", "einsum", "tensordot"):
        out = subprocess.run([sys.executable, __file__, "--one", name, "--repeats", str(args.repeats),
                              "--clock", args.clock], env=env, capture_output=True, text=True, check=True)
        times[name] = json.loads(out.stdout.strip().splitlines()[-1])
    base = times["numpy+hand"]
    print(f"[256,512] x [512,512], value + both gradients, {args.threads} BLAS thread(s), {args.clock} time, "
          f"median of {args.repeats}")
    for name, t in times.items():
        print(f"  {name:<11} {t * 1e3:8.2f} ms   ratio {t / base:5.2f}")


if __name__ == "__main__":
    main()
