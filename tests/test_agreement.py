"""The reverse engine against two independent oracles, for every activation x loss x regulariser:
torch.autograd in float64 (when torch is installed) and a hand-written numpy backprop (always)."""
import importlib.util

import numpy as np
import pytest

import diffsuite as ds
from cases import ACT_OPTIONS, LOSS_SETUPS, REGS, make_case
from handprop import value_and_grad as hand_value_and_grad

CASES = [(a, l, r) for a in ds.ACTIVATIONS for l in LOSS_SETUPS for r in REGS]


def rel_err(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


@pytest.mark.parametrize("activation,loss,reg", CASES)
def test_reverse_matches_handwritten_backprop(activation, loss, reg):
    obj, theta = make_case(activation, loss, reg)
    res = ds.get_differentiator("reverse").value_and_grad(obj)(theta)
    value, grads = hand_value_and_grad(
        obj.model.unpack(theta), obj.inputs, obj.prepared_targets, activation=activation,
        output_activation=obj.model.output_activation.name, loss=loss, l1=obj.l1, l2=obj.l2,
        act_opt=ACT_OPTIONS.get(activation, {}))
    assert res.value == pytest.approx(value, rel=1e-13)
    assert rel_err(res.grad, obj.model.pack(grads)) < 1e-12


def torch_value_and_grad(obj, theta, activation):
    import torch
    import torch.nn.functional as F
    t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    params = obj.model.unpack(t, xp=_TorchReshape)
    opt = ACT_OPTIONS.get(activation, {})
    acts = {
        "identity": lambda z: z, "step": lambda z: (z > 0).double(), "sigmoid": torch.sigmoid, "tanh": torch.tanh,
        "relu": torch.relu, "leaky_relu": lambda z: F.leaky_relu(z, opt.get("slope", 0.1)),
        "elu": lambda z: F.elu(z, alpha=opt.get("alpha", 1.0)),
        "softplus": lambda z: F.softplus(z, threshold=1e6),  # (no linearisation above the default threshold 20)
        "maxout": lambda z: z.reshape(z.shape[0], opt.get("k", 2), -1).max(dim=1).values,
        "softmax": lambda z: torch.softmax(z, dim=1),
    }
    h = torch.tensor(obj.inputs)
    depth = obj.model.depth
    for k in range(depth):
        name = obj.model.layer_activation(k).name
        h = acts[name](h @ params[f"W{k}"] + params[f"b{k}"])
    y = torch.tensor(obj.prepared_targets)
    n = y.shape[0]
    loss = obj.loss.name
    if loss == "quadratic":
        value = 0.5 * ((h - y) ** 2).sum() / n
    elif loss == "binary_cross_entropy":
        value = F.binary_cross_entropy(h, y, reduction="sum") / n
    elif loss == "cross_entropy":
        value = F.cross_entropy(h, y.argmax(dim=1), reduction="mean")
    else:
        value = torch.clamp(1 - y * h, min=0).sum() / n
    for k in range(depth):
        W = params[f"W{k}"]
        value = value + obj.l1 * W.abs().sum() + obj.l2 * (W ** 2).sum()
    value.backward()
    return float(value.detach()), t.grad.numpy()


class _TorchReshape:
    @staticmethod
    def reshape(x, shape):
        return x.reshape(shape)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
@pytest.mark.parametrize("activation,loss,reg", CASES)
def test_reverse_matches_torch_autograd_float64(activation, loss, reg):
    obj, theta = make_case(activation, loss, reg, seed=1)
    res = ds.get_differentiator("reverse").value_and_grad(obj)(theta)
    value, grad = torch_value_and_grad(obj, theta, activation)
    assert res.value == pytest.approx(value, rel=1e-12)
    assert rel_err(res.grad, grad) < 1e-10


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "maxout"])
def test_kink_conventions_at_an_exact_tie(activation):
    """Pre-activations exactly 0 (relu, leaky, elu) or tied pieces (maxout): the hand-written rules decide."""
    obj, theta = make_case(activation, "quadratic", "none", seed=2)
    params = obj.model.unpack(theta.copy())
    params["W0"][:] = 0.0
    params["b0"][:] = 0.0  # every hidden pre-activation is exactly 0: all maxout pieces tie too
    theta = obj.model.pack(params)
    res = ds.get_differentiator("reverse").value_and_grad(obj)(theta)
    _, grads = hand_value_and_grad(obj.model.unpack(theta), obj.inputs, obj.prepared_targets,
                                   activation=activation, output_activation="identity", loss="quadratic",
                                   act_opt=ACT_OPTIONS.get(activation, {}))
    np.testing.assert_allclose(res.grad, obj.model.pack(grads), rtol=1e-13, atol=1e-15)
    if activation == "relu":  # relu'(0) = 0: nothing reaches the first layer
        assert np.all(res.grad[: obj.model.layout["b0"][1]] == 0.0)
