"""Reverse mode's higher-order methods: VJPs, Jacobians, and second derivatives by nesting traces.

The backward pass is an ordinary computation, so it can be traced itself: an inner ``Tape`` runs on
a ``LiftedBackend`` (``lifted.py``) whose arrays are values of an outer trace, and every array
operation of the VJP rules lands on that outer trace. Two nestings:

- forward-over-reverse (default ``second_order``): the outer trace is forward mode's ``Dual``s;
  theta moves along v, and the gradient's tangent is H v. One pass costs a few gradients
  (Pearlmutter's bound: about 2-4x); with k directions at once it gives k columns of H.
- reverse-over-reverse: the outer trace is another ``Tape``; the recorded backward pass is walked
  back with cotangent v (H v), or once per row for the whole Hessian.

Recording the backward pass is a mode of these methods only: ``value_and_grad`` and ``grad`` run
the plain tape on the plain backend and pay nothing for it.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..base import scalar_check
from ..higher_order import Structure, WithStats, output_value
from .lifted import LiftedBackend
from .tape import Tape, TapeNamespace, Var

SECOND_ORDER = ("forward_over_reverse", "reverse_over_reverse")


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
        scalar_check(np.shape(_raw(out)), who)
        return [B.zeros_like(v.value) for v in wrt], 0
    scalar_check(tuple(out.shape), who)
    return tape.backward(out, wrt)


def _who(f: Callable) -> str:
    return getattr(f, "__name__", "f")


# ----- first order, vector outputs -----
def vjp(rev, f: Callable) -> WithStats:
    """``(theta, *args) -> (value, pullback)``: one forward pass recorded; each ``pullback(u)`` one backward pass."""
    B = rev.load()

    def vjp_fn(stats, theta, *args):
        structure = Structure.of(theta)
        tape, wrt, out = _run(B, f, structure, [B.asarray(leaf) for leaf in structure.leaves], args)
        value = np.asarray(B.to_numpy(B.constant(_raw(out))))
        saved = list(tape.records)  # backward consumes the records: each pullback walks a fresh copy
        stats.update(tape_records=len(saved), tape_leaves=tape.n_leaves, vjps=0)

        def pullback(u):
            u = np.asarray(u, dtype=np.float64)
            if u.shape != value.shape:
                raise ValueError(f"the cotangent u must be shaped like f's output {value.shape}; got {u.shape}")
            if type(out) is not Var:
                return structure.tree(np.zeros(structure.n))
            tape.records[:] = saved
            seeded = (out * B.asarray(u)).sum()  # <u, f>: its gradient is u^T J
            grads, n = tape.backward(seeded, wrt)
            stats["vjps"] += 1
            stats["tape_backward_ops"] = n
            return structure.tree(np.concatenate([np.asarray(B.to_numpy(g)).reshape(-1) for g in grads]))

        return output_value(value), pullback

    return WithStats(vjp_fn, "vjp", rev.label)


def jacobian(rev, f: Callable) -> WithStats:
    """``(theta, *args) -> J``: one recorded forward pass, then one backward pass per output entry."""
    make = vjp(rev, f)

    def jacobian_fn(stats, theta, *args):
        value, pullback = make(theta, *args)
        value = np.asarray(value)
        structure = Structure.of(theta)
        rows = np.empty((value.size, structure.n))
        e = np.zeros(value.size)
        for i in range(value.size):
            e[i] = 1.0
            r = pullback(e.reshape(value.shape))
            rows[i] = Structure.of(r).flat() if structure.keys is None else structure.flatten_like(r, "row")
            e[i] = 0.0
        stats.update(make.stats)
        return structure.jacobian(rows.reshape(value.shape + (structure.n,)), value.shape)

    return WithStats(jacobian_fn, "jacobian", rev.label)


def jvp(rev, f: Callable) -> WithStats:
    """``(theta, tangent, *args) -> (value, J t)`` by the transpose trick: the VJP u -> J^T u is linear in u;
    recorded (reverse-over-reverse) and walked back with cotangent t, it gives J t. No forward mode needed."""
    B = rev.load()

    def jvp_fn(stats, theta, tangent, *args):
        structure = Structure.of(theta)
        t = structure.flatten_like(tangent, "tangent")
        outer = Tape(B)
        inner = Tape(lifted_over_tape(outer))
        wrt = inner.inputs([B.asarray(leaf) for leaf in structure.leaves])
        out = f(TapeNamespace(inner), structure.rebuild(wrt), *args)
        value = np.asarray(B.to_numpy(B.constant(_raw(out))))
        stats.update(method="reverse-over-reverse (transpose of the VJP)")
        if type(out) is not Var or out.tape is not inner:
            return output_value(value), output_value(np.zeros(value.shape))
        u = outer.input(B.zeros_like(out.value))  # any value: J^T u is linear in u
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
def _forward_over_reverse(B, f: Callable, structure: Structure, directions: list, args: tuple,
                          stats: dict) -> tuple[float, list]:
    """(value, per leaf the tangent of the gradient: lead + leaf.shape) for ``directions`` (per leaf)."""
    from ..forward.dual import Dual, ForwardTrace, lifted_over  # forward mode's duals are the outer trace

    outer = ForwardTrace(B)
    duals = [outer.dual(B.asarray(leaf), d) for leaf, d in zip(structure.leaves, directions)]
    tape, wrt, out = _run(lifted_over(outer), f, structure, duals, args)
    grads, n_vjps = _gradients(tape, out, wrt, _who(f))
    value = out
    while type(value) in (Var, Dual):
        value = value.value if type(value) is Var else value.primal
    n_records = len(tape.records)
    tape.records.clear()
    stats.update(tape_records=n_records, tape_backward_ops=n_vjps, jvp_rules=outer.n_jvps)
    tangents = [g.tangent if type(g) is Dual and g.trace is outer else None for g in grads]
    return B.item(value), tangents


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


def hvp(rev, f: Callable) -> WithStats:
    """``(theta, v, *args) -> H v``, by ``rev.second_order`` (forward-over-reverse by default)."""
    B = rev.load()

    def hvp_fn(stats, theta, v, *args):
        structure = Structure.of(theta)
        vf = structure.flatten_like(v, "v")
        stats["method"] = rev.second_order.replace("_", "-")
        if rev.second_order == "forward_over_reverse":
            value, tangents = _forward_over_reverse(B, f, structure, [B.asarray(p) for p in structure.split(vf)],
                                                    args, stats)
            flat = [np.zeros(leaf.size) if t is None else np.asarray(B.to_numpy(t)).reshape(-1)
                    for t, leaf in zip(tangents, structure.leaves)]
        else:
            value, outer, theta_vars, grads = _reverse_over_reverse(B, f, structure, args, stats)
            terms = [(g * B.asarray(p)).sum() for g, p in zip(grads, structure.split(vf)) if type(g) is Var]
            if terms:
                z = terms[0]
                for term in terms[1:]:
                    z = z + term
                hv, _ = outer.backward(z, theta_vars)
                flat = [np.asarray(B.to_numpy(h)).reshape(-1) for h in hv]
            else:
                flat = [np.zeros(leaf.size) for leaf in structure.leaves]
        stats["value"] = value
        return structure.tree(np.concatenate(flat) if flat else np.zeros(0))

    return WithStats(hvp_fn, "hvp", rev.label)


def hessian(rev, f: Callable) -> WithStats:
    """``(theta, *args) -> H``: forward-over-reverse with ``directions_per_pass`` basis directions per pass,
    or reverse-over-reverse with the backward pass recorded once and walked back once per row."""
    B = rev.load()

    def hessian_fn(stats, theta, *args):
        structure = Structure.of(theta)
        n = structure.n
        H = np.zeros((n, n))
        stats["method"] = rev.second_order.replace("_", "-")
        if rev.second_order == "forward_over_reverse":
            k, passes = rev.directions_per_pass, 0
            for start in range(0, n, k):
                stop = min(n, start + k)
                E = np.zeros((stop - start, n))
                E[np.arange(stop - start), np.arange(start, stop)] = 1.0
                value, tangents = _forward_over_reverse(B, f, structure, [B.asarray(p) for p in
                                                                          structure.split(E, (stop - start,))],
                                                        args, stats)
                H[start:stop] = np.concatenate(
                    [np.zeros((stop - start, leaf.size)) if t is None else
                     np.asarray(B.to_numpy(t)).reshape(stop - start, -1) for t, leaf in zip(tangents, structure.leaves)],
                    axis=1)
                passes += 1
            stats.update(passes=passes, hvps=n)
        else:
            value, outer, theta_vars, grads = _reverse_over_reverse(B, f, structure, args, stats)
            saved = list(outer.records)
            row = 0
            for g, leaf in zip(grads, structure.leaves):
                for idx in np.ndindex(*leaf.shape):
                    if type(g) is Var:
                        outer.records[:] = saved
                        hv, _ = outer.backward(g[idx] if idx else g, theta_vars)
                        H[row] = np.concatenate([np.asarray(B.to_numpy(h)).reshape(-1) for h in hv])
                    row += 1
            stats.update(passes=1, outer_backward_passes=n)
        stats["value"] = value
        return structure.hessian(H)

    return WithStats(hessian_fn, "hessian", rev.label)
