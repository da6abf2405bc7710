"""Optimizers and learning-rate schedules in plain numpy, for flat theta or pytrees of arrays.

    opt = SGD(lr=0.1, momentum=0.9, nesterov=True)       # or Adam(lr=1e-3), AdamW(lr=1e-3, weight_decay=0.01)
    for X, y in batches:
        theta = opt.step(theta, vg(theta, batch=(X, y)).grad)

``params`` and ``grads`` are a float array (the flat theta every differentiator takes) or a pytree:
nested dicts, lists and tuples whose leaves are arrays or floats; ``step`` returns the same structure
with new float64 leaves and keeps its state (momentum, moments) per leaf. The update rules are
torch.optim's, term for term, so a trajectory matches torch's in float64 to rounding (tests/test_optim.py).

``lr`` is a float or a schedule: a callable ``t -> lr`` evaluated at the number of steps taken so far
(``StepDecay``, ``Cosine``, ``Exponential``; a schedule counts optimizer steps, so give it steps, not epochs).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

Schedule = Callable[[int], float]


# ----- pytrees: nested dict / list / tuple containers of array leaves -----
def tree_leaves(tree: Any) -> tuple[list[np.ndarray], Callable[[list], Any]]:
    """(float64 leaves in a fixed order, a function rebuilding the structure from new leaves)."""
    if isinstance(tree, dict):
        keys = list(tree)
        parts = [tree_leaves(tree[k]) for k in keys]
    elif isinstance(tree, (list, tuple)):
        keys, parts = None, [tree_leaves(v) for v in tree]
    else:
        try:
            leaf = np.asarray(tree, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"parameters must be arrays or floats in nested dicts/lists/tuples; got a leaf of "
                            f"type {type(tree).__name__}") from None
        scalar = np.ndim(tree) == 0 and not isinstance(tree, np.ndarray)
        return [leaf], (lambda new: float(new[0])) if scalar else (lambda new: new[0])
    counts = [len(leaves) for leaves, _ in parts]
    leaves = [leaf for part, _ in parts for leaf in part]

    def rebuild(new: list) -> Any:
        out, start = [], 0
        for (_, sub), c in zip(parts, counts):
            out.append(sub(new[start:start + c]))
            start += c
        if keys is not None:
            return dict(zip(keys, out))
        return type(tree)(out) if not hasattr(tree, "_fields") else type(tree)(*out)

    return leaves, rebuild


# ----- learning-rate schedules -----
@dataclass(frozen=True)
class StepDecay:
    """lr(t) = lr * gamma ** (t // step_size), as torch's StepLR."""

    lr: float
    step_size: int
    gamma: float = 0.1

    def __call__(self, t: int) -> float:
        return self.lr * self.gamma ** (t // self.step_size)


@dataclass(frozen=True)
class Exponential:
    """lr(t) = lr * gamma ** t, as torch's ExponentialLR."""

    lr: float
    gamma: float

    def __call__(self, t: int) -> float:
        return self.lr * self.gamma ** t


@dataclass(frozen=True)
class Cosine:
    """lr(t) = lr_min + (lr - lr_min) (1 + cos(pi t / t_max)) / 2 for t <= t_max, then lr_min
    (torch's CosineAnnealingLR over one half period; it restarts upward past t_max, this stays at lr_min)."""

    lr: float
    t_max: int
    lr_min: float = 0.0

    def __call__(self, t: int) -> float:
        t = min(t, self.t_max)
        return self.lr_min + (self.lr - self.lr_min) * (1 + math.cos(math.pi * t / self.t_max)) / 2


def _check(name: str, value: Any, low: float = 0.0, high: float = math.inf, open_low: bool = False) -> None:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value) and (value > low if open_low else value >= low) and value <= high
    if not ok:
        interval = f"{'(' if open_low else '['}{low:g}, {high:g}{']' if math.isfinite(high) else ')'}"
        raise ValueError(f"{name} must be a number in {interval}; got {value!r}")


class Optimizer:
    """Shared machinery: lr (float or schedule), step count, per-leaf state, structure checks."""

    def __init__(self, lr: float | Schedule):
        if not callable(lr):
            _check("lr", lr, open_low=True)
        self.lr, self.t, self.state = lr, 0, None

    def current_lr(self) -> float:
        """The learning rate the next step uses."""
        return float(self.lr(self.t)) if callable(self.lr) else float(self.lr)

    def step(self, params: Any, grads: Any) -> Any:
        """One update; returns new params in params' structure (the inputs are not modified)."""
        leaves, rebuild = tree_leaves(params)
        grad_leaves, _ = tree_leaves(grads)
        if len(grad_leaves) != len(leaves) or any(g.shape != p.shape for g, p in zip(grad_leaves, leaves)):
            raise ValueError(f"grads must have params' structure: {[p.shape for p in leaves]}; "
                             f"got {[g.shape for g in grad_leaves]}")
        if self.state is None:
            self.state = [self._init_state(p) for p in leaves]
        elif len(self.state) != len(leaves) or any(s["shape"] != p.shape for s, p in zip(self.state, leaves)):
            raise ValueError("params changed structure between steps; use a new optimizer for new parameters")
        lr = self.current_lr()
        self.t += 1
        return rebuild([self._update(p.copy(), g, s, lr) for p, g, s in zip(leaves, grad_leaves, self.state)])

    def _init_state(self, p: np.ndarray) -> dict:
        return {"shape": p.shape}

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict, lr: float) -> np.ndarray:
        raise NotImplementedError


class SGD(Optimizer):
    """torch.optim.SGD: g += wd p; buf = g (first step) else momentum buf + (1 - dampening) g;
    nesterov: g += momentum buf, else g = buf; p -= lr g."""

    def __init__(self, lr: float | Schedule = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(lr)
        _check("momentum", momentum)
        _check("dampening", dampening, high=1.0)
        _check("weight_decay", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"nesterov needs momentum > 0 and dampening = 0; got momentum={momentum}, "
                             f"dampening={dampening}")
        self.momentum, self.dampening, self.nesterov, self.weight_decay = momentum, dampening, nesterov, weight_decay

    def _update(self, p, g, state, lr):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            buf = state.get("buf")
            if buf is None:
                buf = state["buf"] = g.copy()
            else:
                buf *= self.momentum
                buf += (1 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= lr * g
        return p


class Adam(Optimizer):
    """torch.optim.Adam (``decoupled=False``: g += wd p) and AdamW (``decoupled=True``: p *= 1 - lr wd);
    m, v = exponential averages of g and g^2; p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)."""

    def __init__(self, lr: float | Schedule = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled: bool = False):
        super().__init__(lr)
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"betas must be a pair (beta1, beta2); got {betas!r}")
        _check("betas[0]", betas[0], high=1.0)
        _check("betas[1]", betas[1], high=1.0)
        _check("eps", eps)
        _check("weight_decay", weight_decay)
        self.betas, self.eps, self.weight_decay, self.decoupled = tuple(betas), eps, weight_decay, decoupled

    def _init_state(self, p):
        return {"shape": p.shape, "m": np.zeros_like(p), "v": np.zeros_like(p)}

    def _update(self, p, g, state, lr):
        b1, b2 = self.betas
        if self.weight_decay:
            if self.decoupled:
                p *= 1 - lr * self.weight_decay
            else:
                g = g + self.weight_decay * p
        m, v = state["m"], state["v"]
        m += (g - m) * (1 - b1)  # torch: m.lerp_(g, 1 - b1)
        v *= b2
        v += (1 - b2) * g * g
        t = self.t  # already counts this step
        denom = np.sqrt(v) / math.sqrt(1 - b2 ** t) + self.eps
        p -= (lr / (1 - b1 ** t)) * (m / denom)
        return p


class AdamW(Adam):
    """Adam with decoupled weight decay (torch.optim.AdamW; its default weight_decay is 0.01)."""

    def __init__(self, lr: float | Schedule = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(lr, betas, eps, weight_decay, decoupled=True)


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def get_optimizer(name: str, **options) -> Optimizer:
    """An optimizer by name (``sgd``, ``adam``, ``adamw``) with keyword options."""
    try:
        cls = OPTIMIZERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}") from None
    return cls(**options)


__all__ = ["OPTIMIZERS", "SGD", "Adam", "AdamW", "Cosine", "Exponential", "Optimizer", "StepDecay",
           "get_optimizer", "tree_leaves"]
