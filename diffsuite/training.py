"""Minibatch training of an MLP with any differentiator: the loop behind the ``training`` study and ``diffsuite train``.

    run = train(get_differentiator("reverse"), MLP((64, 32, 10), "tanh"), "cross_entropy",
                data.load("digits"), SGD(lr=0.1, momentum=0.9), epochs=3, batch_size=32, seed=0)
    run.history  # a DataFrame: step, epoch, lr, wall_s, batch_loss, train_loss, test_loss, penalty, train_acc,
                 # test_acc; the losses are data losses, the L1/L2 term is the penalty column

One ``value_and_grad`` set-up serves every minibatch (``vg(theta, batch=(X, y))``). The initial
parameters (``model.init(seed)``) and the minibatch order (``default_rng(seed)``, one permutation per
epoch) depend only on ``seed``, so runs with different differentiators see the same data in the same
order from the same start. ``wall_s`` counts gradient and update time only, not the evaluations.
``train`` runs ``optimizer.fresh()`` (a copy at step 0 without momentum or moments; the trained one is
``run.optimizer``), so one optimizer object can serve several runs and each starts the same way.
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
from .nn.losses import Loss, get_loss
from .nn.mlp import MLP
from .nn.regularizers import weight_penalty
from .namespace import NUMPY
from .objective import Objective
from .optim import Optimizer


class TrainingDiverged(ArithmeticError):
    """A step's loss or gradient, or the parameters after its update, were not finite; the step was not applied.

    ``run``: the ``TrainRun`` up to there (its history, the last finite theta, ``diverged_at``), so that a long run
    that diverges loses nothing it had computed (``train(..., on_nonfinite="stop")`` returns the same run, with
    the last finite theta evaluated once more)."""

    def __init__(self, message: str, run: "TrainRun | None" = None):
        super().__init__(message)
        self.run = run


def _loss_name(loss: str | Loss) -> str:
    """The loss's identity (``Loss.name``) for a name or an instance (``get_loss``: an unknown name is refused)."""
    return get_loss(loss).name


def target_kind(loss: str | Loss, n_out: int) -> str:
    """How labels must look for ``loss`` (a name or a ``Loss``) with ``n_out`` outputs (see ``data.as_targets``)."""
    name = _loss_name(loss)
    if name == "cross_entropy":
        return "index"
    if name == "hinge":
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
    diverged_at: int | None = None  # the step whose loss, gradient or update was not finite (``on_nonfinite="stop"``)
    optimizer: Optimizer | None = field(repr=False, default=None)  # the trained copy (``optimizer.fresh()``)

    def summary(self) -> dict:
        last = self.history.iloc[-1]
        keys = ("train_loss", "test_loss", "penalty", "train_acc", "test_acc", "wall_s")
        return {k: float(last[k]) for k in keys if k in last} | {
            "steps": int(last["step"]), "setup_s": self.setup_s}


def check_setup(model: MLP, loss: str | Loss, dataset: Dataset) -> None:
    """Refuse a model that cannot fit the data before any work: input width and output count."""
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be a diffsuite.data.Dataset (data.load(name), or data.Dataset(name, X_train, "
                        f"y_train, X_test, y_test, n_classes)); got {type(dataset).__name__}")
    name = _loss_name(loss)
    if model.layers[0] != dataset.n_features:
        raise ValueError(f"the model's input width must equal the data's features: layers[0] is {model.layers[0]}, "
                         f"{dataset.name} has {dataset.n_features}; {_use_layers(f'{dataset.n_features}, ...')}")
    n_out, k = model.layers[-1], dataset.n_classes
    if name == "hinge" or (n_out == 1 and name != "cross_entropy"):
        if k != 2:
            raise ValueError(f"{name} with {n_out} output(s) needs a two-class set and one output; {dataset.name} "
                             f"has {k} classes: use a two-class set ({', '.join(TWO_CLASS_SETS)}), or "
                             f"{_use_layers(f'..., {k}')} with cross_entropy or quadratic")
        if n_out != 1:
            raise ValueError(f"{name} needs one output (a score per sample; labels -1/+1 for hinge); layers[-1] is "
                             f"{n_out}: {_use_layers('..., 1')}, or keep {n_out} outputs with cross_entropy or "
                             "quadratic")
    elif n_out != k:
        raise ValueError(f"the model's output count must equal the classes: layers[-1] is {n_out}, {dataset.name} has "
                         f"{k}; {_use_layers(f'..., {k}')}")


#: the bundled and synthetic data sets with two classes (data.load's names), for hinge and one-output losses
TWO_CLASS_SETS = ("moons", "breast_cancer")


def _use_layers(widths: str) -> str:
    """The fix in both spellings: ``layers=(784, ...)`` in Python, ``--layers 784,...`` for ``diffsuite train``."""
    return f"use layers=({widths}) (diffsuite train: --layers {widths.replace(', ', ',')})"


def _whole(name: str, value: Any, low: int, none: str | None = None) -> None:
    """Refuse anything but an integer (numpy's included, bool excluded) >= ``low``."""
    if none is not None and value is None:
        return
    if not (isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low):
        alt = f"None ({none}) or " if none else ""
        raise ValueError(f"{name} must be {alt}an int >= {low}; got {value!r}")


def _check_differentiator(differentiator: Any, loss_name: str, n_train: int, batch_size: int,
                          drop_last: bool) -> None:
    """Refuse, before any set-up, a differentiator that cannot take the minibatches this run would give it."""
    name = getattr(differentiator, "name", None)
    if not callable(getattr(differentiator, "value_and_grad", None)):
        raise TypeError(f"differentiator must be a diffsuite differentiator (get_differentiator('reverse'), ...); "
                        f"got {type(differentiator).__name__}")
    if name == "symbolic":
        if not getattr(differentiator, "symbolic_data", False):
            raise ValueError("symbolic training needs get_differentiator('symbolic', symbolic_data=True): with "
                             "symbolic_data=False the data are compiled in as constants, so minibatches cannot change "
                             "them")
        if loss_name == "cross_entropy":
            raise ValueError("symbolic cannot train with cross_entropy: its one-hot targets are compiled in as "
                             "constants (they pick z[b, y_b]); use quadratic or binary_cross_entropy, or another "
                             "differentiator")
        if not drop_last and batch_size < n_train and n_train % batch_size:
            raise ValueError(f"symbolic takes minibatches of one size (its kernel is compiled for {batch_size} rows), "
                             f"but {n_train} training rows in batches of {batch_size} leave a last batch of "
                             f"{n_train % batch_size}: pass drop_last=True, or a batch_size that divides {n_train}")


def train(differentiator: Any, model: MLP, loss: str | Loss, dataset: Dataset, optimizer: Optimizer, *,
          epochs: int, batch_size: int, seed: int = 0, l1: float = 0.0, l2: float = 0.0,
          eval_every: int | None = None, max_steps: int | None = None, drop_last: bool = False,
          theta0: np.ndarray | None = None, callback: Callable[[dict], None] | None = None,
          on_nonfinite: str = "raise") -> TrainRun:
    """Train ``model`` on ``dataset``'s training split; evaluate every ``eval_every`` steps (default: per epoch).

    ``loss`` is a name or a ``Loss`` instance (``ds.nn.CrossEntropy()``); labels follow its ``name``.
    ``optimizer`` is not stepped itself: the run uses ``optimizer.fresh()`` (same options and schedule, step 0,
    no momentum or moments), returned as ``run.optimizer``, so reusing one optimizer object for several runs
    gives each the same start. ``drop_last`` keeps every minibatch the same size (symbolic with
    ``symbolic_data`` needs it, or a batch size that divides the training rows). ``max_steps`` stops early (a
    cheap run of an expensive differentiator); 0 takes no step (the history is the initial evaluation only), a
    negative value is a ValueError. ``callback(row)`` sees each evaluation row (a progress bar). Everything is
    checked before the first step.

    History columns: ``train_loss``, ``test_loss`` and ``batch_loss`` (the last step's minibatch) are the data
    loss without the L1/L2 penalty; ``penalty`` is l1 * sum|W| + l2 * sum W^2 at that theta (the objective
    the gradient minimises is loss + penalty); ``lr`` is the rate the next step will use.

    A step whose loss or gradient is not finite (divergence, overflow in float32), or whose update makes theta
    non-finite, is never applied: ``on_nonfinite="raise"`` raises a ``TrainingDiverged`` naming the step (its ``run``: the history so far and
    the last finite theta);
    ``"stop"`` ends the run there, evaluates the last finite theta and sets ``diverged_at``.
    """
    if on_nonfinite not in ("raise", "stop"):
        raise ValueError(f"on_nonfinite must be 'raise' or 'stop'; got {on_nonfinite!r}")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a diffsuite.optim optimizer (SGD(lr=0.1), Adam(), AdamW()); "
                        f"got {type(optimizer).__name__}")
    check_setup(model, loss, dataset)
    loss_name = _loss_name(loss)
    _whole("epochs", epochs, 1)
    _whole("batch_size", batch_size, 1)
    _whole("max_steps", max_steps, 0, none="no limit")
    _whole("eval_every", eval_every, 1, none="once per epoch")
    _whole("seed", seed, 0)
    n_train = len(dataset.y_train)
    if drop_last and batch_size > n_train:
        raise ValueError(f"drop_last=True with batch_size {batch_size} larger than the {n_train} training rows "
                         f"would take no step: use batch_size <= {n_train}, or drop_last=False (one batch of "
                         f"{n_train} rows per epoch)")
    _check_differentiator(differentiator, loss_name, n_train, batch_size, drop_last)
    optimizer = optimizer.fresh()
    kind = target_kind(loss, model.layers[-1])
    y_train, y_test = dataset.targets(kind, "train"), dataset.targets(kind, "test")
    first = min(batch_size, n_train)
    t = time.perf_counter()
    objective = Objective(model, loss, dataset.X_train[:first], y_train[:first], l1=l1, l2=l2)
    vg = differentiator.value_and_grad(objective)
    setup_s = time.perf_counter() - t
    train_obj = Objective(model, loss, dataset.X_train, y_train)  # data losses: the penalty is its own column
    test_obj = Objective(model, loss, dataset.X_test, y_test)
    theta = model.init(seed) if theta0 is None else objective.check_theta(theta0).copy()
    steps_per_epoch = n_train // batch_size if drop_last else -(-n_train // batch_size)
    eval_every = eval_every or steps_per_epoch
    rng = np.random.default_rng(seed)
    rows, thetas, wall, step, diverged = [], [], 0.0, 0, None
    batch_value, batch_theta = float("nan"), None  # the last step's minibatch objective and the theta it was at

    def penalty(th: np.ndarray) -> float:
        return float(weight_penalty(NUMPY, model.unpack(th), l1, l2)) if (l1 or l2) else 0.0

    def evaluate(epoch: float) -> None:
        batch_loss = batch_value if batch_theta is None else batch_value - penalty(batch_theta)
        row = {"step": step, "epoch": epoch, "lr": optimizer.current_lr(), "wall_s": wall, "batch_loss": batch_loss,
               "train_loss": train_obj.value(theta), "test_loss": test_obj.value(theta), "penalty": penalty(theta),
               "train_acc": float(np.mean(predict(model, objective, theta, dataset.X_train) == dataset.y_train)),
               "test_acc": float(np.mean(predict(model, objective, theta, dataset.X_test) == dataset.y_test))}
        rows.append(row)
        thetas.append(theta.copy())
        if callback:
            callback(row)

    def refuse(message: str) -> None:
        if on_nonfinite == "raise":  # (theta is still the last finite one: the step was not applied)
            raise TrainingDiverged(message, TrainRun(pd.DataFrame(rows), theta, thetas, setup_s, step + 1, optimizer))

    evaluate(0.0)
    for epoch in range(epochs if max_steps != 0 else 0):  # max_steps=0: the limit holds before any step
        for X, y in dataset.batches(batch_size, rng, kind, drop_last=drop_last):
            t = time.perf_counter()
            res = vg(theta, batch=(X, y))
            if not (math.isfinite(res.value) and np.isfinite(res.grad).all()):
                diverged = step + 1
                refuse(f"training diverged at step {diverged} (epoch {epoch + 1}): the minibatch loss is {res.value} "
                       f"and {int((~np.isfinite(res.grad)).sum())} gradient entries are not finite. Lower the "
                       "learning rate, train in float64, or use a loss computed from logits (cross_entropy, "
                       "BinaryCrossEntropy(from_logits=True)), which cannot overflow")
                break
            lr = optimizer.current_lr()
            with np.errstate(over="ignore", invalid="ignore"):  # an overflowing update is refused just below
                new, commit = optimizer.propose(theta, res.grad)  # (refused: the optimizer stays as it was)
            if not np.isfinite(new).all():
                diverged = step + 1
                refuse(f"training diverged at step {diverged} (epoch {epoch + 1}): the minibatch loss ({res.value}) "
                       f"and gradient were finite, but the update with lr {lr:g} made "
                       f"{int((~np.isfinite(new)).sum())} entries of theta overflow (not finite); the step was not "
                       "applied. Lower the learning rate")
                break
            commit()
            theta, batch_theta = new, theta
            wall += time.perf_counter() - t
            step, batch_value = step + 1, res.value
            if step % eval_every == 0:
                evaluate(step / steps_per_epoch)
            if max_steps is not None and step >= max_steps:
                break
        if diverged or (max_steps is not None and step >= max_steps):
            break
    if rows[-1]["step"] != step:
        evaluate(step / steps_per_epoch)
    return TrainRun(pd.DataFrame(rows), theta, thetas, setup_s, diverged, optimizer)


__all__ = ["TrainRun", "TrainingDiverged", "as_targets", "check_setup", "predict", "target_kind", "train"]
