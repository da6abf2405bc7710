"""A join of f's pieces at which f itself is smooth (f' continuous, f'' jumping: Huber at |r| = delta) is no kink,
and its derivative must come out to the scheme's accuracy. A symmetric stencil straddling the join averages two
pieces whose higher derivatives differ, so its truncation is O(h) whatever its order: before the one-sided
tableau (``control.OneSidedRule``) Richardson gave 0.99901 for Huber'(1 + 1e-9) = 1, with an error estimate of
1.8e-4, five-point 0.99988, central 0.9999985, and nothing was reported.

Expected values are the pieces' derivatives written out here (Huber: r inside, sign(r) outside; the exp / log1p
join: exp(t) left of 0, 1 / (1 + t) right of it) in mpmath at 50 digits, never the code's output."""
from __future__ import annotations

import warnings

import mpmath as mp
import numpy as np
import pytest

import diffsuite as ds
from diffsuite.differentiators.finite_diff import KinkWarning

SYMMETRIC = ("central", "five_point", "richardson")
#: relative error each scheme reaches on these smooth functions at its automatic step (its usual class: central
#: eps^(2/3) ~ 4e-11 with rounding's constant, five-point and Richardson better); the averaging across the join
#: missed them by 10^3 to 10^7
TOLERANCE = {"central": 1e-8, "five_point": 1e-10, "richardson": 1e-10}


def huber(xp, t):
    """Huber loss with delta = 1 of one residual: r^2 / 2 inside [-1, 1], |r| - 1/2 outside (f' continuous at
    +-1, f'' jumps from 1 to 0)."""
    r = t[0]
    return xp.where(xp.abs(r) <= 1.0, 0.5 * r * r, xp.abs(r) - 0.5)


def huber_slope(r: float) -> float:
    return r if abs(r) <= 1 else float(np.sign(r))


def exp_log_join(xp, t):
    """expm1(t) for t <= 0, log1p(t) for t > 0: both 0 with slope 1 at 0; f'' jumps from 1 to -1. The guards
    (minimum, maximum: each piece sees only its own side) are kink ops too, and at t = 0 they take branches that
    neither side's points take: the centre is a tie of its own."""
    return xp.where(t[0] <= 0.0, xp.expm1(xp.minimum(t[0], 0.0)), xp.log1p(xp.maximum(t[0], 0.0)))


def exp_log_slope(t: float) -> float:
    with mp.workdps(50):
        x = mp.mpf(t)
        return float(mp.exp(x) if x <= 0 else 1 / (1 + x))


def gradient(scheme, f, theta):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no KinkWarning, no UnsettledStepWarning: f is smooth here
        return ds.get_differentiator("finite_diff", scheme=scheme).value_and_grad_fn(f)(np.array(theta, float))


@pytest.mark.parametrize("scheme", SYMMETRIC)
@pytest.mark.parametrize("r", [1 + 1e-9, 1.0, 1 - 1e-9, 1 + 1e-6, 1 - 1e-6, -1 - 1e-9, -1.0, -1 + 1e-12])
def test_huber_next_to_its_join_gets_the_true_slope(scheme, r):
    res = gradient(scheme, huber, [r])
    assert abs(res.grad[0] - huber_slope(r)) <= TOLERANCE[scheme] * abs(huber_slope(r))
    assert res.stats["kink_params"] == []


@pytest.mark.parametrize("scheme", SYMMETRIC)
@pytest.mark.parametrize("t", [0.0, 1e-12, -1e-12, 1e-9, -1e-9, 3e-8, -3e-8])
def test_a_join_with_curvature_on_both_sides(scheme, t):
    """Neither piece is linear, so a one-sided stencil must still converge at the scheme's order."""
    res = gradient(scheme, exp_log_join, [t])
    true = exp_log_slope(t)
    assert abs(res.grad[0] - true) <= TOLERANCE[scheme] * abs(true)
    if scheme == "richardson":  # its error estimate is an honest bound: it once claimed 1.8e-4 for an error of 1e-3
        assert res.stats["error_estimate"][0] >= abs(res.grad[0] - true)


def test_the_side_taken_is_named_in_step_changes():
    """The side whose points take theta's branches: right of the join for r = 1 + 1e-9, left of it (on the
    quadratic piece, which r = 1 belongs to: |r| <= 1) at r = 1."""
    assert gradient("central", huber, [1 + 1e-9]).stats["step_changes"]["theta[0]"].startswith("forward")
    assert gradient("central", huber, [1.0]).stats["step_changes"]["theta[0]"].startswith("backward")


def test_other_entries_keep_their_symmetric_stencil():
    def f(xp, t):
        return huber(xp, t) + xp.sin(t[1]) * t[2]

    res = gradient("five_point", f, [1 + 1e-9, 0.3, -2.0])
    assert list(res.stats["step_changes"]) == ["theta[0]"]
    with mp.workdps(50):
        expected = [1.0, float(mp.cos(mp.mpf(0.3)) * -2), float(mp.sin(mp.mpf(0.3)))]
    np.testing.assert_allclose(res.grad, expected, rtol=1e-10)


@pytest.mark.parametrize("scheme", SYMMETRIC)
def test_a_true_kink_at_theta_is_still_reported(scheme):
    """relu at 0: its two one-sided derivatives differ (0 and 1), at every step: a kink of f, reported."""
    with pytest.warns(KinkWarning):
        res = ds.get_differentiator("finite_diff", scheme=scheme).value_and_grad_fn(
            lambda xp, t: xp.relu(t[0]))(np.array([0.0]))
    assert res.stats["kink_params"] == ["theta[0]"]


@pytest.mark.parametrize("scheme", SYMMETRIC)
def test_a_kink_next_to_theta_is_reported_or_stepped_around(scheme):
    """relu at 1e-9: theta is on the linear piece (relu'(1e-9) = 1), 1e-9 from the kink, closer than the kink
    rule's shortest step. Either the kink is reported (the average of the two sides, as documented), or the
    derivative is the true one, from theta's own side: never a silent average."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = ds.get_differentiator("finite_diff", scheme=scheme).value_and_grad_fn(
            lambda xp, t: xp.relu(t[0]))(np.array([1e-9]))
    reported = res.stats["kink_params"] == ["theta[0]"] and any(isinstance(w.message, KinkWarning) for w in caught)
    assert reported or abs(res.grad[0] - 1.0) <= 1e-9


# ----- found by review: f's rounding, a kink further along theta's side, an analytic join -----
@pytest.mark.parametrize("scheme, bound", [("central", 2e-6), ("five_point", 1e-6), ("richardson", 2e-5)])
def test_a_join_under_a_large_constant_is_not_lost_in_rounding(scheme, bound):
    """Huber + 1e7 at 1 + 1e-9: f rounds to eps 1e7, so a one-sided tableau at the step balanced for |f| ~ 1 gave
    6.1e-4 (central); its first step now balances f's own rounding, and where the symmetric result agrees with it
    within its error (central here) the symmetric one, with less rounding, stands. Before the one-sided tableau:
    central 8.1e-7, five-point 1.2e-4, Richardson 9.9e-4 with an estimate below it."""
    res = gradient(scheme, lambda xp, t: huber(xp, t) + 1e7, [1 + 1e-9])
    assert abs(res.grad[0] - 1.0) <= bound
    if scheme == "richardson":
        assert res.stats["error_estimate"][0] >= abs(res.grad[0] - 1.0)


@pytest.mark.parametrize("scheme", SYMMETRIC)
def test_a_kink_further_along_thetas_own_side_is_stepped_short_of(scheme):
    """theta = 1 + 1e-7 lies on the linear piece t of a join at 1 (left: t + 1e6 (t - 1)^2, same slope 1 at 1),
    and a relu joins at 1.01 on theta's side. Both sides' first one-sided steps (Richardson's 0.018) see another
    branch; the side that lies on one piece at that step is the *left* one, whose slope extrapolated to theta is
    1 + 2e6 * 1e-7 = 1.2 (Richardson gave 1.19986 with an error estimate of 1.2e-6). Theta's own side at a
    shorter step sees the true slope, 1."""
    def f(xp, t):
        return xp.where(t[0] <= 1, t[0] + 1e6 * (t[0] - 1) ** 2, t[0]) + 0.5 * xp.relu(t[0] - 1.01)

    res = gradient(scheme, f, [1 + 1e-7])
    assert abs(res.grad[0] - 1.0) <= TOLERANCE[scheme]
    if scheme == "richardson":
        assert res.stats["error_estimate"][0] >= abs(res.grad[0] - 1.0)


@pytest.mark.parametrize("scheme", SYMMETRIC)
def test_an_analytic_function_written_with_where_keeps_its_symmetric_stencil(scheme):
    """A stable softplus, where(t > 0, t + log1p(e^-|t|), log1p(e^-|t|)), is one analytic function on both sides
    of 0: the symmetric result agrees with the one-sided one, and keeps its lower rounding (the one-sided tableau
    made five-point's error at 0 64 times larger). softplus'(0) = 1/2."""
    def softplus(xp, t):
        tail = xp.log1p(xp.exp(-xp.abs(t[0])))
        return xp.where(t[0] > 0, t[0] + tail, tail)

    res = gradient(scheme, softplus, [0.0])
    assert not {"forward", "backward"} & set(res.stats["step_changes"].get("theta[0]", "").split("+"))
    assert abs(res.grad[0] - 0.5) <= 1e-10


@pytest.mark.parametrize("scheme", SYMMETRIC)
@pytest.mark.parametrize("r", [1e-3, 1e-3 + 1e-9, -1e-3])
def test_a_narrow_huber_whose_steps_reach_its_other_join(scheme, r):
    """Huber with delta = 1e-3 at its join: Richardson's steps (2.3e-3 and up) also cross the join at -delta, so its
    smoothness test saw two pieces on one side, reported a kink and kept the average, 1.9e-4 for 1e-3. The test is
    repeated at the kink rule's shortest step, which sees only the join at theta."""
    delta = 1e-3

    def narrow(xp, t):
        return xp.where(xp.abs(t[0]) <= delta, 0.5 * t[0] * t[0], delta * (xp.abs(t[0]) - 0.5 * delta))

    res = gradient(scheme, narrow, [r])
    true = r if abs(r) <= delta else delta * np.sign(r)
    assert abs(res.grad[0] - true) <= 1e-8 * abs(true)
    assert res.stats["kink_params"] == []


@pytest.mark.parametrize("scheme", SYMMETRIC)
def test_a_join_smooth_to_second_order_is_no_kink(scheme):
    """0 for t < 0, t^3 above: f, f' and f'' are continuous at 0 (f''' jumps), f'(0) = 0. The two-step one-sided
    extrapolation is off by a b (f''' / 6 = 1) there, as much as its first-order term, which read as a kink (a
    KinkWarning for a smooth f); order-3 one-sided tableaus at short steps agree."""
    res = gradient(scheme, lambda xp, t: xp.where(t[0] < 0, 0.0 * t[0], t[0] ** 3), [0.0])
    assert res.stats["kink_params"] == [] and abs(res.grad[0]) <= 1e-10


@pytest.mark.parametrize("scheme, evaluations", [("central", 1 + 10 * (2 + 6 + 2)), ("five_point", 1 + 10 * (4 + 12)),
                                                 ("richardson", 1 + 10 * (9 + 27))])
def test_huber_at_zero_residuals_pays_no_one_sided_tableau(scheme, evaluations):
    """Huber's abs counts as a kink op at a zero residual, where f = r^2 / 2 is analytic. Its symmetric result, 0,
    lies between the one-sided derivatives the smoothness test extrapolates, so no one-sided tableau runs: per entry
    the first stencil, the kink rule's three shorter ones, and (central) the smoothness test's f(theta +- h/2),
    as before the one-sided tableau existed (without that check: 521, 931 and 1891 evaluations, for the same 0)."""
    res = gradient(scheme, lambda xp, t: xp.sum(xp.where(xp.abs(t) <= 1.0, 0.5 * t * t, xp.abs(t) - 0.5)),
                   np.zeros(10))
    assert np.all(res.grad == 0.0) and res.stats["n_evals"] == evaluations


@pytest.mark.parametrize("scheme", SYMMETRIC)
def test_the_tie_side_is_the_piece_next_to_theta_not_one_past_another_join(scheme):
    """Huber (delta = 0.1) of r = theta - 1000, plus 1e4, at r = 0: |r| is a branch of its own at 0, so neither side
    takes theta's branches, and a side whose points all agree with each other is used. At five-point's first
    one-sided step (1.9) the right side's points all lie on the linear piece past r = 0.1, and agreed: 0.06 for 0,
    reported unsettled. Agreement is now with a point 256 ulps along the side, on the quadratic piece; f'(1000) = 0."""
    def f(xp, t):
        r = t[0] - 1000.0
        return xp.where(xp.abs(r) <= 0.1, 0.5 * r ** 2, 0.1 * (xp.abs(r) - 0.05)) + 1e4

    res = gradient(scheme, f, [1000.0])
    assert abs(res.grad[0]) <= 1e-6 and res.stats["unsettled_params"] == []


@pytest.mark.parametrize("offset", [0.0, 1e4])
@pytest.mark.parametrize("scheme", SYMMETRIC)
def test_a_join_closer_than_the_kink_rule_reaches(scheme, offset):
    """Huber with delta = 1e-3 about 1000, at r = delta - 1e-6 (on the quadratic piece, f' = r): Richardson's
    stencil (steps from 51) spans both joins; its smoothness test passed only at the short retest steps, and the
    one-sided search, three 16-fold shrinks from 18, never reached one piece, so the average of both joins,
    1.9e-7 for 9.99e-4, was returned with no kink reported. The one-sided search now shrinks up to eight times
    and takes the better side; a search that finds none leaves the kink reported."""
    def f(xp, t):
        r = t[0] - 1000.0
        return xp.where(xp.abs(r) <= 1e-3, 0.5 * r ** 2, 1e-3 * (xp.abs(r) - 0.5e-3)) + offset

    theta = 1000.0 + (1e-3 - 1e-6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = ds.get_differentiator("finite_diff", scheme=scheme).value_and_grad_fn(f)(np.array([theta]))
    true = theta - 1000.0  # r at the float theta
    reported = res.stats["kink_params"] == ["theta[0]"] and any(isinstance(w.message, KinkWarning) for w in caught)
    # (f + 1e4 rounds to 2e-12: 2e-6 over a step of 1e-6; without the offset the result is exact to rounding)
    assert reported or abs(res.grad[0] - true) <= (2e-3 if offset else 1e-9) * true
    if scheme == "richardson" and not reported:  # (an estimate: within a factor 2 where the error is rounding, 1e-14)
        assert res.stats["error_estimate"][0] >= abs(res.grad[0] - true) / 2


@pytest.mark.parametrize("scheme", SYMMETRIC)
def test_joins_either_side_closer_than_rounding_allows_are_reported(scheme):
    """Huber(2t - 2846.4739999) + Huber(-3t + 4270.2110001) at t = 1423.737: r1 = 1 + 1e-7 (linear piece, slope
    2 sign(r1)) and r2 = -1 + 1e-7 (quadratic piece, slope -3 r2), joins 5e-8 and 3.3e-8 away on either side of
    theta. The side of one piece lies so close that the one-sided steps round to 1e-3 of the slope (the residuals
    cancel values of 2846): five-point returned 5.0028 for 4.9999997 with nothing reported (before the one-sided
    tableau: 2.2, a kink). An entry is now within 1e-6 of the slope or reported (unsettled or kink)."""
    def f(xp, t):
        return huber(xp, 2 * t - 2846.4739999000003) + huber(xp, -3 * t + 4270.2110001)

    theta = 1423.737
    with mp.workdps(50):
        r1 = 2 * mp.mpf(theta) - mp.mpf(2846.4739999000003)
        r2 = -3 * mp.mpf(theta) + mp.mpf(4270.2110001)
        slope = float((2 * r1 if abs(r1) <= 1 else 2 * mp.sign(r1)) + (-3 * r2 if abs(r2) <= 1 else -3 * mp.sign(r2)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ds.get_differentiator("finite_diff", scheme=scheme).value_and_grad_fn(f)(np.array([theta]))
    reported = "theta[0]" in res.stats["unsettled_params"] + res.stats["kink_params"]
    assert reported or abs(res.grad[0] - slope) <= 1e-6 * abs(slope)


def test_a_symmetric_result_from_other_pieces_is_not_taken_for_analytic():
    """Two soft clips (r - r^3 / 3 inside |r| < 1, +-2/3 outside, the sign chosen by a where of its own) of linear
    residuals of three parameters near 1.5e3, both residuals within 1e-7 of 0: f is analytic there, but
    Richardson's steps (28 and up) reach the saturated pieces on both sides, and the sign's where (evaluated
    inside the unselected branch too) flips 5e-10 from theta, closer than any step: no side of one piece is found,
    and the symmetric result, -0.16 for d/dt2 = -4, was kept unreported. It is reported now (a kink)."""
    def softclip(xp, r):
        return xp.where(xp.abs(r) < 1.0, r - r ** 3 / 3.0, xp.where(r > 0.0, 2.0 / 3.0 + 0.0 * r, -2.0 / 3.0 + 0.0 * r))

    def f(xp, t):
        return softclip(xp, -2.0 * t[0] - 2.0 * t[1] - 2.0 * t[2] + 9917.1860001) + \
            softclip(xp, 3.0 * t[0] - 2.0 * t[1] - 2.0 * t[2] + 2765.690999999)

    theta = np.array([1430.299, 1966.062, 1562.232])
    with mp.workdps(50):
        t = [mp.mpf(float(v)) for v in theta]
        r1 = -2 * t[0] - 2 * t[1] - 2 * t[2] + mp.mpf(9917.1860001)
        r2 = 3 * t[0] - 2 * t[1] - 2 * t[2] + mp.mpf(2765.690999999)
        assert abs(r1) < 1 and abs(r2) < 1  # both inside: slopes 1 - r^2
        true = np.array([float((1 - r1 ** 2) * a + (1 - r2 ** 2) * b) for a, b in ((-2, 3), (-2, -2), (-2, -2))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ds.get_differentiator("finite_diff", scheme="richardson").value_and_grad_fn(f)(theta)
    reported = set(res.stats["kink_params"]) | set(res.stats["unsettled_params"])
    silent = [i for i in range(3) if f"theta[{i}]" not in reported and abs(res.grad[i] - true[i]) > 1e-6]
    assert silent == [], (res.grad, true, reported)
