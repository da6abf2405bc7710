"""Finite differences on problems whose scale is not max(1, |theta|): step control, domains, complex step.

Oracles: derivatives written by hand in each test, mpmath at 50 digits (``mp.diff`` of the same function
evaluated in mpf arithmetic), and the softmax for logsumexp. None comes from the code under test.
"""
import warnings

import mpmath as mp
import numpy as np
import pytest

import diffsuite as ds
from diffsuite.differentiators.finite_diff import DomainWarning, KinkWarning, StepUnderflowError
from diffsuite.testing import check_gradients

REAL = ("forward", "central", "five_point", "richardson")


def fd(**options):
    return ds.get_differentiator("finite_diff", **options)


def tiny_linear(xp, t):
    return t[0] ** 2 + 1.5e-11 * t[1]


# ----- a change of f lost in its rounding: a longer step of its own, never a refusal -----
@pytest.mark.parametrize("scheme", REAL)
def test_a_gradient_entry_far_below_f_gets_a_longer_step(scheme):
    # f = 1 + 7.5e-12: theta[1]'s change over the automatic step (1e-16 for central) is below f's rounding
    res = fd(scheme=scheme).value_and_grad_fn(tiny_linear)(np.array([1.0, 0.5]))
    assert res.grad[1] == pytest.approx(1.5e-11, rel=1e-3)  # by hand: d/dt1 = 1.5e-11, d/dt0 = 2
    assert res.grad[0] == pytest.approx(2.0, rel=1e-4 if scheme == "forward" else 1e-8)
    assert res.stats["zero_quotient_params"] == []
    if scheme in ("forward", "central"):  # their automatic steps are the short ones (1.5e-8, 6e-6)
        assert res.stats["step_changes"] == {"theta[1]": "underflow"}
        assert res.stats["steps"][1] > 100 * res.stats["nominal_steps"][1]


def test_check_gradients_default_passes_on_it():
    report = check_gradients(tiny_linear, np.array([1.0, 0.5]), reference=np.array([2.0, 1.5e-11]))  # by hand
    assert report.passed, str(report)


def test_an_explicit_step_lost_in_rounding_is_refused_with_advice_that_applies():
    with pytest.raises(StepUnderflowError) as caught:
        fd(step=1e-6).grad(tiny_linear)(np.array([1.0, 0.5]))
    msg = str(caught.value)
    assert "theta[1] = 0.5" in msg and "step='auto'" in msg and "dtype='float64'" not in msg  # already float64
    with pytest.raises(StepUnderflowError, match=r"theta\[0\] = 1 .*step='auto'.*dtype='float64'"):
        fd(dtype="float32", step=1e-9).grad(lambda xp, t: xp.sum(t * t))(np.array([1.0]))


# ----- the function's own scale: log near 0, logsumexp near 1e3 -----
@pytest.mark.parametrize("scheme, rel", [("central", 1e-8), ("five_point", 1e-10), ("richardson", 1e-10)])
def test_log_near_zero_stays_in_the_domain_and_is_accurate(scheme, rel):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from log of a negative number reaches the user
        res = fd(scheme=scheme).value_and_grad_fn(lambda xp, x: xp.log(x))(0.001)
    assert res.grad == pytest.approx(1000.0, rel=rel)  # by hand: log'(x) = 1 / x
    assert res.stats["steps"][0] < 1e-4 and res.stats["step_changes"]  # a step on log's scale at x = 0.001


def logsumexp_problem():
    x = np.array([1000.0, 999.3, 1000.3, -1000.0, 1001.0])
    with mp.workdps(50):
        e = [mp.exp(mp.mpf(v) - 1001) for v in x]
        softmax = np.array([float(v / mp.fsum(e)) for v in e])  # d logsumexp / dx_i
    return x, softmax


@pytest.mark.parametrize("scheme, rel", [("central", 1e-8), ("five_point", 1e-9), ("richardson", 1e-9)])
def test_logsumexp_near_1e3_varies_on_scale_1_not_1e3(scheme, rel):
    x, softmax = logsumexp_problem()
    g = fd(scheme=scheme).grad(lambda xp, t: xp.logsumexp(t))(x)
    assert np.max(np.abs(g - softmax)) <= rel * np.max(softmax)  # normwise, against the softmax


def micrograd_more_ops(a, b, relu):
    """micrograd's test_more_ops, written once for floats and mpf numbers."""
    c = a + b
    d = a * b + b ** 3
    c = c + c + 1
    c = c + 1 + c + (-a)
    d = d + d * 2 + relu(b + a)
    d = d + 3 * d + relu(b - a)
    e = c - d
    f = e ** 2
    g = f / 2.0
    return g + 10.0 / f


@pytest.mark.parametrize("scheme, rel", [("central", 1e-8), ("five_point", 1e-9), ("richardson", 1e-11)])
def test_micrograd_more_ops(scheme, rel):
    with mp.workdps(50):  # a = -4, b = 2: b + a < 0 and b - a > 0, so f is smooth there
        relu = lambda z: max(z, 0)  # noqa: E731
        ga = mp.diff(lambda a: micrograd_more_ops(a, mp.mpf(2), relu), mp.mpf(-4))
        gb = mp.diff(lambda b: micrograd_more_ops(mp.mpf(-4), b, relu), mp.mpf(2))
    expected = np.array([float(ga), float(gb)])  # micrograd's own torch check: 138.8338..., 645.5772...
    g = fd(scheme=scheme).grad(lambda xp, t: micrograd_more_ops(t[0], t[1], lambda z: xp.maximum(z, 0.0)))(
        np.array([-4.0, 2.0]))
    np.testing.assert_allclose(g, expected, rtol=rel)


# ----- domains -----
def test_a_stencil_off_the_domain_at_every_step_is_reported_naming_it():
    # x^1.5 at 0: f(0) = 0, but f(-h) is NaN for every h > 0; theta[1] is fine
    f = lambda xp, t: xp.sum(t[:1] ** 1.5) + t[1] ** 2  # noqa: E731
    with np.errstate(invalid="ignore"), pytest.warns(DomainWarning, match=r"theta\[0\] = 0\b"):
        res = fd(scheme="central").value_and_grad_fn(f)(np.array([0.0, 3.0]))
    assert np.isnan(res.grad[0]) and res.grad[1] == pytest.approx(6.0, rel=1e-9)
    assert res.stats["nonfinite_params"] == ["theta[0]"]


def test_an_explicit_step_off_the_domain_is_reported_not_changed():
    with np.errstate(invalid="ignore"), pytest.warns(DomainWarning, match=r"theta = 0.01\b.*step='auto'"):
        res = fd(step=0.1).value_and_grad_fn(lambda xp, x: xp.log(x))(0.01)
    assert np.isnan(res.grad) and res.stats["steps"][0] == 0.1 and res.stats["step_changes"] == {}


# ----- kinks near theta -----
def near_kink(xp, t):
    return xp.sum(3 * xp.maximum(t - 0.01, 0.0) + t * t)  # kink at 0.01; at 0 the derivative is 0 (by hand)


@pytest.mark.parametrize("scheme", ["central", "five_point", "richardson"])
def test_a_kink_near_theta_gets_a_step_that_does_not_reach_it(scheme):
    with pytest.warns(KinkWarning):
        res = fd(scheme=scheme, step=0.05).value_and_grad_fn(near_kink)(np.array([0.0]))
    assert res.stats["kink_params"] == ["theta[0]"]  # an explicit step is used as given: reported
    with warnings.catch_warnings():
        warnings.simplefilter("error", KinkWarning)
        res = fd(scheme=scheme).value_and_grad_fn(near_kink)(np.array([0.0]))
    assert abs(res.grad[0]) <= 1e-9 and res.stats["kink_params"] == []


# ----- Richardson's error estimate -----
@pytest.mark.parametrize("f, x, derivative", [
    (lambda xp, x: xp.log(x), 0.001, 1000.0),
    (lambda xp, x: xp.exp(3 * x), 2.0, 3 * np.exp(6.0)),
    (lambda xp, x: xp.tanh(4 * x), 0.3, 4 / np.cosh(1.2) ** 2),
    (lambda xp, x: 1 / (x - 0.02), 0.0, -1 / 0.0004),  # a pole 0.02 away
])
def test_richardson_error_estimate_bounds_the_error(f, x, derivative):
    res = fd(scheme="richardson").value_and_grad_fn(f)(x)
    err, est = abs(res.grad - derivative), float(res.stats["error_estimate"][0])
    assert err <= est <= 1e-9 * abs(derivative)


# ----- complex step: every function of theta -----
def test_complex_step_of_the_identity_and_of_a_parameter_returned_as_is():
    assert fd(scheme="complex_step").grad(lambda xp, x: x)(3.7) == 1.0
    assert fd(scheme="complex_step").grad(lambda xp, p: p["a"])({"a": 2.0, "b": 1.0}) == {"a": 1.0, "b": 0.0}
    np.testing.assert_array_equal(fd(scheme="complex_step").grad(lambda xp, t: t[1])(np.array([5.0, 6.0])), [0, 1])


@pytest.mark.parametrize("f", [
    lambda xp, t: xp.step(t[1] - t[0]),
    lambda xp, t: xp.step(t[1] - t[0]) * t[0],
])
def test_complex_step_through_a_step_at_an_exact_tie(f):
    # step' = 0 everywhere (docs/architecture.md), so d/dt of step(t1 - t0) is 0 even at the tie t0 == t1;
    # step(0) = 0, so d/dt0 of step(t1 - t0) * t0 is 0 too (by hand)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = fd(scheme="complex_step").grad(f)(np.array([1.0, 1.0]))
    np.testing.assert_array_equal(g, [0.0, 0.0])


@pytest.mark.parametrize("f", [lambda xp, t: np.abs(t[0]) + 0 * t[1], lambda xp, t: np.real(t[0]) * t[1] + t[1]])
def test_complex_step_refuses_a_dropped_imaginary_part_inside_a_complex_result(f):
    # the result is complex (through t[1]), but theta[0]'s perturbation was dropped: refused, not a silent 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        with pytest.raises(TypeError, match=r"does not move with theta\[0\].*scheme='central'"):
            fd(scheme="complex_step").grad(f)(np.array([1.0, 2.0]))


def test_complex_step_keeps_genuine_zeros():
    # x^2 at 0 (even: f(H) == f(-H)), a dead relu (flat), relu = maximum(0, x) at its kink (a tie routed to
    # the constant 0, docs/architecture.md): all 0 by hand
    f = lambda xp, t: t[0] ** 2 + xp.maximum(0.0, t[1]) + xp.maximum(0.0, t[2]) + 7.0  # noqa: E731
    np.testing.assert_array_equal(fd(scheme="complex_step").grad(f)(np.array([0.0, -1.0, 0.0])), [0, 0, 0])
