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
from ..reverse.tape import TapeNamespace
from ..reverse.ops import (ADD, DIV, GETITEM, MATMUL, MEAN, MUL, NEG, OPS, POW, POWER, RESHAPE, SUB, SUM, TRANSPOSE,
                           Op)
from .jvps import JVPS as _RULES, jvp_rule


class Dual:
    """``primal`` (a backend array) with ``tangent`` (``lead + primal.shape``); arithmetic goes through the trace."""

    __slots__ = ("primal", "tangent", "trace")
    __array_ufunc__ = None  # numpy defers to our reflected operators: ndarray @ Dual -> Dual.__rmatmul__

    def __init__(self, primal: Any, tangent: Any, trace: "ForwardTrace"):
        self.primal = primal
        self.tangent = tangent
        self.trace = trace

    def __repr__(self):
        return f"Dual(shape={self.shape}, tangent shape={tuple(getattr(self.tangent, 'shape', ()))})"

    shape = property(lambda self: tuple(getattr(self.primal, "shape", ())))
    ndim = property(lambda self: getattr(self.primal, "ndim", 0))
    dtype = property(lambda self: self.primal.dtype)
    size = property(lambda self: int(self.trace.backend.numel(self.primal)))
    # the same methods as reverse mode's Var, through the same namespace (DualNamespace is TapeNamespace on this
    # trace), so numpy's semantics cannot drift apart between the modes: .T reverses all axes, .mT swaps the last two
    T = property(lambda self: DualNamespace(self.trace).transpose(self))
    mT = property(lambda self: self.trace.apply(TRANSPOSE, self))

    def __len__(self):
        return len(self.primal)

    def __add__(self, o): return self.trace.binary(ADD, self, o)
    def __radd__(self, o): return self.trace.binary(ADD, o, self)
    def __sub__(self, o): return self.trace.binary(SUB, self, o)
    def __rsub__(self, o): return self.trace.binary(SUB, o, self)
    def __mul__(self, o): return self.trace.binary(MUL, self, o)
    def __rmul__(self, o): return self.trace.binary(MUL, o, self)
    def __truediv__(self, o): return self.trace.binary(DIV, self, o)
    def __rtruediv__(self, o): return self.trace.binary(DIV, o, self)
    def __matmul__(self, o): return self.trace.binary(MATMUL, self, o)
    def __rmatmul__(self, o): return self.trace.binary(MATMUL, o, self)
    def __neg__(self): return self.trace.unary(NEG, self)
    def __pos__(self): return self

    def __pow__(self, o):
        if isinstance(o, (int, float)):
            return self.trace.apply(POWER, self, p=o)
        return self.trace.apply(POW, self, o)

    def __rpow__(self, o): return self.trace.apply(POW, o, self)
    def __getitem__(self, index):
        if type(index) is Dual or (type(index) is tuple and any(type(i) is Dual for i in index)):
            raise TypeError("an index cannot be a traced value (its derivative would be lost); index with ints, "
                            "slices, integer arrays or boolean masks (comparisons of traced values give masks)")
        return self.trace.apply(GETITEM, self, index=self.trace.backend.index(index))

    def __abs__(self): return DualNamespace(self.trace).abs(self)
    def transpose(self, *axes):
        return DualNamespace(self.trace).transpose(self, axes[0] if len(axes) == 1 and not isinstance(axes[0], int)
                                                   else (axes or None))
    def max(self, axis=None, keepdims=False): return DualNamespace(self.trace).max(self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return DualNamespace(self.trace).min(self, axis, keepdims)
    def prod(self, axis=None, keepdims=False): return DualNamespace(self.trace).prod(self, axis, keepdims)
    def ravel(self): return self.reshape(-1)
    flatten = ravel
    def reshape(self, *shape): return self.trace.apply(RESHAPE, self, shape=shape[0] if len(shape) == 1 else shape)
    def sum(self, axis=None, keepdims=False): return self.trace.unary(SUM, self, {"axis": axis, "keepdims": keepdims})
    def mean(self, axis=None, keepdims=False): return self.trace.unary(MEAN, self, {"axis": axis, "keepdims": keepdims})

    # comparisons act on primal values (no derivative), as for reverse-mode Vars
    def __gt__(self, o): return self.primal > _primal(o)
    def __ge__(self, o): return self.primal >= _primal(o)
    def __lt__(self, o): return self.primal < _primal(o)
    def __le__(self, o): return self.primal <= _primal(o)
    def __eq__(self, o): return self.primal == _primal(o)  # (rules compare values: err - err == 0)
    def __ne__(self, o): return self.primal != _primal(o)
    __hash__ = object.__hash__

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        # ``tensor @ dual``, ``tensor * dual``: hand the operator to our reflected method at once
        name = _TORCH_REFLECTED.get(getattr(func, "__name__", None))
        if name is not None and not kwargs and len(args) == 2 and type(args[1]) is Dual and type(args[0]) is not Dual:
            return getattr(args[1], name)(args[0])
        if any(t is not Dual for t in types):
            return NotImplemented
        raise TypeError(f"torch function {getattr(func, '__name__', func)!r} got a dual value: inside a function "
                        "being differentiated use the xp namespace it receives (xp.exp, xp.sum, ...), not torch.*")

    def __bool__(self):
        raise TypeError("the truth value of a traced value is not defined: Python `if`/`and` would cut the "
                        "derivative's path. Use xp.maximum / xp.minimum / xp.step to express the branch.")


_NO_PARAMS: dict = {}  # shared by unary calls without static parameters; never mutated
_TORCH_REFLECTED = {"add": "__radd__", "sub": "__rsub__", "mul": "__rmul__", "div": "__rtruediv__",
                    "matmul": "__rmatmul__", "pow": "__rpow__"}


def _primal(x):
    return x.primal if type(x) is Dual else x


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
        if type(x) is Dual and x.trace is self:
            xv, tx = x.primal, x.tangent
        else:
            xv = x if type(x) is float else self._constant(x)
        if type(y) is Dual and y.trace is self:
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
        if type(x) is not Dual or x.trace is not self:
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
            if type(a) is Dual and a.trace is self:
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
    return LiftedBackend(trace.backend, trace.apply, lambda x: type(x) is Dual and x.trace is trace,
                         lambda x: x.primal)
