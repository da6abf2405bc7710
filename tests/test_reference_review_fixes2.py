"""Second review of the certified references (gradient and Hessian): each finding reproduced, then fixed.

Oracles: hand derivatives evaluated in mpmath at 400 digits (written here, independently of diffsuite), and hand
calculations. Nothing expected is computed by diffsuite.
"""
import collections
import inspect
import re
import time
import warnings

import mpmath
import numpy as np
import pytest
import sympy as sp

import diffsuite as ds
import diffsuite.reference as reference_package
from diffsuite.reference import NotCertified, expression_gradient, has_flint
from diffsuite.reference import engine as reference_engine
from diffsuite.reference_hessian import ReferenceKinkWarning, reference_hessian, reference_hessian_mp, reference_hvp

ARITHMETICS = ["arb", "mpmath"] if has_flint() else ["mpmath"]


def how(arithmetic: str) -> dict:
    """The options that select ``arithmetic`` (arb is the default where python-flint is installed)."""
    return {} if arithmetic == "arb" else {"arithmetic": arithmetic}


def nearest(x) -> float:
    """An mpmath number rounded to the nearest float64 (ties to even)."""
    return mpmath.libmp.to_float(mpmath.mpf(x)._mpf_, rnd="n")


def sigmoid_derivatives(z):
    """s, s', s'' of the logistic function at z (mpmath), with 1 - s written as e^-z / (1 + e^-z): no cancellation."""
    e = mpmath.exp(-z)
    s, q = 1 / (1 + e), e / (1 + e)
    return s, s * q, s * q * (q - s)


# ----- 1. the exact Hessian is certified, not 50 digits -----
@pytest.mark.parametrize("arithmetic", ARITHMETICS)
def test_saturated_hessian_is_the_exact_one(arithmetic):
    # J = 1/2 (sigmoid(w x + b) - 1)^2 at x = 2, w = 100, b = 0: J_zz = s'^2 + (s - 1) s'', H = J_zz [[x^2, x], [x, 1]]
    model = ds.MLP(layers=(1, 1), activation="sigmoid", output_activation="sigmoid")
    obj = ds.Objective(model, "quadratic", np.array([[2.0]]), np.array([[1.0]]))
    with mpmath.workdps(400):
        s, d1, d2 = sigmoid_derivatives(mpmath.mpf(200))
        jzz = d1 * d1 + (s - 1) * d2
        expected = np.array([[nearest(4 * jzz), nearest(2 * jzz)], [nearest(2 * jzz), nearest(jzz)]])
        hv = [nearest(jzz * (4 * 1 + 2 * -3)), nearest(jzz * (2 * 1 + 1 * -3))]  # H (1, -3)
    np.testing.assert_array_equal(reference_hessian(obj, np.array([100.0, 0.0]), **how(arithmetic)), expected)
    np.testing.assert_array_equal(reference_hvp(obj, np.array([100.0, 0.0]), np.array([1.0, -3.0]),
                                                **how(arithmetic)), hv)
    _, H, stats, _ = reference_hessian_mp(obj, np.array([100.0, 0.0]), dps=30, **how(arithmetic))
    assert stats["certificate"].arithmetic == arithmetic and stats["reference"] == arithmetic
    with mpmath.workdps(400):
        assert abs(H[1, 1] - jzz) <= mpmath.mpf(10) ** -29 * abs(jzz)


# ----- 2. nested theta: every gradient under its own key -----
def test_gradient_of_a_nested_theta_keeps_its_structure():
    f = lambda xp, p: p["a"]["x"] * p["b"] + p["a"]["y"]  # noqa: E731  (by hand: d/dx = b, d/dy = 1, d/db = x)
    theta = {"a": {"x": 2.0, "y": 3.0}, "b": 5.0}
    assert ds.reference_gradient(f, theta).grad == {"a": {"x": 5.0, "y": 1.0}, "b": 2.0}
    assert ds.reference_gradient_mp(f, theta).grad == {"a": {"x": 5, "y": 1}, "b": 2}
    P = collections.namedtuple("P", "w c")
    g = ds.reference_gradient(lambda xp, p: p.w[0] * p.c[1][0] + p.w[1], P(np.array([1.0, 2.0]), [0.5, (3.0,)])).grad
    assert isinstance(g, P) and isinstance(g.c, list) and isinstance(g.c[1], tuple)
    np.testing.assert_array_equal(g.w, [3.0, 1.0])
    assert g.c == [0.0, (1.0,)]


# ----- 3. the Hessian at kinks: smooth functions of kinked pieces, and true kinks named -----
SMOOTH_AT_ZERO = [  # each is x^2 near 0 (second derivative 2 by hand), built from kinked pieces
    lambda xp, t: xp.abs(t[0]) ** 2,
    lambda xp, t: xp.abs(t[0]) * xp.abs(t[0]),
    lambda xp, t: xp.relu(t[0]) ** 2 + xp.relu(-t[0]) ** 2,
    lambda xp, t: t[0] * (xp.relu(t[0]) - xp.relu(-t[0])),
]


@pytest.mark.parametrize("arithmetic", ARITHMETICS)
@pytest.mark.parametrize("k", range(len(SMOOTH_AT_ZERO)))
def test_smooth_functions_of_kinked_pieces_get_their_second_derivative(k, arithmetic):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReferenceKinkWarning)  # no kink there
        np.testing.assert_array_equal(reference_hessian(SMOOTH_AT_ZERO[k], np.array([0.0]), **how(arithmetic)),
                                      [[2.0]])
        _, _, stats, _ = reference_hessian_mp(SMOOTH_AT_ZERO[k], np.array([0.0]), **how(arithmetic))
    assert stats["certificate"].resolved == ("H[theta[0], theta[0]]",) and stats["kinks"] == ()


@pytest.mark.parametrize("arithmetic", ARITHMETICS)
def test_true_kinks_of_the_hessian_are_named(arithmetic):
    # where(x > 0, x^2, -x^2) at 0: 2 from the right, -2 from the left; the condition is false at 0: -2
    with pytest.warns(ReferenceKinkWarning, match=r"on a kink in H\[theta\[0\], theta\[0\]\]"):
        H = reference_hessian(lambda xp, t: xp.where(t[0] > 0, t[0] ** 2, -t[0] ** 2), np.array([0.0]),
                              **how(arithmetic))
    np.testing.assert_array_equal(H, [[-2.0]])
    # max(x, y) x at x = y: x^2 (H = [[2, 0], [0, 0]]) on one side, x y ([[0, 1], [1, 0]]) on the other; the tie
    # routes to x. H[y, y] is 0 on both sides: not a kink
    with pytest.warns(ReferenceKinkWarning):
        _, H, stats, _ = reference_hessian_mp(lambda xp, t: xp.maximum(t[0], t[1]) * t[0], np.array([0.5, 0.5]),
                                              **how(arithmetic))
    np.testing.assert_array_equal(H.astype(float), [[2.0, 0.0], [0.0, 0.0]])
    assert stats["kinks"] == ("H[theta[0], theta[0]]", "H[theta[0], theta[1]]")


# ----- 4. a jump below one ulp of the value is still a jump -----
@pytest.mark.parametrize("arithmetic", ARITHMETICS)
def test_a_jump_smaller_than_an_ulp_is_a_kink(arithmetic):
    # 1 + 1e-20 step(t0): the value jumps by 1e-20 at t0 = 0 (an ulp of 1 is 2.2e-16); d/dt1 = 0 is no kink
    res = ds.reference_gradient(lambda xp, t: 1.0 + 1e-20 * xp.step(t[0]), np.array([0.0, 0.5]),
                                **how(arithmetic))
    cert = res.stats["certificate"]
    assert cert.kinks == ("the loss value", "theta[0]")
    assert "on a kink in the loss value, theta[0]" in cert.describe()
    assert res.value == 1.0 and list(res.grad) == [0.0, 0.0]


# ----- 5. non-finite data: the Hessian refuses as the gradient does -----
@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_hessian_refuses_non_finite_data_like_the_gradient(bad):
    f = lambda xp, t, x: xp.sum(t * t * x)  # noqa: E731
    for reference in (ds.reference_gradient, reference_hessian):
        with pytest.raises(ValueError, match=r"the reference needs finite inputs; arg0\[1\] is (inf|nan)"):
            reference(f, np.array([1.0, 2.0]), np.array([1.0, bad]))


# ----- 6. expression_gradient drops no part of its point silently -----
def test_expression_gradient_refuses_a_repeated_symbol_and_a_symbol_also_in_data():
    x, y = sp.symbols("x y")
    with pytest.raises(ValueError, match="each symbol once in wrt; x appears more than once"):
        expression_gradient(x ** 2, [x, x], [0.5, 1.0])
    with pytest.raises(ValueError, match="different symbols; x is in both"):
        expression_gradient(x * y, [x, y], [0.5, 1.0], {x: 2.0})
    g = expression_gradient(x * y, [x], [0.5], {y: 3.0})  # by hand: value 1.5, d/dx = y = 3
    assert g.value == 1.5 and list(g.grad) == [3.0]


# ----- 7. outside a function's domain: "not defined", at once -----
OUTSIDE = [(lambda xp, t: t[0] ** (1 / 3), -8.0, "a power of a negative number"),
           (lambda xp, t: xp.power(t[0], 1.5), -1.0, "a power of a negative number"),
           (lambda xp, t: xp.power(t[0], t[1]), -1.0, r"a power of a negative number .* in theta\[0\]\*\*theta\[1\]"),
           (lambda xp, t: xp.arcsin(t[0]), 2.0, r"asin of a number outside \[-1, 1\]"),
           (lambda xp, t: xp.arccos(t[0]), 1.5, r"acos of a number outside \[-1, 1\]"),
           (lambda xp, t: xp.arcsin(t[0]), -2.0, r"asin of a number outside \[-1, 1\]")]


@pytest.mark.parametrize("arithmetic", ARITHMETICS)
@pytest.mark.parametrize("k", range(len(OUTSIDE)))
def test_a_point_outside_the_domain_is_not_defined_there(k, arithmetic):
    f, t0, what = OUTSIDE[k]
    start = time.perf_counter()
    with pytest.raises(NotCertified, match="not defined at this point") as info:
        ds.reference_gradient(f, np.array([t0, 0.5]), **how(arithmetic))
    msg = str(info.value)
    assert "max_bits" not in msg and "_u0" not in msg
    assert re.search(what, msg), msg
    assert time.perf_counter() - start < 5.0  # two passes, not a climb to 32768 bits


# ----- 8. the Hessian's data are exact, as the gradient's -----
@pytest.mark.parametrize("w", [0.5, 0.125, -0.5])
def test_hessian_data_enter_exactly(w):
    # binary cross-entropy from the logit z = w x + b: (1 - y) softplus(z) + y softplus(-z), whose second
    # derivative in z is ((1 - y) + y) s'(z) = s'(z) exactly; with 1 - y rounded first, (1 - y)_fl + y = 1 - 2^-54
    model = ds.MLP(layers=(1, 1), activation="tanh", output_activation="sigmoid")
    x = 0.75
    obj = ds.Objective(model, "binary_cross_entropy", np.array([[x]]), np.array([[0.3]]))
    with mpmath.workdps(400):
        _, d1, _ = sigmoid_derivatives(mpmath.mpf(w) * mpmath.mpf(x))
        X = mpmath.mpf(x)
        expected = [[nearest(d1 * X * X), nearest(d1 * X)], [nearest(d1 * X), nearest(d1)]]
    np.testing.assert_array_equal(reference_hessian(obj, np.array([w, 0.0])), expected)


# ----- 9. the mpmath fallback: exp of a huge argument loses bits -----
def test_mpmath_fallback_counts_exp_of_a_huge_argument_as_lost_bits():
    f = lambda xp, t, a: xp.exp(a * xp.cos(t[0])) / xp.exp(a)  # noqa: E731
    t, a = 2.0 ** -70, 2.0 ** 100
    with mpmath.workdps(400):  # exp(a (cos t - 1)) and its derivative -a sin(t) exp(a (cos t - 1))
        ratio = mpmath.exp(mpmath.mpf(a) * (mpmath.cos(mpmath.mpf(t)) - 1))
        value, slope = nearest(ratio), nearest(-mpmath.mpf(a) * mpmath.sin(mpmath.mpf(t)) * ratio)
    assert value == 0.9999999999995453
    for arithmetic in ARITHMETICS:
        res = ds.reference_gradient(f, np.array([t]), a, **how(arithmetic))
        assert res.value == value and res.grad[0] == slope, arithmetic


# ----- 10. the docstrings say where the arb precision starts -----
def test_docstrings_give_the_precision_the_code_starts_at():
    start = inspect.signature(reference_engine.certify_arb).parameters["start_bits"].default
    assert start == 128
    for doc in (reference_package.__doc__, reference_engine.__doc__):
        text = " ".join(doc.split())
        assert "at 128, 256, 512, ... bits" in text
        assert "arb at 64" not in text and "arb, through python-flint) at 64" not in text
