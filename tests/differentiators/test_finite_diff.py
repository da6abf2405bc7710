"""Finite differences: fitted orders, accuracy at the automatic step, float32, the zero-quotient trap, kinks.

Oracles: ``diffsuite.reference.reference_gradient`` (SymPy + 50-digit mpmath, at the exact binary point),
cross-checked against a hand-written backprop below (numpy object arrays of 50-digit mpmath numbers), the
same backprop in float64 for the order fits, and hand calculations written in the tests.
"""
import functools
import warnings

import mpmath as mp
import numpy as np
import pytest

import diffsuite as ds
from diffsuite.lecture import LECTURE_INPUT, lecture_network
from diffsuite.differentiators.finite_diff.namespaces import COMPLEX, KinkTracker
from diffsuite.differentiators.finite_diff import (KinkWarning, StepUnderflowError, StepUnderflowWarning,
                                                   UnsettledStepWarning)
from diffsuite.namespace import NAMESPACE_FUNCTIONS, NUMPY
from diffsuite.reference import reference_gradient

SCHEMES = ("forward", "backward", "central", "five_point", "richardson", "complex_step")


# ----- the oracle: backprop by hand, for quadratic loss J = sum (y - t)^2 / (2 batch) -----
def backprop(params, X, T, hidden, output):
    """(f, f' written in terms of f's output) per layer kind; works on float or mpmath object arrays."""
    depth = len(params) // 2
    hs = [X]
    for k in range(depth):
        f = (output if k == depth - 1 else hidden)[0]
        hs.append(f(hs[-1] @ params[f"W{k}"] + params[f"b{k}"]))
    loss = ((hs[-1] - T) ** 2).sum() / (2 * X.shape[0])
    delta, grads = (hs[-1] - T) / X.shape[0], {}
    for k in reversed(range(depth)):
        delta = delta * (output if k == depth - 1 else hidden)[1](hs[k + 1])
        grads[f"W{k}"], grads[f"b{k}"] = hs[k].T @ delta, delta.sum(axis=0)
        delta = delta @ params[f"W{k}"].T
    return loss, np.concatenate([np.asarray(grads[name], dtype=object).ravel() for name in params])


MP_SIGMOID = (np.vectorize(lambda z: 1 / (1 + mp.exp(-z)), otypes=[object]), lambda h: h * (1 - h))
TANH = (np.tanh, lambda h: 1 - h * h)
IDENTITY = (lambda z: z, lambda h: np.ones_like(h))


@functools.lru_cache(maxsize=None)  # the reference costs ~0.3 s; the tests only read what it returns
def lecture_problem(dtype="float64"):
    model, theta = lecture_network()
    obj = ds.Objective(model, "quadratic", LECTURE_INPUT, np.array([[1.0]]))
    ref = reference_gradient(obj, theta, dtype=dtype, dps=50)
    return obj, theta, np.asarray(ref.grad, dtype=np.float64)


def lecture_by_hand():
    """The lecture network's loss and gradient by the hand-written backprop, in 50 digits."""
    model, theta = lecture_network()
    with mp.workdps(50):  # the exact float64 point
        mpf = np.vectorize(mp.mpf, otypes=[object])
        params = {k: mpf(v) for k, v in model.unpack(theta).items()}
        loss, grad = backprop(params, mpf(LECTURE_INPUT), mpf(np.array([[1.0]])), MP_SIGMOID, MP_SIGMOID)
    return float(loss), grad.astype(np.float64)


def smooth_problem(seed=0):
    rng = np.random.default_rng(seed)
    model = ds.MLP((3, 4, 2), activation="tanh")
    X, T = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    theta = model.init(seed)
    ref = backprop(model.unpack(theta), X, T, TANH, IDENTITY)[1].astype(np.float64)
    return ds.Objective(model, "quadratic", X, T), theta, ref


def max_rel_err(grad, ref):
    return float(np.max(np.abs(grad - ref) / np.abs(ref)))


def fd(**options):
    return ds.get_differentiator("finite_diff", **options)


# ----- accuracy and order -----
def test_the_two_oracles_agree_on_the_lecture_network():
    _, _, ref = lecture_problem()  # guards the oracle itself: two independent computations agree
    assert max_rel_err(lecture_by_hand()[1], ref) < 1e-15


@pytest.mark.parametrize("scheme, bound", [("forward", 1e-5), ("backward", 1e-5), ("central", 1e-8),
                                           ("five_point", 1e-10), ("richardson", 1e-10), ("complex_step", 1e-14)])
def test_auto_step_accuracy_on_the_lecture_network(scheme, bound):
    obj, theta, ref = lecture_problem()
    res = fd(scheme=scheme).value_and_grad(obj)(theta)
    assert res.grad.dtype == np.float64 and res.grad.shape == theta.shape
    assert max_rel_err(res.grad, ref) <= bound
    assert res.value == pytest.approx(lecture_by_hand()[0], rel=1e-15)


@pytest.mark.parametrize("h", [1e-20, 1e-200])
def test_complex_step_is_exact_at_tiny_steps(h):
    obj, theta, ref = lecture_problem()
    res = fd(scheme="complex_step", step=h).value_and_grad(obj)(theta)
    assert max_rel_err(res.grad, ref) <= 1e-14
    assert np.all(res.stats["steps"] == h)


def test_float32_central_is_within_1e_2():
    obj, theta, ref = lecture_problem(dtype="float32")  # the exact gradient at the float32-rounded point
    res = fd(scheme="central", dtype="float32").value_and_grad(obj)(theta)
    assert res.stats["dtype"] == "float32" and res.grad.dtype == np.float64
    err = max_rel_err(res.grad, ref)
    assert err <= 1e-2
    assert err > 1e-9  # it really ran in float32: float64 central is ~1e-9 here


def test_float32_complex_step_is_exact_to_float32_rounding():
    obj, theta, ref = lecture_problem(dtype="float32")
    res = fd(scheme="complex_step", dtype="float32").value_and_grad(obj)(theta)
    assert 1e-9 < max_rel_err(res.grad, ref) <= 1e-5  # complex64 arithmetic: float32 eps is 1.2e-7


@pytest.mark.parametrize("scheme, levels, order, steps", [
    ("forward", 1, 1, np.geomspace(1e-2, 1e-4, 6)),
    ("backward", 1, 1, np.geomspace(1e-2, 1e-4, 6)),
    ("central", 1, 2, np.geomspace(1e-1, 1e-3, 6)),
    ("complex_step", 1, 2, np.geomspace(1e-1, 1e-3, 6)),
    ("five_point", 1, 4, np.geomspace(1e-1, 1e-2, 6)),
    ("richardson", 2, 4, np.geomspace(1e-1, 1e-2, 6)),
    ("richardson", 3, 6, np.geomspace(2e-1, 5e-2, 6)),
])
def test_fitted_order_of_each_scheme(scheme, levels, order, steps):
    obj, theta, ref = smooth_problem()
    extra = {"levels": levels} if scheme == "richardson" else {}  # levels is Richardson's only
    errors = [np.linalg.norm(fd(scheme=scheme, step=float(h), **extra).value_and_grad(obj)(theta).grad - ref)
              for h in steps]
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert abs(slope - order) < 0.3, f"fitted order {slope:.2f}, expected {order}; errors {errors}"


STATS_KEYS = {"n_evals", "scheme", "dtype", "steps", "kink_params", "kink_indices", "kink_tie_params",
              "zero_step_params", "zero_quotient_params", "kink_check", "batch", "nominal_steps", "step_changes",
              "nonfinite_params", "unsettled_params", "n_retry_evals"}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_reports_the_same_stats_keys(scheme):
    obj, theta, _ = lecture_problem()
    stats = fd(scheme=scheme).value_and_grad(obj)(theta).stats
    assert STATS_KEYS <= set(stats) and stats["steps"].dtype == np.float64 and stats["steps"].shape == theta.shape
    assert ({"levels", "error_estimate"} <= set(stats)) == (scheme == "richardson")


# ----- costs and steps -----
@pytest.mark.parametrize("scheme, levels, expected", [
    # (one-sided schemes with automatic steps: a second point at h/2 on the same side, for the truncation model;
    # Richardson with automatic steps: one point per entry off its power-of-2 levels, against aliasing a period)
    ("forward", 4, lambda n: 2 * n + 1), ("backward", 4, lambda n: 2 * n + 1), ("central", 4, lambda n: 2 * n + 1),
    ("five_point", 4, lambda n: 4 * n + 1), ("richardson", 3, lambda n: 7 * n + 1),
    ("richardson", 4, lambda n: 9 * n + 1), ("complex_step", 4, lambda n: n + 1)])
def test_evaluation_counts(scheme, levels, expected):
    obj, theta, _ = lecture_problem()
    calls = []
    counted = lambda xp, t: (calls.append(1), obj(xp, t))[1]  # noqa: E731
    res = fd(scheme=scheme, levels=levels).value_and_grad(counted)(theta)
    # the textbook count, plus the evaluations of entries tried again at a step of their own (step control)
    assert res.stats["n_evals"] == len(calls) == expected(theta.size) + res.stats["n_retry_evals"]
    assert res.stats["n_retry_evals"] == 0  # a smooth network on the scale 1: no entry needs a step of its own


@pytest.mark.parametrize("scheme", [s for s in SCHEMES if s != "richardson"])
def test_levels_with_a_scheme_other_than_richardson_is_an_error(scheme):
    with pytest.raises(ValueError, match=r"levels applies only to scheme='richardson'.*levels=5"):
        fd(scheme=scheme, levels=5)
    assert fd(scheme=scheme).levels == 4 and fd(scheme=scheme, levels=4).scheme == scheme  # the default is fine
    assert fd(scheme="richardson", levels=5).order == 10


@pytest.mark.parametrize("dtype, scheme", [("float64", "central"), ("float32", "central"),
                                           ("float64", "forward"), ("float32", "five_point")])
def test_auto_steps_are_exact_and_scaled(dtype, scheme):
    theta = np.array([0.1, -3.0, 1234.5, 0.0, 1e-7])
    order = {"central": 2, "forward": 1, "five_point": 4}[scheme]
    res = fd(scheme=scheme, dtype=dtype).value_and_grad_fn(lambda xp, t: xp.sum(t * 0.5))(theta)
    t = theta.astype(dtype)
    h = res.stats["steps"].astype(dtype)
    np.testing.assert_array_equal((t + h) - t, h)  # the quotient's denominator is the distance really stepped
    nominal = np.finfo(dtype).eps ** (1 / (order + 1)) * np.maximum(1.0, np.abs(theta))
    # h_i = eps^(1/(p+1)) max(1, |theta_i|), moved by at most the rounding of theta_i + h_i (and of h_i)
    assert np.all(np.abs(res.stats["steps"] - nominal) <= 2 * np.spacing((np.abs(t) + nominal).astype(dtype)))


def test_array_and_float_steps_are_used_as_given():
    f = lambda xp, t: xp.sum(t ** 3)  # noqa: E731 ; central quotient of x^3: 3x^2 + h^2 exactly (by hand)
    theta = np.array([1.0, 2.0])
    res = fd(step=[0.5, 0.25]).value_and_grad_fn(f)(theta)
    np.testing.assert_allclose(res.grad, [3 + 0.25, 12 + 0.0625], rtol=1e-14)
    np.testing.assert_array_equal(res.stats["steps"], [0.5, 0.25])
    np.testing.assert_allclose(fd(step=0.5).grad(f)(theta), [3.25, 12.25], rtol=1e-14)
    with pytest.raises(ValueError, match="one step per parameter: 2 values; got 3"):
        fd(step=[0.1, 0.1, 0.1]).grad(f)(theta)


def test_richardson_reports_levels_and_an_error_estimate():
    obj, theta, ref = lecture_problem()
    res = fd(scheme="richardson", levels=3).value_and_grad(obj)(theta)
    assert res.stats["levels"] == 3 and res.stats["error_estimate"].shape == theta.shape
    assert np.all(res.stats["error_estimate"] < 1e-8)
    assert np.all(np.abs(res.grad - ref) <= res.stats["error_estimate"])  # it bounds the error against the oracle


# ----- the float32 trap -----
def test_float32_step_below_the_spacing_raises_naming_the_parameters():
    obj, theta, _ = lecture_problem()
    with pytest.raises(StepUnderflowError, match=r"W0\[0, 0\] = 1 .*spacing.*dtype='float64'"):
        fd(dtype="float32", step=1e-9).value_and_grad(obj)(theta)


def test_float32_trap_can_warn_and_gives_nan_not_zero():
    # theta[0] = 1: 1 + 1e-9 == 1 in float32. theta[1] = 1e-3: the step is representable, but f = 1 + 1e-6
    # changes by 2e-12, below float32's spacing 1.2e-7 at 1: the quotient is lost in the rounding of f.
    f = lambda xp, t: xp.sum(t * t)  # noqa: E731
    with pytest.warns(StepUnderflowWarning) as caught:
        res = fd(dtype="float32", step=1e-9, zero_step="warn").value_and_grad_fn(f)(np.array([1.0, 1e-3]))
    messages = " | ".join(str(w.message) for w in caught)
    assert "theta[0] = 1 " in messages and "step vanishes" in messages and "below the rounding of f" in messages
    assert np.all(np.isnan(res.grad))
    assert res.stats["zero_step_params"] == ["theta[0]"] and res.stats["zero_quotient_params"] == ["theta[1]"]


def test_float32_quotient_lost_in_the_rounding_of_f_is_caught():
    f = lambda xp, t: xp.sum(t * t)  # noqa: E731
    with pytest.raises(StepUnderflowError, match=r"below the rounding of f.*theta\[1\] = 0.001 "):
        fd(dtype="float32", step=1e-6).grad(f)(np.array([1.0, 1e-3]))  # theta[0]'s change 2e-6 is still seen



def test_complex_step_underflowing_in_float32_is_refused():
    obj, theta, _ = lecture_problem()
    with pytest.raises(StepUnderflowError, match="complex step h underflows to 0"):
        fd(scheme="complex_step", dtype="float32", step=1e-200).value_and_grad(obj)(theta)


def test_truly_flat_and_symmetric_parameters_stay_zero():
    # theta[1] is unused; at theta[2] = 0 the derivative of t^2 is 0 and f(h) == f(-h) exactly
    f = lambda xp, t: xp.sum(t[0:1] * t[0:1]) + xp.sum(t[2:3] * t[2:3])  # noqa: E731
    res = fd(dtype="float32").value_and_grad_fn(f)(np.array([1.0, 5.0, 0.0]))
    assert res.grad[1] == 0.0 and res.grad[2] == 0.0 and res.stats["zero_quotient_params"] == []


def test_flat_at_h_but_not_at_the_probe_is_not_a_trap():
    # max(t, 1) at t = 0.9 is exactly 1 within +-0.01 (derivative 0 there); the probe step 0.16 crosses
    # the kink at 1, so f changes there, but by far more than rounding: the 0 is genuine
    res = fd(step=0.01).value_and_grad_fn(lambda xp, t: xp.sum(xp.maximum(t, 1.0)))(np.array([0.9]))
    assert res.grad[0] == 0.0 and res.stats["zero_quotient_params"] == [] and res.stats["kink_params"] == []


# ----- batched evaluation -----
@pytest.mark.parametrize("scheme", ["forward", "central", "richardson"])
def test_batched_evaluation_gives_the_same_gradient_and_count(scheme):
    obj, theta, ref = lecture_problem()
    plain = fd(scheme=scheme).value_and_grad(obj)(theta)
    batched = fd(scheme=scheme, batch=5).value_and_grad(obj)(theta)  # 5 does not divide the job count
    assert batched.stats["n_evals"] == plain.stats["n_evals"] and batched.stats["batch"] == 5
    np.testing.assert_allclose(batched.grad, plain.grad, rtol=1e-9)
    assert max_rel_err(batched.grad, ref) <= max(10 * max_rel_err(plain.grad, ref), 1e-12)


@pytest.mark.parametrize("activation, loss, l1", [("maxout", "hinge", 0.0), ("elu", "cross_entropy", 0.01),
                                                  ("tanh", "binary_cross_entropy", 0.0)])
def test_batched_evaluation_of_every_layer_kind(activation, loss, l1):
    rng = np.random.default_rng(3)
    model = ds.MLP((4, 3, 2), activation=activation,
                   output_activation="sigmoid" if loss == "binary_cross_entropy" else "identity")
    targets = {"hinge": rng.choice([-1.0, 1.0], (6, 2)), "cross_entropy": rng.integers(0, 2, 6),
               "binary_cross_entropy": rng.uniform(0, 1, (6, 2))}[loss]
    obj = ds.Objective(model, loss, rng.normal(size=(6, 4)), targets, l1=l1)
    theta = model.init(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KinkWarning)
        plain, batched = (fd(batch=b).value_and_grad(obj)(theta) for b in (1, 8))
    np.testing.assert_allclose(batched.grad, plain.grad, rtol=1e-8, atol=1e-12)
    assert batched.stats["kink_params"] == plain.stats["kink_params"]


def test_batched_evaluation_reports_the_relu_kink():
    obj, theta = relu_at_a_kink()
    with pytest.warns(KinkWarning):
        assert fd(batch=3).value_and_grad(obj)(theta).stats["kink_params"] == KINKED


def test_batch_needs_an_objective_and_a_real_scheme():
    with pytest.raises(ValueError, match="batch=4 needs an Objective"):
        fd(batch=4).grad(lambda xp, t: xp.sum(t * t))(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="complex_step evaluates one point per call"):
        fd(scheme="complex_step", batch=4)


# ----- kinks -----
def relu_at_a_kink():
    """x W0[:, 0] + b0[0] = 1*1 + 2*0.5 + 0.5*(-4) + 0 = 0 exactly: hidden unit 0 sits on relu's kink."""
    model = ds.MLP((3, 2, 1), activation="relu")
    theta = model.pack({"W0": [[1.0, 0.3], [0.5, 0.2], [-4.0, 0.1]], "b0": [0.0, 0.1], "W1": [[0.6], [0.7]],
                        "b1": [0.2]})
    return ds.Objective(model, "quadratic", [[1.0, 2.0, 0.5]], [[1.0]]), theta


KINKED = ["W0[0, 0]", "W0[1, 0]", "W0[2, 0]", "b0[0]"]


def test_a_step_straddling_a_relu_kink_is_reported():
    obj, theta = relu_at_a_kink()
    with pytest.warns(KinkWarning, match=r"W0\[0, 0\], W0\[1, 0\], W0\[2, 0\], b0\[0\]"):
        res = fd().value_and_grad(obj)(theta)
    assert res.stats["kink_params"] == KINKED
    np.testing.assert_array_equal(res.stats["kink_indices"], [0, 2, 4, 6])
    # by hand: h = (0, 0.85), y = 0.85 * 0.7 + 0.2 = 0.795, dJ/dy = -0.205; right derivative of b0[0] is
    # -0.205 * 0.6 = -0.123, left derivative 0: the central quotient averages them
    assert res.grad[6] == pytest.approx(-0.0615, abs=1e-5)


def test_kink_check_off_reports_no_kink_but_the_steps_that_did_not_settle():
    obj, theta = relu_at_a_kink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fd(kink_check=False).value_and_grad(obj)(theta)
    assert res.stats["kink_params"] == [] and not any(issubclass(w.category, KinkWarning) for w in caught)
    # unseen, the kink still defeats the truncation search: the quotient changes with the step like h, not h^2
    # (piecewise quadratic f), so those entries stop converging and are reported as unsettled, by name
    assert res.stats["unsettled_params"] == KINKED
    assert [str(w.message) for w in caught if issubclass(w.category, UnsettledStepWarning)] and \
        all(name in str(caught[-1].message) for name in KINKED)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warn=False: stats only
        quiet = fd(kink_check=False, warn=False).value_and_grad(obj)(theta)
    assert quiet.stats["unsettled_params"] == KINKED


def test_complex_step_takes_the_kink_conventions_and_names_the_ties():
    obj, theta = relu_at_a_kink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the conventional value is not an average: no KinkWarning
        res = fd(scheme="complex_step").value_and_grad(obj)(theta)
    # relu'(0) = 0 (docs/architecture.md): by hand, the four kinked entries are 0, the others as for a live unit
    np.testing.assert_array_equal(res.grad[[0, 2, 4, 6]], 0.0)
    assert res.grad[7] == pytest.approx(-0.205 * 0.7, rel=1e-14)  # b0[1]
    assert res.stats["kink_tie_params"] == KINKED and res.stats["kink_params"] == []


def test_kinks_of_max_min_abs_and_step_are_each_tracked():
    theta = np.array([0.0, 1.0, 0.0, 0.0, 0.0])

    def f(xp, t):
        return (xp.sum(xp.maximum(t[1:2], 1.0)) + xp.sum(xp.minimum(t[2:3], 0.0)) + xp.sum(xp.abs(t[3:4]))
                + xp.sum(xp.step(t[4:5])) + xp.sum(t[0:1] * t[0:1]))

    with pytest.warns(KinkWarning):
        res = fd().value_and_grad_fn(f)(theta)
    assert res.stats["kink_params"] == ["theta[1]", "theta[2]", "theta[3]", "theta[4]"]


# ----- users' functions, structures, options -----
def test_grad_of_a_users_function_keeps_the_structure():
    g = fd(scheme="five_point").grad(lambda xp, p: p["a"] * xp.sum(p["b"] ** 2))({"a": 2.0, "b": np.array([1.0, 3.0])})
    assert isinstance(g["a"], float) and g["a"] == pytest.approx(10.0, rel=1e-10)  # by hand: sum b^2
    np.testing.assert_allclose(g["b"], [4.0, 12.0], rtol=1e-10)  # 2 a b


def test_float32_casts_users_array_arguments():
    seen = []

    def f(xp, w, x):
        seen.append((w.dtype, x.dtype))
        return xp.sum(w * x)

    np.testing.assert_allclose(fd(dtype="float32").grad(f)(np.array([1.0, 2.0]), np.array([3.0, 4.0])), [3, 4],
                               rtol=1e-3)
    assert set(seen) == {(np.dtype(np.float32), np.dtype(np.float32))}


def test_complex_step_refuses_a_function_that_drops_the_imaginary_part():
    with pytest.raises(TypeError, match="complex_step needs .* scheme='central'"):
        fd(scheme="complex_step").grad(lambda xp, t: np.sum(np.abs(t)))(np.array([1.0, 2.0]))


@pytest.mark.parametrize("f", [lambda xp, t: np.sum(np.real(t) ** 2), lambda xp, t: float(t[0]) ** 2,
                               lambda xp, t, x=np.ones(2): xp.sum(x) + float(np.real(t[1]))])
def test_complex_step_refuses_dropping_the_imaginary_part_even_where_the_value_is_unchanged(f):
    # np.real / float() on theta + ih give f(theta) exactly: only a real probe shows that f depends on theta
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        with pytest.raises(TypeError, match=r"complex_step needs .* depends on theta\[\d\].* scheme='central'"):
            fd(scheme="complex_step").grad(f)(np.array([1.0, 2.0]))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_function_that_does_not_depend_on_theta_has_a_zero_gradient(scheme):
    f = lambda xp, t, x: xp.sum(x)  # noqa: E731 - a real result from a complex theta: it ignores theta
    res = fd(scheme=scheme).value_and_grad_fn(f)(np.ones(3), np.ones(2))
    assert res.value == 2.0 and np.array_equal(res.grad, np.zeros(3))
    part = fd(scheme=scheme).grad(lambda xp, t, x: xp.sum(x) + t[0] ** 2)(np.array([3.0, 1.0]), np.ones(2))
    np.testing.assert_allclose(part, [6.0, 0.0], atol=1e-6)
    assert fd(scheme=scheme).grad(lambda xp, t: 7.0)({"W": np.ones((2, 2)), "b": 1.0})["b"] == 0.0


@pytest.mark.parametrize("options, message", [
    ({"scheme": "centre"}, "unknown finite-difference scheme 'centre'; choose one of forward"),
    ({"dtype": "float16"}, "dtype must be one of float64, float32"),
    ({"step": -1.0}, "step must be 'auto', a positive float"),
    ({"step": "tiny"}, "step must be 'auto'"),
    ({"levels": 0}, "levels .* from 1 to 10"),
    ({"zero_step": "ignore"}, "zero_step must be 'raise' or 'warn'"),
    ({"batch": 0}, "batch .* must be an int >= 1"),
])
def test_bad_options_are_refused_clearly(options, message):
    with pytest.raises(ValueError, match=message):
        fd(**options)


def test_options_are_fields_and_labels():
    d = fd(scheme="richardson", levels=3, dtype="float32", step=[0.1, 0.2])
    assert d.name == "finite_diff" and d.label == "finite_diff[richardson3,float32]" and d.order == 6
    assert d.step == (0.1, 0.2) and hash(d) == hash(fd(scheme="richardson", levels=3, dtype="float32", step=[0.1, 0.2]))


# ----- the namespaces -----
@pytest.mark.parametrize("xp", [COMPLEX, KinkTracker(NUMPY), KinkTracker(COMPLEX)], ids=lambda x: x.name)
def test_namespaces_implement_every_function(xp):
    missing = [name for name in NAMESPACE_FUNCTIONS if not callable(getattr(xp, name, None))]
    assert missing == []


@pytest.mark.parametrize("name, x, derivative", [
    ("exp", 0.3, np.exp(0.3)), ("log", 0.3, 1 / 0.3), ("tanh", -0.4, 1 - np.tanh(-0.4) ** 2),
    ("sigmoid", -30.0, np.exp(-30) / (1 + np.exp(-30)) ** 2), ("sigmoid", 2.0, np.exp(-2) / (1 + np.exp(-2)) ** 2),
    ("abs", -2.0, -1.0), ("abs", 0.0, 0.0), ("step", 0.5, 0.0)])
def test_complex_namespace_derivatives_by_hand(name, x, derivative):
    z = np.array([x + 1e-30j])
    out = getattr(COMPLEX, name)(z)
    assert np.real(out)[0] == pytest.approx(getattr(NUMPY, name)(np.array([x]))[0], rel=1e-15)
    assert np.imag(out)[0] / 1e-30 == pytest.approx(derivative, rel=1e-14, abs=1e-300)


def test_complex_max_min_route_ties_to_the_first_argument():
    a, b = np.array([1.0 + 2e-30j]), np.array([1.0 + 5e-30j])
    assert np.imag(COMPLEX.maximum(a, b))[0] == 2e-30 and np.imag(COMPLEX.minimum(a, b))[0] == 2e-30
    assert np.imag(COMPLEX.maximum(a, b + 1))[0] == 5e-30


def test_complex_logsumexp_derivative_is_the_softmax():
    x = np.array([[1.0, -2.0, 700.0]])  # 700: exp would overflow without the shift
    p = np.exp(x - 700.0) / np.sum(np.exp(x - 700.0))
    for i in range(3):
        z = x.astype(complex)
        z[0, i] += 1e-30j
        assert np.imag(COMPLEX.logsumexp(z, axis=-1))[0] / 1e-30 == pytest.approx(p[0, i], rel=1e-14, abs=1e-300)
