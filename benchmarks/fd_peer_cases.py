"""Finite differences on the cases from peers' test suites that misled them, one line per scheme and case.

    python benchmarks/fd_peer_cases.py                      # seconds
    PYTHONPATH=old/checkout python benchmarks/fd_peer_cases.py   # the same cases against another version

Cases (each error against an independent oracle, with its metric named):
- ``log'(0.001)``: relative error against 1 / x = 1000;
- ``tiny_linear``: t0^2 + 1.5e-11 t1 at (1, 0.5): normwise error against the hand gradient (2, 1.5e-11),
  or the exception raised;
- ``micrograd more_ops``: micrograd's test_more_ops at a = -4, b = 2: normwise error against mpmath's
  50-digit derivative of the same expression;
- ``logsumexp ~1e3``: logsumexp of (1000, 999.3, 1000.3, -1000, 1001): normwise error against the softmax
  (50-digit mpmath).
Normwise: max_i |g_i - r_i| / max_i |r_i|.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import mpmath as mp
import numpy as np

import diffsuite as ds

# micrograd's test_more_ops is written once, in the test that checks it
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "differentiators"))
from test_finite_diff_steps import micrograd_more_ops as more_ops  # noqa: E402

SCHEMES = ("central", "five_point", "richardson", "complex_step")


def cases():
    with mp.workdps(50):
        relu = lambda z: max(z, 0)  # noqa: E731
        more = np.array([float(mp.diff(lambda a: more_ops(a, mp.mpf(2), relu), mp.mpf(-4))),
                         float(mp.diff(lambda b: more_ops(mp.mpf(-4), b, relu), mp.mpf(2)))])
        x = np.array([1000.0, 999.3, 1000.3, -1000.0, 1001.0])
        e = [mp.exp(mp.mpf(v) - 1001) for v in x]
        softmax = np.array([float(v / mp.fsum(e)) for v in e])
    return {
        "log'(0.001)": (lambda xp, t: xp.log(t[0]), np.array([0.001]), np.array([1000.0])),
        "tiny_linear": (lambda xp, t: t[0] ** 2 + 1.5e-11 * t[1], np.array([1.0, 0.5]), np.array([2.0, 1.5e-11])),
        "micrograd more_ops": (lambda xp, t: more_ops(t[0], t[1], lambda z: xp.maximum(z, 0.0)),
                               np.array([-4.0, 2.0]), more),
        "logsumexp ~1e3": (lambda xp, t: xp.logsumexp(t), x, softmax),
    }


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                            epilog="No options: it prints one line per (case, scheme).").parse_args(argv)
    for name, (f, theta, ref) in cases().items():
        for scheme in SCHEMES:
            try:
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore")
                    res = ds.get_differentiator("finite_diff", scheme=scheme).value_and_grad_fn(f)(theta)
                err = float(np.max(np.abs(res.grad - ref)) / np.max(np.abs(ref)))
                print(f"{name:20s} {scheme:13s} normwise error {err:.1e}  evaluations {res.stats['n_evals']}")
            except Exception as e:  # noqa: BLE001 - a refusal is a result here
                print(f"{name:20s} {scheme:13s} {type(e).__name__}: {str(e)[:90]}")


if __name__ == "__main__":
    main()
