"""The Differentiator protocol, the Gradient result, and the parameter-structure helpers of ``grad(f)``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol

import numpy as np
from numpy.lib.array_utils import byte_bounds

from .. import pytree
from ..pytree import positional_only  # noqa: F401 - the differentiators' returned functions refuse keywords by it
from ..objective import Objective
from ..structure import Structure


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


ValueAndGradFn = Callable[..., Gradient]  # (theta, batch=None) -> Gradient


class Differentiator(Protocol):
    """Turns an objective into ``theta -> Gradient``.

    All one-time cost (building and compiling expressions, loading a backend, moving data to a
    device) is paid in ``value_and_grad``; the returned function is what studies time per call.
    Implementations are frozen dataclasses whose fields are their options.

    Minibatches: for an ``Objective``, the returned function also takes ``batch=(X, y)``: that call's
    data instead of the objective's, checked by ``Objective.batch_data`` (model, loss and L1/L2 stay),
    with no setup repeated. A differentiator that cannot (symbolic with data compiled in) raises a
    clear error saying which option can.
    """

    name: str

    def value_and_grad(self, objective: Any) -> ValueAndGradFn: ...

    def grad(self, f: Callable) -> Callable:
        """For users' functions ``f(xp, theta, *args) -> scalar``: returns ``(theta, *args) -> gradient``."""

    # Higher order (docs/higher_order.md), where the method can: each returns a ``WithStats`` callable.
    # ``jvp(f)(theta, tangent, *args) -> (value, jvp)``, ``vjp(f)(theta, *args) -> (value, pullback)``,
    # ``jacobian(f)(theta, *args)``, ``hessian(f)(theta, *args)``, ``hvp(f)(theta, v, *args)``;
    # a method that cannot raises ``unavailable(...)``: what, why, and which method can.


# ----- parameter structures for grad(f): any nesting of dicts, lists and tuples of arrays (diffsuite.pytree) -----
def check_flags(options: Any, *names: str) -> None:
    """Each named option of a frozen differentiator is True or False (a numpy bool becomes a bool); anything else,
    such as the string ``"no"``, which is truthy, is refused with a ValueError naming the option."""
    for name in names:
        flag = getattr(options, name)
        if not isinstance(flag, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False; got {flag!r}")
        object.__setattr__(options, name, bool(flag))


def dtype_name(dtype: Any) -> Any:
    """``"float64"``/``"float32"`` for numpy's or torch's dtype of that name (``np.float32``, ``np.dtype("float32")``,
    ``torch.float32``); anything else as it is (for the caller's own check and message)."""
    if isinstance(dtype, (str, bool)):
        return dtype
    if str(dtype) in ("torch.float64", "torch.float32"):
        return str(dtype)[len("torch."):]
    try:
        name = np.dtype(dtype).name
    except TypeError:
        return dtype
    return name if name in ("float64", "float32") else dtype


def check_dtype(options: Any, allowed: Any) -> None:
    """``options.dtype`` one of ``allowed`` (names), stored as that name; numpy's and torch's float dtypes are read
    as their names. Else a ValueError naming the choices."""
    name = dtype_name(options.dtype)
    if not isinstance(name, str) or name not in allowed:
        raise ValueError(f"dtype must be one of {', '.join(allowed)} (a string, or numpy's or torch's dtype of that "
                         f"name); got {options.dtype!r}")
    object.__setattr__(options, "dtype", name)


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
    """A gradient leaf for the user: a float for a scalar parameter, else a float64 array the user owns: writable,
    and no view that shares its entries (the VJP of a sum is one value broadcast, stride 0; a torch tensor's numpy
    view can be that): such an array is copied, so that g[0] = ... changes one entry of one leaf."""
    if np.ndim(g) == 0:
        return float(g)
    g = np.asarray(g, dtype=np.float64)
    if not g.flags.writeable or (g.size > 1 and 0 in g.strides):
        g = g.copy()
    return g


def grad_leaves(gs: list) -> list:
    """``grad_leaf`` of each, and a copy of each array whose memory reaches into an earlier one's: a rule may hand
    one cotangent to several inputs (``a + b`` gives both the same array; so do reshapes and transposes of it), and
    the user's in-place update of one leaf (``g['a'] *= 0.1``) must not change another. Only arrays over the same
    buffer can overlap: they are grouped by the array that owns it (arrays over foreign memory, a torch tensor's,
    form one group), and byte bounds are compared within a group only; two interleaved views that merely look
    overlapping are copied too."""
    out = [grad_leaf(g) for g in gs]
    groups: dict = {}
    for i, g in enumerate(out):
        if isinstance(g, np.ndarray) and g.size:
            root = g
            while isinstance(root.base, np.ndarray):
                root = root.base
            groups.setdefault(id(root) if root.base is None else None, []).append(i)
    for members in groups.values():
        if len(members) < 2:
            continue
        reach = None  # the highest address held by a leaf of this group kept as it is
        for lo, hi, i in sorted((*byte_bounds(out[i]), i) for i in members):
            if reach is not None and lo < reach:
                out[i] = out[i].copy()
            else:
                reach = hi if reach is None else max(reach, hi)
    return out


def to_float(value: Any) -> float:
    """A scalar result (numpy, torch, 0-d or size-1 array) as a Python float."""
    return float(np.asarray(value).reshape(()))


def check_result(out: Any, who: str) -> Any:
    """``out``, or a clear error for a function that returned None (no return statement, say): its value would
    otherwise read as NaN, or fail deep inside a differentiator with a message about float()."""
    if out is None:
        raise TypeError(f"{who} returned None; differentiating needs an array result (a scalar for gradients "
                        "and Hessians). Is a return statement missing?")
    return out


#: what numpy says, and all it says, when a value it takes for a sequence is written into an element of a float
#: array (a ragged nested list says more: "... The requested array has an inhomogeneous shape ...", not ours)
_NUMPY_SEQUENCE = "setting an array element with a sequence."


def call_checked(f: Callable, who: str, *args: Any) -> Any:
    """``f(*args)`` with its result checked by ``check_result``, and numpy's bare "setting an array element with a
    sequence" (a traced value written into a numpy array: ``out = np.zeros(n); out[0] = t[0]``; numpy takes a
    traced value, which can be indexed, for a sequence) turned into an error that says what happened and what to
    write instead."""
    try:
        out = f(*args)
    except ValueError as error:
        if str(error) != _NUMPY_SEQUENCE:
            raise
        raise TypeError(
            f"{who} wrote a traced value (theta, or something computed from it) into a numpy array, which holds "
            f"floats only (numpy: '{error}'). The derivative cannot flow through a numpy array: build the array "
            "with xp instead, e.g. xp.stack([t[0], 2 * t[1]]) rather than out = np.zeros(2); out[0] = t[0]; "
            "out[1] = 2 * t[1], or xp.where(mask, a, b) for a masked update") from error
    return check_result(out, who)


def returning(f: Callable) -> Callable:
    """``f`` with its result checked by ``call_checked``."""
    who = getattr(f, "__name__", "f")
    return lambda *args: call_checked(f, who, *args)


def scalar_check(shape: tuple, who: str = "the objective") -> None:
    """Raise the standard error when a function meant to be differentiated is not scalar."""
    if int(np.prod(shape)) != 1:
        raise TypeError(f"gradients need a scalar function; {who} returned shape {tuple(shape)}. "
                        "Reduce it to a scalar, e.g. with xp.sum or xp.mean.")


# ----- higher order: shared by every differentiator's jvp / vjp / jacobian / hessian / hvp -----
class WithStats:
    """A derivative function that keeps ``stats`` about its last call (passes, JVP/VJP counts, evaluations, ...)."""

    def __init__(self, fn: Callable, method: str, label: str):
        self._fn, self.stats = fn, {}
        self.__name__ = f"{label}.{method}"

    def __call__(self, *args, **kwargs):
        if kwargs:  # (Python's own message would name an inner function)
            raise TypeError(f"{self.__name__} takes its arguments by position: (theta, [v or tangent,] *args); got "
                            f"keyword(s) {', '.join(kwargs)}. An Objective's minibatch: build an Objective on it.")
        stats: dict = {}
        out = self._fn(stats, *args)
        self.stats = stats
        return out


class HigherOrder:
    """``jvp``, ``vjp``, ``jacobian``, ``hessian``, ``hvp`` (docs/higher_order.md), delegated to the functions of
    the module a differentiator names in its class attribute ``higher`` (each ``fn(differentiator, f)``)."""

    higher: ClassVar[Any]

    def jvp(self, f: Callable) -> WithStats:
        """``(theta, tangent, *args) -> (value, J t)``."""
        return self.higher.jvp(self, f)

    def vjp(self, f: Callable) -> WithStats:
        """``(theta, *args) -> (value, pullback)``; ``pullback(u)`` is in theta's structure."""
        return self.higher.vjp(self, f)

    def jacobian(self, f: Callable) -> WithStats:
        """``(theta, *args) -> J``, shaped ``out.shape + theta.shape``."""
        return self.higher.jacobian(self, f)

    def hessian(self, f: Callable) -> WithStats:
        """``(theta, *args) -> H`` of a scalar ``f``."""
        return self.higher.hessian(self, f)

    def hvp(self, f: Callable) -> WithStats:
        """``(theta, v, *args) -> H v``, in theta's structure."""
        return self.higher.hvp(self, f)


def unavailable(who: str, method: str, why: str, instead: str) -> NotImplementedError:
    """The error of a method a differentiator cannot provide: what was asked, why not, and which method can."""
    return NotImplementedError(f"{who} does not offer {method}: {why}. {instead}")


def structured(f: Callable, theta: Any) -> tuple[Structure, Callable]:
    """(theta's structure, the function to trace). An ``Objective``'s flat theta is split into its named
    blocks, which the function receives as leaves (results stay flat like theta): no traced vector is sliced
    (slicing one would cost a full-size scatter per block in the backward pass). Else theta's own structure."""
    if isinstance(f, Objective):
        layout = list(f.model.layout.items())
        names = [name for name, _ in layout]
        structure = Structure.blocks(f.check_theta(theta), [spec for _, spec in layout])

        def objective(xp, blocks, *args):
            no_extra_arguments(f, args)
            return f.evaluate(xp, dict(zip(names, blocks)))
        return structure, objective
    return Structure.of(theta), returning(f)


def no_extra_arguments(f: Any, args: tuple) -> None:
    """An Objective's higher-order methods evaluate its own data: arguments after theta (and v / the tangent) would
    otherwise be dropped without a word (a minibatch among them)."""
    if args:
        raise TypeError(f"the higher-order methods of an Objective take theta (and v or the tangent) only; got "
                        f"{len(args)} more argument(s). They use the objective's own data: for a minibatch, build "
                        "ds.Objective(model, loss, inputs=X_batch, targets=y_batch) and differentiate that.")
