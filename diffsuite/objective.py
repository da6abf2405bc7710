"""Objective: model + loss + data (+ L1/L2 on weights). The scalar function every differentiator receives.

``objective(xp, theta)`` evaluates the loss under any namespace. Differentiators that prefer named
blocks (the reverse tape, the symbolic builder) call ``objective.evaluate(xp, params, inputs, targets)``
with data they have converted once (moved to a device, cast to float32, turned into symbols).

Bad-input policy: inputs, targets and regularisation strengths are checked once, here; non-finite
data is refused (ValueError naming the first bad entry). Every differentiator checks theta with
``check_theta`` (shape and finiteness, naming the first bad parameter) before computing anything.
A non-finite *result* (overflow inside the network) is returned as it is, never hidden.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .labels import plain
from .namespace import NUMPY
from .nn.activations import Sigmoid, Softmax
from .nn.losses import BinaryCrossEntropy, CrossEntropy, Loss, get_loss
from .nn.mlp import MLP
from .nn.regularizers import weight_penalty


def _first_nonfinite(a: np.ndarray) -> tuple | None:
    if a.size and np.isfinite(np.add.reduce(a, axis=None)):  # fast path (per minibatch); overflow falls through
        return None
    bad = np.argwhere(~np.isfinite(a))
    return tuple(int(i) for i in bad[0]) if len(bad) else None


@dataclass(frozen=True, eq=False)
class Objective:
    """theta -> loss(model(theta, inputs), targets) + l1 * sum|W| + l2 * sum W^2 (weights only).

    Args:
        model: an ``MLP``.
        loss: a name (``quadratic``, ``binary_cross_entropy``, ``cross_entropy``, ``hinge``) or a ``Loss``.
        inputs: (batch, n_in) floats, finite.
        targets: (batch, n_out) floats, or (batch,) class indices for ``cross_entropy``.
        l1, l2: non-negative penalty strengths.

    ``binary_cross_entropy`` on a sigmoid (or softmax) output is evaluated from the logits, as PyTorch's
    ``BCEWithLogitsLoss``: the same function, a float64 program without log(1 - p) of a rounded p (``evaluate``;
    ``logit_loss`` is the form used). ``model.forward`` still returns probabilities.
    """

    model: MLP
    loss: str | Loss
    inputs: Any
    targets: Any
    l1: float = 0.0
    l2: float = 0.0
    prepared_targets: np.ndarray = field(init=False, repr=False)
    logit_loss: Loss | None = field(init=False, repr=False)  # the loss on the logits (see ``evaluate``), or None

    def __post_init__(self):
        if not isinstance(self.model, MLP):
            raise TypeError(f"Objective needs an MLP as model; got {type(self.model).__name__}")
        loss = get_loss(self.loss)
        object.__setattr__(self, "loss", loss)
        if isinstance(loss, CrossEntropy) and isinstance(self.model.output_activation, Softmax):
            raise ValueError("cross_entropy applies the softmax itself, stably through log-sum-exp, so the model must "
                             "output logits: use output_activation='identity' instead of 'softmax'")
        if isinstance(self.model.output_activation, Softmax) and self.model.layers[-1] == 1:
            raise ValueError(f"{loss.name} on a one-unit softmax: a softmax over one output is 1 for every input, so "
                             "the loss is constant and every gradient 0. Use output_activation='sigmoid' for one "
                             "output, or two outputs with loss='cross_entropy'.")
        if isinstance(loss, CrossEntropy) and self.model.layers[-1] == 1:
            raise ValueError("cross_entropy over one output: the softmax of a single logit is 1 whatever its value, "
                             "so the loss is 0 and every gradient 0. For two classes use two outputs with "
                             "loss='cross_entropy', or one output with output_activation='sigmoid' and "
                             "loss='binary_cross_entropy'.")
        if (isinstance(loss, BinaryCrossEntropy) and not loss.from_logits
                and not isinstance(self.model.output_activation, (Sigmoid, Softmax))):
            raise ValueError(f"binary_cross_entropy takes probabilities, so the model's output activation must be "
                             f"'sigmoid' (or 'softmax'); got {self.model.output_activation.name!r}. For logits use "
                             "loss=ds.nn.BinaryCrossEntropy(from_logits=True) with output_activation='identity'.")
        if (isinstance(loss, BinaryCrossEntropy) and loss.from_logits
                and isinstance(self.model.output_activation, (Sigmoid, Softmax))):
            raise ValueError(f"BinaryCrossEntropy(from_logits=True) takes logits, but the model's output activation "
                             f"{self.model.output_activation.name!r} gives probabilities (the loss would be that of "
                             "sigmoid(sigmoid(z))). Use loss='binary_cross_entropy' with this output, or "
                             "output_activation='identity' with from_logits=True.")
        object.__setattr__(self, "logit_loss", loss.on_logits(self.model.output_activation))
        inputs, prepared = self._check_data(self.inputs, self.targets)
        for name in ("l1", "l2"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                    and np.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0; got {v!r}")
        # own copies: the caller's arrays edited in place later must not change this objective (nor let a NaN in
        # unchecked); read-only, so that no method edits them either
        inputs, prepared = np.array(inputs), np.array(prepared)
        inputs.flags.writeable = prepared.flags.writeable = False
        object.__setattr__(self, "inputs", inputs)
        object.__setattr__(self, "prepared_targets", prepared)

    def _check_data(self, inputs: Any, targets: Any) -> tuple[np.ndarray, np.ndarray]:
        """(float64 inputs, prepared float64 targets), checked: shapes, finiteness, the loss's label rules."""
        for name, value in (("inputs", inputs), ("targets", targets)):  # numpy would drop the imaginary part
            if np.iscomplexobj(value):                                   # with only a ComplexWarning
                raise ValueError(f"{name} must be real; got a complex array. Pass the real part (np.real) if the "
                                 "imaginary part is 0; complex arithmetic is the complex_step scheme's business.")
        inputs = self.model.check_inputs(inputs)
        if inputs.shape[0] == 0:
            raise ValueError("inputs must hold at least one sample (the loss is averaged over the batch); "
                             f"got shape {inputs.shape}")
        if (pos := _first_nonfinite(inputs)) is not None:
            raise ValueError(f"inputs must be finite; inputs{list(pos)} is {inputs[pos]}. Clean or drop that sample.")
        raw_targets = np.asarray(targets)
        if raw_targets.dtype.kind in "fc" and (pos := _first_nonfinite(raw_targets)) is not None:
            raise ValueError(f"targets must be finite; targets{list(pos)} is {raw_targets[pos]}")
        if raw_targets.dtype.kind in "USV":  # (numpy would parse "1.5" as the number 1.5)
            raise ValueError(f"targets must be numbers; got text (dtype {raw_targets.dtype}). Convert them first: "
                             "np.asarray(targets, dtype=float) for values, integer indices 0..k-1 for classes.")
        prepared = self.loss.prepare(targets, self.model.layers[-1])
        # again after the loss's conversion: an object array ([1.0, None], pandas' NA) becomes nan only there
        if (pos := _first_nonfinite(prepared)) is not None:
            shown = plain(raw_targets[pos]) if raw_targets.shape == prepared.shape else "not finite"
            raise ValueError(f"targets must be finite numbers; targets{list(pos)} is {shown!r}. Clean or drop that "
                             "sample.")
        if prepared.shape[0] != inputs.shape[0]:
            raise ValueError(f"inputs and targets must have the same batch size; got {inputs.shape[0]} inputs "
                             f"and {prepared.shape[0]} targets")
        return inputs, prepared

    def batch_data(self, batch: Any, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
        """A minibatch ``(X, y)`` given as a call argument (``value_and_grad(obj)(theta, batch=(X, y))``):
        (inputs, prepared targets) checked exactly as the objective's own data, then cast to ``dtype``.
        The objective's model, loss and L1/L2 apply; its own data are not used for that call."""
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise TypeError(f"batch must be a pair (inputs, targets); got {type(batch).__name__}"
                            f"{f' of length {len(batch)}' if isinstance(batch, (tuple, list)) else ''}")
        inputs, targets = self._check_data(*batch)
        return inputs.astype(dtype, copy=False), targets.astype(dtype, copy=False)

    # ----- facts -----
    @property
    def n_params(self) -> int:
        return self.model.n_params

    @property
    def batch_size(self) -> int:
        return self.inputs.shape[0]

    def param_names(self) -> list[str]:
        return self.model.param_names()

    def has_kink(self) -> bool:
        """True if the objective has points where it is not differentiable (relu, hinge, L1, ...)."""
        return self.model.has_kink() or self.loss.has_kink or self.l1 > 0

    def describe(self) -> str:
        """A short label: ``MLP(3, 2, 1) sigmoid/sigmoid quadratic l2=0.01``."""
        m = self.model
        reg = "".join(f" {n}={getattr(self, n):g}" for n in ("l1", "l2") if getattr(self, n))
        return (f"MLP{m.layers} {m.activation.name}/{m.output_activation.name} "
                f"{self.loss.name}{reg} batch={self.batch_size}")

    def check_theta(self, theta: Any) -> np.ndarray:
        """theta as a float64 vector of the right length, finite, or a ValueError naming the first bad entry."""
        if np.iscomplexobj(theta):  # numpy would drop the imaginary part with only a ComplexWarning
            raise ValueError("theta must be real; got a complex array. Pass np.real(theta); the complex_step scheme "
                             "makes its own complex perturbations.")
        t = self.model.check_theta(theta).astype(np.float64, copy=False)
        bad = np.flatnonzero(~np.isfinite(t))
        if len(bad):
            i = int(bad[0])
            raise ValueError(f"theta must be finite; {self.param_names()[i]} (flat index {i}) is {t[i]}"
                             f"{f' and {len(bad) - 1} more entries are not finite' if len(bad) > 1 else ''}")
        return t

    def data(self, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, prepared targets) cast to ``dtype``: what a float32 run must evaluate with."""
        return self.inputs.astype(dtype), self.prepared_targets.astype(dtype)

    # ----- evaluation -----
    def evaluate(self, xp: Any, params: dict, inputs: Any = None, targets: Any = None, *,
                 loss: Callable | None = None) -> Any:
        """The loss from named blocks, with optional replacement data (already converted for ``xp``).

        Every differentiator and the reference evaluate through here. Where the output activation and the loss
        fuse (``logit_loss``: binary cross-entropy on a sigmoid or softmax output), the loss is computed from the
        logits (``model.apply(..., logits=True)``) by its from-logits form, as PyTorch's ``BCEWithLogitsLoss``
        does: the same function, but a float64 program that never takes log(1 - p) of a rounded p. The model's
        outputs (``model.forward``) stay probabilities. ``loss(xp, outputs, targets)``: an equal implementation
        of the loss to use instead (the reverse engine's fused cross-entropy record); L1/L2 still apply."""
        inputs = self.inputs if inputs is None else inputs
        targets = self.prepared_targets if targets is None else targets
        if self.logit_loss is None:
            value = (loss or self.loss)(xp, self.model.apply(xp, params, inputs), targets)
        else:
            value = (loss or self.logit_loss)(xp, self.model.apply(xp, params, inputs, logits=True), targets)
        if self.l1 or self.l2:
            value = value + weight_penalty(xp, params, self.l1, self.l2)
        return value

    def __call__(self, xp: Any, theta: Any) -> Any:
        """The loss at a flat ``theta`` under namespace ``xp``."""
        return self.evaluate(xp, self.model.unpack(theta, xp))

    def value(self, theta: Any) -> float:
        """The loss in plain float64 numpy."""
        return float(self(NUMPY, self.check_theta(theta)))
