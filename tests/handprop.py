"""A hand-written numpy forward + backward pass for every MLP in the suite: an oracle independent of the engine.

It shares no code with diffsuite's differentiators: each activation and loss derivative is written out
by hand below, with the kink conventions of docs/architecture.md (relu'(0) = 0, maximum routes ties to its first
argument, hinge'(at the hinge) = 0, step' = 0, |x|'(0) = 0).
"""
import numpy as np


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # a different (but exact) formula from the package's


def act_forward(name, z, opt):
    if name == "identity":
        return z
    if name == "step":
        return (z > 0).astype(float)
    if name == "sigmoid":
        return _sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.where(z > 0, z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, opt.get("slope", 0.1) * z)
    if name == "elu":
        return np.where(z > 0, z, opt.get("alpha", 1.0) * np.expm1(np.minimum(z, 0)))
    if name == "softplus":
        return np.logaddexp(0.0, z)
    if name == "maxout":
        k = opt.get("k", 2)
        return np.max(z.reshape(z.shape[0], k, -1), axis=1)
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise KeyError(name)


def act_backward(name, z, h, dh, opt):
    """dL/dz from dL/dh, h = act(z)."""
    if name == "identity":
        return dh
    if name == "step":
        return np.zeros_like(z)
    if name == "sigmoid":
        return dh * h * (1 - h)
    if name == "tanh":
        return dh * (1 - h ** 2)
    if name == "relu":
        return dh * (z > 0)                                   # relu'(0) = 0
    if name == "leaky_relu":
        return dh * np.where(z > 0, 1.0, opt.get("slope", 0.1))  # tie at 0 goes to slope*z
    if name == "elu":
        return dh * np.where(z > 0, 1.0, opt.get("alpha", 1.0) * np.exp(np.minimum(z, 0)))
    if name == "softplus":
        return dh * _sigmoid(z)                               # softplus' = sigmoid
    if name == "maxout":
        k = opt.get("k", 2)
        zz = z.reshape(z.shape[0], k, -1)
        first = np.argmax(zz, axis=1)  # argmax returns the first maximal piece: ties go to the first
        dz = np.zeros_like(zz)
        for b in range(zz.shape[0]):
            for j in range(zz.shape[2]):
                dz[b, first[b, j], j] = dh[b, j]
        return dz.reshape(z.shape)
    if name == "softmax":
        return h * (dh - np.sum(dh * h, axis=1, keepdims=True))
    raise KeyError(name)


def loss_and_grad(name, y, t):
    """(loss, dL/dy) for outputs y (batch, n_out) and prepared float targets t (one-hot for cross_entropy)."""
    n = y.shape[0]
    if name == "quadratic":
        return 0.5 * np.sum((y - t) ** 2) / n, (y - t) / n
    if name == "binary_cross_entropy":
        loss = -np.sum(t * np.log(y) + (1 - t) * np.log(1 - y)) / n
        return loss, -(t / y - (1 - t) / (1 - y)) / n
    if name == "cross_entropy":
        m = y.max(axis=1, keepdims=True)
        lse = (m + np.log(np.sum(np.exp(y - m), axis=1, keepdims=True)))
        return np.sum(lse[:, 0] - np.sum(t * y, axis=1)) / n, (np.exp(y - lse) - t) / n
    if name == "hinge":
        margin = 1 - t * y
        return np.sum(np.maximum(margin, 0)) / n, np.where(margin > 0, -t, 0.0) / n  # 0 at the hinge
    raise KeyError(name)


def value_and_grad(params, x, t, *, activation, output_activation, loss, l1=0.0, l2=0.0,
                   act_opt=None, out_opt=None):
    """Loss and gradient dict for an MLP given as {W0, b0, W1, b1, ...}."""
    act_opt, out_opt = act_opt or {}, out_opt or {}
    depth = len(params) // 2
    hs, zs = [x], []
    for k in range(depth):
        name, opt = (output_activation, out_opt) if k == depth - 1 else (activation, act_opt)
        z = hs[-1] @ params[f"W{k}"] + params[f"b{k}"]
        zs.append(z)
        hs.append(act_forward(name, z, opt))
    value, dh = loss_and_grad(loss, hs[-1], t)
    grads = {}
    for k in reversed(range(depth)):
        name, opt = (output_activation, out_opt) if k == depth - 1 else (activation, act_opt)
        dz = act_backward(name, zs[k], hs[k + 1], dh, opt)
        grads[f"W{k}"] = hs[k].T @ dz
        grads[f"b{k}"] = dz.sum(axis=0)
        dh = dz @ params[f"W{k}"].T
    for k in range(depth):
        W = params[f"W{k}"]
        value += l1 * np.abs(W).sum() + l2 * (W ** 2).sum()
        grads[f"W{k}"] = grads[f"W{k}"] + l1 * np.sign(W) + 2 * l2 * W
    return value, grads
