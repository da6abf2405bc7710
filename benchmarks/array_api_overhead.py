"""Per-op overhead of array-api-compat over plain numpy / torch calls (docs/reverse.md quotes the result).

    python benchmarks/array_api_overhead.py

Times a few calls the engine makes on a small (16, 32) float64 array, plain and through
``array_api_compat.array_namespace(x)``; prints microseconds per call and the difference.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
import time  # noqa: E402
import timeit  # noqa: E402

import numpy as np  # noqa: E402


def per_call(f, number=20000):
    return min(timeit.repeat(f, number=number, repeat=7, timer=time.thread_time)) / number * 1e6


def main():
    try:
        import array_api_compat
    except ImportError:
        raise SystemExit("needs array-api-compat: pip install array-api-compat")
    rows = []
    libs = [("numpy", np, np.random.default_rng(0).normal(size=(16, 32)))]
    try:
        import torch

        torch.set_num_threads(1)
        libs.append(("torch", torch, torch.randn(16, 32, dtype=torch.float64)))
    except ImportError:
        pass
    for name, lib, x in libs:
        xp = array_api_compat.array_namespace(x)
        calls = {
            "exp": (lambda: lib.exp(x), lambda: xp.exp(x)),
            "sum(axis=0)": ((lambda: x.sum(axis=0)) if name == "numpy" else (lambda: x.sum(dim=0)),
                            lambda: xp.sum(x, axis=0)),
            "maximum": (lambda: lib.maximum(x, x), lambda: xp.maximum(x, x)),
            "matmul": (lambda: lib.matmul(x.T, x), lambda: xp.matmul(xp.matrix_transpose(x), x)),
            "where": (lambda: lib.where(x > 0, x, x), lambda: xp.where(x > 0, x, x)),
        }
        for op, (plain, compat) in calls.items():
            a, b = per_call(plain), per_call(compat)
            rows.append((name, op, a, b))
    print(f"array-api-compat {array_api_compat.__version__}; microseconds per call (min of 7 x 20000)")
    print(f"{'library':8s} {'op':12s} {'plain':>8s} {'compat':>8s} {'extra':>8s}")
    for name, op, a, b in rows:
        print(f"{name:8s} {op:12s} {a:8.2f} {b:8.2f} {b - a:+8.2f}")


if __name__ == "__main__":
    main()
