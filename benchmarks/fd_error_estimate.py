"""Does Richardson's error estimate bound its true error? A random campaign against the reference.

    python benchmarks/fd_error_estimate.py                  # 200 random problems (a few minutes on 2 cores)
    python benchmarks/fd_error_estimate.py -n 40 --seed 7   # fewer, another draw
    python benchmarks/fd_error_estimate.py --cache refs.npz # keep the reference gradients between runs

Each problem is a small random MLP (1-3 inputs, one hidden layer of 1-3 units, 1-2 outputs, batch 1-4)
with a random hidden activation (sigmoid, tanh, relu, leaky_relu, elu, identity, maxout), loss
(quadratic, binary cross-entropy on a sigmoid output, softmax cross-entropy, hinge), sometimes L1/L2,
at parameters drawn from N(0, s^2) with s in {0.3, 1, 3}. The reference is ``ds.reference_gradient``
(its exact float64 rounding, whichever engine the installed diffsuite uses). A problem whose float64 value
f(theta) is not finite (a saturated sigmoid under binary cross-entropy: log(0)) has no float64 gradient to
approximate; it is skipped and counted, as is a problem with a reference entry exactly at a float64 rounding
tie (``NotCertified``: either neighbour is as near; a dead relu unit can make one). Reported per scheme:

- ``bounded``: problems where ``stats["error_estimate"]`` >= |g - ref| for every entry (Richardson);
- ``entries bounded``: the same per entry;
- ``kink runs``: problems with an entry still reported as straddling a kink (``kink_params``), and
  problems where some entry's step was shortened because its first stencil straddled one;
- errors: normwise max|g - ref| / max|ref| (median and max over problems) and elementwise
  max_i |g_i - ref_i| / |ref_i| over entries with ref_i != 0;
- ``refused``: problems where the differentiator raised (counted as not bounded);
- evaluations per parameter (mean), the retries included.

``--dtype float32`` runs the finite differences in float32 against the same reference (the exact gradient
at the float64 point, so the float32 rounding of theta counts as error).

Runs against whatever ``diffsuite`` is importable, so the same script measures an older checkout too
(``PYTHONPATH=old/checkout``); a stat the older code lacks is reported as missing.
"""
from __future__ import annotations

import argparse
import warnings

import numpy as np

import diffsuite as ds
from diffsuite.namespace import NUMPY
from diffsuite.reference.certificate import NotCertified

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "identity", "maxout")
LOSSES = ("quadratic", "binary_cross_entropy", "cross_entropy", "hinge")
SCALES = (0.3, 1.0, 3.0)


def problem(seed: int):
    """(objective, theta, description) for one seed."""
    rng = np.random.default_rng(seed)
    act, loss = ACTIVATIONS[rng.integers(len(ACTIVATIONS))], LOSSES[rng.integers(len(LOSSES))]
    n_in, width, n_out, batch = (int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 3)),
                                 int(rng.integers(1, 5)))
    if loss == "cross_entropy":
        n_out = max(n_out, 2)
    model = ds.MLP((n_in, width, n_out), activation=act,
                   output_activation="sigmoid" if loss == "binary_cross_entropy" else "identity")
    x = rng.normal(size=(batch, n_in))
    targets = {"quadratic": rng.normal(size=(batch, n_out)),
               "binary_cross_entropy": rng.uniform(0, 1, (batch, n_out)),
               "cross_entropy": rng.integers(0, n_out, batch),
               "hinge": rng.choice([-1.0, 1.0], (batch, n_out))}[loss]
    reg = rng.choice(["", "l1", "l2"], p=[0.6, 0.2, 0.2])
    obj = ds.Objective(model, loss, x, targets, **({reg: 0.01} if reg else {}))
    scale = SCALES[rng.integers(len(SCALES))]
    theta = rng.normal(scale=scale, size=model.n_params)
    return obj, theta, f"{act}/{loss}{'/' + reg if reg else ''} n={model.n_params} scale={scale}"


def reference(obj, theta, seed, cache):
    if cache is not None and str(seed) in cache:
        return cache[str(seed)]
    ref = np.asarray(ds.reference_gradient(obj, theta).grad, dtype=np.float64)
    if cache is not None:
        cache[str(seed)] = ref
    return ref


def measure(options: dict, obj, theta, ref):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = ds.get_differentiator("finite_diff", **options).value_and_grad(obj)(theta)
    except Exception as e:  # noqa: BLE001 - a refusal is a result: counted, and the problem fails
        return {"normwise": np.nan, "elementwise": np.nan, "bounded": False if options["scheme"] == "richardson"
                else None, "entries": (0, theta.size), "kink": False, "kink_retry": False, "evals": np.nan,
                "worst": np.inf, "refused": type(e).__name__}
    err = np.abs(res.grad - ref)
    est = res.stats.get("error_estimate")
    scale = np.max(np.abs(ref))
    nz = ref != 0
    return {
        "normwise": float(np.max(err) / scale) if scale > 0 else float(np.max(err)),
        "elementwise": float(np.max(err[nz] / np.abs(ref[nz]))) if nz.any() else 0.0,
        "bounded": None if est is None else bool(np.all(err <= est)),
        "entries": None if est is None else (int(np.sum(err <= est)), err.size),
        "kink": bool(res.stats.get("kink_params")),
        "kink_retry": any("kink" in why for why in res.stats.get("step_changes", {}).values()),
        "evals": res.stats["n_evals"] / theta.size,
        "worst": float(np.max(err / np.where(est > 0, est, np.inf))) if est is not None else None,
        "refused": None,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=200, help="number of random problems (default 200)")
    p.add_argument("--seed", type=int, default=0, help="first seed (problems use seed, seed + 1, ...)")
    p.add_argument("--cache", metavar="PATH", help="an .npz file of reference gradients to read and extend")
    p.add_argument("--levels", type=int, nargs="*", default=[4], help="Richardson levels to measure (default 4)")
    p.add_argument("--dtype", default="float64", choices=("float64", "float32"),
                   help="the evaluation dtype of the finite differences (the reference stays the float64 point's)")
    args = p.parse_args(argv)
    cache = None
    if args.cache:
        try:
            cache = dict(np.load(args.cache))
        except FileNotFoundError:
            cache = {}
    configs = {f"richardson{L}": {"scheme": "richardson", "levels": L, "dtype": args.dtype} for L in args.levels}
    configs["central"] = {"scheme": "central", "dtype": args.dtype}
    rows = {name: [] for name in configs}
    skipped, undecided = [], []
    for seed in range(args.seed, args.seed + args.n):
        obj, theta, _ = problem(seed)
        with np.errstate(all="ignore"):
            if not np.isfinite(obj(NUMPY, theta)):
                skipped.append(seed)
                continue
        try:
            ref = reference(obj, theta, seed, cache)
        except NotCertified:  # an entry exactly at a float64 rounding tie (either neighbour is as near): skipped
            undecided.append(seed)
            continue
        for name, options in configs.items():
            rows[name].append(measure(options, obj, theta, ref))
    if cache is not None:
        np.savez(args.cache, **cache)
    print(f"{args.n} random problems (seeds {args.seed}..{args.seed + args.n - 1}), finite differences in {args.dtype}; "
          "reference: ds.reference_gradient; "
          f"{len(skipped)} skipped, f(theta) not finite in float64 (seeds {skipped}); {len(undecided)} skipped, a "
          f"reference entry exactly at a float64 rounding tie (seeds {undecided})")
    for name, rs in rows.items():
        norm, elem = np.array([r["normwise"] for r in rs]), np.array([r["elementwise"] for r in rs])
        refused = sum(r["refused"] is not None for r in rs)
        line = (f"{name:12s} normwise median {np.nanmedian(norm):.1e} 90% {np.nanpercentile(norm, 90):.1e} max "
                f"{np.nanmax(norm):.1e} | elementwise median {np.nanmedian(elem):.1e} max {np.nanmax(elem):.1e} | "
                f"refused {refused} | evals/param {np.nanmean([r['evals'] for r in rs]):.2f}"
                f" | kink reported in {sum(r['kink'] for r in rs)} runs, step shortened at a kink in "
                f"{sum(r['kink_retry'] for r in rs)}")
        if rs[0]["bounded"] is not None:
            good = sum(r["bounded"] for r in rs)
            hit, total = (sum(r["entries"][k] for r in rs) for k in (0, 1))
            line += (f"\n{'':12s} error estimate bounds the true error in {good}/{len(rs)} problems "
                     f"({100 * good / len(rs):.1f}%), {hit}/{total} entries ({100 * hit / total:.1f}%); "
                     f"worst |err|/estimate {max(r['worst'] for r in rs):.2g}")
        print(line)


if __name__ == "__main__":
    main()
