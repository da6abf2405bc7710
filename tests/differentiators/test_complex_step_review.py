"""The complex step's automatic step near 0 and its underflow handling (review findings).

Oracles: hand-written exact derivatives (1/x, 0.5/sqrt(x), -1/x^2, exp(x), cos(x), 3x^2, ...) evaluated by
mpmath at 50 digits at the float64 point, rounded to float64; never the code under test. Errors are counted in
units of the float64 spacing at the rounded reference.
"""
import warnings

import mpmath
import numpy as np
import pytest

import diffsuite as ds
from diffsuite.differentiators.finite_diff.steps import complex_steps

mp = mpmath.mp
TINY = float(np.finfo(np.float64).tiny)


def cs(**options):
    return ds.get_differentiator("finite_diff", scheme="complex_step", **options)


def exact(d, x):
    with mpmath.workdps(50):
        return float(d(mpmath.mpf(float(x))))


def ulps(got, want):
    return abs(float(got) - want) / float(np.spacing(abs(want)))


SUM = {
    "log": (lambda xp, t: xp.sum(xp.log(t)), lambda x: 1 / x),
    "sqrt": (lambda xp, t: xp.sum(xp.sqrt(t)), lambda x: mpmath.mpf(1) / (2 * mpmath.sqrt(x))),
    "reciprocal": (lambda xp, t: xp.sum(1.0 / t), lambda x: -1 / x ** 2),
    "exp": (lambda xp, t: xp.sum(xp.exp(t)), mpmath.exp),
    "sin": (lambda xp, t: xp.sum(xp.sin(t)), mpmath.cos),
    "cube": (lambda xp, t: xp.sum(t ** 3), lambda x: 3 * x ** 2),
    "poly": (lambda xp, t: xp.sum(2 * t ** 3 - t ** 2 + 5 * t - 1), lambda x: 6 * x ** 2 - 2 * x + 5),
    "xlogx": (lambda xp, t: xp.sum(t * xp.log(t)), lambda x: mpmath.log(x) + 1),
}
TINY_POINTS = [1e-300, 1e-290, 1e-250, 1e-100, 1e-30, 1e-19, 1e-8]
ORDINARY_POINTS = [1e-3, 0.1, 0.3, 0.7, 0.999, 1.0, 1.5, 3.0, 20.0, 100.0]


@pytest.mark.parametrize("name", ["log", "sqrt", "reciprocal", "xlogx"])
@pytest.mark.parametrize("x", TINY_POINTS + ORDINARY_POINTS)
def test_functions_singular_at_zero_are_exact_next_to_it(name, x):
    f, d = SUM[name]
    want = exact(d, x)
    if not TINY <= abs(want) < np.inf:  # -1/x^2 overflows below 1e-154: no normal float to compare with
        pytest.skip("the exact derivative is not a normal float64")
    got = cs().grad(f)(np.array([x]))[0]
    assert ulps(got, want) <= 4, f"{name}'({x!r}) = {got!r}, exact {want!r}"


@pytest.mark.parametrize("x, want", [(1e-300, 1e300), (1e-19, 1e19)])
def test_the_review_examples_for_log(x, want):
    assert ulps(cs().grad(SUM["log"][0])(np.array([x]))[0], exact(SUM["log"][1], x)) <= 4
    assert cs().grad(SUM["log"][0])(np.array([x]))[0] == pytest.approx(want, rel=1e-15)


def test_the_review_example_for_sqrt():
    assert ulps(cs().grad(SUM["sqrt"][0])(np.array([1e-30]))[0], exact(SUM["sqrt"][1], 1e-30)) <= 4


@pytest.mark.parametrize("name", ["exp", "sin", "cube", "poly"])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_smooth_functions_stay_exact_at_ordinary_and_tiny_points(name, sign):
    f, d = SUM[name]
    pts = sign * np.array(TINY_POINTS + ORDINARY_POINTS)
    got = cs().grad(f)(pts)
    for x, g in zip(pts, got):
        want = exact(d, x)
        assert ulps(g, want) <= 4, f"{name}'({x!r}) = {g!r}, exact {want!r}"


def test_the_automatic_steps_are_relative_below_1_powers_of_two_and_normal():
    theta = np.array([0.0, 1e-320, 1e-300, 2e-288, 1e-19, 0.3, -0.7, 0.999, 1.0, -1.0, 5.0, 1e10])
    res = cs().value_and_grad_fn(lambda xp, t: xp.sum(t * t))(theta)
    h = res.stats["steps"]
    np.testing.assert_array_equal(h, res.stats["nominal_steps"])  # x^2: no entry was evaluated again
    a = np.abs(theta)
    small = (a > 0) & (a < 1)
    assert np.all(h[~small] == 1e-20)
    assert np.all(h[small] >= TINY)  # never subnormal
    m, _ = np.frexp(h[small])
    assert np.all(m == 0.5)  # powers of two: they divide Im f exactly
    rel = small & (a * 1e-20 >= TINY)
    assert np.all((h[rel] <= 1e-20 * a[rel]) & (h[rel] > 0.5e-20 * a[rel]))
    assert np.all(h[small & ~rel] == TINY)  # the floor: below ~2e-288 the step stops shrinking with theta_i
    np.testing.assert_array_equal(complex_steps(theta, "float64"), h)


def test_float32_steps_are_exact_float32_numbers():
    theta = np.array([0.0, 1e-30, 0.3, 2.0])
    h = complex_steps(theta, "float32")
    np.testing.assert_array_equal(h.astype(np.float32).astype(np.float64), h)
    assert h[1] == float(np.finfo(np.float32).tiny) and h[0] == h[3] == np.float32(1e-20)


def test_cube_at_zero_is_exactly_zero_and_the_extrapolation_is_reported():
    calls = []

    def f(xp, t):
        calls.append(1)
        return xp.sum(t ** 3)

    res = cs().value_and_grad_fn(f)(np.array([0.0, 1.0, 0.0]))
    np.testing.assert_array_equal(res.grad, [0.0, 3.0, 0.0])  # by hand: 3 x^2
    assert res.stats["step_changes"] == {"theta[0]": "truncation", "theta[2]": "truncation"}
    assert res.stats["n_retry_evals"] == 2 and res.stats["n_evals"] == len(calls) == 3 + 1 + 2


def test_ordinary_derivatives_at_zero_cost_nothing_extra():
    calls = []

    def f(xp, t):
        calls.append(1)
        return xp.sum(xp.sin(t) + t ** 3)

    res = cs().value_and_grad_fn(f)(np.zeros(3))
    np.testing.assert_array_equal(res.grad, [1.0, 1.0, 1.0])  # cos(0) + 0
    assert res.stats["n_evals"] == len(calls) == 4 and res.stats["step_changes"] == {}


def test_an_underflowed_h_fprime_is_zero_not_a_type_error():
    # exp(-700) = 9.9e-305: h f' = 1e-20 * 9.9e-305 underflows to 0 (documented); no false "dropped" TypeError
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = cs().value_and_grad_fn(lambda xp, t: xp.sum(xp.exp(t)))(np.array([-700.0, 1.0]))
    assert res.grad[0] == 0.0 and ulps(res.grad[1], exact(mpmath.exp, 1.0)) <= 4
    assert res.stats["steps"][0] == 1e-20


def test_a_dropped_imaginary_part_of_a_tiny_function_is_still_refused():
    f = lambda xp, t: np.exp(np.real(t[0])) * (1.0 + 0 * t[1])  # noqa: E731  (drops theta[0]'s perturbation)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        with pytest.raises(TypeError, match=r"does not move with theta\[0\].*scheme='central'"):
            cs().grad(f)(np.array([-700.0, 2.0]))


@pytest.mark.parametrize("x", [1e-300, -1e-300, 1e-290])
def test_a_subnormal_imaginary_part_is_evaluated_again_at_a_longer_step(x):
    # at the floor h = 2^-1022 the sigmoid's h f' = h / 4 is subnormal; a linear term with slope 1e-12 too
    for f, d in [(lambda xp, t: xp.sum(xp.sigmoid(t)), lambda v: 1 / ((1 + mpmath.exp(-v)) * (1 + mpmath.exp(v)))),
                 (lambda xp, t: xp.sum(1e-10 * t * t + 1e-12 * t), lambda v: mpmath.mpf(1e-10) * 2 * v
                  + mpmath.mpf(1e-12))]:
        res = cs().value_and_grad_fn(f)(np.array([x]))
        assert ulps(res.grad[0], exact(d, x)) <= 4
        assert res.stats["step_changes"] == {"theta[0]": "underflow"} and res.stats["n_retry_evals"] >= 1
        assert res.stats["steps"][0] > res.stats["nominal_steps"][0]


def test_the_longer_step_is_kept_small_next_to_theta():
    # x^3 at 1e-100: h f' = 1e-120 * 3e-200 is subnormal; a step lifting it to normal range unchecked
    # would exceed theta and return -h^2. The longer step stays below 2^-27 |theta|.
    res = cs().value_and_grad_fn(SUM["cube"][0])(np.array([1e-100]))
    assert ulps(res.grad[0], exact(SUM["cube"][1], 1e-100)) <= 4
    assert res.stats["steps"][0] <= 2.0 ** -27 * 1e-100


def test_explicit_steps_are_used_as_given():
    res = cs(step=1e-20).value_and_grad_fn(SUM["cube"][0])(np.array([0.0, 0.5]))
    np.testing.assert_array_equal(res.stats["steps"], [1e-20, 1e-20])
    assert res.grad[0] == -1e-40 and res.stats["step_changes"] == {}  # -h^2: no extrapolation for a given step
