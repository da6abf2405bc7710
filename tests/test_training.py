"""Training with each differentiator: reverse mode learns digits; every method's first step is reverse mode's."""
import numpy as np
import pytest

import diffsuite as ds
from diffsuite import data
from diffsuite.optim import SGD
from diffsuite.training import check_setup, predict, train

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", seed=0)


def test_reverse_mode_learns_digits_in_the_quick_configuration():
    from diffsuite.study.studies import training as study
    config = study.Config().quick()
    rows = study.measure(config, dict(problem="digits", activation="tanh", reg="none", method="reverse[numpy]",
                                      dtype="float64"))
    assert rows[-1]["test_acc"] >= 0.95
    assert rows[0]["step"] == 0 and rows[0]["test_acc"] < 0.3  # it learned: 10 classes start near chance
    assert rows[-1]["step"] == 3 * (1347 // 32)  # three epochs of full minibatches
    assert all(r["dist_to_reverse"] == 0.0 for r in rows)  # the reference run is the same computation


def test_distance_to_reverse_is_the_relative_distance_of_the_thetas_step_by_step():
    # a run other than the reference (float32): its rows' distance, against the definition written out here on
    # the two runs' stored thetas, |theta - theta_ref|_2 / |theta_ref|_2, summed in Python floats
    import math

    from diffsuite.study.studies import training as study
    config = study.Config().quick()
    rows = study.measure(config, dict(problem="digits", activation="tanh", reg="none", method="reverse[numpy]",
                                      dtype="float32"))
    ref = study.reference_run(config, "digits", "tanh", "none", None)
    run = study._train(config, "digits", "tanh", "none", "reverse[numpy]", "float32", None)
    assert [r["step"] for r in rows] == list(run.history["step"]) == list(ref.history["step"])
    for row, theta, t_ref in zip(rows, run.thetas, ref.thetas):
        want = math.sqrt(sum((a - b) ** 2 for a, b in zip(theta.tolist(), t_ref.tolist()))) / \
            math.sqrt(sum(b * b for b in t_ref.tolist()))
        # the same initial theta (training keeps theta in float64; only the gradients are float32), then apart
        assert want == 0.0 if row["step"] == 0 else 0 < want < 1e-3
        assert row["dist_to_reverse"] == pytest.approx(want, rel=1e-9)


def _first_step(name, options, model, loss, dataset, batch):
    run = train(ds.get_differentiator(name, **options), model, loss, dataset, SGD(lr=1.0), epochs=1,
                batch_size=batch, seed=3, max_steps=1, drop_last=True)
    return run.theta - run.thetas[0]  # = -lr * the first minibatch's gradient at the initial theta


# (differentiator, options, relative tolerance on the first step): the accuracy class of each method
METHODS = [
    ("reverse", dict(backend="torch"), 1e-13),
    ("reverse", dict(dtype="float32"), 1e-5),
    ("finite_diff", dict(scheme="central", batch=32), 1e-7),
    ("finite_diff", dict(scheme="forward", batch=32), 1e-5),
    ("finite_diff", dict(scheme="central", dtype="float32", batch=32), 3e-2),
]


@pytest.mark.parametrize("name, options, rtol", METHODS, ids=[f"{n}-{o}" for n, o, _ in METHODS])
def test_first_step_equals_reverse_modes_within_its_accuracy_class(digits, name, options, rtol):
    if options.get("backend") == "torch":
        pytest.importorskip("torch")
    model = ds.MLP((64, 8, 10), "tanh")
    ref = _first_step("reverse", {}, model, "cross_entropy", digits, 32)
    got = _first_step(name, dict(options, **({"warn": False} if name == "finite_diff" else {})), model,
                      "cross_entropy", digits, 32)
    err = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    assert err <= rtol
    assert err > 0 or options.get("backend") == "torch"  # another method: not the same arithmetic by accident


def test_symbolic_first_step_equals_reverse_modes():
    pytest.importorskip("symengine")
    moons = data.load("moons", seed=0)
    model = ds.MLP((2, 3, 1), "tanh", output_activation="sigmoid")
    ref = _first_step("reverse", {}, model, "binary_cross_entropy", moons, 4)
    got = _first_step("symbolic", dict(symbolic_data=True, metrics=False, engine="symengine"), model,
                      "binary_cross_entropy", moons, 4)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-15)


class _Spy:
    """A differentiator that records whether training reached it."""

    def __init__(self):
        self.calls = 0

    def value_and_grad(self, objective):
        self.calls += 1
        raise AssertionError("value_and_grad must not be reached with bad data")


@pytest.mark.parametrize("layers, loss, match", [
    ((63, 10), "cross_entropy", "input width must equal the data's features"),
    ((64, 9), "cross_entropy", "output count must equal the classes"),
    ((64, 1), "hinge", "needs a two-class set"),
])
def test_a_model_that_does_not_fit_the_data_is_refused_before_training(digits, layers, loss, match):
    spy = _Spy()
    with pytest.raises(ValueError, match=match):
        train(spy, ds.MLP(layers), loss, digits, SGD(lr=0.1), epochs=1, batch_size=8)
    assert spy.calls == 0


def test_bad_data_is_refused_before_training_starts():
    X = np.random.default_rng(0).normal(size=(20, 2))
    X[7, 1] = np.inf
    with pytest.raises(ValueError, match=r"X must be finite; X\[7, 1\] is inf"):
        data.Dataset("toy", X, np.arange(20) % 2, X[:3], np.zeros(3, dtype=int), n_classes=2)


def test_predict_thresholds_by_hand():
    model = ds.MLP((1, 1), output_activation="identity")
    theta = model.pack({"W0": [[1.0]], "b0": [0.0]})
    obj = ds.Objective(model, "hinge", [[1.0]], [1.0])
    assert list(predict(model, obj, theta, np.array([[-0.2], [0.2]]))) == [0, 1]  # hinge scores: sign
    obj = ds.Objective(model, "quadratic", [[1.0]], [1.0])
    assert list(predict(model, obj, theta, np.array([[0.4], [0.6]]))) == [0, 1]  # 0/1 targets: 0.5
    check_setup(ds.MLP((2, 1)), "hinge", data.load("moons"))  # two classes, one output: accepted


def test_train_command_trains_and_summarises(capsys):
    from diffsuite.cli import main
    assert main(["train", "--data", "moons", "--layers", "2,8,2", "--epochs", "2", "--lr", "0.5",
                 "--optimizer", "sgd", "--schedule", "cosine", "--no-progress"]) == 0
    out = capsys.readouterr()
    assert "moons: 300 train / 100 test" in out.err and "reverse[numpy]" in out.err
    steps = out.out.split("┡")[1].splitlines()[1].split("│")[1].strip()
    assert "summary" in out.out and steps == "20"  # 2 epochs x ceil(300 / 32) minibatches


def test_train_command_refuses_a_mismatched_model_before_training(capsys):
    from diffsuite.cli import main
    assert main(["train", "--layers", "3,10", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "input width must equal the data's features" in err and "summary" not in err
    with pytest.raises(SystemExit):
        main(["train", "--layers", "64"])
    assert "--layers needs at least two positive ints" in capsys.readouterr().err


def test_a_non_finite_step_is_never_applied():
    class Blowup:
        """Reverse mode whose third gradient is NaN (a float32 overflow, say)."""
        name = "blowup"

        def value_and_grad(self, objective):
            vg, calls = ds.get_differentiator("reverse").value_and_grad(objective), [0]

            def fn(theta, batch=None):
                calls[0] += 1
                res = vg(theta, batch=batch)
                if calls[0] == 3:
                    res.grad[0] = np.nan
                return res
            return fn

    moons, model = data.load("moons", seed=0), ds.MLP((2, 4, 2), "tanh")
    with pytest.raises(ArithmeticError, match="diverged at step 3"):
        train(Blowup(), model, "cross_entropy", moons, SGD(lr=0.1), epochs=1, batch_size=16)
    run = train(Blowup(), model, "cross_entropy", moons, SGD(lr=0.1), epochs=1, batch_size=16, on_nonfinite="stop")
    ref = train(ds.get_differentiator("reverse"), model, "cross_entropy", moons, SGD(lr=0.1), epochs=1,
                batch_size=16, max_steps=2)
    assert run.diverged_at == 3 and list(run.history["step"]) == [0, 2]
    assert np.array_equal(run.theta, ref.theta)  # two steps applied, the third refused
