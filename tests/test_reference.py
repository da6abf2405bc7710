"""The high-precision reference against independent computations: mpmath by hand, torch autograd in float64,
exact binary arithmetic; its kink conventions, float32 rounding, budgets and errors."""
import mpmath
import numpy as np
import pytest

import diffsuite as ds
from diffsuite.reference import reference_gradient, reference_gradient_mp, to_float64


def tiny(xp, w):
    return xp.log(1.0 + xp.exp(w[0] * w[1])) + xp.tanh(w[0]) ** 2 / w[1]


def tiny_by_hand(w0, w1):
    """d/dw0 = w1 s(w0 w1) + 2 tanh(w0) (1 - tanh(w0)^2) / w1;  d/dw1 = w0 s(w0 w1) - tanh(w0)^2 / w1^2."""
    ctx = mpmath.MPContext()
    ctx.dps = 80
    w0, w1 = ctx.mpf(w0), ctx.mpf(w1)
    s, t = 1 / (1 + ctx.exp(-w0 * w1)), ctx.tanh(w0)
    value = ctx.log(1 + ctx.exp(w0 * w1)) + t ** 2 / w1
    return value, [w1 * s + 2 * t * (1 - t ** 2) / w1, w0 * s - t ** 2 / w1 ** 2]


def test_matches_mpmath_by_hand_beyond_float64():
    w = np.array([0.7, -1.3])
    value, grad = tiny_by_hand(*w)
    res = reference_gradient_mp(tiny, w)
    assert res.stats["dps"] == 50 and res.stats["reference"] == "mpmath"
    with mpmath.workdps(60):
        assert abs(res.value - value) < mpmath.mpf(10) ** -45
        assert all(abs(r - g) < mpmath.mpf(10) ** -45 for r, g in zip(res.grad, grad))


def test_rounding_is_correct_to_the_nearest_float64():
    w = np.array([0.7, -1.3])
    value, grad = tiny_by_hand(*w)
    res = reference_gradient(tiny, w)
    assert res.value == to_float64(value) and list(res.grad) == [to_float64(g) for g in grad]
    assert to_float64(mpmath.mpf(1) / 3) == 1 / 3 and to_float64(mpmath.mpf("0.1")) == 0.1


def test_is_exact_at_the_binary_point():
    """The reference sees the double 0.1 (0.1000000000000000055...), not the decimal: d/dw (w x)^2 = 2 w x^2."""
    res = reference_gradient_mp(lambda xp, w, x: (w * x) ** 2, 3.0, 0.1)
    with mpmath.workdps(60):
        exact = 2 * 3 * mpmath.mpf(0.1) ** 2  # mpf(0.1) is the double's exact binary value
        assert abs(res.grad - exact) < mpmath.mpf(10) ** -48
        assert abs(res.grad - mpmath.mpf("0.06")) > mpmath.mpf(10) ** -18  # the decimal 0.1 would give 0.06


def test_float32_rounds_theta_and_data_first():
    res = reference_gradient(lambda xp, w, x: w * w * x, 0.1, 3.0, dtype="float32")
    w32 = float(np.float32(0.1))
    assert res.grad == 2 * w32 * 3.0 and res.grad != 2 * 0.1 * 3.0 and res.stats["dtype"] == "float32"


def test_objective_matches_torch_autograd_float64():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    model = ds.MLP((3, 3, 2), activation="tanh", output_activation="identity")
    obj = ds.Objective(model, "quadratic", rng.normal(size=(4, 3)), rng.normal(size=(4, 2)), l2=0.01)
    theta = model.init(seed=3)
    t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    p = {k: t[a:b].reshape(shape) for k, (a, b, shape) in model.layout.items()}
    x, y = torch.tensor(obj.inputs), torch.tensor(obj.prepared_targets)
    out = torch.tanh(x @ p["W0"] + p["b0"]) @ p["W1"] + p["b1"]
    loss = 0.5 * ((out - y) ** 2).sum() / 4 + 0.01 * ((p["W0"] ** 2).sum() + (p["W1"] ** 2).sum())
    loss.backward()
    res = reference_gradient(obj, theta)
    assert res.value == pytest.approx(loss.item(), rel=1e-15)
    np.testing.assert_allclose(res.grad, t.grad.numpy(), rtol=1e-13, atol=1e-15)


def test_lecture_network_matches_reverse_mode():
    from diffsuite.lecture import LECTURE_INPUT, lecture_network
    model, theta = lecture_network()
    obj = ds.Objective(model, "binary_cross_entropy", LECTURE_INPUT, np.array([[1.0]]), l1=0.01)
    res, rev = reference_gradient(obj, theta), ds.get_differentiator("reverse").value_and_grad(obj)(theta)
    np.testing.assert_allclose(res.grad, rev.grad, rtol=1e-12, atol=1e-15)  # entry 3 cancels: ~2e-18 absolute


def test_kink_conventions_at_exact_ties():
    """relu at exactly 0 (relu'(0) = 0), maxout pieces tied (first wins), |0|' = 0."""
    model = ds.MLP((2, 2, 1), activation="maxout", output_activation="identity")
    obj = ds.Objective(model, "quadratic", np.array([[1.0, -2.0]]), np.array([[0.5]]), l1=0.1)
    theta = model.init(seed=0)
    params = model.unpack(theta.copy())
    params["W0"][:] = 0.0
    params["b0"][:] = 0.25
    theta = model.pack(params)
    ref, rev = reference_gradient(obj, theta), ds.get_differentiator("reverse").value_and_grad(obj)(theta)
    np.testing.assert_allclose(ref.grad, rev.grad, rtol=1e-15, atol=0)
    assert reference_gradient(lambda xp, x: xp.maximum(0.0, x), 0.0).grad == 0.0
    assert reference_gradient(lambda xp, x: xp.abs(x), 0.0).grad == 0.0
    assert reference_gradient(lambda xp, x: xp.maximum(x, 2.0 - x), 1.0).grad == 1.0  # tie: the first argument
    assert reference_gradient(lambda xp, x: xp.minimum(2.0 - x, x), 1.0).grad == -1.0


def test_budget_stops_a_deep_network():
    model = ds.MLP((2,) + (3,) * 12 + (1,), activation="tanh")
    obj = ds.Objective(model, "quadratic", np.array([[0.5, -1.0]]), np.array([[1.0]]))
    with pytest.raises(ds.BudgetExceeded):
        reference_gradient(obj, model.init(seed=0), engine="sympy", time_budget_s=1.0, node_budget=None)


def test_errors_say_what_to_do():
    with pytest.raises(ValueError, match="dps >= 50"):
        reference_gradient(tiny, np.ones(2), dps=30)
    with pytest.raises(ValueError, match="dtype"):
        reference_gradient(tiny, np.ones(2), dtype="float16")
    with pytest.raises(ValueError, match="not defined at this point"):
        reference_gradient(lambda xp, w: xp.log(w), 0.0)
    with pytest.raises(TypeError, match="Objective or a function"):
        reference_gradient(42, np.ones(2))


def test_named_constants_are_evaluated_in_high_precision():
    """exp(1) of constant data is SymPy's E; the reference evaluates it at 50 digits too."""
    res = reference_gradient_mp(lambda xp, w: w * xp.exp(xp.asarray(1.0)), 2.0)
    with mpmath.workdps(60):
        assert abs(res.grad - mpmath.e) < mpmath.mpf(10) ** -48


def test_sympy_and_symengine_agree_to_the_working_precision():
    pytest.importorskip("symengine")
    model = ds.MLP((2, 3, 2), activation="relu", output_activation="identity")
    rng = np.random.default_rng(5)
    obj = ds.Objective(model, "cross_entropy", rng.normal(size=(3, 2)), np.array([0, 1, 1]), l1=0.01)
    theta = model.init(seed=5)
    theta[model.layout["b0"][0]] = -float(obj.inputs[0] @ model.unpack(theta)["W0"][:, 0])  # near a relu kink
    a = reference_gradient_mp(obj, theta, engine="sympy")
    b = reference_gradient_mp(obj, theta, engine="symengine")
    assert (a.stats["engine"], b.stats["engine"]) == ("sympy", "symengine")
    with mpmath.workdps(60):
        scale = max(abs(g) for g in a.grad)
        assert all(abs(x - y) < scale * mpmath.mpf(10) ** -45 for x, y in zip(a.grad, b.grad))


@pytest.mark.parametrize("activation", ["relu", "elu", "leaky_relu"])
def test_symengine_piecewise_round_trip_with_hinge_matches_sympy(activation):
    """SymEngine returns kinks of the hinge through relu as ITE(...): the mpmath evaluator must know it."""
    pytest.importorskip("symengine")
    model = ds.MLP((3, 3, 1), activation=activation)
    rng = np.random.default_rng(0)
    obj = ds.Objective(model, "hinge", rng.normal(size=(4, 3)), rng.choice([-1.0, 1.0], size=(4, 1)))
    theta = model.init(0)
    via_symengine = ds.reference_gradient(obj, theta, engine="symengine").grad
    via_sympy = ds.reference_gradient(obj, theta, engine="sympy").grad
    np.testing.assert_array_equal(via_symengine, via_sympy)
