"""Minibatch training of an MLP with any differentiator: the loop behind the ``training`` study and ``diffsuite train``.

    run = train(get_differentiator("reverse"), MLP((64, 32, 10), "tanh"), "cross_entropy",
                data.load("digits"), SGD(lr=0.1, momentum=0.9), epochs=3, batch_size=32, seed=0)
    run.history  # a DataFrame: step, epoch, lr, wall_s, batch_loss, train_loss, test_loss, train_acc, test_acc

One ``value_and_grad`` set-up serves every minibatch (``vg(theta, batch=(X, y))``). The initial
parameters (``model.init(seed)``) and the minibatch order (``default_rng(seed)``, one permutation per
epoch) depend only on ``seed``, so runs with different differentiators see the same data in the same
order from the same start. ``wall_s`` counts gradient and update time only, not the evaluations.
"""
from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from .data import Dataset, as_targets
from .nn.mlp import MLP
from .objective import Objective
from .optim import Optimizer


class TrainingDiverged(ArithmeticError):
    """A step's loss or gradient was not finite; the step was not applied."""


def target_kind(loss: str, n_out: int) -> str:
    """How labels must look for ``loss`` with ``n_out`` outputs (see ``data.as_targets``)."""
    if loss == "cross_entropy":
        return "index"
    if loss == "hinge":
        return "pm1"
    return "binary" if n_out == 1 else "onehot"


def predict(model: MLP, objective: Objective, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Class labels: argmax over outputs, or for one output a threshold at the decision boundary
    (0 for logits and hinge scores, 0.5 for sigmoid/identity outputs trained on 0/1 targets)."""
    out = model.forward(theta, X)
    if out.shape[1] > 1:
        return out.argmax(axis=1)
    logits = objective.loss.name == "hinge" or getattr(objective.loss, "from_logits", False)
    return (out[:, 0] > (0.0 if logits else 0.5)).astype(np.int64)


@dataclass
class TrainRun:
    """A finished run: the per-evaluation history, the final theta, and the thetas at each evaluation."""

    history: pd.DataFrame
    theta: np.ndarray
    thetas: list[np.ndarray] = field(repr=False, default_factory=list)
    setup_s: float = 0.0
    diverged_at: int | None = None  # the step whose loss or gradient was not finite (``on_nonfinite="stop"``)

    def summary(self) -> dict:
        last = self.history.iloc[-1]
        return {k: float(last[k]) for k in ("train_loss", "test_loss", "train_acc", "test_acc", "wall_s")} | {
            "steps": int(last["step"]), "setup_s": self.setup_s}


def check_setup(model: MLP, loss: str, dataset: Dataset) -> None:
    """Refuse a model that cannot fit the data before any work: input width and output count."""
    if model.layers[0] != dataset.n_features:
        raise ValueError(f"the model's input width must equal the data's features: layers[0] is {model.layers[0]}, "
                         f"{dataset.name} has {dataset.n_features}; use layers=({dataset.n_features}, ...)")
    n_out, k = model.layers[-1], dataset.n_classes
    if loss in ("hinge",) or (n_out == 1 and loss != "cross_entropy"):
        if k != 2 or n_out != 1:
            raise ValueError(f"{loss} with {n_out} output(s) needs a two-class set and one output; {dataset.name} has "
                             f"{k} classes: use layers=(..., {k}) with cross_entropy or quadratic")
    elif n_out != k:
        raise ValueError(f"the model's output count must equal the classes: layers[-1] is {n_out}, {dataset.name} has "
                         f"{k}; use layers=(..., {k})")


def train(differentiator: Any, model: MLP, loss: str, dataset: Dataset, optimizer: Optimizer, *, epochs: int,
          batch_size: int, seed: int = 0, l1: float = 0.0, l2: float = 0.0, eval_every: int | None = None,
          max_steps: int | None = None, drop_last: bool = False, theta0: np.ndarray | None = None,
          callback: Callable[[dict], None] | None = None, on_nonfinite: str = "raise") -> TrainRun:
    """Train ``model`` on ``dataset``'s training split; evaluate every ``eval_every`` steps (default: per epoch).

    ``drop_last`` keeps every minibatch the same size (symbolic with ``symbolic_data`` needs it).
    ``max_steps`` stops early (a cheap run of an expensive differentiator); 0 takes no step (the history is
    the initial evaluation only), a negative value is a ValueError. ``callback(row)`` sees each
    evaluation row (a progress bar). Everything is checked before the first step.
    A step whose loss or gradient is not finite (divergence, overflow in float32) is never applied:
    ``on_nonfinite="raise"`` raises a ``TrainingDiverged`` naming the step; ``"stop"`` ends the run there,
    evaluates the last finite theta and sets ``diverged_at``.
    """
    if on_nonfinite not in ("raise", "stop"):
        raise ValueError(f"on_nonfinite must be 'raise' or 'stop'; got {on_nonfinite!r}")
    check_setup(model, loss, dataset)
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be an int >= 1; got {epochs!r}")
    if not (isinstance(batch_size, numbers.Integral) and not isinstance(batch_size, bool) and batch_size >= 1):
        raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}")
    if max_steps is not None and not (isinstance(max_steps, numbers.Integral) and not isinstance(max_steps, bool)
                                      and max_steps >= 0):
        raise ValueError(f"max_steps must be None (no limit) or an int >= 0; got {max_steps!r}")
    kind = target_kind(loss, model.layers[-1])
    y_train, y_test = dataset.targets(kind, "train"), dataset.targets(kind, "test")
    first = min(batch_size, len(y_train))
    t = time.perf_counter()
    objective = Objective(model, loss, dataset.X_train[:first], y_train[:first], l1=l1, l2=l2)
    vg = differentiator.value_and_grad(objective)
    setup_s = time.perf_counter() - t
    train_obj = Objective(model, loss, dataset.X_train, y_train, l1=l1, l2=l2)
    test_obj = Objective(model, loss, dataset.X_test, y_test, l1=l1, l2=l2)
    theta = model.init(seed) if theta0 is None else objective.check_theta(theta0).copy()
    steps_per_epoch = len(y_train) // batch_size if drop_last else -(-len(y_train) // batch_size)
    eval_every = eval_every or steps_per_epoch
    rng = np.random.default_rng(seed)
    rows, thetas, wall, step, batch_loss, diverged = [], [], 0.0, 0, float("nan"), None

    def evaluate(epoch: float) -> None:
        row = {"step": step, "epoch": epoch, "lr": optimizer.current_lr(), "wall_s": wall, "batch_loss": batch_loss,
               "train_loss": train_obj.value(theta), "test_loss": test_obj.value(theta),
               "train_acc": float(np.mean(predict(model, objective, theta, dataset.X_train) == dataset.y_train)),
               "test_acc": float(np.mean(predict(model, objective, theta, dataset.X_test) == dataset.y_test))}
        rows.append(row)
        thetas.append(theta.copy())
        if callback:
            callback(row)

    evaluate(0.0)
    for epoch in range(epochs if max_steps != 0 else 0):  # max_steps=0: the limit holds before any step
        for X, y in dataset.batches(batch_size, rng, kind, drop_last=drop_last):
            t = time.perf_counter()
            res = vg(theta, batch=(X, y))
            if not (math.isfinite(res.value) and np.isfinite(res.grad).all()):
                diverged = step + 1
                if on_nonfinite == "raise":
                    raise TrainingDiverged(
                        f"training diverged at step {diverged} (epoch {epoch + 1}): the minibatch loss is {res.value} "
                        f"and {int((~np.isfinite(res.grad)).sum())} gradient entries are not finite. Lower the "
                        "learning rate, train in float64, or use a loss computed from logits (cross_entropy, "
                        "BinaryCrossEntropy(from_logits=True)), which cannot overflow")
                break
            theta = optimizer.step(theta, res.grad)
            wall += time.perf_counter() - t
            step, batch_loss = step + 1, res.value
            if step % eval_every == 0:
                evaluate(step / steps_per_epoch)
            if max_steps is not None and step >= max_steps:
                break
        if diverged or (max_steps is not None and step >= max_steps):
            break
    if rows[-1]["step"] != step:
        evaluate(step / steps_per_epoch)
    return TrainRun(pd.DataFrame(rows), theta, thetas, setup_s, diverged)


__all__ = ["TrainRun", "TrainingDiverged", "as_targets", "check_setup", "predict", "target_kind", "train"]
