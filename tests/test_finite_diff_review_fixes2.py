"""Finite differences: the second review's findings (docs/finite_diff.md, docs/higher_order.md).

Each test failed on the code before the fix. Expected values are hand derivatives written here, or
torch.autograd in float64; never diffsuite's own.
"""
import math
import warnings

import numpy as np
import pytest

import diffsuite as ds
from diffsuite.differentiators.finite_diff import (DomainWarning, KinkWarning, UnsettledStepWarning)

torch = pytest.importorskip("torch")


def fd(**options):
    return ds.get_differentiator("finite_diff", **options)


def quietly(d, f, theta, *args):
    """value_and_grad with every warning recorded; numpy's RuntimeWarnings are errors (none may escape)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("error", RuntimeWarning)
        res = d.value_and_grad(f)(np.asarray(theta, dtype=np.float64), *args)
    return res, [w.category for w in caught]


def torch_grad(tf, x):
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tf(t).backward()
    return t.grad.numpy()


def accurate_or_unsettled(res, truth, rtol):
    """Either the entry is right to rtol, or step control says it did not settle (never silently wrong)."""
    err = abs(res.grad[0] - truth) / abs(truth)
    return err <= rtol or res.stats["unsettled_params"] == ["theta[0]"]


# ----- 1. Richardson's levels, all powers of 2 apart, aliased a period of f -----
@pytest.mark.parametrize("w", [2925.266337436645, 2925.0, 5846.787276937589, 141376.08138073614,
                               199871.96386572486])
def test_richardson_is_not_fooled_by_levels_that_alias_a_period(w):
    # sin(w t) at 0.3: before, 0.0171 for -1591.08 (w = 2925.27) with error_estimate 1.1e-12 and no warning
    res, caught = quietly(fd(scheme="richardson"), lambda xp, t: xp.sin(w * t[0]), [0.3])
    truth = w * math.cos(w * 0.3)  # by hand
    # inf where it did not settle. (A factor 2 of slack: sin(w t) rounds its argument w t, ~1e-13 here, far above
    # the model's 8 eps |f|, the known limit of the rounding model; the aliased result was 1e15 times its estimate)
    assert abs(res.grad[0] - truth) <= 2 * res.stats["error_estimate"][0]
    assert (res.stats["error_estimate"][0] == np.inf) == (res.stats["unsettled_params"] == ["theta[0]"])


def test_the_reviewers_sine_now_settles_on_its_derivative():
    res, caught = quietly(fd(scheme="richardson"), lambda xp, t: xp.sin(2925.0 * t[0]), [0.3])
    truth = torch_grad(lambda t: torch.sin(2925.0 * t[0]), [0.3])[0]
    assert abs(res.grad[0] - truth) <= 1e-9 * abs(truth) and res.stats["unsettled_params"] == []
    assert res.stats["error_estimate"][0] <= 1e-9 * abs(truth) and not caught


def test_richardsons_check_costs_one_evaluation_per_entry_and_an_explicit_step_none():
    calls = []

    def f(xp, t):
        calls.append(1)
        return xp.sum(xp.sin(t))

    theta = np.array([0.3, -1.2, 2.0])
    res = fd(scheme="richardson").value_and_grad(f)(theta)
    assert res.stats["n_evals"] == len(calls) == 2 * 3 * 4 + 3 + 1 and res.stats["n_retry_evals"] == 0
    np.testing.assert_allclose(res.grad, np.cos(theta), rtol=1e-12)  # by hand
    calls.clear()
    res = fd(scheme="richardson", step=0.05).value_and_grad(f)(theta)
    assert res.stats["n_evals"] == len(calls) == 2 * 3 * 4 + 1


# ----- 2. central's truncation model missed truncation that is odd about theta -----
def test_central_measures_odd_truncation():
    # tanh(1e4 t) at 0: f'' = 0 there, so B = 0 and the model saw nothing: 9987.795 for 1e4
    res, caught = quietly(fd(), lambda xp, t: xp.tanh(1e4 * t[0]), [0.0])
    assert abs(res.grad[0] - 1e4) <= 1e-9 * 1e4  # by hand: 1e4 sech^2(0)
    assert "truncation" in res.stats["step_changes"]["theta[0]"] and res.stats["unsettled_params"] == []


@pytest.mark.parametrize("f, x, truth, dtype", [
    (lambda xp, t: xp.tanh(1e6 * t[0]), 0.0, 1e6, "float64"),        # before: 165139, silent
    (lambda xp, t: (1e12 * t[0]) ** 3, 1e-12, 3e12, "float64"),       # before: 3.67e25 (3 w^3 t^2 by hand)
    (lambda xp, t: t[0] ** 3, 1e-6, 3e-12, "float32"),                # before: 2.4e-5 (3 t^2)
])
def test_central_is_never_silently_wrong_on_odd_truncation(f, x, truth, dtype):
    res, caught = quietly(fd(dtype=dtype), f, [x])
    assert accurate_or_unsettled(res, truth, 1e-2)
    assert (UnsettledStepWarning in caught) == bool(res.stats["unsettled_params"])


def test_central_pays_nothing_extra_where_its_values_show_curvature():
    calls = []

    def f(xp, t):
        calls.append(1)
        return xp.sum(xp.exp(t)) + 1.0

    theta = np.array([0.3, -1.2, 2.0])
    res = fd().value_and_grad(f)(theta)
    assert res.stats["n_evals"] == len(calls) == 2 * 3 + 1 and res.stats["n_retry_evals"] == 0
    np.testing.assert_allclose(res.grad, np.exp(theta), rtol=1e-9)


# ----- 3. complex step: scalars of theta compared lexicographically -----
@pytest.mark.parametrize("f, x, truth, ties", [
    # at a tie the comparison is False (the real point is not > 1): the -t[0] branch, gradient -1 (by hand)
    (lambda xp, t: xp.where(t[0] > 1.0, 3 * t[0], -t[0]), [1.0], [-1.0], ["theta[0]"]),
    (lambda xp, t: xp.where(xp.sum(t) > 2.0, 3 * t[0], -t[0]), [1.0, 1.0], [-1.0, 0.0], ["theta[0]", "theta[1]"]),
    (lambda xp, t: xp.where(t @ np.ones(2) > 2.0, 3 * t[0], -t[0]), [1.0, 1.0], [-1.0, 0.0],
     ["theta[0]", "theta[1]"]),
    (lambda xp, t: xp.where(xp.max(t) > 1.0, 3 * t[0], -t[0]), [1.0, 1.0], [-1.0, 0.0], ["theta[0]", "theta[1]"]),
    (lambda xp, t: t[0] ** 2 if t[0] > 0.5 else -t[0], [0.5], [-1.0], ["theta[0]"]),  # (a Python if, at its tie)
])
def test_complex_step_compares_scalars_of_theta_on_the_real_part(f, x, truth, ties):
    res, caught = quietly(fd(scheme="complex_step"), f, x)
    np.testing.assert_array_equal(res.grad, truth)
    assert res.stats["kink_tie_params"] == ties


def test_complex_step_scalars_agree_with_torch_away_from_ties():
    f = lambda xp, t: xp.where(t[0] > 1.0, 3 * t[0] ** 2, -t[0]) + t[1]  # noqa: E731
    tf = lambda t: torch.where(t[0] > 1.0, 3 * t[0] ** 2, -t[0]) + t[1]  # noqa: E731
    for x in ([1.5, 2.0], [0.5, 2.0]):
        np.testing.assert_allclose(fd(scheme="complex_step").grad(f)(np.array(x)), torch_grad(tf, x), rtol=1e-15)


# ----- 4. complex step where f(theta) is NaN or -inf -----
@pytest.mark.parametrize("scheme", ["complex_step", "central", "richardson"])
@pytest.mark.parametrize("f, x", [(lambda xp, t: xp.sqrt(t[0] - 1.0) + t[1], [0.0, 2.0]),
                                  (lambda xp, t: xp.log(t[0]), [0.0]),
                                  (lambda xp, t: 1.0 / t[0], [0.0])])
def test_no_derivative_where_f_is_not_finite(scheme, f, x):
    # before: complex step (1e20, 1e20) and 1.57e20, central 1/h^2 for 1/t at 0, with raw RuntimeWarnings
    res, caught = quietly(fd(scheme=scheme), f, x)
    assert not np.isfinite(res.value) and np.all(np.isnan(res.grad))
    assert res.stats["nonfinite_params"] == [f"theta[{i}]" for i in range(len(x))]
    assert DomainWarning in caught and res.stats["n_evals"] == 1
    if scheme == "richardson":
        assert np.all(res.stats["error_estimate"] == np.inf)


# ----- 5. jvp / hessian / hvp: one step scale for all of theta -----
def badly_scaled(xp, t):
    return xp.exp(t[0]) + 1e-16 * t[1] ** 2


def torch_badly_scaled(t):
    return torch.exp(t[0]) + 1e-16 * t[1] ** 2


@pytest.mark.parametrize("scheme", ["central", "forward", "five_point", "complex_step"])
def test_directional_steps_scale_with_the_entries_the_direction_touches(scheme):
    x = np.array([0.5, 1e8])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        _, dv = fd(scheme=scheme).jvp(badly_scaled)(x, np.array([1.0, 0.0]))
        H = fd(scheme=scheme).hessian(badly_scaled)(x)
        Hv = fd(scheme=scheme).hvp(badly_scaled)(x, np.array([1.0, 0.0]))
    tx = torch.tensor(x, dtype=torch.float64)
    want_h = torch.autograd.functional.hessian(torch_badly_scaled, tx).numpy()
    rtol = {"central": 1e-9, "forward": 1e-6, "five_point": 1e-9, "complex_step": 1e-14}[scheme]
    assert abs(float(dv) - math.exp(0.5)) <= rtol * math.exp(0.5)  # before (central): 1.3e260
    assert abs(H[0, 0] - want_h[0, 0]) <= 1e-6 * want_h[0, 0]  # before: inf (complex step 1.3e260)
    assert abs(H[1, 1] - want_h[1, 1]) <= 1e-6 * want_h[1, 1] and abs(H[0, 1]) <= 1e-8  # before: NaN
    np.testing.assert_allclose(Hv, want_h @ [1.0, 0.0], rtol=1e-6, atol=1e-8)


# ----- 6. step control that stops without settling says so -----
@pytest.mark.parametrize("scheme, f, x, truth", [
    ("forward", lambda xp, t: (1e10 * t[0]) ** 2, 1e-10, 2e10),          # before: 2.0023e10, silent (2e20 t)
    ("central", lambda xp, t: xp.log(1.0 - t[0]), 1 - 1e-12, None),      # before: -1.00275e12, silent
])
def test_a_search_that_stops_while_still_truncating_is_unsettled(scheme, f, x, truth):
    truth = -1 / (1 - x) if truth is None else truth  # by hand (the float64 point's 1 - x)
    res, caught = quietly(fd(scheme=scheme), f, [x])
    assert abs(res.grad[0] - truth) > 1e-4 * abs(truth)  # the search cannot reach f's scale in 8 tries
    assert res.stats["unsettled_params"] == ["theta[0]"] and UnsettledStepWarning in caught
    assert "unsettled" in res.stats["step_changes"]["theta[0]"]


# ----- 7. float32 Richardson: rounding of the coarsest level hid a wrong sign -----
@pytest.mark.parametrize("x", [20.0, 50.0])
def test_float32_richardson_on_exp_is_right_or_unsettled(x):
    # before (x = 50): -1.06e27 for 5.18e21, error_estimate 2.3e27, no retry. A truncation that reaches the
    # result itself now sends the step down: the right sign and a few digits, within the estimate (float32 exp
    # at 50 spans decades over the stencil, and the rounding is taken from its largest value)
    res, caught = quietly(fd(scheme="richardson", dtype="float32"), lambda xp, t: xp.exp(t[0]), [x])
    truth = math.exp(float(np.float32(x)))  # by hand, at the float32 point
    assert abs(res.grad[0] - truth) <= res.stats["error_estimate"][0]
    assert abs(res.grad[0] - truth) <= 0.2 * truth


# ----- regressions the final review found: smooth functions and stationary points are settled -----
@pytest.mark.parametrize("scheme, f, x, truth", [
    ("richardson", lambda xp, t: xp.sum(xp.log(xp.cosh(t))), -2e-5, math.tanh(-2e-5)),
    ("richardson", lambda xp, t: xp.sum(xp.log(xp.cosh(t))), 1e-3, math.tanh(1e-3)),
    ("richardson", lambda xp, t: xp.sum(xp.log(xp.cosh(t))), 0.0, 0.0),
    ("forward", lambda xp, t: xp.sum((t - 1.0) ** 2), 1.0, 0.0),
    ("forward", lambda xp, t: xp.sum(t ** 3), 0.0, 0.0),
    ("central", lambda xp, t: xp.sum(t ** 3), 0.0, 0.0),
    ("five_point", lambda xp, t: xp.sum(t ** 5), 0.0, 0.0)])
def test_smooth_points_and_stationary_points_settle(scheme, f, x, truth):
    # d/dt log cosh t = tanh t; the others' derivatives are 0 there (a minimum, t^3 and t^5 at 0), by hand
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no UnsettledStepWarning
        res = fd(scheme=scheme).value_and_grad_fn(f)(np.array([x]))
    assert not res.stats["unsettled_params"]
    assert abs(res.grad[0] - truth) <= 1e-9 * max(abs(truth), 1e-3)


# ----- 8. non-analytic numpy calls under complex step -----
@pytest.mark.parametrize("f, name", [(lambda xp, t: xp.sum(t * np.conj(t)), "conjugate"),   # before: [0, 0]
                                     (lambda xp, t: xp.sum(np.sign(t) * t), "sign"),       # before: [2, -2]
                                     (lambda xp, t: xp.sum(abs(t) * 2.0), "absolute")])
def test_complex_step_refuses_non_analytic_numpy_calls(f, name):
    with pytest.raises(TypeError, match=rf"complex_step needs .*theta\[0\].* np\.{name} on theta.*scheme='central'"):
        fd(scheme="complex_step").grad(f)(np.array([0.7, -0.2]))


def test_a_rounding_residue_in_the_imaginary_part_is_not_carrying_it():
    # np.real drops theta's imaginary part; what is left, Im f(theta + iH) = -1e-280 (Im theta)^3, is 0 at the complex
    # step (it underflows) and -9e-293 at the real probe's H ~ 1e-4: a residue, not the derivative (the real slope,
    # 2 theta_i by hand). Before, any nonzero Im f there read as carried, and the gradient as an underflowed 0
    def f(xp, t):
        return xp.sum(np.real(t) ** 2) + 1e-280 * xp.sum((t - np.real(t)) ** 3)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        with pytest.raises(TypeError, match=r"does not move with theta\[0\].*scheme='central'"):
            fd(scheme="complex_step").grad(f)(np.array([0.7, 0.2]))


# ----- 9. no KinkWarning for a smooth f built from kinked pieces -----
@pytest.mark.parametrize("scheme", ["central", "forward", "backward", "five_point", "richardson"])
@pytest.mark.parametrize("f, x, truth", [(lambda xp, t: xp.relu(t[0]) - xp.relu(-t[0]), 0.0, 1.0),  # = t
                                         (lambda xp, t: xp.abs(t[0]) * xp.abs(t[0]), 0.0, 0.0)])   # = t^2
def test_a_smooth_function_built_from_kinked_pieces_is_no_kink(scheme, f, x, truth):
    res, caught = quietly(fd(scheme=scheme), f, [x])
    assert KinkWarning not in caught and res.stats["kink_params"] == []
    assert abs(res.grad[0] - truth) <= 1e-6  # by hand


@pytest.mark.parametrize("scheme, f", [
    *((s, f) for s in ("central", "five_point", "richardson")
      for f in (lambda xp, t: xp.relu(t[0]), lambda xp, t: xp.maximum(t[0], 0.5 * t[0]) * xp.exp(t[0]))),
    # (a one-sided stencil straddles only a kink op whose branch changes on its side: abs's sign does)
    *((s, lambda xp, t: xp.abs(t[0]) + t[0] ** 2) for s in ("central", "forward", "backward", "five_point",
                                                              "richardson"))])
def test_a_true_kink_is_still_reported(scheme, f):
    res, caught = quietly(fd(scheme=scheme), f, [0.0])
    assert KinkWarning in caught and res.stats["kink_params"] == ["theta[0]"]


# ----- 10. options and theta that do not fit -----
@pytest.mark.parametrize("options, match", [
    ({"kink_check": "no"}, r"kink_check must be True or False; got 'no'"),
    ({"warn": 1}, r"warn must be True or False; got 1"),
    ({"batch": True}, r"batch .*not a bool.*got True"),
    ({"scheme": "richardson", "levels": True}, r"levels .*not a bool.*got True"),
    ({"levels": False}, r"levels .*not a bool.*got False"),
])
def test_options_accept_only_their_documented_values(options, match):
    with pytest.raises(ValueError, match=match):
        fd(**options)


def test_numpy_bools_are_bools():
    d = fd(kink_check=np.bool_(False), warn=np.True_)
    assert d.kink_check is False and d.warn is True


def test_a_float32_theta_entry_that_overflows_is_refused_by_name():
    # before: value inf, gradient NaN, raw RuntimeWarnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(ValueError, match=r"do not fit float32.*theta\[0\] = 1e\+39.*dtype='float64'"):
            fd(dtype="float32").grad(lambda xp, t: xp.sum(2.0 * t))(np.array([1e39, 1.0]))
    np.testing.assert_array_equal(fd().grad(lambda xp, t: xp.sum(2.0 * t))(np.array([1e39])), [2.0])  # float64 fits


def test_second_differences_along_a_small_entry_of_a_large_f_are_not_all_rounding():
    # f = sum(t^3) + t0 t1 at (1e3, 0.5, -2): H = [[6 t0, 1, 0], [1, 6 t1, 0], [0, 0, 6 t2]] by hand. f ~ 1e9, so a
    # step sized by t1 alone (1e-4) left H[1,1] = 4.0 (all rounding: eps |f| / h^2 ~ 1); |f|^(1/4) sizes it now
    f = lambda xp, t: xp.sum(t ** 3) + t[0] * t[1]  # noqa: E731
    theta = np.array([1e3, 0.5, -2.0])
    truth = np.array([[6e3, 1.0, 0.0], [1.0, 3.0, 0.0], [0.0, 0.0, -12.0]])
    H = np.asarray(fd(scheme="central").hessian(f)(theta))
    np.testing.assert_allclose(H, truth, rtol=1e-4, atol=1e-4 * 6e3)
    assert abs(H[1, 1] - 3.0) <= 1e-4 * 3.0
    hv = fd(scheme="central").hvp(f)(theta, np.array([0.0, 1.0, 0.0]))
    np.testing.assert_allclose(hv, [1.0, 3.0, 0.0], rtol=1e-4, atol=1e-6)
