"""A hand-written numpy forward and backward pass for the benchmark's MLPs: the speed baseline.

This is what a careful person writes by hand for one network: no tape, no rule table, the chain
rule unrolled layer by layer, the gradient written straight into one preallocated flat buffer.
It supports what the benchmark needs (hidden ``sigmoid``/``relu``/``tanh``; output ``identity`` or
``sigmoid``; losses ``cross_entropy`` on class indices and ``quadratic``) and is checked against the
engine in every benchmark run, so a fast wrong baseline cannot slip through.

Parameter layout is the MLP's: W0, b0, W1, b1, ... row-major in one flat vector.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _sigmoid(z):
    # what people write (exp warns for z < -709, and the result, 0, is still right; the benchmark's
    # pre-activations are far from that)
    return 1.0 / (1.0 + np.exp(-z))


ACT = {
    "sigmoid": (_sigmoid, lambda dh, h: dh * h * (1.0 - h)),
    "tanh": (np.tanh, lambda dh, h: dh * (1.0 - h * h)),
    "relu": (lambda z: np.maximum(z, 0.0), lambda dh, h: dh * (h > 0)),  # relu'(0) = 0
    "identity": (lambda z: z, lambda dh, h: dh),
}


@dataclass
class HandwrittenMLP:
    """``value(theta)`` and ``value_and_grad(theta)`` for one MLP, loss and data set, in ``dtype``."""

    layers: tuple
    activation: str
    output_activation: str
    loss: str
    inputs: np.ndarray
    targets: np.ndarray  # class indices (cross_entropy) or (batch, n_out) values (quadratic)
    dtype: str = "float64"

    def __post_init__(self):
        dt = np.dtype(self.dtype)
        self.X = np.ascontiguousarray(self.inputs, dtype=dt)
        n = self.X.shape[0]
        if self.loss == "cross_entropy":
            self.labels = np.asarray(self.targets, dtype=np.int64).reshape(n)
        elif self.loss == "quadratic":
            self.T = np.asarray(self.targets, dtype=dt).reshape(n, self.layers[-1])
        else:
            raise ValueError(f"the hand-written baseline supports cross_entropy and quadratic; got {self.loss!r}")
        self.slices, start = [], 0
        for n_in, n_out in zip(self.layers[:-1], self.layers[1:]):
            w, b = (start, start + n_in * n_out), (start + n_in * n_out, start + n_in * n_out + n_out)
            self.slices.append((w, (n_in, n_out), b))
            start = b[1]
        self.n_params = start
        self.acts = [ACT[self.activation]] * (len(self.slices) - 1) + [ACT[self.output_activation]]

    def _params(self, theta):
        t = np.asarray(theta).astype(self.dtype, copy=False)
        return [(t[w0:w1].reshape(shape), t[b0:b1]) for (w0, w1), shape, (b0, b1) in self.slices]

    def _forward(self, params):
        hs = [self.X]
        for (W, b), (f, _) in zip(params, self.acts):
            hs.append(f(hs[-1] @ W + b))
        return hs

    def _loss(self, out, grad: bool = True):
        """(loss, its gradient by the logits or outputs), or the loss alone with ``grad=False`` (the same bits)."""
        n = out.shape[0]
        if self.loss == "quadratic":
            r = out - self.T
            value = 0.5 * float(np.sum(r * r)) / n
            return (value, r * (1.0 / n)) if grad else value
        m = out.max(axis=1, keepdims=True)
        e = np.exp(out - m)
        s = e.sum(axis=1, keepdims=True)
        rows = np.arange(n)
        value = float(np.sum(np.log(s) + m) - np.sum(out[rows, self.labels])) / n
        if not grad:
            return value
        dz = e / s  # softmax; d(loss)/d(logits) = (softmax - onehot) / n
        dz[rows, self.labels] -= 1.0
        dz *= 1.0 / n
        return value, dz

    def value(self, theta) -> float:
        """The loss only (no gradient of any kind): the forward pass that gradient/forward ratios are measured
        against."""
        return self._loss(self._forward(self._params(theta))[-1], grad=False)

    def value_and_grad(self, theta) -> tuple[float, np.ndarray]:
        """(loss, float64 flat gradient), by backpropagation written out by hand."""
        grad = np.empty(self.n_params, dtype=self.dtype)  # first: see the engine's comment on page faults
        params = self._params(theta)
        hs = self._forward(params)
        value, dh = self._loss(hs[-1])
        for k in range(len(params) - 1, -1, -1):
            dz = self.acts[k][1](dh, hs[k + 1])
            (w0, w1), shape, (b0, b1) = self.slices[k]
            np.matmul(hs[k].T, dz, out=grad[w0:w1].reshape(shape))
            np.sum(dz, axis=0, out=grad[b0:b1])
            if k:
                dh = dz @ params[k][0].T
        return value, grad.astype(np.float64, copy=False)
