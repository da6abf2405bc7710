"""Data as a call argument: ``value_and_grad(obj)(theta, batch=(X, y))`` equals a fresh Objective on that batch."""
import numpy as np
import pytest

import diffsuite as ds

RNG = np.random.default_rng(7)
X_ALL = RNG.normal(size=(12, 3))
Y_ALL = RNG.integers(0, 4, size=12)


def _setup(loss="cross_entropy", l1=0.0, l2=0.0, activation="tanh"):
    model = ds.MLP((3, 5, 4), activation=activation)
    objective = ds.Objective(model, loss=loss, inputs=X_ALL[:6], targets=Y_ALL[:6], l1=l1, l2=l2)
    return model, objective, model.init(seed=1)


BATCHES = [(X_ALL[6:10], Y_ALL[6:10]), (X_ALL[:3], Y_ALL[:3]), (X_ALL, Y_ALL)]  # other sizes than the objective's


@pytest.mark.parametrize("options", [dict(backend="numpy"), dict(backend="torch"), dict(dtype="float32")],
                         ids=["numpy", "torch", "float32"])
def test_reverse_batch_equals_a_fresh_objective_on_that_batch(options):
    if options.get("backend") == "torch":
        pytest.importorskip("torch")
    model, objective, theta = _setup(l1=0.01, l2=0.02)
    diff = ds.get_differentiator("reverse", **options)
    vg = diff.value_and_grad(objective)
    for X, y in BATCHES:
        fresh = diff.value_and_grad(ds.Objective(model, "cross_entropy", X, y, l1=0.01, l2=0.02))(theta)
        got = vg(theta, batch=(X, y))
        assert got.value == fresh.value and np.array_equal(got.grad, fresh.grad)
    plain = vg(theta)  # the objective's own data again: nothing of the batch stuck
    assert np.array_equal(plain.grad, diff.value_and_grad(objective)(theta).grad)


def test_reverse_batch_matches_torch_autograd():
    torch = pytest.importorskip("torch")
    model, objective, theta = _setup(loss="cross_entropy", l2=0.05)
    X, y = BATCHES[0]
    got = ds.get_differentiator("reverse").value_and_grad(objective)(theta, batch=(X, y))
    t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    p = {k: t[a:b].reshape(s) for k, (a, b, s) in model.layout.items()}
    h = torch.tanh(torch.from_numpy(X) @ p["W0"] + p["b0"])
    logits = h @ p["W1"] + p["b1"]
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)) \
        + 0.05 * ((p["W0"] ** 2).sum() + (p["W1"] ** 2).sum())
    loss.backward()
    assert got.value == pytest.approx(loss.item(), rel=1e-14)
    np.testing.assert_allclose(got.grad, t.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("batch, error, match", [
    ((np.full((2, 3), np.nan), np.array([0, 1])), ValueError, r"inputs must be finite; inputs\[0, 0\] is nan"),
    ((np.zeros((2, 4)), np.array([0, 1])), ValueError, r"inputs must have shape \(batch, 3\)"),
    ((np.zeros((2, 3)), np.array([0, 4])), ValueError, "class indices must lie in 0..3"),
    ((np.zeros((2, 3)), np.array([0, 1, 2])), ValueError, "same batch size"),
    (np.zeros((2, 3)), TypeError, "batch must be a pair"),
])
def test_bad_batches_are_clear_errors(batch, error, match):
    _, objective, theta = _setup()
    with pytest.raises(error, match=match):
        ds.get_differentiator("reverse").value_and_grad(objective)(theta, batch=batch)


@pytest.mark.parametrize("options", [dict(scheme="central"), dict(scheme="forward", dtype="float32", batch=8)],
                         ids=["central", "forward-float32-batched"])
def test_finite_diff_batch_equals_a_fresh_objective_on_that_batch(options):
    model, objective, theta = _setup(l2=0.02, activation="relu")
    diff = ds.get_differentiator("finite_diff", warn=False, **options)
    vg = diff.value_and_grad(objective)
    for X, y in BATCHES:
        fresh = diff.value_and_grad(ds.Objective(model, "cross_entropy", X, y, l2=0.02))(theta)
        got = vg(theta, batch=(X, y))
        assert got.value == fresh.value and np.array_equal(got.grad, fresh.grad)


@pytest.fixture(scope="module")
def symbolic_case():
    """A symbolic kernel with the data as arguments (compiled once for both symbolic tests)."""
    model = ds.MLP((3, 2, 2), activation="tanh")
    objective = ds.Objective(model, "quadratic", X_ALL[:4], np.eye(2)[Y_ALL[:4] % 2], l1=0.01)
    vg = ds.get_differentiator("symbolic", symbolic_data=True, metrics=False).value_and_grad(objective)
    return model, vg, model.init(seed=2)


def test_symbolic_batch_with_symbolic_data_equals_a_fresh_objective_and_reverse_mode(symbolic_case):
    model, vg, theta = symbolic_case
    X, t = X_ALL[6:10], np.eye(2)[Y_ALL[6:10] % 2]
    got = vg(theta, batch=(X, t))
    plain = ds.get_differentiator("reverse").value_and_grad(ds.Objective(model, "quadratic", X, t, l1=0.01))(theta)
    assert got.value == pytest.approx(plain.value, rel=1e-14)
    np.testing.assert_allclose(got.grad, plain.grad, rtol=1e-13, atol=1e-16)
    assert not np.allclose(got.grad, vg(theta).grad)  # the batch really replaced the objective's data


def test_symbolic_refuses_batches_it_cannot_take_and_says_what_can(symbolic_case):
    _, as_args, theta = symbolic_case
    X, t = X_ALL[6:10], np.eye(2)[Y_ALL[6:10] % 2]
    with pytest.raises(ValueError, match="batches of exactly 4 rows"):
        as_args(theta, batch=(X[:3], t[:3]))
    tiny = ds.MLP((1, 2))  # the smallest kernels: these checks need a kernel, not a large one
    compiled_in = ds.get_differentiator("symbolic", metrics=False).value_and_grad(
        ds.Objective(tiny, "quadratic", [[1.0]], [[0.0, 1.0]]))
    with pytest.raises(ValueError, match="symbolic_data=True"):
        compiled_in(tiny.init(0), batch=([[2.0]], [[1.0, 0.0]]))
    ce = ds.get_differentiator("symbolic", symbolic_data=True, metrics=False).value_and_grad(
        ds.Objective(tiny, "cross_entropy", [[1.0]], [0]))
    with pytest.raises(ValueError, match="cross_entropy's targets"):
        ce(tiny.init(0), batch=([[2.0]], [1]))
