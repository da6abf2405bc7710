"""Multilayer perceptrons, written once against ``xp``: layer k computes h @ W_k + b_k, then its activation.

Parameters travel as one flat float64 vector made of named blocks W0, b0, W1, b1, ... in that order,
each block row-major. W_k has shape (fan_in, fan_out * pieces) and b_k (fan_out * pieces,), where
``pieces`` is k for maxout and 1 otherwise. Inputs are batch-major rows, shape (batch, n_in).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import Any, Mapping

import numpy as np

from ..namespace import NUMPY
from .activations import Activation, get_activation



def _real_array(value: Any, name: str) -> np.ndarray:
    """``np.asarray(value)``, refused unless it holds real numbers: text would be parsed ("1.5" as 1.5), complex
    numbers lose their imaginary part, and an object array of non-numbers fails deep inside numpy."""
    a = np.asarray(value)
    if a.dtype.kind in "fiub":
        return a
    if a.dtype.kind == "O":
        try:
            return a.astype(np.float64)
        except (TypeError, ValueError):
            pass
    raise ValueError(f"{name} must be real numbers (a float array); got dtype {a.dtype}"
                     f"{' (text)' if a.dtype.kind in 'USV' else ''}. Convert with np.asarray(..., dtype=float) first.")

@dataclass(frozen=True)
class MLP:
    """``MLP(layers=(3, 2, 1), activation="sigmoid", output_activation="sigmoid")``.

    ``activation`` (hidden layers) and ``output_activation`` (last layer) are names or
    ``Activation`` instances (``ds.nn.ELU(alpha=0.5)``, ``ds.nn.Maxout(k=3)``).

    >>> MLP((3, 2, 1)).shapes
    {'W0': (3, 2), 'b0': (2,), 'W1': (2, 1), 'b1': (1,)}
    """

    layers: tuple[int, ...]
    activation: str | Activation = "sigmoid"
    output_activation: str | Activation = "identity"
    layout: dict = field(init=False, repr=False, compare=False)  # block -> (start, stop, shape)

    def __post_init__(self):
        layers = tuple(self.layers) if isinstance(self.layers, (tuple, list)) else self.layers
        if (not isinstance(layers, tuple) or len(layers) < 2
                or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1 for n in layers)):
            raise ValueError(f"MLP needs layers=(n_in, ..., n_out): at least two positive ints; got {self.layers!r}")
        object.__setattr__(self, "layers", tuple(int(n) for n in layers))
        object.__setattr__(self, "activation", get_activation(self.activation))
        object.__setattr__(self, "output_activation", get_activation(self.output_activation))
        offsets, start = {}, 0
        for name, shape in self.shapes.items():
            offsets[name] = (start, start + prod(shape), shape)
            start += prod(shape)
        object.__setattr__(self, "layout", offsets)
        # (W key, b key, activation) per layer, built once: ``apply`` runs per gradient call, and on tiny nets
        # rebuilding the f-string keys and the depth/activation lookups cost as much as the arithmetic.
        # Not a dataclass field (fields(), asdict() and repr() are unchanged); everything in it is immutable.
        object.__setattr__(self, "_plan", tuple((f"W{k}", f"b{k}", self.layer_activation(k)) for k in range(self.depth)))

    # ----- structure -----
    @property
    def depth(self) -> int:
        """Number of weight layers (hidden layers + 1)."""
        return len(self.layers) - 1

    def layer_activation(self, k: int) -> Activation:
        return self.output_activation if k == self.depth - 1 else self.activation

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Block name -> shape, in flat order."""
        out = {}
        for k, (n_in, n_out) in enumerate(zip(self.layers[:-1], self.layers[1:])):
            width = n_out * self.layer_activation(k).n_pieces()
            out[f"W{k}"], out[f"b{k}"] = (n_in, width), (width,)
        return out

    @property
    def n_params(self) -> int:
        return sum(prod(s) for s in self.shapes.values())

    def param_names(self) -> list[str]:
        """A printable name per flat index: ``['W0[0, 0]', 'W0[0, 1]', ..., 'b1[0]']``."""
        names = []
        for block, shape in self.shapes.items():
            names += [f"{block}[{', '.join(map(str, idx))}]" for idx in np.ndindex(*shape)]
        return names

    def has_kink(self) -> bool:
        """True if some activation is not differentiable everywhere (relu, step, maxout, ...)."""
        return self.activation.has_kink or self.output_activation.has_kink

    # ----- parameters -----
    def init(self, seed: int = 0) -> np.ndarray:
        """A flat float64 vector: W ~ N(0, 1/fan_in) (LeCun), b ~ N(0, 0.1^2), from ``default_rng(seed)``."""
        try:
            rng = np.random.default_rng(seed)
        except (TypeError, ValueError):
            raise ValueError(f"seed must be a non-negative int (or None for a fresh one); got {seed!r}") from None
        blocks = {name: (rng.normal(size=s) / np.sqrt(s[0]) if name[0] == "W" else 0.1 * rng.normal(size=s))
                  for name, s in self.shapes.items()}
        return self.pack(blocks)

    def pack(self, params: Mapping[str, Any]) -> np.ndarray:
        """Named arrays (W0, b0, ...) -> flat float64 vector. Every block must be given, with its shape."""
        missing = [k for k in self.shapes if k not in params]
        extra = [k for k in params if k not in self.shapes]
        if missing or extra:
            wrong = "; ".join(f"{what} {keys}" for what, keys in (("missing", missing), ("unexpected", extra)) if keys)
            raise ValueError(f"pack needs exactly the blocks {list(self.shapes)}; {wrong}")
        parts = []
        for name, shape in self.shapes.items():
            a = np.asarray(params[name], dtype=np.float64)
            if a.shape != shape:
                raise ValueError(f"block {name} must have shape {shape}; got {a.shape}")
            parts.append(a.ravel())
        return np.concatenate(parts)

    def check_theta(self, theta: Any) -> np.ndarray:
        """theta as a 1-D float array of length n_params, or a clear ValueError."""
        if isinstance(theta, Mapping):  # (np.asarray would make an object array of it, and the advice be wrong)
            raise ValueError(f"theta must be a flat vector of {self.n_params} parameters for MLP{self.layers}; got a "
                             f"dict of blocks ({', '.join(map(str, theta))}). Use model.pack(params) to flatten it.")
        t = _real_array(theta, "theta")
        if t.shape != (self.n_params,):
            raise ValueError(f"theta must be a flat vector of {self.n_params} parameters for MLP{self.layers} "
                             f"(blocks {self.shapes}); got shape {t.shape}. Use model.pack(dict) to build one.")
        return t

    def unpack(self, theta: Any, xp: Any = NUMPY) -> dict[str, Any]:
        """Flat vector -> named blocks (views for numpy). ``xp`` reshapes tape or symbolic vectors too."""
        return {name: xp.reshape(theta[a:b], shape) for name, (a, b, shape) in self.layout.items()}

    # ----- forward -----
    def apply(self, xp: Any, params: Mapping[str, Any], inputs: Any, *, logits: bool = False) -> Any:
        """Outputs (batch, n_out) from named parameter blocks; ``xp`` decides numbers, tape or symbols.

        ``logits=True`` stops before the output activation and returns the last layer's pre-activations
        (batch, n_out * pieces): what a loss fused with that activation takes (``Objective.evaluate``)."""
        h = inputs
        *hidden, (w, b, out_act) = self._plan  # layer k: (f"W{k}", f"b{k}", self.layer_activation(k))
        for wk, bk, act in hidden:
            h = act(xp, h @ params[wk] + params[bk])
        z = h @ params[w] + params[b]
        return z if logits else out_act(xp, z)

    def check_inputs(self, inputs: Any) -> np.ndarray:
        x = _real_array(inputs, "inputs").astype(np.float64, copy=False)
        if x.ndim == 1 and x.shape[0] == self.layers[0]:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.layers[0]:
            raise ValueError(f"inputs must have shape (batch, {self.layers[0]}) for MLP{self.layers}; got {np.shape(inputs)}")
        return x

    def forward(self, theta: Any, inputs: Any) -> np.ndarray:
        """Plain numpy forward pass: the network's outputs, shape (batch, n_out)."""
        return self.apply(NUMPY, self.unpack(self.check_theta(theta)), self.check_inputs(inputs))
