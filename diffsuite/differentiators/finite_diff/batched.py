"""Batched finite differences: k perturbed points per objective call, stacked along a new leading axis.

An evaluation of a small network is mostly per-call overhead (a dozen numpy calls on small arrays);
stacking k copies of theta lets one call evaluate k stencil points, so that overhead is paid once per
k evaluations while the arithmetic stays the same. Parameter blocks become (k, fan_in, fan_out) and
(k, 1, width); the MLP's ``h @ W + b`` broadcasts over the leading axis, and ``BatchedNamespace`` makes
``sum``/``mean`` without an axis reduce everything *but* that axis, so the loss comes out with shape (k,).
Only objectives (MLP + loss + data) are evaluated this way: their batch safety is known and checked
(the unperturbed stack must reproduce the plain value); users' functions run one point per call.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ...namespace import NAMESPACE_FUNCTIONS, NUMPY
from .namespaces import KinkTracker


class BatchedNamespace:
    """``base`` with a leading batch-of-points axis: full reductions keep it."""

    def __init__(self, base: Any = NUMPY):
        for fname in NAMESPACE_FUNCTIONS:
            if fname not in ("sum", "mean"):
                setattr(self, fname, getattr(base, fname))
        self.base, self.name = base, f"{base.name}+batched"

    def sum(self, x, axis=None, keepdims=False):
        return self.base.sum(x, axis=tuple(range(1, np.ndim(x))) if axis is None else axis, keepdims=keepdims)

    def mean(self, x, axis=None, keepdims=False):
        return self.base.mean(x, axis=tuple(range(1, np.ndim(x))) if axis is None else axis, keepdims=keepdims)


def bind_objective_batched(objective: Any, stack: np.ndarray) -> dict:
    """Views on a (k, n) stack of parameter vectors: W blocks (k, fan_in, fan_out), b blocks (k, 1, width)."""
    k = stack.shape[0]
    return {name: stack[:, a:b].reshape((k,) + (shape if len(shape) > 1 else (1,) + shape))
            for name, (a, b, shape) in objective.model.layout.items()}


def row_records(tracker: KinkTracker, k: int) -> list[bytes]:
    """The branch record of each of the k stacked points (masks carry the leading axis)."""
    return [b"".join(np.ascontiguousarray(m[j]).tobytes() for m in tracker._masks) for j in range(k)]


def evaluate_batched(t0: np.ndarray, points: list[np.ndarray], bind: Callable, call: Callable, k: int,
                     track: bool, plain_value: float, who: str) -> tuple[np.ndarray, np.ndarray, float]:
    """values[i, s] = f(theta with entry i set to points[s][i]), k points per call.

    Returns (values, kinks, centre): ``kinks[i]`` if a stencil point of entry i took another branch of
    some kink op than the centre; ``centre`` is f(theta) from the batched evaluation, so that every value
    of a quotient comes from the same arithmetic.
    """
    n, m = t0.size, len(points)
    stack = np.repeat(t0[None, :], k, axis=0)
    params = bind(stack)
    xp = KinkTracker(BatchedNamespace(NUMPY)) if track else BatchedNamespace(NUMPY)
    if track:
        xp.start()
    out = np.asarray(call(xp, params))
    if out.shape != (k,) or not np.all(out == out[0]) or not np.isclose(out[0], plain_value, rtol=1e-5, atol=0):
        raise TypeError(f"batched finite differences could not evaluate {who} on a stack of {k} points (got "
                        f"shape {out.shape}, values {out[:3]} vs the plain value {plain_value}); use batch=1")
    centre = float(out[0])
    centre_record = row_records(xp, 1)[0] if track else b""
    entry = np.repeat(np.arange(n), m)                  # job j perturbs entry[j] ...
    target = np.stack(points, axis=1).ravel()           # ... to target[j]
    flat = np.empty(n * m)
    kinks = np.zeros(n, dtype=bool)
    for start in range(0, n * m, k):
        cols = entry[start:start + k]
        rows = np.arange(len(cols))
        stack[rows, cols] = target[start:start + k]
        if track:
            xp.start()
        flat[start:start + k] = np.asarray(call(xp, params))[:len(cols)]
        stack[rows, cols] = t0[cols]
        if track:
            for j, record in enumerate(row_records(xp, len(cols))):
                if record != centre_record:
                    kinks[cols[j]] = True
    return flat.reshape(n, m), kinks, centre
