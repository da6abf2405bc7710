"""Per-epoch time of minibatch training on digits: diffsuite's reverse mode against the same loop in PyTorch.

    python benchmarks/bench_training.py                    # 5 rounds x 3 epochs each, float64, one thread
    python benchmarks/bench_training.py --rounds 3 --epochs 2 --batch 64

The loop, in both: MLP (64, 32, 10) tanh, cross-entropy, SGD (lr 0.1, momentum 0.9); each epoch draws one
permutation of the 1347 training rows from ``default_rng(seed)`` and takes minibatches of ``--batch``
rows: slice the batch, loss and gradient, optimizer step. diffsuite: ``value_and_grad(obj)(theta,
batch=(X, y))`` (the batch checked on every call) and ``diffsuite.optim.SGD``; PyTorch: the same
parameters as leaf tensors, ``torch.autograd`` and ``torch.optim.SGD``. No evaluation is timed.

Each contender runs in its own process (``--contender``), one thread (BLAS, OpenMP, torch), float64;
the rounds alternate contenders so that load changes on a shared machine hit both. Reported: the median
per-epoch wall time of each, their ratio (diffsuite / torch; the issue's target is <= 1.3), the peak
resident memory of each process, and that both reach the same parameters (they follow the same
trajectory to rounding).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"


def run_diffsuite(args) -> tuple[list[float], "np.ndarray"]:
    import time

    import numpy as np

    import diffsuite as ds
    from diffsuite import data
    from diffsuite.optim import SGD

    d = data.load("digits", seed=0)
    model = ds.MLP((64, 32, 10), activation="tanh")
    obj = ds.Objective(model, "cross_entropy", d.X_train[:args.batch], d.y_train[:args.batch])
    vg = ds.get_differentiator("reverse").value_and_grad(obj)
    theta, opt, rng = model.init(0), SGD(lr=0.1, momentum=0.9), np.random.default_rng(args.seed)
    X_all, y_all = d.X_train, d.y_train
    times = []
    for _ in range(args.epochs):
        t = time.perf_counter()
        order = rng.permutation(len(y_all))
        for start in range(0, len(order), args.batch):
            idx = order[start:start + args.batch]
            theta = opt.step(theta, vg(theta, batch=(X_all[idx], y_all[idx])).grad)
        times.append(time.perf_counter() - t)
    return times, theta


def run_torch(args) -> tuple[list[float], "np.ndarray"]:
    import time

    import numpy as np
    import torch

    import diffsuite as ds
    from diffsuite import data

    torch.set_num_threads(1)
    d = data.load("digits", seed=0)
    model = ds.MLP((64, 32, 10), activation="tanh")
    theta0 = model.unpack(model.init(0))
    params = [torch.tensor(theta0[k], dtype=torch.float64, requires_grad=True) for k in ("W0", "b0", "W1", "b1")]
    W0, b0, W1, b1 = params
    opt, rng = torch.optim.SGD(params, lr=0.1, momentum=0.9), np.random.default_rng(args.seed)
    X_all, y_all = torch.from_numpy(d.X_train), torch.from_numpy(d.y_train)
    times = []
    for _ in range(args.epochs):
        t = time.perf_counter()
        order = torch.from_numpy(rng.permutation(len(y_all)))
        for start in range(0, len(order), args.batch):
            idx = order[start:start + args.batch]
            opt.zero_grad()
            logits = torch.tanh(X_all[idx] @ W0 + b0) @ W1 + b1
            torch.nn.functional.cross_entropy(logits, y_all[idx]).backward()
            opt.step()
        times.append(time.perf_counter() - t)
    theta = np.concatenate([p.detach().numpy().ravel() for p in params])
    return times, theta


def contender(args) -> None:
    import resource

    times, theta = (run_diffsuite if args.contender == "diffsuite" else run_torch)(args)
    print(json.dumps({"times": times, "theta": theta.tolist(),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5, help="processes per contender, alternating (default 5)")
    p.add_argument("--epochs", type=int, default=3, help="epochs timed per process (default 3)")
    p.add_argument("--batch", type=int, default=32, help="minibatch size (default 32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--contender", choices=("diffsuite", "torch"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.contender:
        return contender(args)
    import numpy as np

    results = {"diffsuite": [], "torch": []}
    for _ in range(args.rounds):
        for name in results:
            cmd = [sys.executable, __file__, "--contender", name, "--epochs", str(args.epochs),
                   "--batch", str(args.batch), "--seed", str(args.seed)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            results[name].append(json.loads(out.strip().splitlines()[-1]))
    # the first epoch of a process includes warm-up (imports, allocator, torch's first-call costs): dropped
    per_epoch = {k: float(np.median([t for r in v for t in r["times"][1:] or r["times"]])) for k, v in results.items()}
    rss = {k: max(r["peak_rss_mib"] for r in v) for k, v in results.items()}
    gap = float(np.max(np.abs(np.array(results["diffsuite"][0]["theta"]) - np.array(results["torch"][0]["theta"]))))
    n_steps = -(-1347 // args.batch)
    print(f"digits MLP (64, 32, 10) tanh, cross-entropy, SGD momentum 0.9, batch {args.batch} ({n_steps} steps per "
          f"epoch), float64, one thread; median of {args.rounds} processes x {max(args.epochs - 1, 1)} epochs each")
    for k in results:
        print(f"  {k:9s} {per_epoch[k] * 1e3:8.1f} ms/epoch  ({per_epoch[k] / n_steps * 1e6:6.0f} us/step)  "
              f"peak RSS {rss[k]:6.0f} MiB")
    print(f"  ratio diffsuite / torch: {per_epoch['diffsuite'] / per_epoch['torch']:.2f} (target <= 1.3)")
    print(f"  max |theta_diffsuite - theta_torch| after {args.epochs} epochs: {gap:.1e}")


if __name__ == "__main__":
    main()
