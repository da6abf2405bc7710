"""Fixes from the eleventh session's review of data subsets and refused optimizer steps (each failed before its fix)."""
from __future__ import annotations

import numpy as np
import pytest

import diffsuite as ds
from diffsuite import data
from diffsuite.optim import SGD, Adam
from diffsuite.training import train


@pytest.mark.parametrize("name, n", [("digits", 33), ("digits", 25), ("spirals", 20), ("spirals", 40),
                                     ("breast_cancer", 4), ("breast_cancer", 5), ("moons", 51)])
def test_n_samples_keeps_exactly_that_many_with_every_class_in_both_splits(name, n):
    d = data.load(name, n_samples=n)
    assert len(d.y_train) + len(d.y_test) == n
    assert np.bincount(d.y_train, minlength=d.n_classes).min() >= 1
    assert np.bincount(d.y_test, minlength=d.n_classes).min() >= 1


def test_stratified_subset_allocates_by_largest_remainder():
    # counts 50, 30, 20 of 100, n = 11: quotas 5.5, 3.3, 2.2 -> floors 5, 3, 2 (10), the largest remainder (0.5,
    # class 0) gets the 11th
    y = np.repeat([0, 1, 2], [50, 30, 20])
    keep = data.stratified_subset(y, 11, seed=0)
    assert np.bincount(y[keep]).tolist() == [6, 3, 2]
    assert len(np.unique(keep)) == 11


def test_stratified_subset_refuses_what_it_cannot_give():
    with pytest.raises(ValueError, match="two samples of each class"):
        data.stratified_subset(np.array([0, 0, 1, 1, 1]), 3, seed=0)
    with pytest.raises(ValueError, match=r"have \[1, 3\]"):
        data.stratified_subset(np.array([0, 1, 1, 1]), 4, seed=0)


@pytest.mark.parametrize("bad", [None, "0.25", True])
def test_a_test_fraction_that_is_not_a_number_gets_the_clear_message(bad):
    with pytest.raises(ValueError, match="test_fraction must be a number strictly between 0 and 1"):
        data.load("moons", test_fraction=bad)


def _refused_run(optimizer):
    with np.errstate(over="ignore", invalid="ignore"):
        return train(ds.get_differentiator("reverse"), ds.MLP((2, 2), activation="tanh"), "cross_entropy",
                     data.load("moons", seed=0), optimizer, epochs=2, batch_size=32, eval_every=4,
                     on_nonfinite="stop")


def test_a_refused_update_leaves_sgd_as_it_was():
    # lr 1.79e308 at step index 5 (the 6th step) overflows theta: refused. The optimizer must still be at t = 5,
    # its momentum finite, and the last row's lr (the rate the next step will use) the refused step's, sched(5)
    sched = lambda t: 0.01 if t < 5 else (1.79e308 if t == 5 else 0.5)  # noqa: E731
    run = _refused_run(SGD(lr=sched, momentum=0.9))
    assert run.diverged_at == 6
    assert run.optimizer.t == 5
    assert run.optimizer.current_lr() == 1.79e308
    assert run.history["lr"].iloc[-1] == 1.79e308
    assert all(np.isfinite(st["buf"]).all() for st in run.optimizer.state.values())


def test_a_refused_update_leaves_adams_moments_as_they_were():
    # three steps at lr 0.01 applied, the fourth refused: the moments are those of a run stopped after three steps
    sched = lambda t: 0.01 if t < 3 else 1.79e308  # noqa: E731
    run = _refused_run(Adam(lr=sched))
    assert run.diverged_at == 4 and run.optimizer.t == 3
    three = train(ds.get_differentiator("reverse"), ds.MLP((2, 2), activation="tanh"), "cross_entropy",
                  data.load("moons", seed=0), Adam(lr=0.01), epochs=2, batch_size=32, eval_every=4, max_steps=3)
    np.testing.assert_array_equal(run.theta, three.theta)
    for q, st in run.optimizer.state.items():
        np.testing.assert_array_equal(st["m"], three.optimizer.state[q]["m"])
        np.testing.assert_array_equal(st["v"], three.optimizer.state[q]["v"])


def test_step_and_propose_commit_agree_bit_for_bit():
    g = np.array([0.3, -1.2, 2.5])
    for make in (lambda: SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01), lambda: Adam(lr=0.1)):
        a, b = make(), make()
        pa = pb = np.array([1.0, 2.0, -3.0])
        for _ in range(4):
            pa = a.step(pa, g * pa)
            new, commit = b.propose(pb, g * pb)
            commit()
            pb = new
        np.testing.assert_array_equal(pa, pb)
        assert a.t == b.t == 4


def test_propose_without_commit_changes_nothing():
    opt = Adam(lr=0.1)
    p = np.array([1.0, 2.0])
    p = opt.step(p, np.array([0.5, 0.5]))
    state = {k: {kk: (vv.copy() if isinstance(vv, np.ndarray) else vv) for kk, vv in v.items()}
             for k, v in opt.state.items()}
    with np.errstate(over="ignore"):
        opt.propose(p, np.array([1e300, -1e300]))
    assert opt.t == 1
    for k, v in opt.state.items():
        np.testing.assert_array_equal(v["m"], state[k]["m"])
        np.testing.assert_array_equal(v["v"], state[k]["v"])
