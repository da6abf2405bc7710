"""``where`` differentiates only the selected branch: an unselected branch that is inf or nan at the point
(1/t, sin(t)/t, t log t at t = 0; an overflowing exp) must not leak NaN into the gradient, in any
differentiator (docs/language.md, "Kinks and the unselected branch").

Oracle: the derivative of the selected branch, written out by hand per case (the unselected branch takes
no part in it). Reverse mode on numpy and torch, forward mode and the symbolic differentiator are each
compared with it; every rule whose local derivative can be inf or nan (products, exp, log, division, the
smooth elementwise functions) is exercised by one case or another.
"""
import warnings

import numpy as np
import pytest

import diffsuite as ds

try:
    import torch  # noqa: F401
    BACKENDS = ["numpy", "torch"]
except ImportError:  # pragma: no cover
    BACKENDS = ["numpy"]

# (name, f(xp, t), theta, the selected branch's gradient by hand)
CASES = [
    ("1/t at 0", lambda xp, t: xp.sum(xp.where(t > 0, 1.0 / t, 0.0)), [0.0, 2.0], [0.0, -0.25]),
    ("sinc at 0", lambda xp, t: xp.sum(xp.where(t != 0, xp.sin(t) / t, 1.0)), [0.0], [0.0]),
    ("t log t at 0", lambda xp, t: xp.sum(xp.where(t > 0, t * xp.log(t), 0.0)), [0.0, 1.0], [0.0, 1.0]),
    ("log(t)^2 at 0", lambda xp, t: xp.sum(xp.where(t > 0, xp.log(t) ** 2, 0.0)), [0.0], [0.0]),
    ("t / |t| at 0", lambda xp, t: xp.sum(xp.where(xp.sum(t * t) > 0, t / xp.sqrt(xp.sum(t * t)), 0.0)),
     [0.0, 0.0], [0.0, 0.0]),
    ("overflowing exp", lambda xp, t: xp.sum(xp.where(t < 1, t, xp.exp(1000 * t) * t)), [0.9], [1.0]),
    ("exp(t)^2 overflowing", lambda xp, t: xp.sum(xp.where(t < 1, 2.0 * t, xp.exp(400 * t) ** 2)), [0.9], [2.0]),
    ("sigmoid(log t) at -1", lambda xp, t: xp.sum(xp.where(t > 0, xp.sigmoid(xp.log(t)), 0.0)), [-1.0], [0.0]),
    ("tanh, sin of nan", lambda xp, t: xp.sum(xp.where(t > 0, xp.tanh(xp.sqrt(t)) + xp.sin(xp.log(t)), t)),
     [-2.0], [1.0]),
    ("cosh of inf", lambda xp, t: xp.sum(xp.where(t < 0, 3.0 * t, xp.cosh(xp.exp(t * 1000.0)))), [-1.0], [3.0]),
    ("softplus, erf of nan", lambda xp, t: xp.sum(xp.where(t > 0, xp.softplus(xp.log(t)) * xp.erf(xp.log(t)), t)),
     [-1.0], [1.0]),
    ("logsumexp of inf", lambda xp, t: xp.where(t[0] < 0, t[1], xp.logsumexp(xp.exp(1000.0 * t))), [-1.0, 2.0],
     [0.0, 1.0]),
]
IDS = [c[0] for c in CASES]


def methods():
    out = {f"reverse[{b}]": ds.get_differentiator("reverse", backend=b) for b in BACKENDS}
    out["forward"] = ds.get_differentiator("forward")
    out["symbolic"] = ds.get_differentiator("symbolic")
    return out


@pytest.mark.parametrize("name,f,theta,want", CASES, ids=IDS)
def test_the_unselected_branch_leaks_no_nan(name, f, theta, want):
    theta = np.array(theta)
    for method, d in methods().items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # numpy's own warnings in the forward pass (1/0 ...)
            got = d.grad(f)(theta)
        np.testing.assert_array_equal(got, want, err_msg=f"{name}: {method}")


def test_a_finite_product_keeps_its_bits_and_raises_no_warning():
    """The strong-zero test costs one sum of the local derivative; where it is finite, the cotangent is g * d
    itself (no mask: -0.0 stays -0.0) and the backward pass raises no numpy warning."""
    theta = np.array([-0.0, 1.5, -2.0])
    rev = ds.get_differentiator("reverse")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = rev.grad(lambda xp, t: xp.sum(t * np.array([0.0, 3.0, -1.0]) * xp.exp(t)))(theta)
    want = np.array([0.0, 3.0, -1.0]) * np.exp(theta) * (1.0 + theta)  # d/dt (c t e^t) = c e^t (1 + t)
    np.testing.assert_allclose(g, want, rtol=1e-15)
