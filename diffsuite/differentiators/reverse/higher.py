"""Reverse mode's higher-order methods: VJPs, Jacobians, JVPs and second derivatives, by nesting tapes.

The backward pass is an ordinary computation, so it can be recorded itself: an inner ``Tape`` runs on
a ``LiftedBackend`` (``lifted.py``) whose arrays are ``Var``s of an outer tape, so every array
operation of the VJP rules lands on the outer tape (reverse-over-reverse, as in HIPS autograd).
Walked back with cotangent v, the recorded gradient gives H v; walked back once per row, H.
(Forward-over-reverse, the outer trace being forward mode's duals, is the forward differentiator's.)

Recording the backward pass is a mode of these methods only: ``value_and_grad`` and ``grad`` run
the plain tape on the plain backend and pay nothing for it.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ...structure import Structure, output_value
from ..base import WithStats, scalar_check, structured
from .lifted import LiftedBackend, refuse_kept_value
from .tape import Tape, TapeNamespace, Var

def lifted_over_tape(tape: Tape) -> LiftedBackend:
    """A backend whose arrays are ``tape``'s Vars: a tape on it records its backward pass on ``tape``."""
    return LiftedBackend(tape.backend, tape.apply, lambda x: type(x) is Var and x.tape is tape, lambda x: x.value)


def _raw(x: Any) -> Any:
    return x.value if type(x) is Var else x


def _run(B, f: Callable, structure: Structure, leaves: list, args: tuple) -> tuple[Tape, list, Any]:
    """Record ``f`` on a fresh tape over backend ``B`` (leaves: its arrays): (tape, leaf Vars, output)."""
    tape = Tape(B)
    wrt = tape.inputs(list(leaves))
    out = f(TapeNamespace(tape), structure.rebuild(wrt), *args)
    return tape, wrt, out


def _gradients(tape: Tape, out: Any, wrt: list, who: str) -> tuple[list, int]:
    """The backward pass of scalar ``out``: (one gradient per ``wrt``, VJPs evaluated)."""
    B = tape.backend
    if type(out) is not Var or out.tape is not tape:
        refuse_kept_value(out, tape, B)  # else a constant here (an enclosing level's value, or an array)
        scalar_check(np.shape(_raw(out)), who)
        return [B.zeros_like(v.value) for v in wrt], 0
    scalar_check(tuple(out.shape), who)
    return tape.backward(out, wrt)


def _who(f: Callable) -> str:
    return getattr(f, "__name__", "f")


# ----- first order, vector outputs -----
def _recorded(B, fn: Callable, structure: Structure, args: tuple, stats: dict):
    """f recorded once: (value as numpy, pullback_flat(u) -> flat u^T J). Each pullback walks a fresh copy of
    the records (backward consumes them) after recording <u, f>, whose gradient is u^T J."""
    tape, wrt, out = _run(B, fn, structure, [B.asarray(leaf) for leaf in structure.leaves], args)
    value = np.asarray(B.to_numpy(B.constant(_raw(out))))
    saved = list(tape.records)
    stats.update(tape_records=len(saved), tape_leaves=tape.n_leaves, vjps=0)

    def pullback_flat(u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        if u.shape != value.shape:
            raise ValueError(f"the cotangent u must be shaped like f's output {value.shape}; got {u.shape}")
        if type(out) is not Var:
            return np.zeros(structure.n)
        tape.records[:] = saved
        grads, n = tape.backward((out * B.asarray(u)).sum(), wrt)
        stats["vjps"] += 1
        stats["tape_backward_ops"] = n
        return np.concatenate([np.asarray(B.to_numpy(g)).reshape(-1) for g in grads])

    return value, pullback_flat


def vjp(rev, f: Callable) -> WithStats:
    """``(theta, *args) -> (value, pullback)``: one forward pass recorded; each ``pullback(u)`` one backward pass."""
    B = rev.load()

    def vjp_fn(stats, theta, *args):
        structure, fn = structured(f, theta)
        value, pullback_flat = _recorded(B, fn, structure, args, stats)
        return output_value(value), lambda u: structure.tree(pullback_flat(u))

    return WithStats(vjp_fn, "vjp", rev.label)


def jacobian(rev, f: Callable) -> WithStats:
    """``(theta, *args) -> J``: one recorded forward pass, then one backward pass per output entry."""
    B = rev.load()

    def jacobian_fn(stats, theta, *args):
        structure, fn = structured(f, theta)
        value, pullback_flat = _recorded(B, fn, structure, args, stats)
        rows = np.empty((value.size, structure.n))
        e = np.zeros(value.size)
        for i in range(value.size):
            e[i] = 1.0
            rows[i] = pullback_flat(e.reshape(value.shape))
            e[i] = 0.0
        return structure.jacobian(rows.reshape(value.shape + (structure.n,)), value.shape)

    return WithStats(jacobian_fn, "jacobian", rev.label)


def jvp(rev, f: Callable) -> WithStats:
    """``(theta, tangent, *args) -> (value, J t)`` by the transpose trick: the VJP u -> J^T u is linear in u;
    recorded (reverse-over-reverse) and walked back with cotangent t, it gives J t. No forward mode needed."""
    B = rev.load()

    def jvp_fn(stats, theta, tangent, *args):
        structure, fn = structured(f, theta)
        t = structure.flatten_like(tangent, "tangent")
        outer = Tape(B)
        inner = Tape(lifted_over_tape(outer))
        wrt = inner.inputs([B.asarray(leaf) for leaf in structure.leaves])
        out = fn(TapeNamespace(inner), structure.rebuild(wrt), *args)
        refuse_kept_value(out, inner, inner.backend)
        value = np.asarray(B.to_numpy(B.constant(_raw(out))))
        stats.update(method="reverse-over-reverse (transpose of the VJP)")
        if type(out) is not Var or out.tape is not inner:
            return output_value(value), output_value(np.zeros(value.shape))
        # any value would do, J^T u being linear in u, but not zeros: a zero cotangent makes every strong zero fire
        # where a local derivative is infinite (sqrt at 0), and J t would read 0 where it is inf
        u = outer.input(B.ones_like(out.value))
        seeded = (out * inner.input(u)).sum()  # an outer value enters the inner tape as a leaf
        grads, n_inner = inner.backward(seeded, wrt)
        terms = [(g * B.asarray(tp)).sum() for g, tp in zip(grads, structure.split(t)) if type(g) is Var]
        if not terms:
            return output_value(value), output_value(np.zeros(value.shape))
        z = terms[0]
        for term in terms[1:]:
            z = z + term
        (jt,), n_outer = outer.backward(z, [u])
        stats.update(tape_records=len(outer.records), vjps=n_inner + n_outer)
        return output_value(value), output_value(B.to_numpy(jt))

    return WithStats(jvp_fn, "jvp", rev.label)


# ----- second order -----
def _reverse_over_reverse(B, f: Callable, structure: Structure, args: tuple, stats: dict):
    """(value, outer tape, outer leaves, gradient Vars of the outer tape): the backward pass recorded."""
    outer = Tape(B)
    theta = outer.inputs([B.asarray(leaf) for leaf in structure.leaves])
    tape, wrt, out = _run(lifted_over_tape(outer), f, structure, theta, args)
    grads, n_vjps = _gradients(tape, out, wrt, _who(f))
    value = out.value if type(out) is Var else out
    stats.update(inner_records=len(tape.records), tape_backward_ops=n_vjps, outer_records=len(outer.records))
    tape.records.clear()
    return B.item(_raw(value)), outer, theta, grads


def _dot(grads: list, vs: list, B) -> Any:
    """sum_i <grads_i, vs_i> recorded on the outer tape (None when no gradient depends on theta)."""
    z = None
    for g, v in zip(grads, vs):
        if type(g) is Var:
            term = (g * B.asarray(v)).sum()
            z = term if z is None else z + term
    return z


def hvp(rev, f: Callable) -> WithStats:
    """``(theta, v, *args) -> H v``: the gradient recorded (reverse-over-reverse), walked back with cotangent v.
    Cost: about the gradient's forward + backward recorded, then one backward pass over both."""
    B = rev.load()

    def hvp_fn(stats, theta, v, *args):
        structure, fn = structured(f, theta)
        vf = structure.flatten_like(v, "v")
        value, outer, theta_vars, grads = _reverse_over_reverse(B, fn, structure, args, stats)
        z = _dot(grads, structure.split(vf), B)
        if z is None:
            flat = np.zeros(structure.n)
        else:
            hv, n = outer.backward(z, theta_vars)
            flat = np.concatenate([np.asarray(B.to_numpy(h)).reshape(-1) for h in hv])
            stats["outer_backward_ops"] = n
        stats.update(method="reverse-over-reverse", value=value)
        return structure.tree(flat)

    return WithStats(hvp_fn, "hvp", rev.label)


def hessian(rev, f: Callable) -> WithStats:
    """``(theta, *args) -> H``: the gradient recorded once (reverse-over-reverse), then walked back once per
    row (n backward passes over the recorded forward and backward passes)."""
    B = rev.load()

    def hessian_fn(stats, theta, *args):
        structure, fn = structured(f, theta)
        H = np.zeros((structure.n, structure.n))
        value, outer, theta_vars, grads = _reverse_over_reverse(B, fn, structure, args, stats)
        saved = list(outer.records)  # backward consumes the records: each row walks a fresh copy
        row = 0
        for g, leaf in zip(grads, structure.leaves):
            for idx in np.ndindex(*leaf.shape):
                if type(g) is Var:
                    outer.records[:] = saved
                    hv, _ = outer.backward(g[idx] if idx else g, theta_vars)
                    H[row] = np.concatenate([np.asarray(B.to_numpy(h)).reshape(-1) for h in hv])
                row += 1
        stats.update(method="reverse-over-reverse", outer_backward_passes=structure.n, value=value)
        return structure.hessian(H)

    return WithStats(hessian_fn, "hessian", rev.label)
