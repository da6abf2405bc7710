"""Objective: regularisers on weights only, bad input policy, the registry's errors."""
import numpy as np
import pytest

import diffsuite as ds


def small_objective(**kw):
    model = ds.MLP((2, 3, 1), activation="tanh")
    return ds.Objective(model, "quadratic", np.array([[0.5, -1.0], [2.0, 0.25]]), np.array([[1.0], [0.0]]), **kw)


def test_regularisers_touch_weights_never_biases():
    base, reg = small_objective(), small_objective(l1=0.3, l2=0.05)
    theta = base.model.init(0)
    p = base.model.unpack(theta)
    penalty = 0.3 * (np.abs(p["W0"]).sum() + np.abs(p["W1"]).sum()) + 0.05 * ((p["W0"] ** 2).sum() + (p["W1"] ** 2).sum())
    assert reg.value(theta) == pytest.approx(base.value(theta) + penalty, rel=1e-14)
    g_base = ds.get_differentiator("reverse").value_and_grad(base)(theta).grad
    g_reg = ds.get_differentiator("reverse").value_and_grad(reg)(theta).grad
    diff = base.model.unpack(g_reg - g_base)
    np.testing.assert_allclose(diff["W0"], 0.3 * np.sign(p["W0"]) + 0.1 * p["W0"], rtol=1e-12)
    assert np.all(diff["b0"] == 0) and np.all(diff["b1"] == 0)


def test_nan_policy_data_refused_theta_refused_naming_the_parameter():
    with pytest.raises(ValueError, match=r"inputs must be finite; inputs\[1, 0\] is nan"):
        ds.Objective(ds.MLP((2, 1)), "quadratic", np.array([[0.0, 1.0], [np.nan, 0.0]]), [[0.0], [1.0]])
    with pytest.raises(ValueError, match=r"targets must be finite"):
        ds.Objective(ds.MLP((2, 1)), "quadratic", np.zeros((2, 2)), [[np.inf], [1.0]])
    obj = small_objective()
    theta = obj.model.init(0)
    theta[9] = np.inf
    with pytest.raises(ValueError, match=r"theta must be finite; W1\[0, 0\] \(flat index 9\) is inf"):
        ds.get_differentiator("reverse").value_and_grad(obj)(theta)
    theta[9] = -np.inf  # -inf and nan too; and huge finite entries (whose squares overflow) are accepted
    with pytest.raises(ValueError, match=r"W1\[0, 0\] \(flat index 9\) is -inf"):
        obj.check_theta(theta)
    theta[9], theta[3] = 1e200, np.nan
    with pytest.raises(ValueError, match=r"\(flat index 3\) is nan"):
        obj.check_theta(theta)
    theta[3] = -1e300
    assert obj.check_theta(theta)[3] == -1e300


def test_wrong_shapes_and_strengths_are_refused():
    with pytest.raises(ValueError, match="same batch size; got 2 inputs and 3 targets"):
        ds.Objective(ds.MLP((2, 1)), "quadratic", np.zeros((2, 2)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="l2 must be a finite number >= 0; got -1"):
        small_objective(l2=-1)
    with pytest.raises(ValueError, match="flat vector of 13 parameters"):
        ds.get_differentiator("reverse").value_and_grad(small_objective())(np.zeros(12))
    with pytest.raises(ValueError, match="cross_entropy applies the softmax itself"):
        ds.Objective(ds.MLP((2, 3), output_activation="softmax"), "cross_entropy", np.zeros((1, 2)), [1])


def test_registry_errors_list_the_choices():
    with pytest.raises(ValueError, match="unknown differentiator 'backprop'; choose one of symbolic, finite_diff, reverse, "
                                         "forward"):
        ds.get_differentiator("backprop")
    with pytest.raises(TypeError, match="has no option\\(s\\) 'backnd'; its options are backend, device, dtype"):
        ds.get_differentiator("reverse", backnd="torch")
    with pytest.raises(ValueError, match="unknown backend 'jax'; choose one of numpy, torch"):
        ds.get_differentiator("reverse", backend="jax")  # at construction, not at the first call
    with pytest.raises(ValueError, match="dtype must be one of float64, float32"):
        ds.get_differentiator("reverse", dtype="float16")


def test_registry_names_match_the_classes():
    from diffsuite.differentiators import DIFFERENTIATORS, differentiator_class
    for name in DIFFERENTIATORS:
        try:
            cls = differentiator_class(name)
        except ImportError:  # a differentiator still being written is not importable yet
            continue
        assert cls.name == name


def test_float32_reverse_is_close_to_float64():
    obj = small_objective()
    theta = obj.model.init(0)
    g64 = ds.get_differentiator("reverse").value_and_grad(obj)(theta)
    g32 = ds.get_differentiator("reverse", dtype="float32").value_and_grad(obj)(theta)
    assert g32.grad.dtype == np.float64
    np.testing.assert_allclose(g32.grad, g64.grad, rtol=1e-5, atol=1e-6)
    assert not np.array_equal(g32.grad, g64.grad)  # it really ran in float32


def test_review_findings_on_bad_input_are_refused_clearly():
    with pytest.raises(ValueError, match="at least one sample"):
        ds.Objective(ds.MLP((3, 1)), "quadratic", np.zeros((0, 3)), np.zeros((0, 1)))
    with pytest.raises(ValueError, match="binary_cross_entropy takes probabilities.*from_logits=True"):
        ds.Objective(ds.MLP((3, 1)), "binary_cross_entropy", np.zeros((1, 3)), [[1.0]])
    with pytest.raises(ValueError, match="l1 must be a finite number >= 0; got True"):
        small_objective(l1=True)
    with pytest.raises(ValueError, match="finite number alpha > 0; got inf"):
        ds.nn.ELU(alpha=np.inf)
    with pytest.raises(ValueError, match="alpha > 0; got '1'"):
        ds.nn.ELU(alpha="1")
    assert ds.MLP((2, 2, 1), activation=ds.nn.Maxout(k=np.int64(3))).shapes["W0"] == (2, 6)
    # logits: BCE with from_logits on an identity output is accepted, and equals BCE on sigmoid outputs
    x, y = np.array([[0.3, -1.0, 2.0]]), [[1.0]]
    logits = ds.Objective(ds.MLP((3, 1)), ds.nn.BinaryCrossEntropy(from_logits=True), x, y)
    probs = ds.Objective(ds.MLP((3, 1), output_activation="sigmoid"), "binary_cross_entropy", x, y)
    theta = logits.model.init(0)
    assert logits.value(theta) == pytest.approx(probs.value(theta), rel=1e-14)


@pytest.mark.parametrize("name", ["inputs", "targets", "theta"])
def test_complex_data_or_theta_is_refused_not_silently_truncated(name):
    # before: numpy cast them to float with only a ComplexWarning, dropping the imaginary part
    model = ds.MLP((2, 3, 1), activation="tanh")
    data = {"inputs": np.array([[0.5, -1.0], [2.0, 0.25]]), "targets": np.array([[1.0], [0.0]])}
    if name == "theta":
        obj = ds.Objective(model, "quadratic", **data)
        for method in ("reverse", "symbolic", "finite_diff"):
            with pytest.raises(ValueError, match="theta must be real; got a complex array"):
                ds.get_differentiator(method).value_and_grad(obj)(model.init(0) + 1e-3j)
        return
    data[name] = data[name] + 1j
    with pytest.raises(ValueError, match=f"{name} must be real; got a complex array"):
        ds.Objective(model, "quadratic", **data)


def test_binary_cross_entropy_on_a_one_unit_softmax_is_refused():
    # a softmax over one unit is 1 everywhere: the loss was NaN at every theta
    model = ds.MLP((2, 3, 1), activation="tanh", output_activation="softmax")
    with pytest.raises(ValueError, match="one-unit softmax.*output_activation='sigmoid'"):
        ds.Objective(model, "binary_cross_entropy", np.zeros((2, 2)), np.array([[1.0], [0.0]]))
    two = ds.MLP((2, 3, 2), activation="tanh", output_activation="softmax")  # two units: a real distribution
    ds.Objective(two, "binary_cross_entropy", np.zeros((2, 2)), np.array([[1.0, 0.0], [0.0, 1.0]]))


@pytest.mark.parametrize("make", [
    lambda: ds.get_differentiator("symbolic", node_budget=True),
    lambda: ds.get_differentiator("symbolic", node_budget=2.5),
    lambda: ds.get_differentiator("symbolic", time_budget_s=True),
    lambda: ds.get_differentiator("finite_diff", step=True),
    lambda: ds.get_differentiator("finite_diff", step=[0.1, True]),
], ids=["node_budget=True", "node_budget=2.5", "time_budget_s=True", "step=True", "step=[0.1, True]"])
def test_booleans_are_not_taken_for_numbers(make):
    with pytest.raises(ValueError, match="node_budget|time_budget_s|step"):
        make()


def test_an_infinite_time_budget_means_no_limit():
    import math
    obj = small_objective()
    theta = obj.model.init(0)
    want = ds.get_differentiator("reverse").value_and_grad(obj)(theta).grad
    got = ds.get_differentiator("symbolic", time_budget_s=math.inf).value_and_grad(obj)(theta).grad
    np.testing.assert_allclose(got, want, rtol=1e-13)
    ref = ds.reference_gradient(obj, theta, time_budget_s=math.inf)
    np.testing.assert_allclose(np.asarray(ref.grad, dtype=float), want, rtol=1e-13)


def test_an_unknown_reverse_backend_is_refused_at_construction():
    with pytest.raises(ValueError, match="unknown backend 'jax'; choose one of numpy, torch"):
        ds.get_differentiator("reverse", backend="jax")
    with pytest.raises(ValueError, match="unknown backend 'numpi'"):
        ds.Reverse(backend="numpi") if hasattr(ds, "Reverse") else ds.get_differentiator("reverse", backend="numpi")


def test_node_budget_is_checked_while_the_loss_is_built():
    # before: with only a node budget, the loss of a deep net was built in full (minutes for 10 layers)
    # before any node was counted; now the build stops as soon as it holds more distinct nodes than the budget
    model = ds.MLP((3,) + (4,) * 10 + (1,), activation="tanh", output_activation="sigmoid")
    obj = ds.Objective(model, "quadratic", np.random.default_rng(0).normal(size=(4, 3)), np.ones((4, 1)))
    with pytest.raises(ds.BudgetExceeded) as info:
        ds.get_differentiator("symbolic", time_budget_s=None, node_budget=300).value_and_grad(obj)
    progress = info.value.progress  # the distinct nodes built so far, or the printed trees SymPy would walk next
    assert info.value.stage == "build" and ("the loss built so far" in progress or "printed trees" in progress)


def test_a_loss_written_in_plain_numpy_runs_the_same_rules_in_reverse_mode():
    def f(xp, t):
        return np.sum(np.tanh(t) ** 2)  # np., not xp.: numpy hands traced values to the tape (NEP 13/18)

    t = np.array([0.3, -1.2, 2.0])
    g = ds.get_differentiator("reverse").grad(f)(t)
    np.testing.assert_allclose(g, 2 * np.tanh(t) / np.cosh(t) ** 2, rtol=1e-15)  # d tanh^2 = 2 tanh sech^2


def test_review_findings_on_objectives():
    """An objective owns its data (the caller's arrays edited later change nothing, and a NaN cannot slip in);
    from_logits on a probability output is refused; finite differences' batched calls work for the softmax
    binary cross-entropy (they crashed on a 3-D outputs array). Oracle for the last: the same call with batch=1."""
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(5, 3)), (rng.random(size=(5, 3)) > 0.5) * 1.0
    obj = ds.Objective(ds.MLP((3, 4, 3), "tanh", "softmax"), "binary_cross_entropy", X, Y)
    theta = obj.model.init(0)
    before = obj.value(theta) if callable(getattr(obj, "value", None)) else None
    X[0, 0] = np.nan
    assert np.isfinite(obj.inputs).all() and not obj.inputs.flags.writeable
    if before is not None:
        assert obj.value(theta) == before
    batched = ds.get_differentiator("finite_diff", batch=8).value_and_grad(obj)(theta)
    single = ds.get_differentiator("finite_diff").value_and_grad(obj)(theta)
    assert batched.value == single.value
    np.testing.assert_allclose(batched.grad, single.grad, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="from_logits=True. takes logits"):
        ds.Objective(ds.MLP((3, 4, 1), "tanh", "sigmoid"), ds.nn.BinaryCrossEntropy(from_logits=True),
                     X[1:], Y[1:, :1])
