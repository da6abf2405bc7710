"""Minibatch plans (reverse/plan.py ``build_plan(data=...)``): ``batch=`` calls of one shape replay a plan that takes
the batch as arguments, and give the tape's bits.

Oracles: the tape path (``replay=False``: every call records and walks a fresh tape) bit for bit, on every
activation, loss, L1/L2, dtype and backend of test_plan.CASES, over several different batches of one shape, a
second shape, and the objective's own data between them; torch.autograd in float64 for one objective (an
independent implementation). A loss whose program takes a constant computed from the targets outside the tape
(binary cross-entropy's ``1 - targets``) must make no minibatch plan: replaying it would use the first batch's.
"""
import numpy as np
import pytest
import torch

import diffsuite as ds
from diffsuite import get_differentiator
from diffsuite.differentiators import reverse as reverse_module
from tests.differentiators.reverse.test_plan import CASES, assert_agrees_with_torch, assert_same, make


def batches(obj, X, y, rng, size):
    """Minibatches drawn like the objective's own data (same label rules), of ``size`` rows."""
    n = X.shape[0]
    Xs = rng.normal(size=(4 * size, X.shape[1]))
    if obj.loss.name == "cross_entropy":
        ys = rng.integers(0, obj.model.layers[-1], size=4 * size)
    else:
        ys = np.concatenate([y] * (4 * size // n + 1))[:4 * size]
        ys = ys[rng.permutation(len(ys))]
    return [(Xs[k * size:(k + 1) * size], ys[k * size:(k + 1) * size]) for k in range(4)]


def batch_plans_of(vg):
    return dict(zip(vg.__code__.co_freevars, vg.__closure__))["batch_plans"].cell_contents


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}-{c[3]}")
def test_minibatch_replays_match_the_tape_bit_for_bit(case, dtype, backend):
    obj, X, y = make(*case)
    rng = np.random.default_rng(3)
    replay = get_differentiator("reverse", dtype=dtype, backend=backend).value_and_grad(obj)
    tape = get_differentiator("reverse", dtype=dtype, backend=backend, replay=False).value_and_grad(obj)
    theta = obj.model.init(1)
    same_shape, other_shape = batches(obj, X, y, rng, 5), batches(obj, X, y, rng, 3)
    calls = same_shape + [None] + other_shape[:2] + same_shape[::-1] + [None] + other_shape[2:]
    for batch in calls:  # (None: the objective's own data, whose plan is another)
        for point in (theta, 0.0 * theta):  # 0: every relu, maxout and L1 at its kink
            assert_same(replay(point, batch=batch), tape(point, batch=batch))


@pytest.mark.parametrize("loss,planned", [("cross_entropy", True), ("quadratic", True), ("hinge", True),
                                          ("binary_cross_entropy", False)])
def test_which_losses_get_minibatch_plans(loss, planned):
    case = next(c for c in CASES if c[3] == loss)
    obj, X, y = make(*case)
    vg = get_differentiator("reverse").value_and_grad(obj)
    theta = obj.model.init(0)
    b = batches(obj, X, y, np.random.default_rng(0), 5)
    vg(theta, batch=b[0])
    (made,) = batch_plans_of(vg).values()
    assert (made is not None) == planned
    if made is not None:
        assert made.n_data == (3 if loss == "cross_entropy" else 2)  # inputs, targets (and their flat index)


def test_later_minibatches_of_one_shape_record_no_tape(monkeypatch):
    obj, X, y = make(*CASES[1])
    vg = get_differentiator("reverse").value_and_grad(obj)
    theta = obj.model.init(0)
    b = batches(obj, X, y, np.random.default_rng(0), 5)
    vg(theta, batch=b[0])  # records this shape's plan
    made = []
    for name in ("Tape", "PlanRecorder"):
        original = getattr(reverse_module, name)
        monkeypatch.setattr(reverse_module, name, lambda B, original=original: made.append(1) or original(B))
    for batch in b[1:]:
        vg(theta, batch=batch)
    assert made == []


def test_minibatch_plans_stop_at_a_bound_of_shapes():
    obj, X, y = make(*CASES[1])
    vg = get_differentiator("reverse").value_and_grad(obj)
    tape = get_differentiator("reverse", replay=False).value_and_grad(obj)
    theta = obj.model.init(0)
    rng = np.random.default_rng(0)
    for size in range(1, reverse_module.BATCH_PLANS + 4):
        batch = batches(obj, X, y, rng, size)[0]
        assert_same(vg(theta, batch=batch), tape(theta, batch=batch))
    assert len(batch_plans_of(vg)) == reverse_module.BATCH_PLANS


def test_minibatch_replay_agrees_with_torch_autograd():
    obj, X, y = make(*CASES[1])
    vg = get_differentiator("reverse").value_and_grad(obj)
    theta = obj.model.init(2)
    for Xb, yb in batches(obj, X, y, np.random.default_rng(5), 5):  # the first records, the others replay
        batch_objective = ds.Objective(obj.model, obj.loss.name, Xb, yb, l1=obj.l1, l2=obj.l2)
        assert_agrees_with_torch(vg(theta, batch=(Xb, yb)), batch_objective, theta)


def test_a_bad_minibatch_is_still_refused_by_name():
    obj, X, y = make(*CASES[1])
    vg = get_differentiator("reverse").value_and_grad(obj)
    theta = obj.model.init(0)
    b = batches(obj, X, y, np.random.default_rng(0), 5)
    vg(theta, batch=b[0])
    Xb = b[1][0].copy()
    Xb[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"inputs must be finite; inputs\[2, 1\] is nan"):
        vg(theta, batch=(Xb, b[1][1]))


def test_an_array_inside_a_parameter_makes_no_minibatch_plan():
    """A primitive parameter holding an array (a getitem's index of labels, say) may come from the batch: the
    recording must make no plan, however deep the array sits (by hand: the refusal's contract)."""
    from diffsuite.differentiators.reverse.plan import DataRef, _holds_array
    labels = np.array([0, 2, 1])
    assert _holds_array((slice(None), labels)) and _holds_array({"index": (0, [labels])})
    assert _holds_array(slice(labels, None)) and _holds_array(np.float64(1.0))
    assert not _holds_array((64, 10)) and not _holds_array(torch.Size([64, 10])) and not _holds_array(DataRef(0))
    assert not _holds_array({"axis": -1, "keepdims": True}) and not _holds_array((slice(None), 3))


@pytest.mark.parametrize("loss", ["quadratic", "hinge"])
def test_a_plan_recorded_on_inputs_that_are_the_targets_serves_only_such_batches(loss):
    """An autoencoder's batch=(X, X): on numpy float64 the targets *are* the inputs, and a plan recorded so reads one
    argument for both. A later batch (X, Y) of the same shape must not replay it (a review's case: wrong value and
    gradient); (X, X) batches may."""
    rng = np.random.default_rng(0)
    sign = (lambda a: np.where(a > 0, 1.0, -1.0)) if loss == "hinge" else (lambda a: a)
    model = ds.MLP((2, 3, 2), activation="tanh")
    obj = ds.Objective(model, loss, sign(rng.normal(size=(4, 2))), sign(rng.normal(size=(4, 2))))
    theta = model.init(0)
    vg = get_differentiator("reverse").value_and_grad(obj)
    tape = get_differentiator("reverse", replay=False).value_and_grad(obj)
    A, X, Y = (sign(rng.normal(size=(4, 2))) for _ in range(3))
    for batch in [(A, A), (X, Y), (Y, Y), (Y, X), (A, A)]:
        assert_same(vg(theta, batch=batch), tape(theta, batch=batch))
