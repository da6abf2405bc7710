"""The gradient check near a stationary point (a fitted model, a least-squares solution): there the gradient is far
below |f| / h, and a difference quotient carries f's rounding whatever the gradient's size. The check allows for
that in the difference methods' tolerance (gradcheck/tolerances.py, ``rounding_floor``), holds the exact methods to
their own (a constant in f must not loosen it), and at the stationary point itself says in a note that it cannot
tell right from wrong.

Oracles: the least-squares gradient A^T (A t - b), written out here in exact rational arithmetic (fractions) at the
float64 point; the exact reference (arb) inside the check; Richardson's weights solved by hand.
"""
from fractions import Fraction

import numpy as np
import pytest

from diffsuite.gradcheck.tolerances import VALUE_ROUNDING_EPS, quotient_weight
from diffsuite.testing import check_gradients
from test_gradcheck_user_methods import Given  # a user's own gradient method

EPS64 = float(np.finfo(np.float64).eps)


def least_squares(seed=7):
    rng = np.random.default_rng(seed)
    A, b = rng.normal(size=(20, 3)), rng.normal(size=20)
    return A, b, np.linalg.lstsq(A, b, rcond=None)[0]


def ls(xp, t, A, b):
    return 0.5 * xp.sum((A @ t - b) ** 2)


def exact_grad(t, A, b):
    """A^T (A t - b), every product and sum exact (Fractions of the float64 values), rounded once at the end."""
    F = [[Fraction(float(v)) for v in row] for row in A]
    r = [sum(F[i][j] * Fraction(float(t[j])) for j in range(len(t))) - Fraction(float(b[i])) for i in range(len(b))]
    return np.array([float(sum(F[i][j] * r[i] for i in range(len(b)))) for j in range(len(t))])


@pytest.mark.parametrize("offset", [1e-6, 1e-4])
def test_correct_gradients_near_a_least_squares_solution_pass(offset):
    """Before: central failed at 1e-6 (8.8e-6 > rtol 1e-6): its quotient's rounding, eps |f| / h. (At 1e-8 the
    exact methods' own rounding, of the terms A^T r sums, exceeds rtol times a gradient of 3e-7: no tolerance
    relative to the gradient passes it, and none relative to |f| is safe; see the large-constant test.)"""
    A, b, xs = least_squares()
    report = check_gradients(ls, xs + offset, A, b)
    assert report.passed, report.failure_message()


@pytest.mark.parametrize("offset", [1e-6, 1e-4])
def test_a_wrong_gradient_near_the_solution_still_fails(offset):
    A, b, xs = least_squares()
    t = xs + offset
    g = exact_grad(t, A, b)  # about 3e-5 (offset 1e-6) next to terms of size 1: far above their rounding
    assert check_gradients(ls, t, A, b, methods=[Given(lambda t, A, b: g)]).passed
    for wrong in (-g, 2 * g, g * np.array([1.0, 1.0, 1.001])):
        report = check_gradients(ls, t, A, b, methods=[Given(lambda t, A, b, w=wrong: w)])
        assert report.failed_methods == ["mygrad"], report.summary()


def test_at_the_solution_the_report_says_no_check_can_tell():
    A, b, xs = least_squares()
    report = check_gradients(ls, xs, A, b)
    assert any("a correct gradient there is mostly rounding" in note for note in report.notes)
    assert "a correct gradient there is mostly rounding" in report.failure_message()
    # indeed: the exact gradient there is below f's rounding scale
    assert np.max(np.abs(exact_grad(xs, A, b))) < VALUE_ROUNDING_EPS * EPS64 * ls(np, xs, A, b)


def test_no_note_away_from_a_stationary_point():
    A, b, xs = least_squares()
    report = check_gradients(ls, xs + 0.1, A, b)
    assert report.passed and not any("stationary" in note for note in report.notes)


@pytest.mark.parametrize("constant", [1e11, 1e14, 1e16])
def test_a_large_constant_in_f_does_not_loosen_the_exact_methods_tolerance(constant):
    """The reviewer's case against an |f|-based floor for exact methods: f = sum(t^2) + C, whose gradient 2t has
    rounding of its own size whatever C is; 1.00001 times the gradient must fail (it passed with that floor)."""
    t = np.array([1.0, 2.0, -0.5])
    f = lambda xp, t: xp.sum(t * t) + constant  # noqa: E731
    assert check_gradients(f, t, methods=[Given(lambda t: 2 * t)], reference="exact").passed
    wrong = check_gradients(f, t, methods=[Given(lambda t: 2 * t * 1.00001)], reference="exact")
    assert wrong.failed_methods == ["mygrad"], wrong.summary()


def test_the_difference_floor_is_fs_rounding_through_the_quotient():
    """central at t: atol at least 16 eps |f| / h per entry (weights +-1/2 over 2h: 1 / h in all)."""
    A, b, xs = least_squares()
    t = xs + 1e-6
    report = check_gradients(ls, t, A, b, methods=("central",))
    h = 2.0 ** np.round(np.log2(EPS64 ** (1 / 3)))  # the auto step's size (|t| < 1), to a factor of 2
    atol = report.to_frame()["atol"].to_numpy()
    f = ls(np, t, A, b)
    assert np.all(atol >= VALUE_ROUNDING_EPS * EPS64 * f / (2 * h))
    assert np.all(atol <= VALUE_ROUNDING_EPS * EPS64 * f / (h / 2))


def test_richardsons_quotient_weight():
    """Two levels: (4 q(h/2) - q(h)) / 3, the quotient at h/2 carrying 2 / h: 1/3 + 4/3 * 2 = 3. Three levels:
    weights 1/45, -20/45, 64/45 on q(h), q(h/2), q(h/4): 1/45 + 40/45 + 256/45 = 297/45 = 6.6."""
    assert quotient_weight("richardson", 1) == pytest.approx(1.0)
    assert quotient_weight("richardson", 2) == pytest.approx(3.0)
    assert quotient_weight("richardson", 3) == pytest.approx(297 / 45)
    assert (quotient_weight("central"), quotient_weight("forward"), quotient_weight("five_point")) == (1.0, 2.0, 1.5)

