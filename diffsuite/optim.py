"""Optimizers and learning-rate schedules in plain numpy, for flat theta or pytrees of arrays.

    opt = SGD(lr=0.1, momentum=0.9, nesterov=True)       # or Adam(lr=1e-3), AdamW(lr=1e-3, weight_decay=0.01)
    for X, y in batches:
        theta = opt.step(theta, vg(theta, batch=(X, y)).grad)

``params`` and ``grads`` are a float array (the flat theta every differentiator takes) or a pytree:
nested dicts, lists and tuples whose leaves are arrays or floats; ``step`` returns the same structure
with new float64 leaves and keeps its state (momentum, moments) per leaf. Gradients and state are paired
with parameters by key path (dict keys, list/tuple indices), not by position; another structure or shape
is a ValueError naming the path. The update rules are
torch.optim's, term for term, so a trajectory matches torch's in float64 to rounding (tests/test_optim.py).

``lr`` is a float or a schedule: a callable ``t -> lr`` evaluated at the number of steps taken so far
(``StepDecay``, ``Cosine``, ``Exponential``; a schedule counts optimizer steps, so give it steps, not epochs).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

Schedule = Callable[[int], float]


# ----- pytrees: nested dict / list / tuple containers of array leaves -----
def _is_container(tree: Any) -> bool:
    return isinstance(tree, (dict, list, tuple))


def _as_leaf(tree: Any) -> np.ndarray:
    try:
        return np.asarray(tree, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"parameters must be arrays or floats in nested dicts/lists/tuples; got a leaf of "
                        f"type {type(tree).__name__}") from None


def tree_leaves(tree: Any) -> tuple[list[np.ndarray], Callable[[list], Any]]:
    """(float64 leaves in a fixed order, a function rebuilding the structure from new leaves).

    The order is the tree's own (dict insertion order); ``Optimizer.step`` pairs gradients and state with
    parameters by key path (``tree_paths``), never by this position."""
    if isinstance(tree, dict):
        keys = list(tree)
        parts = [tree_leaves(tree[k]) for k in keys]
    elif isinstance(tree, (list, tuple)):
        keys, parts = None, [tree_leaves(v) for v in tree]
    else:
        leaf = _as_leaf(tree)
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


def tree_paths(tree: Any, path: tuple = ()) -> list[tuple]:
    """The key path of each leaf, in ``tree_leaves``' order: ``()`` for a flat array, ``("W",)``,
    ``("rest", 1, 0)``: dict keys and list/tuple indices from the root."""
    if isinstance(tree, dict):
        return [p for k in tree for p in tree_paths(tree[k], path + (k,))]
    if isinstance(tree, (list, tuple)):
        return [p for i, v in enumerate(tree) for p in tree_paths(v, path + (i,))]
    return [path]


def format_path(path: tuple) -> str:
    """``("rest", 1)`` -> ``['rest'][1]``; the root (a flat array) -> ``the root``."""
    return "".join(f"[{k!r}]" for k in path) or "the root"


def _describe(tree: Any) -> str:
    if isinstance(tree, dict):
        return f"a dict with keys {list(tree)}"
    if isinstance(tree, (list, tuple)):
        return f"a {type(tree).__name__} of {len(tree)} entries"
    return f"a leaf of shape {np.shape(tree)}"


def _paired_grads(params: Any, grads: Any, path: tuple = ()) -> list[np.ndarray]:
    """The leaves of ``grads`` in the order of ``params``' leaves, paired by key path: a dict's entries by key
    (whatever their order), a list's or tuple's by index. A different structure or shape is a ValueError
    naming the path, what params has there and what grads has."""
    def refuse(detail: str) -> ValueError:
        return ValueError(f"grads must have params' structure (the same dict keys, list/tuple lengths and leaf "
                          f"shapes; dict order does not matter): at {format_path(path)} params has "
                          f"{_describe(params)}, grads has {_describe(grads)}{detail}. Pass the gradient of these "
                          "params in their structure (e.g. the differentiator's .grad of the same theta)")
    if isinstance(params, dict):
        if not isinstance(grads, dict):
            raise refuse("")
        if set(params) != set(grads):
            missing, extra = [k for k in params if k not in grads], [k for k in grads if k not in params]
            raise refuse(f" (missing {missing}, unexpected {extra})")
        return [g for k in params for g in _paired_grads(params[k], grads[k], path + (k,))]
    if isinstance(params, (list, tuple)):
        if not isinstance(grads, (list, tuple)) or len(grads) != len(params):
            raise refuse("")
        return [g for i, (p, g) in enumerate(zip(params, grads)) for g in _paired_grads(p, g, path + (i,))]
    if _is_container(grads):
        raise refuse("")
    p, g = _as_leaf(params), _as_leaf(grads)
    if p.shape != g.shape:
        raise refuse("")
    return [g]


# ----- learning-rate schedules -----
def _check(name: str, value: Any, low: float = 0.0, high: float = math.inf, open_low: bool = False,
           open_high: bool = False) -> None:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value) and (value > low if open_low else value >= low) \
        and (value < high if open_high else value <= high)
    if not ok:
        close = ")" if open_high or not math.isfinite(high) else "]"
        interval = f"{'(' if open_low else '['}{low:g}, {high:g}{close}"
        raise ValueError(f"{name} must be a number in {interval}; got {value!r}")


def _check_count(name: str, value: Any) -> None:
    if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1):
        raise ValueError(f"{name} must be a whole number of optimizer steps >= 1; got {value!r}")


@dataclass(frozen=True)
class StepDecay:
    """lr(t) = lr * gamma ** (t // step_size), as torch's StepLR. lr > 0, step_size >= 1, gamma > 0."""

    lr: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self):
        _check("StepDecay: lr", self.lr, open_low=True)
        _check_count("StepDecay: step_size", self.step_size)
        _check("StepDecay: gamma", self.gamma, open_low=True)

    def __call__(self, t: int) -> float:
        return self.lr * self.gamma ** (t // self.step_size)


@dataclass(frozen=True)
class Exponential:
    """lr(t) = lr * gamma ** t, as torch's ExponentialLR. lr > 0, gamma > 0."""

    lr: float
    gamma: float

    def __post_init__(self):
        _check("Exponential: lr", self.lr, open_low=True)
        _check("Exponential: gamma", self.gamma, open_low=True)

    def __call__(self, t: int) -> float:
        return self.lr * self.gamma ** t


@dataclass(frozen=True)
class Cosine:
    """lr(t) = lr_min + (lr - lr_min) (1 + cos(pi t / t_max)) / 2 for t <= t_max, then lr_min
    (torch's CosineAnnealingLR over one half period; it restarts upward past t_max, this stays at lr_min).
    lr > 0, t_max >= 1, 0 <= lr_min <= lr."""

    lr: float
    t_max: int
    lr_min: float = 0.0

    def __post_init__(self):
        _check("Cosine: lr", self.lr, open_low=True)
        _check_count("Cosine: t_max", self.t_max)
        _check("Cosine: lr_min", self.lr_min, high=self.lr)

    def __call__(self, t: int) -> float:
        t = min(t, self.t_max)
        return self.lr_min + (self.lr - self.lr_min) * (1 + math.cos(math.pi * t / self.t_max)) / 2


class Optimizer:
    """Shared machinery: lr (float or schedule), step count, per-leaf state, structure checks."""

    def __init__(self, lr: float | Schedule):
        if not callable(lr):
            _check("lr", lr, open_low=True)
        self.lr, self.t, self.state = lr, 0, None

    def fresh(self) -> "Optimizer":
        """A copy with the same options and schedule, at step 0 and without state (momentum, moments): what
        ``training.train`` runs, so that one optimizer object can serve several runs without carrying over."""
        state, self.state = self.state, None  # (not copied only to be dropped)
        try:
            new = copy.deepcopy(self)
        finally:
            self.state = state
        new.t = 0
        return new

    def current_lr(self) -> float:
        """The learning rate the next step uses."""
        if not callable(self.lr):
            return float(self.lr)
        value = self.lr(self.t)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise TypeError(f"the learning rate schedule must return a number; at step {self.t} it returned "
                            f"{value!r}") from None

    def step(self, params: Any, grads: Any) -> Any:
        """One update; returns new params in params' structure (the inputs are not modified).

        Gradients and state are paired with parameters by key path (dict keys, list/tuple indices), not by
        position: grads must have params' structure (dict order aside), and later params the first step's."""
        new, commit = self.propose(params, grads)
        commit()
        return new

    def propose(self, params: Any, grads: Any) -> tuple[Any, Callable[[], None]]:
        """(the params ``step`` would return, ``commit``): the optimizer changes (its step count, momentum, moments)
        only when ``commit()`` is called, so that a caller can refuse an update (one that overflows) and leave the
        optimizer as it was. The new state is built beside the old one, not in place."""
        leaves, rebuild = tree_leaves(params)
        paths = tree_paths(params)
        grad_leaves = _paired_grads(params, grads)
        state = self.state
        if state is None:
            state = {path: self._init_state(p) for path, p in zip(paths, leaves)}
        else:
            known = set(state)
            if set(paths) != known or any(state[q]["shape"] != p.shape for q, p in zip(paths, leaves)):
                now = {format_path(q): p.shape for q, p in zip(paths, leaves)}
                before = {format_path(q): st["shape"] for q, st in state.items()}
                raise ValueError(f"params changed structure between steps: this optimizer's state is for {before} "
                                 f"(leaf path: shape), these params are {now}. Use a new optimizer (or "
                                 "optimizer.fresh()) for new parameters")
        lr = self.current_lr()
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"the learning rate schedule gave lr={lr!r} at step {self.t}; a learning rate must be "
                             "finite and >= 0")
        t = self.t + 1  # this step's number (Adam's bias corrections)
        updates = [self._update(p.copy(), g, state[q], lr, t) for q, p, g in zip(paths, leaves, grad_leaves)]
        new_state = {q: {**state[q], **changed} for q, (_, changed) in zip(paths, updates)}

        def commit() -> None:
            self.state, self.t = new_state, t
        return rebuild([p for p, _ in updates]), commit

    def _init_state(self, p: np.ndarray) -> dict:
        return {"shape": p.shape}

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict, lr: float, t: int) -> tuple[np.ndarray, dict]:
        """(p updated in place, the entries of ``state`` that change, as new arrays: ``state`` is not modified)."""
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

    def _update(self, p, g, state, lr, t):
        if self.weight_decay:
            g = g + self.weight_decay * p
        changed = {}
        if self.momentum:
            buf = state.get("buf")
            # (momentum buf + (1 - dampening) g, the in-place form's arithmetic, into a new array)
            buf = changed["buf"] = g.copy() if buf is None else self.momentum * buf + (1 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= lr * g
        return p, changed


class Adam(Optimizer):
    """torch.optim.Adam (``decoupled=False``: g += wd p) and AdamW (``decoupled=True``: p *= 1 - lr wd);
    m, v = exponential averages of g and g^2; p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)."""

    def __init__(self, lr: float | Schedule = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled: bool = False):
        super().__init__(lr)
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"betas must be a pair (beta1, beta2); got {betas!r}")
        _check("betas[0]", betas[0], high=1.0, open_high=True)  # beta = 1: 1 - beta^t = 0 (torch refuses it too)
        _check("betas[1]", betas[1], high=1.0, open_high=True)
        _check("eps", eps)
        _check("weight_decay", weight_decay)
        self.betas, self.eps, self.weight_decay, self.decoupled = tuple(betas), eps, weight_decay, decoupled

    def _init_state(self, p):
        return {"shape": p.shape, "m": np.zeros_like(p), "v": np.zeros_like(p)}

    def _update(self, p, g, state, lr, t):
        b1, b2 = self.betas
        if self.weight_decay:
            if self.decoupled:
                p *= 1 - lr * self.weight_decay
            else:
                g = g + self.weight_decay * p
        m = state["m"] + (g - state["m"]) * (1 - b1)  # torch: m.lerp_(g, 1 - b1)
        v = state["v"] * b2 + (1 - b2) * g * g
        denom = np.sqrt(v) / math.sqrt(1 - b2 ** t) + self.eps
        p -= (lr / (1 - b1 ** t)) * (m / denom)
        return p, {"m": m, "v": v}


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
           "format_path", "get_optimizer", "tree_leaves", "tree_paths"]
