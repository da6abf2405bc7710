"""Parameters as any nesting of dicts, lists and tuples of arrays and numbers (a "pytree").

``flatten(tree)`` gives the leaves (float64 arrays, checked finite) in a fixed order (dicts in their
insertion order, sequences by position) and a ``rebuild`` function that puts new leaves back into the
same structure; ``leaf_names`` names each leaf by its path (``theta['W'][0]``), for error messages and
reports. Gradients come back in the structure of the parameters: a float for a scalar leaf, an array
otherwise. Zero-size arrays are leaves like any other (their gradient is an empty array).

``argnums``: ``select_args(args, argnums)`` splits a function's positional arguments into the
differentiable ones (packed as one tuple, itself a pytree) and the rest, and ``merge_args`` undoes it.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np


def _is_container(x: Any) -> bool:
    return isinstance(x, (dict, list, tuple))


def flatten(tree: Any, name: str = "theta") -> tuple[list[np.ndarray], Callable[[list], Any], list[str]]:
    """(leaves as float64 arrays, rebuild(new_leaves) -> tree, leaf path names).

    A leaf is anything numpy can read as numbers; a ValueError names the first non-finite entry and a
    TypeError the leaf that is not numbers. A dict's keys may be any hashable values.
    """
    leaves: list[np.ndarray] = []
    names: list[str] = []

    def walk(node: Any, path: str, label: str) -> Callable[[Any], Any]:
        """Collect the leaves below ``node``; return the function that rebuilds it from an iterator.
        ``path``: where it is, for error messages (``theta['W']``); ``label``: its name in reports (``W``)."""
        if isinstance(node, dict):
            keys = list(node)
            # a top-level dict's entries are labelled by their keys alone (``W``, ``b``), as objectives' blocks are
            parts = [walk(node[k], f"{path}[{k!r}]", str(k) if node is tree else f"{label}[{k!r}]") for k in keys]
            return lambda it: {k: part(it) for k, part in zip(keys, parts)}
        if isinstance(node, (list, tuple)):
            parts = [walk(v, f"{path}[{i}]", f"{label}[{i}]") for i, v in enumerate(node)]
            kind = type(node)
            if kind in (list, tuple):
                return lambda it: kind(part(it) for part in parts)
            return lambda it: kind(*(part(it) for part in parts))  # a namedtuple
        leaves.append(_leaf(node, path))
        names.append(label)
        return lambda it: next(it)

    build = walk(tree, name, name)

    def rebuild(new_leaves: list) -> Any:
        return build(iter(new_leaves))

    return leaves, rebuild, names


def leaves_of(tree: Any) -> list:
    """The leaves of ``tree`` as they are (no conversion), in ``flatten``'s order."""
    if isinstance(tree, dict):
        return [leaf for v in tree.values() for leaf in leaves_of(v)]
    if isinstance(tree, (list, tuple)):
        return [leaf for v in tree for leaf in leaves_of(v)]
    return [tree]


def leaves_along(tree: Any, value: Any, what: str) -> list:
    """``value``'s leaves in the order of ``tree``'s (``flatten``'s order), paired by dict key and position, not
    by ``value``'s own order: ``{"b": .., "a": ..}`` against theta ``{"a": .., "b": ..}`` gives a's part first. A
    ValueError names a missing or unexpected key, a wrong length, or a container where theta has a leaf.
    The leaves are returned as given (the caller converts and checks them)."""
    out: list = []

    def walk(node: Any, val: Any, path: str) -> None:
        if isinstance(node, dict):
            if not isinstance(val, dict):
                raise ValueError(f"{path} must be a dict like theta's, with keys {list(node)}; got "
                                 f"{type(val).__name__}")
            missing, extra = [k for k in node if k not in val], [k for k in val if k not in node]
            if missing or extra:
                raise ValueError(f"{path} must have theta's keys {list(node)}"
                                 f"{f'; missing {missing}' if missing else ''}"
                                 f"{f'; unexpected {extra}' if extra else ''}")
            for k in node:
                walk(node[k], val[k], f"{path}[{k!r}]")
        elif isinstance(node, (list, tuple)):
            if not isinstance(val, (list, tuple)) or len(val) != len(node):
                got = f"a {type(val).__name__} of length {len(val)}" if isinstance(val, (list, tuple)) \
                    else type(val).__name__
                raise ValueError(f"{path} must be a list or tuple of {len(node)} entries like theta's; got {got}")
            for i, (n, v) in enumerate(zip(node, val)):
                walk(n, v, f"{path}[{i}]")
        elif isinstance(val, dict):
            raise ValueError(f"{path} must be an array like theta's leaf there; got a dict")
        else:
            out.append(val)

    walk(tree, value, what)
    return out


def map_leaves(fn: Callable[[Any], Any], tree: Any) -> Any:
    """``tree`` with ``fn`` applied to each leaf (no conversion), the structure kept."""
    if isinstance(tree, dict):
        return {k: map_leaves(fn, v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        parts = [map_leaves(fn, v) for v in tree]
        return type(tree)(parts) if type(tree) in (list, tuple) else type(tree)(*parts)
    return fn(tree)


def entry_names(leaves: list[np.ndarray], names: list[str]) -> list[str]:
    """One name per scalar entry of the flattened leaves: ``W[0, 1]``, ``theta[1][2]``, ``b``."""
    out: list[str] = []
    for name, leaf in zip(names, leaves):
        if leaf.ndim == 0:
            out.append(name)
        else:
            out += [f"{name}[{', '.join(map(str, idx))}]" for idx in np.ndindex(*leaf.shape)]
    return out


def _leaf(value: Any, where: str) -> np.ndarray:
    """``value`` as a new float64 array (a copy: the caller's array is never the one differentiated), or the error
    that names what is wrong with it (a traced value, complex or text entries, an entry that is no number, an
    entry that is not finite)."""
    # The common leaf, a real float array, skips the checks only other kinds need: every gradient call of a user's
    # function comes here once per leaf, and numpy's argwhere alone took 25 us per 0-d leaf
    a = value.astype(np.float64) if type(value) is np.ndarray and value.dtype.kind == "f" else _converted(value, where)
    if not (np.isfinite(a).all() if a.ndim else math.isfinite(a)):  # (a ufunc reduction of one value costs 10 us)
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise ValueError(f"{where} must be finite; entry {list(idx)} is {a[idx]}")
    return a


def _converted(value: Any, where: str) -> np.ndarray:
    """``_leaf``'s conversion of anything but a float array: a float64 array, or a TypeError/ValueError naming
    what is wrong."""
    try:
        is_complex = np.iscomplexobj(value)
    except TypeError:  # a traced value refuses numpy's functions: a differentiator called inside another's f
        raise TypeError(f"{where} holds a traced value ({type(value).__name__}): a differentiator was called inside "
                        "a function that another differentiator is tracing. Nested differentiation is not "
                        "supported; for second derivatives use the differentiator's hessian, hvp, jvp or jacobian "
                        "methods (docs/higher_order.md).") from None
    if is_complex:  # (numpy would drop the imaginary part with only a warning)
        raise ValueError(f"{where} must be real; got complex values. Pass np.real(...) if the imaginary part is 0 "
                         "(the Objective's check says the same; complex arithmetic is the complex_step scheme's business).")
    def not_numbers(dtype: Any = None) -> TypeError:
        return TypeError(f"{where} must be numbers (an array, a float, or a dict/list/tuple of them); got "
                         f"{type(value).__name__}{f' of dtype {dtype}' if dtype is not None else ''}")

    try:
        raw = np.asarray(value)
    except (TypeError, ValueError):  # (a ragged nesting)
        raise not_numbers() from None
    if raw.dtype.kind in "USV":  # (numpy would parse the text "1.5" as the number 1.5)
        raise not_numbers(raw.dtype)
    if raw.dtype.kind == "O":  # name the first entry that is no number (None, pandas' NA) as it was given
        for idx in np.ndindex(*raw.shape):
            v = raw[idx]
            if not isinstance(v, (int, float, np.integer, np.floating, np.bool_)):
                raise TypeError(f"{where} must be a number; got {v!r}" if not raw.ndim else
                                f"{where} must be numbers; entry {list(idx)} is {v!r}")
    try:
        return raw.astype(np.float64)
    except (TypeError, ValueError):
        raise not_numbers(raw.dtype) from None


def check_argnums(argnums: int | tuple[int, ...], n_args: int) -> tuple[int, ...]:
    """``argnums`` as a tuple of valid positions among ``n_args`` positional arguments (theta is 0)."""
    many = isinstance(argnums, (tuple, list))
    nums = tuple(argnums) if many else (argnums,)
    if not nums or not all(isinstance(i, int) and not isinstance(i, bool) for i in nums):
        raise TypeError(f"argnums must be an int or a non-empty tuple of ints; got {argnums!r}")
    fixed = tuple(i % n_args if -n_args <= i < n_args else None for i in nums)
    if None in fixed or len(set(fixed)) != len(fixed):
        raise ValueError(f"argnums={argnums!r} must name distinct positions among the {n_args} arguments "
                         f"(theta is 0, the next argument 1, ...)")
    return fixed


def select_args(args: tuple, argnums: tuple[int, ...]) -> tuple[tuple, tuple]:
    """(the arguments at ``argnums``, in that order; the others, in order)."""
    return tuple(args[i] for i in argnums), tuple(a for i, a in enumerate(args) if i not in argnums)


def merge_args(selected: tuple, rest: tuple, argnums: tuple[int, ...]) -> list:
    """The inverse of ``select_args``."""
    out: list = [None] * (len(selected) + len(rest))
    for i, v in zip(argnums, selected):
        out[i] = v
    others = iter(rest)
    for i in range(len(out)):
        if i not in argnums:
            out[i] = next(others)
    return out


def positional_only(kwargs: dict, note: str = "") -> None:
    """The TypeError for keyword arguments to a returned derivative function (Python's own names an inner one)."""
    raise TypeError(f"a derivative function takes f's arguments by position, (theta, *args) in f's order; got "
                    f"keyword(s) {', '.join(kwargs)}. Pass them by position, or bind them into f first "
                    f"(functools.partial(f, name=value){note}).")


def with_argnums(vg_factory: Callable, f: Callable, argnums: int | tuple[int, ...]) -> Callable:
    """``(*args) -> gradient`` of ``f(xp, *args)`` with respect to the arguments at ``argnums``.

    ``vg_factory(g)`` is a differentiator's ``value_and_grad_fn``. An int gives that argument's gradient;
    a tuple gives a tuple of gradients, one per position, each shaped like its argument.
    """
    if argnums == 0:
        vg = vg_factory(f)

        def grad0(theta: Any, *args: Any, **kwargs: Any) -> Any:
            if kwargs:
                positional_only(kwargs)
            return vg(theta, *args).grad
        return grad0
    single = not isinstance(argnums, (tuple, list))
    cache: dict = {}

    def grad_fn(*args, **kwargs):
        if kwargs:
            positional_only(kwargs)
        nums = check_argnums(argnums, len(args))
        if nums not in cache:
            def packed(xp, selected, *rest, _nums=nums):
                return f(xp, *merge_args(tuple(selected), rest, _nums))
            packed.__name__ = getattr(f, "__name__", "f")
            cache[nums] = vg_factory(packed)
        selected, rest = select_args(args, nums)
        g = cache[nums](tuple(selected), *rest).grad
        return g[0] if single else tuple(g)

    return grad_fn
