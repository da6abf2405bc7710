"""The replayed plan (reverse/plan.py) against the tape it was recorded from: the same bits, call after call.

Oracles: the tape path with the plan disabled (``replay=False``: every call records and walks a fresh tape),
compared bit for bit; and torch.autograd in float64 for one objective (an independent implementation).
"""
import numpy as np
import pytest
import torch

import diffsuite as ds
from diffsuite import get_differentiator
from diffsuite.differentiators import reverse as reverse_module
from diffsuite.differentiators.reverse.plan import plannable
from diffsuite.nn.activations import Activation
from tests.torch_oracle import torch_objective

RNG = np.random.default_rng(7)


def make(layers, act, out_act, loss, l1=0.0, l2=0.0, batch=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(batch, layers[0]))
    n_out = layers[-1]
    if loss == "cross_entropy":
        y = rng.integers(0, n_out, size=batch)
    elif loss == "hinge":
        y = np.where(rng.normal(size=(batch, n_out)) > 0, 1.0, -1.0)
    elif loss == "binary_cross_entropy":
        y = rng.uniform(size=(batch, n_out))
    else:
        y = rng.normal(size=(batch, n_out))
    model = ds.MLP(layers, activation=act, output_activation=out_act)
    return ds.Objective(model, loss, X, y, l1=l1, l2=l2), X, y


def thetas(obj):
    """A generic point, theta = 0 (every relu/maxout/L1 at its kink, exactly), and 0 with the last bias at 1
    (the hinge's kink for targets +1 on an identity output), and a large point (saturation)."""
    t0 = obj.model.init(1)
    z = np.zeros(obj.n_params)
    kink = z.copy()
    a, b, _ = obj.model.layout[f"b{obj.model.depth - 1}"]
    kink[a:b] = 1.0
    return [t0, z, kink, 40.0 * t0]


CASES = [
    ((3, 2, 1), "sigmoid", "sigmoid", "quadratic", 0.0, 0.0),
    ((3, 4, 2), "relu", "identity", "cross_entropy", 0.1, 0.01),
    ((3, 4, 1), "relu", "identity", "hinge", 0.0, 0.02),
    ((3, 4, 3), "tanh", "sigmoid", "binary_cross_entropy", 0.05, 0.0),
    ((3, 4, 3), "elu", "softmax", "binary_cross_entropy", 0.0, 0.0),
    ((4, 6, 5, 2), "maxout", "identity", "quadratic", 0.01, 0.01),
    ((3, 4, 2), "leaky_relu", "softmax", "quadratic", 0.0, 0.0),
    ((3, 4, 2), "softplus", "tanh", "hinge", 0.2, 0.0),
    ((3, 4, 2), "step", "identity", "quadratic", 0.0, 0.1),
    ((100, 100, 10), "relu", "identity", "cross_entropy", 0.0, 0.01),  # >= 10^4 parameters: the `into` slots
]


def assert_same(a, b):
    assert a.value == b.value or (np.isnan(a.value) and np.isnan(b.value))
    assert a.grad.dtype == b.grad.dtype
    np.testing.assert_array_equal(a.grad, b.grad)  # bit for bit (nan == nan here)
    assert a.stats == b.stats


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}-{c[3]}")
def test_replay_matches_the_tape_bit_for_bit(case, dtype):
    obj, X, y = make(*case)
    replay = get_differentiator("reverse", dtype=dtype).value_and_grad(obj)
    tape = get_differentiator("reverse", dtype=dtype, replay=False).value_and_grad(obj)
    points = thetas(obj)
    for theta in points + points[::-1]:  # the first call records, every later one replays
        assert_same(replay(theta), tape(theta))
    # a minibatch of another size records anew, and the plan of the objective's own data stays right after it
    Xb, yb = X[:3], y[:3]
    assert_same(replay(points[0], batch=(Xb, yb)), tape(points[0], batch=(Xb, yb)))
    assert_same(replay(points[1]), tape(points[1]))


@pytest.mark.parametrize("case", [CASES[1], CASES[2], CASES[4]], ids=str)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_replay_matches_the_tape_on_torch(case, dtype):
    obj, _, _ = make(*case)
    replay = get_differentiator("reverse", backend="torch", dtype=dtype).value_and_grad(obj)
    tape = get_differentiator("reverse", backend="torch", dtype=dtype, replay=False).value_and_grad(obj)
    for theta in thetas(obj) * 2:
        assert_same(replay(theta), tape(theta))


def assert_agrees_with_torch(result, objective, theta):
    """``result`` (a Gradient) against torch.autograd in float64 on ``objective`` at ``theta``."""
    t = torch.tensor(theta, requires_grad=True)
    value = torch_objective(objective)(t)
    value.backward()
    np.testing.assert_allclose(result.value, value.item(), rtol=1e-13)
    np.testing.assert_allclose(result.grad, t.grad.numpy(), rtol=1e-11, atol=1e-15)


def test_replay_agrees_with_torch_autograd():
    obj, _, _ = make((3, 5, 4, 3), "tanh", "identity", "cross_entropy", l1=0.0, l2=0.03, batch=6)
    vg = get_differentiator("reverse").value_and_grad(obj)
    for seed in range(3):
        theta = obj.model.init(seed)
        assert_agrees_with_torch(vg(theta), obj, theta)  # seed 0 records, 1 and 2 replay


def test_replay_still_refuses_a_nonfinite_theta_by_name():
    obj, _, _ = make(*CASES[0])
    vg = get_differentiator("reverse").value_and_grad(obj)
    theta = obj.model.init(0)
    vg(theta)
    vg(theta)  # replayed
    theta[2] = np.nan  # W0 is (3, 2), row-major: flat index 2 is W0[1, 0] (by hand)
    with pytest.raises(ValueError, match=r"theta must be finite; W0\[1, 0\] \(flat index 2\) is nan"):
        vg(theta)


def test_later_calls_record_no_tape_unless_replay_is_off(monkeypatch):
    obj, _, _ = make(*CASES[1])
    theta = obj.model.init(0)
    for replay, tapes_after_first in ((True, 0), (False, 3)):
        vg = get_differentiator("reverse", replay=replay).value_and_grad(obj)
        vg(theta)
        made = []
        monkeypatch.setattr(reverse_module, "Tape", lambda B: made.append(1) or reverse_module.tape.Tape(B))
        for _ in range(3):
            vg(theta)
        monkeypatch.undo()
        assert len(made) == tapes_after_first


def test_user_defined_parts_are_never_planned():
    class Cube(Activation):
        name = "cube"

        def __call__(self, xp, z):
            return z * z * z

    model = ds.MLP((2, 3, 1), activation=Cube())
    obj = ds.Objective(model, "quadratic", RNG.normal(size=(4, 2)), RNG.normal(size=(4, 1)))
    assert not plannable(obj)
    assert plannable(make(*CASES[0])[0])


def test_replay_is_safe_from_several_threads():
    """The compiled plan keeps every value in locals: concurrent calls (Dask's thread workers) share nothing."""
    from concurrent.futures import ThreadPoolExecutor

    obj, _, _ = make(*CASES[5])
    vg = get_differentiator("reverse").value_and_grad(obj)
    oracle = get_differentiator("reverse", replay=False).value_and_grad(obj)
    points = [obj.model.init(seed) for seed in range(16)]
    vg(points[0])  # records the plan; the threads below all replay it
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(vg, points * 4))
    for theta, r in zip(points * 4, results):
        assert_same(r, oracle(theta))


def test_a_replayed_call_peaks_near_hand_written_backprop():
    """Peak bytes of one call (tracemalloc: every numpy array and Python object) against the benchmark's
    hand-written backprop on the lecture's [3, 2, 1] net, where per-call bookkeeping (slot lists, argument
    tuples, keyword dicts) would show: issue 15 allows 5%. Counts, not time: the same on every machine."""
    import sys
    from pathlib import Path

    from diffsuite.study.memory import peak_bytes

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
    try:
        from handwritten import HandwrittenMLP
    finally:
        sys.path.pop(0)
    obj, X, y = make((3, 2, 1), "sigmoid", "sigmoid", "quadratic", batch=1)
    theta = obj.model.init(0)
    hand = HandwrittenMLP((3, 2, 1), "sigmoid", "sigmoid", "quadratic", X, y)
    vg = get_differentiator("reverse").value_and_grad(obj)
    np.testing.assert_allclose(vg(theta).grad, hand.value_and_grad(theta)[1], rtol=1e-13)
    for _ in range(3):  # steady state: the plan recorded, numpy's caches warm
        vg(theta), hand.value_and_grad(theta)
    engine_peak = min(peak_bytes(lambda: vg(theta)) for _ in range(3))
    hand_peak = min(peak_bytes(lambda: hand.value_and_grad(theta)) for _ in range(3))
    assert engine_peak <= 1.05 * hand_peak, (engine_peak, hand_peak)
