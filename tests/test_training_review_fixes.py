"""Fixes from the training review (optim, data, training loop, ``diffsuite train``), each against an independent
oracle: torch.optim in float64 for optimizers, values computed by hand (or by a fresh ``Objective``) otherwise."""
import numpy as np
import pytest

import diffsuite as ds
from diffsuite import data
from diffsuite.optim import SGD, Adam, AdamW, Cosine, Exponential, StepDecay
from diffsuite.training import TrainingDiverged, check_setup, target_kind, train


@pytest.fixture(scope="module")
def moons():
    return data.load("moons", seed=0)


def _rev():
    return ds.get_differentiator("reverse")


# ----- 1. gradients and state are paired with parameters by key, not by position -----
def test_grads_listed_in_another_key_order_update_their_own_parameter():
    p = {"a": np.array([1.0]), "b": np.array([0.0])}
    g = {"b": np.array([100.0]), "a": np.array([1.0])}
    new = SGD(lr=0.1).step(p, g)
    assert list(new) == ["a", "b"]  # params' structure and order
    assert new["a"][0] == pytest.approx(1.0 - 0.1 * 1.0) and new["b"][0] == pytest.approx(0.0 - 0.1 * 100.0)


@pytest.mark.parametrize("make, make_torch", [
    (lambda: SGD(lr=0.05, momentum=0.9), lambda ps, torch: torch.optim.SGD(ps, lr=0.05, momentum=0.9)),
    (lambda: Adam(lr=0.02), lambda ps, torch: torch.optim.Adam(ps, lr=0.02)),
    (lambda: AdamW(lr=0.02, weight_decay=0.1), lambda ps, torch: torch.optim.AdamW(ps, lr=0.02, weight_decay=0.1)),
], ids=["sgd-momentum", "adam", "adamw"])
def test_state_follows_each_key_when_dict_order_changes_between_steps(make, make_torch):
    """Momentum buffers and Adam moments stay with their key when params and grads arrive in other orders."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    a0, b0 = rng.normal(size=3), rng.normal(size=3)  # same shapes: a positional pairing would mix them up
    ta = torch.tensor(a0.copy(), dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(b0.copy(), dtype=torch.float64, requires_grad=True)
    topt = make_torch([ta, tb], torch)
    ours, theta = make(), {"a": a0.copy(), "b": b0.copy()}
    for k in range(12):
        ga = np.sin(theta["a"]) + 0.5 * theta["b"] + k  # a parameter-dependent gradient, different per key
        gb = np.cos(theta["b"]) - 2.0 * theta["a"]
        with torch.no_grad():
            ta.grad, tb.grad = torch.from_numpy(np.sin(ta.detach().numpy()) + 0.5 * tb.detach().numpy() + k), \
                torch.from_numpy(np.cos(tb.detach().numpy()) - 2.0 * ta.detach().numpy())
        topt.step()
        if k % 2:  # every other step: params and grads in reversed key order, and grads in a third order
            params = {"b": theta["b"], "a": theta["a"]}
            grads = {"a": ga, "b": gb}
        else:
            params, grads = theta, {"b": gb, "a": ga}
        theta = ours.step(params, grads)
        np.testing.assert_allclose(theta["a"], ta.detach().numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(theta["b"], tb.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("params, grads, where", [
    (np.ones(2), {"x": np.ones(2)}, "at the root params has a leaf of shape (2,), grads has a dict"),
    ({"a": np.ones(2)}, {"b": np.ones(2)}, "missing ['a'], unexpected ['b']"),
    ({"a": np.ones(2)}, {"a": np.ones(2), "b": np.ones(2)}, "unexpected ['b']"),
    ({"W": [np.ones(2), np.ones(3)]}, {"W": [np.ones(2), np.ones(2)]}, "at ['W'][1] params has a leaf of shape (3,)"),
    ({"W": [np.ones(2)]}, {"W": np.ones(2)}, "at ['W'] params has a list of 1 entries"),
    ({"a": np.ones(2)}, np.ones(2), "at the root params has a dict with keys ['a'], grads has a leaf"),
])
def test_grads_of_another_structure_are_refused_naming_the_place(params, grads, where):
    with pytest.raises(ValueError, match="grads must have params' structure") as info:
        SGD(lr=0.1).step(params, grads)
    assert where in str(info.value) and "Pass the gradient of these params" in str(info.value)


def test_params_with_other_keys_on_a_later_step_are_refused():
    opt = SGD(lr=0.1, momentum=0.9)
    opt.step({"a": np.ones(2)}, {"a": np.ones(2)})
    with pytest.raises(ValueError, match=r"params changed structure between steps.*\['a'\].*\['z'\].*fresh"):
        opt.step({"z": np.ones(2)}, {"z": np.ones(2)})
    with pytest.raises(ValueError, match="params changed structure"):
        opt.step({"a": np.ones(3)}, {"a": np.ones(3)})


# ----- 2. one optimizer object, several runs -----
def test_reusing_an_optimizer_object_gives_the_run_a_fresh_one_each_time(moons):
    model = ds.MLP((2, 8, 2), "tanh")
    opt = Adam(lr=Cosine(0.05, t_max=30))
    kw = dict(epochs=3, batch_size=32, seed=0)
    a = train(_rev(), model, "cross_entropy", moons, opt, **kw)
    b = train(_rev(), model, "cross_entropy", moons, opt, **kw)
    c = train(_rev(), model, "cross_entropy", moons, Adam(lr=Cosine(0.05, t_max=30)), **kw)  # the oracle: a new one
    assert np.array_equal(a.theta, c.theta) and np.array_equal(b.theta, c.theta)
    assert a.history.equals(b.history.assign(wall_s=a.history.wall_s))
    assert b.history["lr"].iloc[0] == 0.05  # the schedule starts at t = 0 again
    assert opt.t == 0 and opt.state is None  # the caller's object is not stepped
    assert b.optimizer is not opt and b.optimizer.t == 30  # the trained copy: 3 epochs x ceil(300 / 32) steps


# ----- 3. the history reports data losses and the penalty separately -----
def test_losses_in_the_history_are_data_losses_and_the_penalty_is_its_own_column(moons):
    model, l1, l2 = ds.MLP((2, 6, 2), "tanh"), 1e-3, 1e-2
    run = train(_rev(), model, "cross_entropy", moons, SGD(lr=0.1), epochs=2, batch_size=32, seed=0, l1=l1, l2=l2)
    row, theta = run.history.iloc[-1], run.theta
    assert row["train_loss"] == pytest.approx(
        ds.Objective(model, "cross_entropy", moons.X_train, moons.y_train).value(theta), rel=1e-14)
    assert row["test_loss"] == pytest.approx(
        ds.Objective(model, "cross_entropy", moons.X_test, moons.y_test).value(theta), rel=1e-14)
    W = [v for k, v in model.unpack(theta).items() if k.startswith("W")]  # weights only, not biases
    by_hand = l1 * sum(np.abs(w).sum() for w in W) + l2 * sum((w * w).sum() for w in W)
    assert row["penalty"] == pytest.approx(by_hand, rel=1e-13) and row["penalty"] > 0
    full = ds.Objective(model, "cross_entropy", moons.X_train, moons.y_train, l1=l1, l2=l2).value(theta)
    assert row["train_loss"] + row["penalty"] == pytest.approx(full, rel=1e-13)  # the objective the steps minimise
    assert run.summary()["penalty"] == row["penalty"]


def test_batch_loss_is_the_minibatch_data_loss(moons):
    model = ds.MLP((2, 4, 2), "tanh")
    run = train(_rev(), model, "cross_entropy", moons, SGD(lr=0.1), epochs=1, batch_size=16, seed=5, l2=0.1,
                max_steps=1)
    idx = np.random.default_rng(5).permutation(len(moons.y_train))[:16]  # the first minibatch, drawn by hand
    by_hand = ds.Objective(model, "cross_entropy", moons.X_train[idx], moons.y_train[idx]).value(run.thetas[0])
    assert run.history["batch_loss"].iloc[-1] == pytest.approx(by_hand, rel=1e-12)


# ----- 4. a learning rate <= 0 through a schedule -----
@pytest.mark.parametrize("make", [lambda lr: StepDecay(lr, step_size=3), lambda lr: Cosine(lr, t_max=10),
                                  lambda lr: Exponential(lr, gamma=0.9)], ids=["step", "cosine", "exponential"])
@pytest.mark.parametrize("lr", [0.0, -0.5, float("nan"), float("inf")])
def test_schedules_refuse_a_learning_rate_that_is_not_positive(make, lr):
    with pytest.raises(ValueError, match=r"lr must be a number in \(0, inf\)"):
        make(lr)


def test_cosine_lr_min_must_lie_between_0_and_lr():
    with pytest.raises(ValueError, match=r"lr_min must be a number in \[0, 0.1\]"):
        Cosine(0.1, t_max=5, lr_min=0.2)
    with pytest.raises(ValueError, match="lr_min"):
        Cosine(0.1, t_max=5, lr_min=-0.01)


def test_a_callable_schedule_that_turns_negative_is_refused_at_that_step():
    opt = SGD(lr=lambda t: 0.1 - 0.1 * t)  # 0.1, 0.0, -0.1
    p = opt.step(opt.step(np.ones(2), np.ones(2)), np.ones(2))
    assert np.allclose(p, 0.9)  # lr 0.1 then 0 (the end of a decay is allowed)
    with pytest.raises(ValueError, match=r"schedule gave lr=-0.1 at step 2; a learning rate must be finite and >= 0"):
        opt.step(p, np.ones(2))
    with pytest.raises(TypeError, match="schedule must return a number"):
        SGD(lr=lambda t: "fast").step(np.ones(2), np.ones(2))


@pytest.mark.parametrize("lr", ["-0.5", "0"])
@pytest.mark.parametrize("schedule", ["step", "cosine", "constant"])
def test_cli_refuses_a_learning_rate_that_is_not_positive_with_any_schedule(capsys, lr, schedule):
    from diffsuite.cli import main
    assert main(["train", "--data", "moons", "--layers", "2,8,2", "--epochs", "1", "--lr", lr, "--schedule",
                 schedule, "--no-progress"]) == 2
    out = capsys.readouterr()
    assert "--lr must be a finite number > 0" in out.err and "summary" not in out.out


# ----- 5. a Loss instance is handled by its identity -----
@pytest.mark.parametrize("instance, name, layers", [
    (ds.nn.CrossEntropy(), "cross_entropy", (2, 4, 2)),
    (ds.nn.Hinge(), "hinge", (2, 4, 1)),
    (ds.nn.Quadratic(), "quadratic", (2, 4, 2)),
], ids=["cross_entropy", "hinge", "quadratic"])
def test_a_loss_instance_trains_exactly_as_its_name(moons, instance, name, layers):
    model = ds.MLP(layers, "tanh")
    assert target_kind(instance, layers[-1]) == target_kind(name, layers[-1])
    by_instance = train(_rev(), model, instance, moons, SGD(lr=0.1), epochs=1, batch_size=32, seed=1)
    by_name = train(_rev(), model, name, moons, SGD(lr=0.1), epochs=1, batch_size=32, seed=1)
    assert np.array_equal(by_instance.theta, by_name.theta)


def test_target_kinds_by_hand():
    assert target_kind(ds.nn.CrossEntropy(), 2) == "index" and target_kind(ds.nn.Hinge(), 1) == "pm1"
    assert target_kind(ds.nn.BinaryCrossEntropy(from_logits=True), 1) == "binary"
    assert target_kind(ds.nn.Quadratic(), 3) == "onehot"


def test_check_setup_refuses_a_hinge_instance_with_two_outputs(moons):
    with pytest.raises(ValueError, match=r"hinge needs one output.*use layers=\(\.\.\., 1\)"):
        check_setup(ds.MLP((2, 4, 2)), ds.nn.Hinge(), moons)


# ----- 6. an update that overflows theta -----
def test_an_overflowing_update_is_divergence_and_is_not_applied(moons):
    model = ds.MLP((2, 8, 2), "relu")
    theta0 = model.init(0) * 10
    kw = dict(epochs=2, batch_size=32, theta0=theta0)
    with pytest.raises(TrainingDiverged, match=r"diverged at step 1 .*update with lr 1e\+308.*overflow"):
        train(_rev(), model, "quadratic", moons, SGD(lr=1e308), **kw)
    run = train(_rev(), model, "quadratic", moons, SGD(lr=1e308), on_nonfinite="stop", **kw)
    assert run.diverged_at == 1 and np.array_equal(run.theta, theta0)  # the step was refused: theta as given
    assert list(run.history["step"]) == [0] and np.isfinite(run.history["train_loss"]).all()


# ----- 7, 8. minibatch sizes that cannot work are refused before any set-up -----
class _Spy:
    """Records whether training reached the set-up."""

    def __init__(self, name="reverse", **attrs):
        self.name, self.calls = name, 0
        self.__dict__.update(attrs)

    def value_and_grad(self, objective):
        self.calls += 1
        raise AssertionError("value_and_grad must not be reached")


def test_symbolic_with_a_partial_last_batch_is_refused_before_set_up(moons):
    spy = _Spy("symbolic", symbolic_data=True)
    model = ds.MLP((2, 2, 1), "tanh", output_activation="sigmoid")
    with pytest.raises(ValueError, match=r"300 training rows in batches of 32 leave a last batch of 12: pass "
                                         r"drop_last=True"):
        train(spy, model, "binary_cross_entropy", moons, SGD(lr=0.1), epochs=1, batch_size=32)
    with pytest.raises(ValueError, match="symbolic_data=True"):
        train(_Spy("symbolic", symbolic_data=False), model, "binary_cross_entropy", moons, SGD(lr=0.1), epochs=1,
              batch_size=30)
    assert spy.calls == 0
    for ok in (dict(batch_size=32, drop_last=True), dict(batch_size=30), dict(batch_size=500)):  # 300 % 30 == 0
        with pytest.raises(AssertionError, match="must not be reached"):  # accepted: it gets to the set-up
            train(_Spy("symbolic", symbolic_data=True), model, "binary_cross_entropy", moons, SGD(lr=0.1), epochs=1,
                  **ok)


def test_the_real_symbolic_differentiator_is_refused_before_compiling(moons):
    pytest.importorskip("sympy")
    sym = ds.get_differentiator("symbolic", symbolic_data=True, metrics=False)
    with pytest.raises(ValueError, match="leave a last batch of 12"):
        train(sym, ds.MLP((2, 2, 1), "tanh", output_activation="sigmoid"), "binary_cross_entropy", moons,
              SGD(lr=0.1), epochs=1, batch_size=32)


def test_drop_last_with_a_batch_larger_than_the_training_set_is_refused(moons):
    spy = _Spy()
    with pytest.raises(ValueError, match=r"batch_size 1000 larger than the 300 training rows would take no step"):
        train(spy, ds.MLP((2, 4, 2)), "cross_entropy", moons, SGD(lr=0.1), epochs=1, batch_size=1000, drop_last=True)
    assert spy.calls == 0
    run = train(_rev(), ds.MLP((2, 4, 2)), "cross_entropy", moons, SGD(lr=0.1), epochs=2, batch_size=1000)
    assert list(run.history["step"]) == [0, 1, 2]  # without drop_last: one 300-row batch per epoch


# ----- 9. clear errors -----
@pytest.mark.parametrize("betas", [(1.0, 0.999), (0.9, 1.0), (-0.1, 0.9)])
def test_adam_betas_must_lie_in_0_1_like_torch(betas):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError):  # the oracle refuses them too
        torch.optim.Adam([torch.zeros(1, requires_grad=True)], betas=betas)
    with pytest.raises(ValueError, match=r"betas\[\d\] must be a number in \[0, 1\)"):
        Adam(betas=betas)
    Adam(betas=(0.0, 0.0))  # the closed end is allowed, as torch


@pytest.mark.parametrize("make, match", [
    (lambda: Cosine(0.1, t_max=0), "Cosine: t_max must be a whole number"),
    (lambda: Cosine(0.1, t_max=2.5), "Cosine: t_max must be a whole number"),
    (lambda: StepDecay(0.1, step_size=0), "StepDecay: step_size must be a whole number"),
    (lambda: StepDecay(0.1, step_size=True), "StepDecay: step_size must be a whole number"),
    (lambda: StepDecay(0.1, step_size=2, gamma=0), "StepDecay: gamma"),
    (lambda: Exponential(0.1, gamma=-1), "Exponential: gamma"),
])
def test_schedules_refuse_bad_options_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("options, match", [
    (dict(eval_every=-1), "eval_every must be None"), (dict(eval_every=0), "eval_every must be None"),
    (dict(eval_every=2.5), "eval_every must be None"), (dict(eval_every=True), "eval_every must be None"),
    (dict(epochs=True), "epochs must be an int >= 1"), (dict(epochs=1.0), "epochs must be an int >= 1"),
    (dict(seed=-1), "seed must be an int >= 0; got -1"), (dict(seed=1.5), "seed must be an int >= 0"),
])
def test_bad_loop_options_are_refused_before_set_up(moons, options, match):
    spy = _Spy()
    with pytest.raises(ValueError, match=match):
        train(spy, ds.MLP((2, 4, 2)), "cross_entropy", moons, SGD(lr=0.1), **dict(dict(epochs=1, batch_size=32),
                                                                                     **options))
    assert spy.calls == 0


def test_numpy_integers_are_whole_numbers(moons):
    model = ds.MLP((2, 4, 2), "tanh")
    kw = dict(batch_size=32, seed=2)
    a = train(_rev(), model, "cross_entropy", moons, SGD(lr=0.1), epochs=np.int64(2), eval_every=np.int32(5), **kw)
    b = train(_rev(), model, "cross_entropy", moons, SGD(lr=0.1), epochs=2, eval_every=5, **kw)
    assert np.array_equal(a.theta, b.theta) and list(a.history["step"]) == [0, 5, 10, 15, 20]


def test_forward_mode_trains_on_minibatches_and_wrong_types_get_clear_errors(moons):
    """Forward mode takes batch= (n JVPs per step): its trajectory is reverse mode's to rounding."""
    model = ds.MLP((2, 4, 2))
    fwd = train(ds.get_differentiator("forward"), model, "cross_entropy", moons, SGD(lr=0.1), epochs=1, batch_size=32)
    rev = train(_rev(), model, "cross_entropy", moons, SGD(lr=0.1), epochs=1, batch_size=32)
    np.testing.assert_allclose(fwd.theta, rev.theta, rtol=1e-12, atol=1e-14)
    with pytest.raises(TypeError, match="optimizer must be a diffsuite.optim optimizer"):
        train(_rev(), model, "cross_entropy", moons, None, epochs=1, batch_size=32)
    with pytest.raises(TypeError, match="dataset must be a diffsuite.data.Dataset"):
        train(_rev(), model, "cross_entropy", (moons.X_train, moons.y_train), SGD(lr=0.1), epochs=1, batch_size=32)


@pytest.mark.parametrize("n", [0, -5, 3])
def test_load_names_n_samples(n):
    with pytest.raises(ValueError, match=rf"n_samples must be at least 4 for moons .*got {n}"):
        data.load("moons", n_samples=n)
    assert data.load("moons", n_samples=4).describe().startswith("moons: 2 train / 2 test")


def test_load_names_seed():
    with pytest.raises(ValueError, match="seed must be an int >= 0; got -1"):
        data.load("moons", seed=-1)


def test_batches_refuse_a_bool_batch_size_and_a_non_generator(moons):
    with pytest.raises(ValueError, match="batch_size must be an int >= 1; got True"):
        next(moons.batches(True, np.random.default_rng(0)))
    with pytest.raises(TypeError, match=r"rng must be a numpy Generator, e\.g\. np\.random\.default_rng"):
        next(moons.batches(32, 0))


def test_hinge_advice_names_one_output(capsys):
    from diffsuite.cli import main
    assert main(["train", "--data", "moons", "--layers", "2,4,2", "--loss", "hinge", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "use layers=(..., 1)" in err
