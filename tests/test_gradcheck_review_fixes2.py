"""Gradient and Hessian checks that passed wrong gradients, failed correct ones, or said the wrong thing (a review of
the twelfth session); each test failed before its fix. Expected gradients are written by hand."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from diffsuite.differentiators.finite_diff import UnsettledStepWarning
from diffsuite.gradcheck.hessian import check_hessian
from diffsuite.testing import assert_gradients_close, check_gradients


class Hand:
    """A user's differentiator named ``name`` whose gradient is ``grad(theta, *args)``, written by hand."""

    def __init__(self, name, grad):
        self.name, self._grad = name, grad

    def value_and_grad(self, f):
        return self.grad(f)

    def grad(self, f):
        return lambda t, *args: np.asarray(self._grad(np.asarray(t, dtype=np.float64), *args), dtype=np.float64)


def kl(xp, q, p):
    return xp.sum(p * xp.log(p / q))


P = np.array([0.2, 0.3, 0.5])
Q = P * (1 + np.array([1e-6, -1e-6, 2e-7]))  # KL(p || q) ~ 1e-12: its value cancels, its gradient -p/q does not


# ----- 1. the tolerance is raised for f's rounding only where the gradient carries it too -----
def test_a_wrong_gradient_of_a_function_whose_value_cancels_fails():
    # dKL/dq = -p/q: nothing cancels in it. Before, the value's error (1e-4 relative) raised every rtol to 4e-3 and
    # this gradient, 0.2 % off in one entry, passed.
    wrong = Hand("mykl", lambda q, p: -p / q * np.array([1.002, 1.0, 1.0]))
    report = check_gradients(kl, Q, P, methods=[wrong])
    assert not report.passed
    assert report.results[0].rtol == 1e-9  # the strict default, not raised
    assert any("its gradient does not" in n for n in report.notes)
    right = Hand("mykl", lambda q, p: -p / q)
    assert check_gradients(kl, Q, P, methods=[right]).passed
    assert check_gradients(kl, Q, P).passed  # and the default methods, at their default tolerances


def test_a_wrong_gradient_of_a_small_residual_fails():
    # sum(t^2) - c = 3e-11: the float64 value is ~4e-6 off (relative), which raised rtol to 1e-4 before
    t, c = np.array([0.6, 0.8]), 1.0 - 3e-11
    f = lambda xp, t: xp.sum(t ** 2) - c  # noqa: E731
    assert not check_gradients(f, t, methods=[Hand("mine", lambda t: 2 * t * (1 + 1e-5))]).passed
    assert check_gradients(f, t, methods=[Hand("mine", lambda t: 2 * t)]).passed


@pytest.mark.parametrize("f, theta, grad", [
    (lambda xp, t: xp.sum(t ** 2) - 1.0, np.array([0.6, 0.8]), lambda t: 2 * t),  # the docs' example: f ~ 1e-17
    (lambda xp, t: xp.sum(xp.log(t)), np.array([1e-8, 1.0, 1e8]), lambda t: 1 / t),  # log(1e-8) + log(1e8) ~ 0
])
def test_a_valid_check_of_a_cancelling_value_is_not_refused(f, theta, grad):
    # before: "cannot check gradients" (the value is 100 % off); the gradient is exact to rounding
    report = check_gradients(f, theta)
    assert report.passed, report.failure_message()
    assert check_gradients(f, theta, methods=[Hand("mine", grad)]).passed
    assert not check_gradients(f, theta, methods=[Hand("mine", lambda t: -grad(t))]).passed  # a sign slip fails


def test_a_check_is_still_refused_where_the_gradient_cancels_with_the_value():
    # (sum(t^2) - 1)^2 on the unit circle: its gradient 4 (sum(t^2) - 1) t is built from the same cancelling
    # residual, so a float64 gradient is as far off as the value: no tolerance could both allow for that and catch
    # a 1 % bug
    f = lambda xp, t: (xp.sum(t ** 2) - 1.0) ** 2  # noqa: E731
    with pytest.raises(ValueError, match="cannot check gradients.*its value and reverse-mode gradient are"):
        check_gradients(f, np.array([0.6, 0.8]), methods=[Hand("mine", lambda t: -t)])


# (central, named by the user, warns that its steps did not settle on the 1e-18 values; a note says it too)
@pytest.mark.filterwarnings("ignore::diffsuite.differentiators.finite_diff.UnsettledStepWarning")
def test_where_reverse_cannot_run_the_values_figure_alone_raises_the_tolerance_with_a_note():
    y = np.tanh(np.array([0.3, -0.7])) + 1e-9  # residuals of 1e-9 next to values of size 1: f cancels

    def f(xp, t):
        if "Var" in type(t).__name__:
            raise NotImplementedError("no tape here")  # a function reverse mode cannot run
        r = xp.tanh(t) - y
        return xp.sum(r * r) / 2

    report = check_gradients(f, np.array([0.3, -0.7]), methods=("central", "complex_step"))
    assert report.passed, report.failure_message()
    assert any("reverse mode cannot run" in n and "value's error" in n for n in report.notes)
    assert all(1e-9 < r.rtol < 1e-4 for r in report.results if r.label == "complex_step")


# ----- 2. the exact reference is taken at the point the methods evaluate -----
def test_float32_code_is_compared_at_the_float32_point():
    y = np.ones(4)
    t = y + np.random.default_rng(0).uniform(1e-4, 2e-4, 4)
    f = lambda xp, t, y: xp.sum((t - y) ** 2)  # noqa: E731
    report = check_gradients(f, t, y, dtype="float32")
    assert report.passed, report.failure_message()  # before: reverse[float32] 3.2e-4 off the float64 point's gradient
    # by hand: the gradient 2 (t - y) at t rounded to float32 (the subtraction and doubling are exact in float64)
    assert np.array_equal(report.reference, 2 * (t.astype(np.float32).astype(np.float64) - 1.0))
    assert "rounded to float32" in report.reference_label


def test_float32_near_a_kink_is_compared_at_the_float32_point():
    theta = np.array([0.3, 0.3 + 1e-9])
    assert np.float32(theta[0]) == np.float32(theta[1])  # in float32 the point is the kink itself
    report = check_gradients(lambda xp, t: xp.abs(t[0] - t[1]), theta, dtype="float32")
    assert report.passed, report.failure_message()  # before: the reference was sign(t0 - t1) * (1, -1) = (-1, 1)
    assert report.reference.tolist() == [0.0, 0.0]  # |x|' at x = 0 taken as 0


def test_methods_that_agree_against_the_exact_reference_do_not_blame_it():
    doubled = [Hand(name, lambda q, p: -2 * p / q) for name in ("mine", "yours")]  # the same slip, twice
    with pytest.raises(AssertionError) as info:
        assert_gradients_close(kl, Q, P, methods=doubled)
    headline = str(info.value).splitlines()[0]
    assert "odd one out" not in headline and "check the reference first" not in headline
    assert "agree with each other but not with the exact reference" in headline
    assert "share an error" in headline and "another point" in headline


# ----- 3. check_hessian refuses what check_gradients refuses -----
def test_check_hessian_refuses_an_empty_theta_a_non_finite_value_and_no_methods():
    with pytest.raises(ValueError, match="nothing to check"):
        check_hessian(lambda xp, t: xp.sum(t), np.zeros(0))
    with pytest.raises(ValueError, match=r"needs a finite function value at theta; <lambda>\(theta\) = nan"):
        check_hessian(lambda xp, t: xp.sum(xp.log(t)), np.array([-1.0, 2.0]))
    with pytest.raises(ValueError, match="at least one method"):
        check_hessian(lambda xp, t: xp.sum(t ** 3), np.array([1.0, 2.0]), methods=[])


# ----- 4. option checks and advice -----
@pytest.mark.parametrize("option", [{"rtol": True}, {"atol": True}, {"rtol": {"central": np.True_}}])
def test_a_bool_tolerance_is_refused(option):
    with pytest.raises(ValueError, match="not a bool"):
        check_gradients(lambda xp, t: xp.sum(xp.sin(t)), np.array([0.3, 0.5]), methods=["central"], **option)


def test_an_unknown_reference_word_lists_what_reference_accepts():
    for check in (check_gradients, check_hessian):
        with pytest.raises(ValueError, match="unknown gradient-check reference 'exakt'; choose 'auto', 'exact'"):
            check(lambda xp, t: xp.sum(t ** 3), np.array([0.3, 0.5]), reference="exakt")


def test_when_no_reference_can_be_built_the_advice_is_what_can_work():
    f = lambda xp, t: xp.sum(t // 1.0 + t ** 2)  # noqa: E731  (neither the exact reference nor reverse runs it)
    for check in (check_gradients, check_hessian):
        with pytest.raises(RuntimeError) as info:
            check(f, np.array([0.3, 1.7]))
        msg = str(info.value)
        assert "reference='exact'" not in msg  # it was tried, and could not be built
        assert "reference='central'" in msg and "itself as reference=" in msg
    # and the advice works: central differences run on f (the gradient is 2t off the floor's jumps)
    assert check_gradients(f, np.array([0.3, 1.7]), methods=["central"], reference=np.array([0.6, 3.4])).passed


# ----- 5. the default central method's UnsettledStepWarning goes into the notes -----
def test_an_unsettled_step_of_a_default_method_is_a_note_not_a_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = check_gradients(kl, Q, P)  # central's step control cannot settle on theta[1] here
    assert not [w for w in caught if issubclass(w.category, UnsettledStepWarning)]
    assert any(n.startswith("central: its step control did not settle") and "theta[1]" in n for n in report.notes)


# ----- the final review: finite differences difference f's values, so they inherit its rounding -----
def test_a_difference_quotient_gets_the_rounding_of_a_cancelling_value():
    # f = sum(1 - cos t) at t = (1e-6, 0): f ~ 5e-13 is the difference of terms of size 1, so each value is off by
    # ~1e-16 absolute and a central quotient over h ~ 1e-6 by ~1e-10 against a gradient sin(1e-6) ~ 1e-6: 1e-4
    # relative, which no correct difference quotient avoids. The default check passes; reverse mode's gradient
    # (sin t, nothing cancelling) keeps its strict tolerance, so a 1 % slip in a hand gradient still fails.
    f = lambda xp, t: xp.sum(1.0 - xp.cos(t))  # noqa: E731
    theta = np.array([1e-6, 0.0])
    report = check_gradients(f, theta)
    assert report.passed, str(report)
    central = next(r for r in report.results if r.method.label == "central")
    assert central.rtol > 1e-5 and "quotients inherit" in central.rtol_why
    wrong = Hand("mysin", lambda t: np.sin(t) * 1.01)
    assert not check_gradients(f, theta, methods=[wrong]).passed
