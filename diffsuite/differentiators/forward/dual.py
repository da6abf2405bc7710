"""Dual values: a primal array and its tangent, propagated op by op through the JVP table.

``ForwardTrace`` plays the part the tape plays in reverse mode, without recording anything: each
primitive runs its forward (from ``reverse/ops.py``) and its JVP (``jvps.py``) at once, so memory
stays that of one forward pass. A tangent may carry leading axes (``k`` directions at once).
Traces nest: a trace whose backend is ``lifted(outer)`` has Duals of the outer trace as its
arrays (forward-over-forward), and a reverse ``Tape`` on ``lifted(trace)`` records Duals
(forward-over-reverse). A Dual of another trace is a constant here (no perturbation confusion).
"""
from __future__ import annotations

from typing import Any

from ..reverse.lifted import LiftedBackend
from ..reverse.tape import TapeNamespace, Traced
from ..reverse.ops import OPS, Op
from .jvps import JVPS as _RULES, jvp_rule


class Dual(Traced):
    """``primal`` (a backend array) with ``tangent`` (``lead + primal.shape``); arithmetic goes through the trace,
    ``tape`` (a ``ForwardTrace``, named as the tape whose ``apply``/``binary``/``unary`` it has). The operators
    and array methods are reverse mode's (``Traced``), so numpy's semantics cannot drift apart between the modes:
    .T reverses all axes, .mT swaps the last two."""

    __slots__ = ("primal", "tangent", "tape")
    _carries = "derivative"

    def __init__(self, primal: Any, tangent: Any, trace: "ForwardTrace"):
        self.primal = primal
        self.tangent = tangent
        self.tape = trace

    def __repr__(self):
        return f"Dual(shape={self.shape}, tangent shape={tuple(getattr(self.tangent, 'shape', ()))})"

    shape = property(lambda self: tuple(getattr(self.primal, "shape", ())))
    ndim = property(lambda self: getattr(self.primal, "ndim", 0))
    dtype = property(lambda self: self.primal.dtype)
    size = property(lambda self: int(self.tape.backend.numel(self.primal)))

    @staticmethod
    def _raw(x):
        """A dual value's primal; anything else as it is."""
        return x.primal if type(x) is Dual else x


_NO_PARAMS: dict = {}  # shared by unary calls without static parameters; never mutated


class ForwardTrace:
    """Evaluates primitives on Duals. ``n_jvps``: JVP rules evaluated (one per primitive with a traced input)."""

    __slots__ = ("backend", "n_jvps", "nested")  # (binary and unary: apply's hot paths, without its argument loop)

    def __init__(self, backend: Any):
        self.backend = backend
        self.n_jvps = 0
        self.nested = isinstance(backend, LiftedBackend)

    def dual(self, primal: Any, tangent: Any) -> Dual:
        """A traced input: ``primal`` (a backend array) moving in direction(s) ``tangent``."""
        return Dual(primal, tangent, self)

    def binary(self, op: Op, x: Any, y: Any) -> Any:
        """``apply(op, x, y)`` for a two-input primitive without static parameters (the hot path: inlined)."""
        B, tx, ty = self.backend, None, None
        if type(x) is Dual and x.tape is self:
            xv, tx = x.primal, x.tangent
        else:
            xv = x if type(x) is float else self._constant(x)
        if type(y) is Dual and y.tape is self:
            yv, ty = y.primal, y.tangent
        else:
            yv = y if type(y) is float else self._constant(y)
        out = op.forward(B, xv, yv)
        if tx is None and ty is None:
            return out
        rule = _RULES.get(op.name) or jvp_rule(op.name)
        t = rule(B, (tx, ty), out, xv, yv)
        self.n_jvps += 1
        return out if t is None else Dual(out, t, self)

    def unary(self, op: Op, x: Any, params: dict = _NO_PARAMS) -> Any:
        """``apply(op, x, **params)`` for a one-input primitive (the same signature as ``Tape.unary``)."""
        if type(x) is not Dual or x.tape is not self:
            return self.apply(op, x, **params)
        B, xv = self.backend, x.primal
        out = op.forward(B, xv, **params)
        rule = _RULES.get(op.name) or jvp_rule(op.name)
        t = rule(B, (x.tangent,), out, xv, **params)
        self.n_jvps += 1
        return out if t is None else Dual(out, t, self)

    def _constant(self, a: Any) -> Any:
        if type(a) is Dual and not self.nested:
            raise ValueError("a dual value from another forward pass reached this one; do not keep traced values "
                             "between calls")
        return self.backend.constant(a)

    def apply(self, op: Op | str, *args: Any, **params: Any) -> Any:
        """Run ``op`` forward and its JVP. Without a traced argument: just the forward (a constant)."""
        if type(op) is str:
            try:
                op = OPS[op]
            except KeyError:
                raise NotImplementedError(f"no primitive {op!r} (known: {', '.join(sorted(OPS))}); "
                                          "define it with defop() in reverse/ops.py") from None
        B = self.backend
        traced = False
        primals, tangents = [], []
        for a in args:
            if type(a) is Dual and a.tape is self:
                traced = True
                primals.append(a.primal)
                tangents.append(a.tangent)
            else:
                primals.append(a if type(a) is float else self._constant(a))
                tangents.append(None)
        out = op.forward(B, *primals, **params)
        if not traced:
            return out
        t = jvp_rule(op.name)(B, tangents, out, *primals, **params)
        self.n_jvps += 1
        return out if t is None else Dual(out, t, self)


class DualNamespace(TapeNamespace):
    """The ``xp`` that functions see under forward mode: the reverse engine's namespace, every call running a
    primitive and its JVP on the forward trace instead of recording it (``ForwardTrace`` has the tape's
    ``apply``/``binary``/``unary``), so the two modes offer the same functions by construction."""

    name = "forward"

    def __init__(self, trace: ForwardTrace):
        self.tape = trace  # (the attribute TapeNamespace's methods call)


def lifted_over(trace: ForwardTrace) -> LiftedBackend:
    """A backend whose arrays are ``trace``'s Duals: rules run on it are differentiated by ``trace``."""
    return LiftedBackend(trace.backend, trace.apply, lambda x: type(x) is Dual and x.tape is trace,
                         lambda x: x.primal, lambda x: x.tangent)


Dual._namespace = DualNamespace  # (defined after Dual, whose methods it runs)
