"""An entry whose change is lost in f's rounding gets a longer step, but never longer than its own truncation allows.

The case: the agreement study's problem 119 (seed 0; tanh, quadratic loss, L2, layers 1-3-3-1, batch 2). Its
hidden unit b1[1] sits at a pre-activation near -10.7, where tanh is saturated: dJ/db1[1] = -1.1e-13 next to
J = 59. Central's automatic step (6.5e-5) sees no change of J at all, so step control enlarged the step. The
enlargement assumed J linear in b1[1] and jumped to 25.3, across tanh's whole transition: -0.557 instead of
-1.1e-13, marked "unsettled" in step_changes and otherwise silent. The problem is written out here (parameters,
data and network, all float32-exact) so that it does not depend on the study's generator.

Oracles: ``ds.reference_gradient`` (exact, rounded to float64) and, for b1[1] and the 1-D cases, the derivative
written by hand and evaluated in mpmath at 50 digits. None comes from the code under test.
"""
import warnings

import mpmath as mp
import numpy as np
import pytest

import diffsuite as ds
from diffsuite.differentiators.finite_diff import UnsettledStepWarning
from diffsuite.differentiators.finite_diff.control import ENLARGE_TRIES, Rule, StepControl

EPS = float(np.finfo(np.float64).eps)
REAL = ("forward", "central", "five_point", "richardson")
ORDER = {"forward": 1, "central": 2, "five_point": 4, "richardson": 8}
#: the agreement study's accuracy classes (normwise error on a smooth float64 problem), copied
CLASS = {"forward": 1e-3, "central": 1e-5, "five_point": 1e-7, "richardson": 1e-7}

THETA_119 = np.array([
    0.10174335539340973, -8.622254371643066, -8.338706016540527,  # W0 (1 x 3)
    3.346630334854126, -0.7150595784187317, 0.24978628754615784,  # b0
    0.5752895474433899, -9.384441375732422, -1.3414440155029297,  # W1 (3 x 3), row by row
    0.20812495052814484, -7.983971118927002, 0.9451897740364075,
    12.199618339538574, 5.00078010559082, -6.62329626083374,
    1.7788341045379639, -10.664484977722168, 4.430220603942871,  # b1: b1[1] = -10.66
    6.851541996002197, 2.3905279636383057, 0.3726964294910431,  # W2 (3 x 1)
    -5.079130172729492])  # b2
X_119 = [[0.9035924673080444], [-0.20782244205474854]]
Y_119 = [[0.6964624524116516], [0.9293333292007446]]
B1_1 = 16  # the flat index of b1[1]


def problem_119():
    model = ds.MLP((1, 3, 3, 1), activation="tanh", output_activation="identity")
    return ds.Objective(model, "quadratic", X_119, Y_119, l2=2.0 ** -7), THETA_119.copy()


def hand_b1_1():
    """dJ/db1[1] = (1/B) sum_b (y_b - y*_b) W2[1, 0] sech^2(z_b), z_b the pre-activation of hidden unit b1[1]:
    J = 1/(2B) sum (y - y*)^2 + L2 (on the weights only: b1 is not in it), y = W2^T tanh(W1^T tanh(W0^T x + b0)
    + b1) + b2. In mpmath at 50 digits."""
    t = [mp.mpf(float(v)) for v in THETA_119]
    w0, b0, w1, b1, w2, b2 = t[0:3], t[3:6], [t[6:9], t[9:12], t[12:15]], t[15:18], t[18:21], t[21]
    with mp.workdps(50):
        total = mp.mpf(0)
        for (x,), (target,) in zip(X_119, Y_119):
            h1 = [mp.tanh(w0[j] * mp.mpf(x) + b0[j]) for j in range(3)]
            z2 = [mp.fsum(w1[i][k] * h1[i] for i in range(3)) + b1[k] for k in range(3)]
            y = mp.fsum(w2[k] * mp.tanh(z2[k]) for k in range(3)) + b2
            total += (y - mp.mpf(target)) * w2[1] * mp.sech(z2[1]) ** 2
        return float(total / len(X_119))


def test_the_reconstructed_problem_119_is_the_studys_case():
    obj, theta = problem_119()
    ref = ds.reference_gradient(obj, theta)
    assert obj.param_names()[B1_1] == "b1[1]"
    assert ref.grad[B1_1] == pytest.approx(hand_b1_1(), rel=1e-12)  # the two oracles agree: -1.09e-13
    assert -1.2e-13 < ref.grad[B1_1] < -1.0e-13 and 58 < ref.value < 60


@pytest.mark.parametrize("scheme", REAL)
def test_problem_119_b1_1_is_within_the_schemes_usual_accuracy(scheme):
    obj, theta = problem_119()
    ref = np.asarray(ds.reference_gradient(obj, theta).grad, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about: every entry settles
        res = ds.get_differentiator("finite_diff", scheme=scheme).value_and_grad(obj)(theta)
    # the scheme's usual absolute accuracy: eps^(p/(p+1)) times f's scale (|f| = 59); it was 0.56 (central)
    assert abs(res.grad[B1_1] - ref[B1_1]) <= EPS ** (ORDER[scheme] / (ORDER[scheme] + 1)) * abs(res.value)
    assert abs(res.grad[B1_1] - ref[B1_1]) <= 1e-12  # in fact within a few times its rounding, 8 eps |f| / h
    assert np.max(np.abs(res.grad - ref)) / np.max(np.abs(ref)) <= CLASS[scheme]  # the study's row: normwise
    assert res.stats["unsettled_params"] == []
    assert "unsettled" not in res.stats["step_changes"].get("b1[1]", "")
    # the step stays on f's own scale in b1[1]: far short of tanh's transition, 10.66 away (it was 25.3)
    assert res.stats["steps"][B1_1] < abs(theta[B1_1]) / 4


@pytest.mark.parametrize("scheme", ["forward", "central", "five_point"])
@pytest.mark.parametrize("coef, t0, base", [(4.5e-5, -10.66, 59.0), (0.5, -18.0, 2.0)])
def test_a_saturated_tanh_gets_a_step_short_of_its_transition(scheme, coef, t0, base):
    # f = base + coef tanh(t): f' = coef sech^2(t), 1e-13 and 5e-16, lost in f's rounding at the automatic step;
    # the linear model's step was 28 and 72 (central: 1.6e-6 and 6.9e-3 instead)
    with mp.workdps(50):
        exact = float(mp.mpf(coef) * mp.sech(mp.mpf(t0)) ** 2)  # by hand
    res = ds.get_differentiator("finite_diff", scheme=scheme).value_and_grad_fn(
        lambda xp, t: base + coef * xp.tanh(t))(t0)
    assert abs(float(res.grad) - exact) <= 16 * 8 * EPS * base / float(res.stats["steps"][0])  # its rounding
    assert abs(float(res.grad) - exact) <= EPS ** (ORDER[scheme] / (ORDER[scheme] + 1)) * base
    assert float(res.stats["steps"][0]) < 2.0 and res.stats["unsettled_params"] == []


def test_a_linear_entry_still_gets_the_long_step():
    # f = t0^2 + 1.5e-11 t1: no curvature in t1, so the enlarged step is taken as it is (by hand: 1.5e-11)
    res = ds.get_differentiator("finite_diff").value_and_grad_fn(lambda xp, t: t[0] ** 2 + 1.5e-11 * t[1])(
        np.array([1.0, 0.5]))
    assert res.grad[1] == pytest.approx(1.5e-11, rel=1e-6)
    assert res.stats["step_changes"] == {"theta[1]": "underflow"} and res.stats["steps"][1] >= 1 / 16  # the probe


def test_an_enlarged_step_that_never_fits_is_unsettled_with_its_spread_in_the_estimate():
    # f = 1 + 1e-10 sin(1e12 t) in float64 is rough on every step tried, from the probe 1/16 down to 4^-ENLARGE_TRIES
    # of it: 1e-10 / h of scatter against a rounding of 8 eps / h, so no step fits and no two steps agree
    def f(p):
        return 1.0 + 1e-10 * np.sin(1e12 * p)

    t, probe, tried = 1.0, 1 / 16, []

    def evaluate(i, points):
        tried.append(points)
        return [f(p) for p in points], False

    control = StepControl(Rule("central"), np.array([t]), f(t), evaluate)
    entry, why = control.enlarge(0, probe, abs(f(t + probe) - f(t - probe)), 4 * float(np.spacing(1.0)))
    assert why == ["underflow", "unsettled"] and len(tried) == ENLARGE_TRIES + 1  # the target, then 4x shorter
    assert probe * 4.0 ** -ENLARGE_TRIES <= entry.coarse <= probe
    assert entry.trunc > 100 * entry.rounding and np.isfinite(entry.trunc)  # the spread, not the rounding model


def test_an_unsettled_entry_is_named_in_stats_and_in_a_warning():
    # relu on its kink with kink_check off: the quotient changes like h as the step shrinks (f piecewise
    # quadratic), so the truncation search never settles; by hand the kinked entries are 0, 2, 4, 6
    model = ds.MLP((3, 2, 1), activation="relu")
    theta = model.pack({"W0": [[1.0, 0.3], [0.5, 0.2], [-4.0, 0.1]], "b0": [0.0, 0.1], "W1": [[0.6], [0.7]],
                        "b1": [0.2]})  # x W0[:, 0] + b0[0] = 1 + 1 - 2 + 0 = 0
    obj = ds.Objective(model, "quadratic", [[1.0, 2.0, 0.5]], [[1.0]])
    with pytest.warns(UnsettledStepWarning, match=r"did not settle for 4 parameter\(s\).*b0\[0\] = 0 .*error up to"):
        res = ds.get_differentiator("finite_diff", kink_check=False).value_and_grad(obj)(theta)
    assert res.stats["unsettled_params"] == ["W0[0, 0]", "W0[1, 0]", "W0[2, 0]", "b0[0]"]
    assert all("unsettled" in res.stats["step_changes"][n] for n in res.stats["unsettled_params"])
