"""The Differentiator protocol, the Gradient result, and the parameter-structure helpers of ``grad(f)``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from .. import pytree


@dataclass
class Gradient:
    """What every differentiator returns per call.

    ``value``: the objective as a Python float. ``grad``: float64 numpy, shaped like theta (or, from
    ``grad(f)``, in theta's structure), whatever the internals (float32, torch, CUDA). ``stats``:
    method-specific facts (function evaluations, tape length, expression sizes, steps used).
    ``value, grad = result`` unpacks it.
    """

    value: float
    grad: Any
    stats: dict = field(default_factory=dict)

    def __iter__(self):
        return iter((self.value, self.grad))


ValueAndGradFn = Callable[[np.ndarray], Gradient]


class Differentiator(Protocol):
    """Turns an objective into ``theta -> Gradient``.

    All one-time cost (building and compiling expressions, loading a backend, moving data to a
    device) is paid in ``value_and_grad``; the returned function is what studies time per call.
    Implementations are frozen dataclasses whose fields are their options.
    """

    name: str

    def value_and_grad(self, objective: Any) -> ValueAndGradFn: ...

    def grad(self, f: Callable) -> Callable:
        """For users' functions ``f(xp, theta, *args) -> scalar``: returns ``(theta, *args) -> gradient``."""


# ----- parameter structures for grad(f): any nesting of dicts, lists and tuples of arrays (diffsuite.pytree) -----
def flatten_params(theta: Any) -> tuple[list[np.ndarray], Callable[[list], Any]]:
    """Split ``theta`` into float64 leaves and a function that rebuilds the structure from new leaves.

    Leaves are checked: numbers only, finite (a ValueError names the first bad entry).
    """
    leaves, rebuild, _ = pytree.flatten(theta)
    return leaves, rebuild


def param_entry_names(theta: Any) -> list[str]:
    """A printable name per scalar entry of ``theta``: ``theta[3]``, ``W[0, 1]``, ``b``, ``layers[0]['W'][1, 2]``."""
    leaves, _, names = pytree.flatten(theta)
    return pytree.entry_names(leaves, names)


def with_argnums_of(differentiator: Any, f: Callable, argnums: int | tuple[int, ...] = 0) -> Callable:
    """``grad(f, argnums)`` for any differentiator with ``value_and_grad_fn``: the gradient with respect to the
    arguments at ``argnums`` (0 is theta; a tuple gives a tuple of gradients). See ``diffsuite.pytree``."""
    return pytree.with_argnums(differentiator.value_and_grad_fn, f, argnums)


def grad_leaf(g: np.ndarray) -> Any:
    """A gradient leaf for the user: a float for a scalar parameter, else the float64 array."""
    return float(g) if np.ndim(g) == 0 else g


def to_float(value: Any) -> float:
    """A scalar result (numpy, torch, 0-d or size-1 array) as a Python float."""
    return float(np.asarray(value).reshape(()))


def scalar_check(shape: tuple, who: str = "the objective") -> None:
    """Raise the standard error when a function meant to be differentiated is not scalar."""
    if int(np.prod(shape)) != 1:
        raise TypeError(f"gradients need a scalar function; {who} returned shape {tuple(shape)}. "
                        "Reduce it to a scalar, e.g. with xp.sum or xp.mean.")
