"""Second derivatives in forward mode: dual values pushed through a recorded gradient, or through duals.

- forward-over-reverse (``second_order="forward_over_reverse"``, the default): theta is a Dual moving
  along v, the reverse engine's tape records f on a backend whose arrays are those Duals, and its
  backward pass (the VJP rules, unchanged) then carries tangents too: the gradient's tangent is H v.
  One pass costs a few gradients (Pearlmutter); with k directions at once it gives k columns of H.
- forward-over-forward (``"forward_over_forward"``): two nested forward traces, the inner one pushing
  the n basis directions: d/dv of every first derivative. H v costs n JVP-of-JVPs, H n x n of them
  (in few passes, as directions travel together). No tape at all.

Both nest through ``reverse/lifted.py``: the inner trace's backend has the outer trace's Duals as arrays.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ...structure import Structure
from ..base import call_checked, scalar_check
from ..reverse.lifted import refuse_kept_value
from ..reverse.tape import Tape, TapeNamespace, Var
from .dual import Dual, DualNamespace, ForwardTrace, lifted_over

SECOND_ORDER = ("forward_over_reverse", "forward_over_forward")


def _who(f: Callable) -> str:
    return getattr(f, "__name__", "f")


def _value(x: Any) -> Any:
    """The plain array under any nesting of traced values."""
    while type(x) in (Var, Dual):
        x = x.value if type(x) is Var else x.primal
    return x


def basis(B, structure: Structure, start: int, stop: int) -> list:
    """Tangents for basis directions ``start..stop-1``: per leaf, ``(k,) + leaf.shape`` backend arrays."""
    E = np.zeros((stop - start, structure.n), dtype=np.float64)
    E[np.arange(stop - start), np.arange(start, stop)] = 1.0
    E.flags.writeable = False  # kept between calls (Forward._cached_basis): a rule writing into a tangent raises
    return [B.asarray(part) for part in structure.split(E, (stop - start,))]


def over_reverse(B, f: Callable, structure: Structure, directions: list, lead: tuple, args: tuple,
                 stats: dict) -> tuple[float, np.ndarray]:
    """(value, d/d(directions) of the gradient: ``lead + (n,)``): one recorded forward and backward pass."""
    outer = ForwardTrace(B)
    tape = Tape(lifted_over(outer))
    wrt = tape.inputs([outer.dual(B.asarray(leaf), d) for leaf, d in zip(structure.leaves, directions)])
    out = call_checked(f, _who(f), TapeNamespace(tape), structure.rebuild(wrt), *args)
    scalar_check(np.shape(_value(out)), _who(f))
    if type(out) is Var and out.tape is tape:
        grads, n_vjps = tape.backward(out, wrt)
    else:
        refuse_kept_value(out, tape, tape.backend)
        grads, n_vjps = [None] * len(wrt), 0
    stats["tape_records"] = stats.get("tape_records", 0) + len(tape.records)
    stats["vjps"] = stats.get("vjps", 0) + n_vjps
    stats["jvp_rules"] = stats.get("jvp_rules", 0) + outer.n_jvps
    tape.records.clear()  # (Vars and records point at each other: free the cycle now)
    parts = [np.asarray(B.to_numpy(g.tangent)).reshape(lead + (leaf.size,))
             if type(g) is Dual and g.tape is outer else np.zeros(lead + (leaf.size,))
             for g, leaf in zip(grads, structure.leaves)]
    return B.item(_value(out)), np.concatenate(parts, axis=-1)


def over_forward(B, f: Callable, structure: Structure, directions: list, lead: tuple, args: tuple, stats: dict,
                 directions_per_pass: int) -> tuple[float, np.ndarray]:
    """(value, d/d(directions) of the n first derivatives: ``lead + (n,)``): the inner trace pushes the n basis
    directions, ``directions_per_pass`` at a time, through a backend whose arrays are the outer trace's Duals."""
    n, cols, value = structure.n, [], 0.0
    for start in range(0, max(n, 1), directions_per_pass):  # (n = 0: one pass, for the value)
        stop = min(n, start + directions_per_pass)
        outer = ForwardTrace(B)
        inner = ForwardTrace(lifted_over(outer))
        primals = [outer.dual(B.asarray(leaf), d) for leaf, d in zip(structure.leaves, directions)]
        duals = [inner.dual(p, t) for p, t in zip(primals, basis(B, structure, start, stop))]
        out = call_checked(f, _who(f), DualNamespace(inner), structure.rebuild(duals), *args)
        scalar_check(np.shape(_value(out)), _who(f))
        refuse_kept_value(out, inner, inner.backend)
        value = B.item(_value(out))
        t = out.tangent if type(out) is Dual and out.tape is inner else None  # first derivatives (k,) ...
        dt = t.tangent if type(t) is Dual and t.tape is outer else None     # ... and their tangents
        cols.append(np.zeros(lead + (stop - start,)) if dt is None else
                    np.asarray(B.to_numpy(dt)).reshape(lead + (stop - start,)))
        stats["jvp_rules"] = stats.get("jvp_rules", 0) + outer.n_jvps + inner.n_jvps
        stats["passes"] = stats.get("passes", 0) + 1
    return value, np.concatenate(cols, axis=-1) if cols else np.zeros(lead + (0,))
