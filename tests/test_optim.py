"""diffsuite.optim against torch.optim: the same gradients in, the same parameters out, step for step, float64."""
import math

import numpy as np
import pytest

from diffsuite.optim import SGD, Adam, AdamW, Cosine, Exponential, StepDecay, get_optimizer, tree_leaves

torch = pytest.importorskip("torch")

STEPS = 25
A = np.random.default_rng(3).normal(size=(7, 7)) / 3


def numpy_grad(p):
    """A parameter-dependent gradient (so that an update error feeds back): A p + sin(p) + 0.3."""
    return A @ p + np.sin(p) + 0.3


def torch_grad(p):
    return torch.from_numpy(A) @ p + torch.sin(p) + 0.3


def _trajectories(ours, make_torch, make_sched=None, tree=False):
    p0 = np.random.default_rng(0).normal(size=7)
    tp = torch.tensor(p0.copy(), dtype=torch.float64, requires_grad=True)
    topt = make_torch([tp])
    sched = make_sched(topt) if make_sched else None
    theta = {"W": p0[:4].reshape(2, 2), "rest": [p0[4:6], (float(p0[6]),)]} if tree else p0.copy()
    for _ in range(STEPS):
        with torch.no_grad():
            tp.grad = torch_grad(tp.detach())
        topt.step()
        if sched:
            sched.step()
        flat = np.concatenate([leaf.ravel() for leaf in tree_leaves(theta)[0]])
        g = numpy_grad(flat)
        grads = {"W": g[:4].reshape(2, 2), "rest": [g[4:6], (float(g[6]),)]} if tree else g
        theta = ours.step(theta, grads)
        flat = np.concatenate([leaf.ravel() for leaf in tree_leaves(theta)[0]])
        np.testing.assert_allclose(flat, tp.detach().numpy(), rtol=1e-12, atol=1e-12)
    return theta


@pytest.mark.parametrize("kw", [
    dict(),
    dict(momentum=0.9),
    dict(momentum=0.9, dampening=0.3, weight_decay=0.05),
    dict(momentum=0.8, nesterov=True, weight_decay=0.01),
])
def test_sgd_matches_torch(kw):
    _trajectories(SGD(lr=0.05, **kw), lambda ps: torch.optim.SGD(ps, lr=0.05, **kw))


@pytest.mark.parametrize("kw", [dict(), dict(weight_decay=0.1), dict(betas=(0.5, 0.9), eps=1e-6)])
def test_adam_matches_torch(kw):
    _trajectories(Adam(lr=0.02, **kw), lambda ps: torch.optim.Adam(ps, lr=0.02, **kw))


def test_adamw_matches_torch():
    _trajectories(AdamW(lr=0.02, weight_decay=0.2), lambda ps: torch.optim.AdamW(ps, lr=0.02, weight_decay=0.2))


def test_pytree_params_follow_the_same_trajectory_and_keep_their_structure():
    theta = _trajectories(SGD(lr=0.05, momentum=0.9, nesterov=True),
                          lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True), tree=True)
    assert set(theta) == {"W", "rest"} and theta["W"].shape == (2, 2)
    assert isinstance(theta["rest"], list) and isinstance(theta["rest"][1], tuple)
    assert isinstance(theta["rest"][1][0], float)


def test_step_decay_schedule_matches_torch_steplr():
    _trajectories(SGD(lr=StepDecay(0.1, step_size=4, gamma=0.5), momentum=0.9),
                  lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
                  lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=4, gamma=0.5))


def test_cosine_schedule_matches_torch_cosine_annealing():
    _trajectories(Adam(lr=Cosine(0.05, t_max=STEPS, lr_min=0.001)),
                  lambda ps: torch.optim.Adam(ps, lr=0.05),
                  lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=STEPS, eta_min=0.001))


def test_exponential_schedule_matches_torch():
    _trajectories(SGD(lr=Exponential(0.1, gamma=0.9)), lambda ps: torch.optim.SGD(ps, lr=0.1),
                  lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9))


def test_schedules_by_hand():
    assert StepDecay(1.0, 3, 0.5)(5) == 0.5 and StepDecay(1.0, 3, 0.5)(6) == 0.25
    c = Cosine(2.0, t_max=4, lr_min=0.0)
    assert c(0) == 2.0 and math.isclose(c(2), 1.0) and c(4) == 0.0 and c(9) == 0.0


def test_step_does_not_modify_its_inputs():
    p, g = np.ones(3), np.full(3, 2.0)
    new = SGD(lr=0.5, momentum=0.9).step(p, g)
    assert np.all(p == 1) and np.all(g == 2) and np.all(new == 0.0)


def test_bad_options_and_mismatched_grads_are_clear_errors():
    with pytest.raises(ValueError, match="lr must be"):
        SGD(lr=-1)
    with pytest.raises(ValueError, match="nesterov needs momentum"):
        SGD(lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        Adam(betas=(0.9,))
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        get_optimizer("rmsprop")
    with pytest.raises(ValueError, match="grads must have params' structure"):
        SGD(lr=0.1).step(np.ones(3), np.ones(4))
    with pytest.raises(TypeError, match="arrays or floats"):
        SGD(lr=0.1).step({"a": "x"}, {"a": 1.0})
