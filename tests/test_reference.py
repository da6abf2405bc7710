"""The certified reference against independent computations: mpmath by hand, torch autograd in float64,
exact binary arithmetic, hand calculations; its certificate, kink conventions, float32 rounding, budgets and
errors; the issue's cases (a saturated sigmoid that 50 fixed digits got wrong, BCE from logits at zero)."""
from fractions import Fraction

import mpmath
import numpy as np
import pytest

import diffsuite as ds
from diffsuite.reference import NotCertified, reference_gradient, reference_gradient_mp, to_float64

ARITHMETICS = ["arb", "mpmath"]


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


@pytest.mark.parametrize("arithmetic", ARITHMETICS)
def test_matches_mpmath_by_hand_beyond_float64(arithmetic):
    w = np.array([0.7, -1.3])
    value, grad = tiny_by_hand(*w)
    res = reference_gradient_mp(tiny, w, arithmetic=arithmetic)
    assert res.stats["dps"] == 50 and res.stats["reference"] == arithmetic
    with mpmath.workdps(60):
        assert abs(res.value - value) < mpmath.mpf(10) ** -48
        assert all(abs(r - g) < abs(g) * mpmath.mpf(10) ** -48 for r, g in zip(res.grad, grad))


@pytest.mark.parametrize("arithmetic", ARITHMETICS)
def test_rounding_is_correct_to_the_nearest_float64(arithmetic):
    w = np.array([0.7, -1.3])
    value, grad = tiny_by_hand(*w)
    res = reference_gradient(tiny, w, arithmetic=arithmetic)
    # the oracle rounds exactly, outside the code under test: the 80-digit number as a Fraction, which
    # float() rounds correctly to nearest (Python's int/int true division)
    assert res.value == nearest(value) and list(res.grad) == [nearest(g) for g in grad]
    with mpmath.workdps(60):  # at 60 digits 1/3 and 0.1 are not doubles yet: to_float64 must round them
        third, tenth = mpmath.mpf(1) / 3, mpmath.mpf("0.1")
        assert to_float64(third) == nearest(third) == 1 / 3 and to_float64(tenth) == nearest(tenth) == 0.1
        half_ulp = mpmath.mpf(2) ** -53  # 1 + half an ulp of 1 is a tie: below it rounds down, above it up
        assert to_float64(1 + half_ulp * 0.999) == 1.0 and to_float64(1 + half_ulp * 1.001) == 1.0 + 2.0 ** -52
        assert to_float64(-third) == -1 / 3


def nearest(x):
    """An mpf rounded to the nearest float64 by exact rational arithmetic (independent of to_float64)."""
    sign, man, exp, _ = mpmath.mpf(x)._mpf_  # x = (-1)^sign man 2^exp exactly
    return float((-1) ** sign * Fraction(man) * Fraction(2) ** exp)


def test_certificate_says_what_was_proven():
    res = reference_gradient(tiny, np.array([0.7, -1.3]))
    cert = res.stats["certificate"]
    assert cert.arithmetic == "arb" and res.stats["bits"] == cert.bits == cert.tried[-1]
    assert cert.radius.shape == (3,) and 0 < cert.max_radius < 1e-30  # value + 2 entries; 128-bit balls
    assert "arb ball arithmetic at" in cert.describe() and f"{cert.bits} bits" in cert.describe()


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
    # the independent oracle: torch autograd in float64 on the lecture's loss written out,
    # -log(p) for target 1 with p = sigmoid(sigmoid(x W0 + b0) W1 + b1), plus 0.01 (|W0| + |W1|), weights only
    torch = pytest.importorskip("torch")
    t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    p = {k: t[a:b].reshape(shape) for k, (a, b, shape) in model.layout.items()}
    out = torch.sigmoid(torch.sigmoid(torch.tensor(LECTURE_INPUT) @ p["W0"] + p["b0"]) @ p["W1"] + p["b1"])
    loss = -torch.log(out).sum() + 0.01 * (p["W0"].abs().sum() + p["W1"].abs().sum())
    loss.backward()
    assert res.value == pytest.approx(loss.item(), rel=1e-14)
    np.testing.assert_allclose(res.grad, t.grad.numpy(), rtol=1e-12, atol=1e-15)


def bce_of_sigmoid_as_written(xp, t):
    """Binary cross-entropy, target 0, of p = sigmoid(w x + b) at x = 1, written on the probability: -log(1 - p).
    (An ``Objective`` computes this from the logit, where nothing cancels; written so, 1 - p cancels.)"""
    return -xp.log(1.0 - xp.sigmoid(t[0] * 1.0 + t[1]))


@pytest.mark.parametrize("w", [100.0, 115.0, 200.0])
def test_saturated_sigmoid_with_bce_is_exact(w):
    """The issue's case: p = sigmoid(w x + b), x = 1, b = 0, target 0, loss -log(1 - p) = w + log(1 + e^-w).
    By hand: d/dw = d/db = sigmoid(w) = 1 - e^-w + ..., within 2^-54 of 1 for w >= 38, so exactly 1.0 once
    rounded; the value rounds to w. 50 fixed digits gave 0.99999997505 (w=100), 1.0644 (w=115), an error (200)."""
    res = reference_gradient(bce_of_sigmoid_as_written, np.array([w, 0.0]))
    assert list(res.grad) == [1.0, 1.0] and res.value == w
    assert res.stats["bits"] > 128  # 1 - p cancels about w / ln 2 bits: the precision was raised to see it
    model = ds.MLP((1, 1), "identity", "sigmoid")  # the same loss as an Objective: evaluated from the logit
    obj = ds.Objective(model, "binary_cross_entropy", np.array([[1.0]]), np.array([[0.0]]))
    fused = reference_gradient(obj, np.array([w, 0.0]))
    assert list(fused.grad) == [1.0, 1.0] and fused.value == w
    assert fused.stats["bits"] == 128  # nothing cancels: the first precision settles it


def test_bce_from_logits_at_zero_logits_is_the_smooth_derivative():
    """The issue's first case: logistic regression from zero, loss softplus(z) - y z with z = x.w + b.
    By hand: dL/dw = (sigmoid(0) - y) x = (1/2 - 1) x, dL/db = -1/2. The subgradient conventions of
    max(z, 0) + log(1 + exp(-|z|)) gave 0 when the loss was written that way; it is a smooth primitive now."""
    model = ds.MLP((2, 1), "identity", "identity")
    x = np.array([[1.5, -2.0]])
    obj = ds.Objective(model, ds.nn.BinaryCrossEntropy(from_logits=True), x, np.array([[1.0]]))
    res = reference_gradient(obj, np.zeros(3))
    assert list(res.grad) == [-0.5 * 1.5, -0.5 * -2.0, -0.5]


@pytest.mark.parametrize("arithmetic", ARITHMETICS)
def test_kink_conventions_at_exact_ties(arithmetic):
    """relu at exactly 0 (relu'(0) = 0), maxout pieces tied (first wins), |0|' = 0."""
    model = ds.MLP((2, 2, 1), activation="maxout", output_activation="identity")
    obj = ds.Objective(model, "quadratic", np.array([[1.0, -2.0]]), np.array([[0.5]]), l1=0.1)
    theta = model.init(seed=0)
    params = model.unpack(theta.copy())
    params["W0"][:] = 0.0
    params["b0"][:] = 0.25
    theta = model.pack(params)
    ref = reference_gradient(obj, theta, arithmetic=arithmetic)
    rev = ds.get_differentiator("reverse").value_and_grad(obj)(theta)
    np.testing.assert_allclose(ref.grad, rev.grad, rtol=1e-15, atol=0)
    kw = {"arithmetic": arithmetic}
    assert reference_gradient(lambda xp, x: xp.maximum(0.0, x), 0.0, **kw).grad == 0.0
    assert reference_gradient(lambda xp, x: xp.abs(x), 0.0, **kw).grad == 0.0
    assert reference_gradient(lambda xp, x: xp.maximum(x, 2.0 - x), 1.0, **kw).grad == 1.0  # tie: the first
    assert reference_gradient(lambda xp, x: xp.minimum(2.0 - x, x), 1.0, **kw).grad == -1.0


@pytest.mark.parametrize("arithmetic", ARITHMETICS)
def test_a_tie_is_decided_exactly_where_rounding_cannot(arithmetic):
    """max(w0 + w1, 2 w0^2 + w1) at w0 = 1/2, w1 = 2^-1000: both are 1/2 + 2^-1000, a tie no 128-bit number can
    hold; the exact rational values decide it, and the first argument's slope (1, 1) wins (the second's is (2, 1))."""
    f = lambda xp, w: xp.maximum(w[0] + w[1], 2.0 * w[0] * w[0] + w[1])  # noqa: E731
    res = reference_gradient(f, np.array([0.5, 2.0 ** -1000]), arithmetic=arithmetic)
    assert list(res.grad) == [1.0, 1.0] and res.stats["certificate"].ties >= 1
    off = reference_gradient(f, np.array([0.5 + 2.0 ** -53, 2.0 ** -1000]), arithmetic=arithmetic)
    assert off.grad[0] == 2.0 + 2.0 ** -51  # just off the tie the second argument is larger: 4 w0


def test_budget_stops_a_deep_network(real_time_budgets):
    model = ds.MLP((2,) + (3,) * 12 + (1,), activation="tanh")
    obj = ds.Objective(model, "quadratic", np.array([[0.5, -1.0]]), np.array([[1.0]]))
    with pytest.raises(ds.BudgetExceeded):
        reference_gradient(obj, model.init(seed=0), engine="sympy", time_budget_s=1.0, node_budget=None)


def test_errors_say_what_to_do():
    with pytest.raises(ValueError, match="dps >= 17"):
        reference_gradient_mp(tiny, np.ones(2), dps=10)
    with pytest.raises(ValueError, match="dtype"):
        reference_gradient(tiny, np.ones(2), dtype="float16")
    with pytest.raises(ValueError, match="engine must be"):
        reference_gradient(tiny, np.ones(2), engine="maple")
    with pytest.raises(ValueError, match="max_bits"):
        reference_gradient(tiny, np.ones(2), max_bits=8)
    with pytest.raises(TypeError, match="Objective or a function"):
        reference_gradient(42, np.ones(2))


def test_singularities_are_refused_naming_the_entry():
    with pytest.raises(NotCertified, match=r"not defined at this point: the log of a non-positive number"):
        reference_gradient(lambda xp, w: xp.log(w), 0.0)
    with pytest.raises(NotCertified, match=r"division by an exact zero.*affected: the loss value, theta\[0\]") as e:
        reference_gradient(lambda xp, w: 1.0 / (w[0] - 1.0) + w[1], np.array([1.0, 2.0]))
    assert e.value.entries == ["the loss value", "theta[0]"]  # theta[1]'s derivative (1) is fine


def test_an_undecidable_kink_is_refused_naming_the_parameter():
    """exp(w) vs exp(w) * 1: tied for every w, and no rational arithmetic can show it (exp is transcendental)."""
    with pytest.raises(NotCertified, match=r"kink condition could not be decided at 256 bits.*depends on theta"):
        reference_gradient(lambda xp, w: xp.maximum(xp.exp(w), xp.exp(w) * 1.0), 1.0, max_bits=256)


def test_named_constants_are_evaluated_in_high_precision():
    """exp(1) of constant data is E; the reference evaluates it to the requested digits too."""
    res = reference_gradient_mp(lambda xp, w: w * xp.exp(xp.asarray(1.0)), 2.0)
    with mpmath.workdps(60):
        assert abs(res.grad - mpmath.e) < mpmath.mpf(10) ** -48


@pytest.mark.parametrize("engine", ["sympy", "symengine"])
def test_symbolic_derivatives_give_the_same_certified_rounding(engine):
    """An independent path: SymPy's (or SymEngine's) own derivative, evaluated in arb, against the adjoint."""
    if engine == "symengine":
        pytest.importorskip("symengine")
    model = ds.MLP((2, 3, 2), activation="relu", output_activation="identity")
    rng = np.random.default_rng(5)
    obj = ds.Objective(model, "cross_entropy", rng.normal(size=(3, 2)), np.array([0, 1, 1]), l1=0.01)
    theta = model.init(seed=5)
    theta[model.layout["b0"][0]] = -float(obj.inputs[0] @ model.unpack(theta)["W0"][:, 0])  # near a relu kink
    a = reference_gradient(obj, theta)
    b = reference_gradient(obj, theta, engine=engine)
    assert (a.stats["engine"], b.stats["engine"]) == ("adjoint", engine)
    np.testing.assert_array_equal(a.grad, b.grad)
    assert a.value == b.value


def test_symengine_piecewise_round_trip_with_hinge_matches_the_adjoint():
    """SymEngine returns the kinks of the hinge through elu (max and min) as Piecewise/ITE: the evaluator knows them."""
    pytest.importorskip("symengine")
    model = ds.MLP((2, 2, 1), activation="elu")
    rng = np.random.default_rng(0)
    obj = ds.Objective(model, "hinge", rng.normal(size=(2, 2)), rng.choice([-1.0, 1.0], size=(2, 1)))  # batch 2: cheap
    theta = model.init(0)
    np.testing.assert_array_equal(reference_gradient(obj, theta, engine="symengine").grad,
                                  reference_gradient(obj, theta).grad)


def test_mpmath_fallback_when_python_flint_is_missing(monkeypatch):
    """Without python-flint the precision doubles until two successive passes agree in every float64."""
    import diffsuite.reference as ref
    monkeypatch.setattr(ref, "has_flint", lambda: False)
    res = reference_gradient(bce_of_sigmoid_as_written, np.array([115.0, 0.0]))
    cert = res.stats["certificate"]
    assert cert.arithmetic == "mpmath" and list(res.grad) == [1.0, 1.0]
    assert len(cert.tried) >= 2 and all(b == 2 * a for a, b in zip(cert.tried, cert.tried[1:]))
    assert cert.bits > 200  # 115 / ln 2 = 166 bits cancel: a fixed 50 digits (166 bits) was not enough
    assert "not a proof" in cert.describe()
    with pytest.raises(ImportError, match="python-flint"):
        reference_gradient(bce_of_sigmoid_as_written, np.array([1.0, 0.0]), arithmetic="arb")


def test_user_keys_never_collide_with_generated_names():
    """The issue's case: a key spelled like a data symbol ('arg0[0]') made the reference return 2 x = 1.0;
    by hand d/dp (p x) = x = 0.5. Keys that print alike (1 and '1') are different parameters:
    d/da (a b^2) = b^2 = 9, d/db = 2 a b = 12. Checked through the symbolic differentiator too."""
    symbolic = ds.get_differentiator("symbolic")
    f = lambda xp, p, x: p["arg0[0]"] * x[0]  # noqa: E731
    theta, x = {"arg0[0]": 2.0}, np.array([0.5])
    assert reference_gradient(f, theta, x).grad == {"arg0[0]": 0.5}
    assert symbolic.grad(f)(theta, x) == {"arg0[0]": 0.5}
    g = lambda xp, p: p[1] * p["1"] ** 2  # noqa: E731
    assert reference_gradient(g, {1: 2.0, "1": 3.0}).grad == {1: 9.0, "1": 12.0}
    assert symbolic.grad(g)({1: 2.0, "1": 3.0}) == {1: 9.0, "1": 12.0}


def test_keys_that_print_the_same_still_get_their_own_symbols():
    class Key:
        def __repr__(self):
            return "k"

    a, b = Key(), Key()
    g = reference_gradient(lambda xp, p: p[a] * p[b], {a: 1.0, b: 2.0}).grad
    assert g[a] == 2.0 and g[b] == 1.0  # d(ab)/da = b, d(ab)/db = a: the two keys were not merged


def test_mpmath_fallback_does_not_accept_a_zero_that_cancelled_every_bit():
    """d/dw [log(1 + e^w) - w] = sigmoid(w) - 1 = -1 / (1 + e^w): at w = 100 both 64 and 128 bits give 0 (every bit
    cancels), which agreeing precisions alone would accept; the fallback must go on until the sum keeps its bits."""
    f = lambda xp, w: xp.log(1.0 + xp.exp(w)) - w  # noqa: E731
    with mpmath.workdps(60):
        exact = to_float64(-1 / (1 + mpmath.exp(100)))
    res = reference_gradient(f, 100.0, arithmetic="mpmath")
    assert res.grad == exact != 0.0 and res.stats["certificate"].bits >= 256
    assert reference_gradient(f, 100.0).grad == exact


def test_a_value_just_above_a_rounding_midpoint_is_decided_or_refused_as_such():
    """d/dw0 of w0 (1 + 2^-53 + e^-w1) at w1 = 1000 is 1 + 2^-53 + e^-1000: the midpoint between the adjacent
    float64s 1 and 1 + 2^-52, plus about 2^-1443. Deciding its rounding (up) needs more than 1443 bits: with
    max_bits = 1024 the reference must say it sits on a rounding tie and name both neighbours, not blame a
    cancellation; with the default cap it rounds up."""
    f = lambda xp, w: w[0] * 1.0 + w[0] * 2.0 ** -53 + w[0] * xp.exp(-w[1])  # noqa: E731
    theta = np.array([1.0, 1000.0])
    with pytest.raises(NotCertified, match=r"float64 rounding tie.*between 1\.0 and 1\.0000000000000002") as err:
        reference_gradient(f, theta, max_bits=1024)
    assert "theta[0]" in str(err.value) and "theta[1]" not in str(err.value)  # theta[1]'s entry settles: -e^-1000
    res = reference_gradient(f, theta)
    assert res.grad[0] == 1.0 + 2.0 ** -52 and res.stats["bits"] >= 2048
