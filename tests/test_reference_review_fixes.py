"""Review fixes of the certified reference (docs/reference.md): each case is a reproduction of a reported bug.

Oracles are independent of the reference's code: mpmath at 200 digits with the formula written out here, or hand
values. Floats enter as their exact binary values (mpmath.mpf(1e-45) is the double nearest 1e-45, as the reference
sees it).
"""
import mpmath
import numpy as np
import pytest
import sympy as sp

import diffsuite as ds
from diffsuite.reference import NotCertified, expression_gradient, reference_gradient, reference_gradient_mp

ARITHMETICS = ["arb", "mpmath"]


def f64(x) -> float:
    """A 200-digit oracle rounded to the nearest float64."""
    return float(mpmath.mpf(x))


def e100():
    return mpmath.exp(-100)


# ----- 1. absorption: 1 + e^-100 is exactly 1 at 64 and 128 bits; the fallback used to return a wrong 0 -----

def test_saturated_binary_cross_entropy_is_not_a_wrong_zero():
    """BCE of a sigmoid output from its logit z = 60 * 1 + 40 = 100, target 1: loss log(1 + e^-z), d/dw = d/db
    = -sigmoid(-z) = -e^-z / (1 + e^-z)."""
    m = ds.MLP((1, 1), activation="identity", output_activation="sigmoid")
    obj = ds.Objective(m, "binary_cross_entropy", np.array([[1.0]]), np.array([[1.0]]))
    with mpmath.workdps(200):
        value, slope = mpmath.log1p(e100()), -e100() / (1 + e100())
        want_value, want_grad = f64(value), [f64(slope), f64(slope)]
    assert want_value == pytest.approx(3.720075976020836e-44, rel=1e-15)
    for arithmetic in ARITHMETICS:
        res = reference_gradient(obj, np.array([60.0, 40.0]), arithmetic=arithmetic)
        assert res.value == want_value, arithmetic  # (the fallback gave 0.0)
        assert list(res.grad) == want_grad, arithmetic


CASES = [  # (name, f(xp, t), t, oracle(t) -> (value, [gradient]) at 200 digits)
    ("log(sigmoid(100 t))", lambda xp, t: xp.log(xp.sigmoid(100.0 * t[0])), 1.0,
     lambda t: (-mpmath.log1p(mpmath.exp(-100 * t)), [100 * mpmath.exp(-100 * t) / (1 + mpmath.exp(-100 * t))])),
    ("log(1 / (1 + e^-100t))", lambda xp, t: xp.log(1.0 / (1.0 + xp.exp(-100.0 * t[0]))), 1.0,
     lambda t: (-mpmath.log1p(mpmath.exp(-100 * t)), [100 * mpmath.exp(-100 * t) / (1 + mpmath.exp(-100 * t))])),
    ("1e50 log(1 + 1e-45 t)", lambda xp, t: 1e50 * xp.log(1.0 + 1e-45 * t[0]), 1.0,
     lambda t: (mpmath.mpf(1e50) * mpmath.log1p(mpmath.mpf(1e-45) * t),
                [mpmath.mpf(1e50) * mpmath.mpf(1e-45) / (1 + mpmath.mpf(1e-45) * t)])),
    ("(1 + 2^-200 t) - 1", lambda xp, t: (1.0 + 2.0 ** -200 * t[0]) - 1.0, 1.0,
     lambda t: (mpmath.mpf(2) ** -200 * t, [mpmath.mpf(2) ** -200])),
    ("(1 + e^-100t)^(1e44)", lambda xp, t: (1.0 + xp.exp(-100.0 * t[0])) ** 1e44, 1.0,
     lambda t: (mpmath.exp(mpmath.mpf(1e44) * mpmath.log1p(mpmath.exp(-100 * t))),
                [mpmath.mpf(1e44) * (1 + mpmath.exp(-100 * t)) ** (mpmath.mpf(1e44) - 1)
                 * (-100 * mpmath.exp(-100 * t))])),
]


@pytest.mark.parametrize("arithmetic", ARITHMETICS)
@pytest.mark.parametrize("name,f,t,oracle", CASES, ids=[c[0] for c in CASES])
def test_absorbed_addends_are_not_lost(name, f, t, oracle, arithmetic):
    with mpmath.workdps(200):
        value, grad = oracle(mpmath.mpf(t))
        want_value, want_grad = f64(value), [f64(g) for g in grad]
    assert want_value != 0.0
    res = reference_gradient(f, np.array([t]), arithmetic=arithmetic)
    assert res.value == want_value, name
    assert list(res.grad) == want_grad, name


# ----- 2. an exact singularity of the derivative is named, not blamed on a cancellation -----

SINGULAR = [
    ("sqrt at 0", lambda xp, t: xp.sqrt(t[0]), [0.0], r"derivative of sqrt\(theta\[0\]\)", ["theta[0]"]),
    ("|(x, y)| at the origin", lambda xp, t: xp.sqrt(t[0] * t[0] + t[1] * t[1]), [0.0, 0.0], r"derivative of sqrt",
     ["theta[0]", "theta[1]"]),
    ("arcsin at 1", lambda xp, t: xp.arcsin(t[0]), [1.0], r"derivative of asin\(theta\[0\]\)", ["theta[0]"]),
    ("arccos at -1", lambda xp, t: xp.arccos(t[0]), [-1.0], r"derivative of acos\(theta\[0\]\)", ["theta[0]"]),
]


@pytest.mark.parametrize("arithmetic", ARITHMETICS)
@pytest.mark.parametrize("name,f,t,where,entries", SINGULAR, ids=[c[0] for c in SINGULAR])
def test_an_exact_singularity_of_the_derivative_is_named(name, f, t, where, entries, arithmetic):
    with pytest.raises(NotCertified, match="division by an exact zero in the " + where) as e:
        reference_gradient(f, np.array(t), arithmetic=arithmetic)
    assert "cancellation" not in str(e.value) and "raise max_bits" not in str(e.value)
    assert e.value.entries == entries


def test_next_to_the_singularity_the_derivative_is_certified():
    """Hand values: sqrt'(4) = 1/4, asin'(1/2) = 1 / sqrt(3/4)."""
    assert reference_gradient(lambda xp, t: xp.sqrt(t[0]), np.array([4.0])).grad[0] == 0.25
    with mpmath.workdps(200):
        want = f64(1 / mpmath.sqrt(mpmath.mpf(3) / 4))
    assert reference_gradient(lambda xp, t: xp.arcsin(t[0]), np.array([0.5])).grad[0] == want


# ----- 3. at a tie, a NaN in the unselected branch is not a jump, and unrelated entries are not flagged -----

@pytest.mark.parametrize("arithmetic", ARITHMETICS)
def test_x_log_x_at_zero_is_continuous_and_theta1_is_a_derivative(arithmetic):
    """x log x -> 0 as x -> 0+: no jump. d/dtheta1 = 1 everywhere. d/dtheta0 from the right is log x + 1 -> -inf:
    theta[0] (and only it) is a true kink."""
    f = lambda xp, t: xp.where(t[0] > 0, t[0] * xp.log(t[0]), 0.0 * t[0]) + t[1]  # noqa: E731
    res = reference_gradient(f, np.array([0.0, 1.0]), arithmetic=arithmetic)
    cert = res.stats["certificate"]
    assert res.value == 1.0 and res.grad[1] == 1.0
    assert cert.tie_check == "sides" and cert.kinks == ("theta[0]",)


@pytest.mark.parametrize("arithmetic", ARITHMETICS)
def test_a_jump_flags_only_the_parameters_it_depends_on(arithmetic):
    """step(x) + y at x = 0: a jump in x; the partial in y is 1 (moving y alone keeps x = 0)."""
    res = reference_gradient(lambda xp, t: xp.step(t[0]) + t[1], np.array([0.0, 1.0]), arithmetic=arithmetic)
    assert res.stats["certificate"].kinks == ("the loss value", "theta[0]")
    assert res.grad[1] == 1.0


# ----- 4. reference_gradient_mp: dps significant digits also for tiny entries -----

@pytest.mark.parametrize("arithmetic", ARITHMETICS)
def test_tiny_entries_get_their_significant_digits(arithmetic):
    """exp(-800 t) at t = 1: about 1e-348, below the old absolute floor 2^-1100."""
    res = reference_gradient_mp(lambda xp, t: xp.exp(-800.0 * t[0]), np.array([1.0]), dps=100, arithmetic=arithmetic)
    with mpmath.workdps(250):
        value = mpmath.exp(-800)
        assert abs(res.value / value - 1) < mpmath.mpf(10) ** -100
        assert abs(res.grad[0] / (-800 * value) - 1) < mpmath.mpf(10) ** -100


# ----- 5. expression_gradient's inputs -----

def test_expression_gradient_checks_its_point():
    x, y = sp.symbols("x y")
    with pytest.raises(ValueError, match=r"one value per symbol of wrt \(2: x, y\); point has 1"):
        expression_gradient(x * y, [x, y], [1.0])
    with pytest.raises(ValueError, match=r"one value per symbol of wrt \(1: x\); point has 2"):
        expression_gradient(x ** 2, [x], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"finite values.*x = nan"):
        expression_gradient(x ** 2, [x], [float("nan")])
    with pytest.raises(ValueError, match=r"finite values.*data gives y = inf"):
        expression_gradient(x * y, [x], [1.0], {y: float("inf")})
    assert list(expression_gradient(x ** 2, [x], [3.0]).grad) == [6.0]


def test_reference_gradient_refuses_non_finite_data():
    with pytest.raises(ValueError, match="finite inputs"):
        reference_gradient(lambda xp, t, d: xp.sum(t * d), np.ones(2), np.array([np.inf, 1.0]))
