"""Parameter structures (pytrees) and the shapes of derivative results, for every differentiator.

theta may be a flat float array, an array of any shape, a scalar, or a dict of those (the leaves).
``Structure.of(theta)`` checks the leaves (numbers, finite) and knows how to go between theta's
structure and one flat float64 vector, and how to shape the results of the higher-order methods
(docs/higher_order.md), the same on every differentiator:

- ``jvp``: shaped like f's output; ``vjp``'s pullback and ``hvp``: in theta's structure;
- ``jacobian``: flat theta: ``out.shape + theta.shape``; a dict: ``{k: out.shape + theta[k].shape}``;
- ``hessian``: ``theta.shape * 2``; a dict: ``{k1: {k2: theta[k1].shape + theta[k2].shape}}``; any other
  nesting (``diffsuite.pytree``): the n x n matrix of the flattened entries.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .pytree import flatten, leaves_along


@dataclass
class Structure:
    """Theta's layout: float64 leaves (a flat array, an array of any shape, a scalar, or a dict of those)."""

    leaves: list
    rebuild: Callable
    keys: list | None
    flat_results: bool = False  # results as one flat vector (an Objective's theta, split into named blocks)
    names: list | None = None  # a name per leaf (symbol names of the symbolic builds): ``theta``, or the dict's keys
    skeleton: Any = None  # theta as given, when it is a container: a user's tangent is read along its tree

    @classmethod
    def of(cls, theta: Any) -> "Structure":
        """theta's leaves (checked: numbers, finite) and structure (``diffsuite.pytree``: any nesting of dicts,
        lists and tuples). ``keys``: a top-level dict of leaves, whose Hessian nests by key."""
        leaves, rebuild, names = flatten(theta)
        flat_dict = isinstance(theta, dict) and not any(isinstance(v, (dict, list, tuple)) for v in theta.values())
        return cls(leaves, rebuild, list(theta) if flat_dict else None, names=names,
                   skeleton=theta if isinstance(theta, (dict, list, tuple)) else None)

    @property
    def sizes(self) -> list[int]:
        return [leaf.size for leaf in self.leaves]

    @property
    def n(self) -> int:
        return int(sum(self.sizes))

    def flat(self) -> np.ndarray:
        """All entries in one float64 vector (leaves in order, each row-major)."""
        return np.concatenate([leaf.reshape(-1) for leaf in self.leaves]) if self.leaves else np.zeros(0)

    def split(self, rows: np.ndarray, lead: tuple = ()) -> list[np.ndarray]:
        """``rows`` (``lead + (n,)``) cut into one array per leaf, shaped ``lead + leaf.shape``."""
        out, start = [], 0
        for leaf in self.leaves:
            out.append(rows[..., start:start + leaf.size].reshape(tuple(lead) + leaf.shape))
            start += leaf.size
        return out

    @classmethod
    def blocks(cls, flat: np.ndarray, layout: list) -> "Structure":
        """A flat theta seen as named blocks (``layout``: ``(a, b, shape)`` per block): the function gets the
        blocks as leaves (views: no getitem of a traced vector), results stay flat like theta."""
        return cls([flat[a:b].reshape(shape) for a, b, shape in layout], lambda new: new, None, True)

    def tree(self, rows: np.ndarray, lead: tuple = ()) -> Any:
        """``rows`` (``lead + (n,)``) in theta's structure (a scalar leaf without lead: a float)."""
        if self.flat_results:
            return np.asarray(rows, dtype=np.float64)
        parts = [float(p) if p.ndim == 0 else np.ascontiguousarray(p, dtype=np.float64)
                 for p in self.split(np.asarray(rows, dtype=np.float64), lead)]
        return self.rebuild(parts)

    def flatten_like(self, value: Any, what: str) -> np.ndarray:
        """A user's vector in theta's structure (a tangent, ``v``) as one float64 vector, checked."""
        if self.flat_results:
            a = np.asarray(value, dtype=np.float64)
            if a.shape != (self.n,):
                raise ValueError(f"{what} must be a flat vector like theta, shape ({self.n},); got shape {a.shape}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{what} must be finite; entry {int(np.flatnonzero(~np.isfinite(a))[0])} is not")
            return a
        if self.keys is None and self.skeleton is not None:  # a nested pytree: read along theta's tree, by key
            parts = leaves_along(self.skeleton, value, what)
        elif self.keys is not None:
            if not isinstance(value, dict) or set(value) != set(self.keys):
                raise ValueError(f"{what} must have theta's structure: a dict with keys {self.keys}; got "
                                 f"{sorted(value) if isinstance(value, dict) else type(value).__name__}")
            parts = [value[k] for k in self.keys]
        else:  # one array (or scalar) theta
            parts = [value]
        flat = []
        for leaf, part, name in zip(self.leaves, parts, self.names or ["theta"] * len(self.leaves)):
            a = np.asarray(part, dtype=np.float64)
            if a.shape != leaf.shape:
                raise ValueError(f"{what} must be shaped like theta; {what}"
                                 f"{'' if self.keys is None else f'[{name!r}]'} has shape {a.shape}, theta"
                                 f"{'' if self.keys is None else f'[{name!r}]'} has {leaf.shape}")
            if not np.all(np.isfinite(a)):
                bad = [int(i) for i in np.argwhere(~np.isfinite(a))[0]]
                where = what if self.keys is None and len(self.leaves) == 1 else f"{what}[{name!r}]"
                raise ValueError(f"{what} must be finite; {where} entry {bad} is {a[tuple(bad)]}")
            flat.append(a.reshape(-1))
        return np.concatenate(flat) if flat else np.zeros(0)

    def jacobian(self, J: np.ndarray, out_shape: tuple) -> Any:
        """A flat Jacobian ``out_shape + (n,)`` in theta's structure (each leaf: ``out_shape + leaf.shape``)."""
        if self.flat_results:
            return np.asarray(J, dtype=np.float64).reshape(tuple(out_shape) + (self.n,))
        parts = [float(p) if p.ndim == 0 else np.ascontiguousarray(p, dtype=np.float64)  # (a 0-d leaf: a float)
                 for p in self.split(np.asarray(J, dtype=np.float64), tuple(out_shape))]
        return self.rebuild(parts)

    def hessian(self, H: np.ndarray) -> Any:
        """A flat Hessian ``(n, n)``: theta's shape twice, or ``{k1: {k2: shape1 + shape2}}`` for a dict."""
        H = np.asarray(H, dtype=np.float64)
        if self.flat_results or (self.keys is None and len(self.leaves) != 1):
            return H  # (a nested pytree's Hessian: the n x n matrix of its flattened entries, leaves in order)
        if self.keys is None:
            shape = self.leaves[0].shape
            return float(H[0, 0]) if shape == () else H.reshape(shape + shape)
        bounds = np.cumsum([0] + self.sizes)

        def block(i, j, shape):
            b = H[bounds[i]:bounds[i + 1], bounds[j]:bounds[j + 1]].reshape(shape)
            return float(b) if shape == () else b

        return {k1: {k2: block(i, j, l1.shape + l2.shape) for j, (k2, l2) in enumerate(zip(self.keys, self.leaves))}
                for i, (k1, l1) in enumerate(zip(self.keys, self.leaves))}


def flat_hessian(H: Any, structure: Structure) -> np.ndarray:
    """The inverse of ``Structure.hessian``: an ``(n, n)`` float64 matrix."""
    n = structure.n
    if structure.keys is None:
        return np.asarray(H, dtype=np.float64).reshape(n, n)
    return np.block([[np.asarray(H[k1][k2], dtype=np.float64).reshape(a.size, b.size)
                      for k2, b in zip(structure.keys, structure.leaves)]
                     for k1, a in zip(structure.keys, structure.leaves)])


def output_value(value: Any) -> Any:
    """A function's value for the user: a float for a scalar, else a float64 array."""
    a = np.asarray(value, dtype=np.float64)
    return float(a.reshape(())) if a.size == 1 and a.ndim == 0 else a
