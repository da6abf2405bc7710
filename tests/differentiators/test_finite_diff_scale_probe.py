"""The automatic step max(1, |theta_i|) eps^(1/(p+1)) assumes f varies on the scale |theta_i|. A function of the
differences of its inputs (log-sum-exp, softmax, a distance) varies on the scale 1 wherever theta lies: before the
scale probe (``FiniteDiff._scale_probe``) five-point gave 0.478 for 0.174 on a float32 log-sum-exp at ~1000 (step
41, across the whole transition, where the values look linear and no truncation shows), with nothing reported,
and 0.49999 for 0.47423 in float64 at ~1e7.

Expected values: the softmax of theta written out here in mpmath at 50 digits (d logsumexp / d t_i), never the
code's output. Tolerances are each scheme's class at that |f| (float32 at f ~ 1000 rounds to ~1e-4 absolute)."""
from __future__ import annotations

import warnings

import mpmath as mp
import numpy as np
import pytest

import diffsuite as ds


def softmax(theta: np.ndarray) -> np.ndarray:
    with mp.workdps(50):
        e = [mp.exp(mp.mpf(float(t))) for t in theta]
        total = mp.fsum(e)
        return np.array([float(v / total) for v in e])


def lse(xp, t):
    return xp.logsumexp(t)


def gradient(scheme, f, theta, dtype="float64"):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing unsettled: the probe's step resolves f
        return ds.get_differentiator("finite_diff", scheme=scheme, dtype=dtype).value_and_grad_fn(f)(theta)


@pytest.mark.parametrize("dtype, centre, tolerance", [
    ("float64", 1e7, {"central": 1e-4, "five_point": 1e-6, "richardson": 1e-6}),
    ("float32", 1000.0, {"central": 2e-2, "five_point": 5e-3, "richardson": 5e-3}),
])
@pytest.mark.parametrize("scheme", ["central", "five_point", "richardson"])
def test_a_log_sum_exp_far_from_0_gets_its_softmax(dtype, centre, tolerance, scheme):
    theta = np.array([centre, centre - 0.7, centre + 0.3]).astype(dtype).astype(np.float64)  # (the point evaluated)
    res = gradient(scheme, lse, theta, dtype)
    np.testing.assert_allclose(res.grad, softmax(theta), rtol=tolerance[scheme])


def test_the_probe_is_named_in_step_changes_and_counted():
    theta = np.array([1000.0, 999.3, 1000.3]).astype(np.float32).astype(np.float64)
    res = gradient("five_point", lse, theta, "float32")
    assert all("scale" in res.stats["step_changes"][f"theta[{i}]"] for i in range(3))
    # 4 points per entry at the first step, 4 at the probe's, then the evaluations of step control from there
    assert res.stats["n_evals"] >= 1 + 3 * 4 + 3 * 4 and res.stats["n_retry_evals"] >= 3 * 4


@pytest.mark.parametrize("f, t, slope", [
    pytest.param(lambda xp, t: t[0] ** 2, 1e7, lambda t: 2 * t, id="t^2"),
    pytest.param(lambda xp, t: xp.exp(t[0] / 1000), 5000.0, lambda t: mp.exp(t / 1000) / 1000, id="exp(t/1000)"),
    pytest.param(lambda xp, t: xp.log(t[0]), 1e6, lambda t: 1 / t, id="log"),
    pytest.param(lambda xp, t: xp.sin(t[0] / 1e4), 3e4, lambda t: mp.cos(t / 10000) / 10000, id="sin(t/1e4)"),
])
@pytest.mark.parametrize("scheme", ["central", "five_point", "richardson"])
def test_a_function_on_the_scale_of_theta_keeps_its_step(f, t, slope, scheme):
    """The probe agrees with the first result within its rounding: the first (longer, less rounding) step stands,
    at the cost of the probe's evaluations (one stencil more per entry)."""
    res = gradient(scheme, f, np.array([t]))
    with mp.workdps(50):
        true = float(slope(mp.mpf(t)))
    assert res.stats["step_changes"] == {}
    assert abs(res.grad[0] - true) <= 1e-9 * abs(true)


@pytest.mark.parametrize("scheme, points", [("forward", 2), ("central", 2), ("five_point", 4), ("richardson", 9)])
def test_parameters_below_the_probes_reach_pay_nothing(scheme, points):
    """The probe is tried from |theta_i| ~ 8^((p+1)/p) (forward 64, central 23, five-point 14, Richardson 10): below,
    no probe and no retry (an MLP's weights; t^2 at 9, whose first step resolves it). Richardson's coarse step used
    to set its reach at 3.25, doubling its evaluations from there."""
    res = gradient(scheme, lambda xp, t: xp.sum(xp.tanh(t) ** 2) + t[3] ** 2, np.array([0.3, -2.0, 5.0, 9.0]))
    assert res.stats["n_retry_evals"] == 0 and res.stats["n_evals"] == 1 + points * 4


def log_softmax_first(theta: np.ndarray) -> np.ndarray:
    """d/dt_i (t_0 - logsumexp(t)) = [i == 0] - softmax(t)_i."""
    return np.eye(len(theta))[0] - softmax(theta)


@pytest.mark.parametrize("dtype, centre, tolerance", [("float64", 1e7, 1e-4), ("float32", 300.0, 1e-2)])
@pytest.mark.parametrize("scheme", ["central", "five_point", "richardson"])
def test_a_probe_lost_in_cancellation_leaves_no_entry_silently_wrong(dtype, centre, tolerance, scheme):
    """t0 - logsumexp(t) at 1e7 is O(1) but cancels values of 1e7: its rounding is eps 1e7, far above the noise
    model's eps |f|, so a probe on the scale 1 moves by rounding. Taken unconfirmed, it left central 1.2e-4 off
    with no warning (the first step's search had been reported unsettled). Its result is now confirmed at 4 times
    its step; unconfirmed, the first result stands, reported with no bound. So every entry is within the
    scheme's class here, or listed in unsettled_params."""
    theta = np.array([centre, centre - 0.7, centre + 0.3]).astype(dtype).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ds.get_differentiator("finite_diff", scheme=scheme, dtype=dtype).value_and_grad_fn(
            lambda xp, t: t[0] - xp.logsumexp(t))(theta)
    errors = np.abs(res.grad - log_softmax_first(theta))
    silent = [f"theta[{i}]" for i in np.flatnonzero(errors > tolerance)
              if f"theta[{i}]" not in res.stats["unsettled_params"]]
    assert silent == [], (res.grad, errors, res.stats["unsettled_params"])


@pytest.mark.parametrize("scheme, tolerance", [("forward", 3e-4), ("backward", 3e-4), ("central", 1e-5)])
def test_a_probe_never_steps_below_the_ulp_of_theta(scheme, tolerance):
    """log-softmax at 1e8 in float64: f is O(1), its noise model eps |f|, so the probe's step balanced for that was
    about one ulp of theta (1.5e-8), where forward quotients snapped to 1 and 1/2 and were taken, 21% off, with no
    warning. The probe's step is now at least (eps |theta_i|)^(1/(p+1)), and its comparisons allow f the rounding
    of a value of theta's size. The tolerances are each scheme's class for an f rounded to eps 1e8
    (forward: 2 sqrt(eps 1e8 |f''|) ~ 1e-4)."""
    theta = np.array([1e8 + 0.5, 1e8 - 1.25, 1e8 + 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ds.get_differentiator("finite_diff", scheme=scheme).value_and_grad_fn(
            lambda xp, t: t[0] - xp.logsumexp(t))(theta)
    errors = np.abs(res.grad - log_softmax_first(theta))
    silent = [f"theta[{i}]" for i in np.flatnonzero(errors > tolerance)
              if f"theta[{i}]" not in res.stats["unsettled_params"]]
    assert silent == [], (res.grad, errors)


def test_the_probe_allows_f_the_rounding_of_a_cancelled_value():
    """exp(t0 - logsumexp(t)) at ~1.5e5: f is a probability, but t0 - logsumexp(t) cancels values of 1.5e5, so f is
    rounded to about eps 1.5e5 |f|, not eps |f|. Taken at the noise model's word, the probe's results differed by
    that rounding and every entry ended unsettled; allowing f that rounding (``control.cancellation_floor``), they
    settle, and Richardson's estimate still bounds the error. d/dt_i p0 = p0 ([i == 0] - p_i), written out."""
    theta = np.array([151755.46213269644, 151755.929718774, 151759.14120092223])
    p = softmax(theta)
    true = p[0] * (np.eye(3)[0] - p)
    res = gradient("richardson", lambda xp, t: xp.exp(t[0] - xp.logsumexp(t)), theta)
    assert np.all(np.abs(res.grad - true) <= res.stats["error_estimate"])
