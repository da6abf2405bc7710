"""The Wengert list: the forward pass appends records, ``backward`` walks them in reverse.

Records are appended in execution order, so the reversed list is already a reverse topological
order (no graph search). A fresh ``Tape`` per gradient means nothing stale survives between calls.
``Var`` is the value models see: it overloads the operators with numpy semantics and records them.
"""
from __future__ import annotations

from typing import Any

import string

import numpy as np

from ...namespace import (Composites, dispatch_function, dispatch_ufunc, einsum_arguments, normalize_axes,
                         parse_einsum)
from .ops import (ABS, ADD, DIV, EXP, GETITEM, LOG, LOGSUMEXP, MATMUL, MAXIMUM, MEAN, MINIMUM, MUL, NEG, OPS, POW,
                  POWER, RESHAPE, SHAPE, SIGMOID, STEP, SUB, SUM, TANH, TRANSPOSE, VALUE, Op)


class Traced:
    """What a traced value of either mode offers a model: numpy's operators and array methods, each one primitive
    run by ``self.tape`` (reverse mode's ``Tape`` records it; forward mode's ``ForwardTrace``, which has the same
    ``apply``/``binary``/``unary``, runs it with its JVP). ``Var`` and ``forward.Dual`` subclass it, so the two
    modes cannot drift apart in what they accept. A subclass sets ``_namespace`` (the ``xp`` over its tape),
    ``_raw`` (a value's plain array, for comparisons) and ``_carries`` (what a cut would lose, for messages)."""

    __slots__ = ()
    _carries = "gradient"

    T = property(lambda self: self._namespace(self.tape).transpose(self))  # all axes reversed, as numpy's .T
    mT = property(lambda self: self.tape.apply(TRANSPOSE, self))  # the last two swapped

    # ----- operators -----
    # binary/unary are apply() without its generic argument loop: the hot path of every model
    def __add__(self, o): return self.tape.binary(ADD, self, o)
    def __radd__(self, o): return self.tape.binary(ADD, o, self)
    def __sub__(self, o): return self.tape.binary(SUB, self, o)
    def __rsub__(self, o): return self.tape.binary(SUB, o, self)
    def __mul__(self, o): return self.tape.binary(MUL, self, o)
    def __rmul__(self, o): return self.tape.binary(MUL, o, self)
    def __truediv__(self, o): return self.tape.binary(DIV, self, o)
    def __rtruediv__(self, o): return self.tape.binary(DIV, o, self)
    def __matmul__(self, o): return self.tape.binary(MATMUL, self, o)
    def __rmatmul__(self, o): return self.tape.binary(MATMUL, o, self)
    def __neg__(self): return self.tape.unary(NEG, self)
    def __pos__(self): return self
    def __abs__(self): return self.tape.unary(ABS, self)

    def __pow__(self, o):
        if isinstance(o, (int, float)):
            return self.tape.apply(POWER, self, p=o)
        return self.tape.apply(POW, self, o)

    def __rpow__(self, o): return self.tape.apply(POW, o, self)

    def __getitem__(self, index):
        if isinstance(index, Traced) or (type(index) is tuple and any(isinstance(i, Traced) for i in index)):
            raise TypeError(f"an index cannot be a traced value (its {self._carries} would be lost); index with "
                            "ints, slices, integer arrays or boolean masks (comparisons of traced values give masks)")
        return self.tape.apply(GETITEM, self, index=self.tape.backend.index(index))

    def __len__(self):
        return len(self._raw(self))

    def __iter__(self):  # (without it, Python would index 0, 1, ... and a 0-d value would yield nothing)
        shape = self.shape
        if not shape:
            raise TypeError("iteration over a 0-d array (a traced scalar has no entries to loop over)")
        return (self[i] for i in range(shape[0]))

    def transpose(self, *axes):
        return self._namespace(self.tape).transpose(
            self, axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else (axes or None))
    def max(self, axis=None, keepdims=False): return self._namespace(self.tape).max(self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return self._namespace(self.tape).min(self, axis, keepdims)
    def prod(self, axis=None, keepdims=False): return self._namespace(self.tape).prod(self, axis, keepdims)
    def ravel(self): return self.reshape(-1)
    flatten = ravel
    def reshape(self, *shape): return self.tape.apply(RESHAPE, self, shape=shape[0] if len(shape) == 1 else shape)
    def sum(self, axis=None, keepdims=False): return self.tape.unary(SUM, self, {"axis": axis, "keepdims": keepdims})
    def mean(self, axis=None, keepdims=False): return self.tape.unary(MEAN, self, {"axis": axis, "keepdims": keepdims})

    # comparisons give plain boolean arrays of the values: they carry nothing (masks for users' code; rules
    # compare values too, e.g. err - err == 0)
    def __gt__(self, o): return self._raw(self) > self._raw(o)
    def __ge__(self, o): return self._raw(self) >= self._raw(o)
    def __lt__(self, o): return self._raw(self) < self._raw(o)
    def __le__(self, o): return self._raw(self) <= self._raw(o)
    def __eq__(self, o): return self._raw(self) == self._raw(o)
    def __ne__(self, o): return self._raw(self) != self._raw(o)
    __hash__ = object.__hash__  # (== is elementwise, as numpy's; identity hashing stays)

    # numpy's functions on traced values (NEP 13 / 18): the same rules through the namespace, or an error
    # naming xp.<f>. (ndarray @ Var reaches __array_ufunc__ as np.matmul: recorded like Var.__rmatmul__.)
    # A comparison (ndarray > var reaches here as np.greater) is answered on the values, as the operators above
    # answer it: handing it back to an operator would send it to numpy again, and round again.
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method == "__call__" and not kwargs and len(inputs) == 2:
            op = _UFUNC_OPS.get(ufunc)
            if op is not None:
                return self.tape.binary(op, *inputs)
            if ufunc in _COMPARISONS:
                return ufunc(*(self._raw(x) for x in inputs))
        return dispatch_ufunc(self._namespace(self.tape), "traced", ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return dispatch_function(self._namespace(self.tape), "traced", func, args, kwargs)

    # np.asarray(var), np.array([var, var]) and out[i] = var ask for this: without it numpy would take a value of
    # length n for a sequence and build an object array of traced entries, on which np.tanh fails with "no callable
    # tanh method" and np.sum quietly records one primitive per entry
    def __array__(self, dtype=None, copy=None):
        raise TypeError(f"numpy cannot make an array of a traced value (np.asarray, np.array, or assigning it into "
                        f"a numpy array): the {self._carries} would not follow it. Combine traced values with "
                        "xp.stack or xp.concatenate (not np.array or xp.asarray of a list), use xp.asarray only on "
                        "one value (it passes a traced value through), and build new arrays instead of assigning "
                        "into one.")

    # ``tensor @ var`` (the first layer on torch: data @ W) and ``tensor * var`` (targets * outputs): torch's
    # operator would try the op, raise a TypeError and catch it before Python falls back to our reflected
    # method, about 28 us per op. Declaring torch's function protocol makes torch hand the operator over at once.
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = _TORCH_REFLECTED.get(getattr(func, "__name__", None))
        if name is not None and not kwargs and len(args) == 2 and type(args[1]) is cls and type(args[0]) is not cls:
            return getattr(args[1], name)(args[0])
        if any(t is not cls for t in types):
            return NotImplemented  # another tensor-like type is among the arguments: its turn
        # (a TypeError from an operator, e.g. tensor > var, makes torch's operator return NotImplemented, and
        # Python then asks our reflected method; from a torch function called directly it reaches the caller)
        raise TypeError(f"torch function {getattr(func, '__name__', func)!r} got a traced value, whose "
                        f"{cls._carries} torch would lose. Inside a function being differentiated use the xp "
                        "namespace it receives (xp.exp, xp.sum, ...) and operators, not torch.* directly.")

    def __bool__(self):
        raise TypeError(f"the truth value of a traced value is not defined: Python `if`/`and` would cut the "
                        f"{self._carries}'s path. Use xp.maximum / xp.minimum / xp.step to express the branch.")

    # What would cut the path, or change a value in place: an error that says what to write instead (Python's
    # own would only say "must be real number, not Var" or "'Var' object has no attribute ...").
    def __float__(self):
        raise TypeError(f"a traced value cannot become a Python number (float(), int(), math.exp(...)): the "
                        f"{self._carries} would not follow it. Keep it an array and use the xp function the "
                        "differentiator passes in (xp.exp, xp.log, ...); convert only the final result.")

    __int__ = __complex__ = __index__ = __float__

    def __setitem__(self, index, value):
        raise TypeError("a traced array cannot be assigned in place (x[i] = v): build the new array instead, "
                        "e.g. xp.where(mask, v, x), xp.concatenate of the pieces, or xp.pad.")

    def astype(self, dtype, copy=True):
        """The value itself for a floating dtype (the differentiator's ``dtype`` option sets the arithmetic);
        any other dtype would cut the path."""
        if np.dtype(dtype).kind == "f":
            return self
        raise TypeError(f"astype({dtype!r}) of a traced value would cut the {self._carries}'s path (only floating "
                        "dtypes are traced; the differentiator's dtype= option sets which). Compare (x > 0) for a "
                        "mask instead.")

    real = property(lambda self: self)  # (traced values are real)


class Var(Traced):
    """A value on a tape. ``var.value`` is the backend array; arithmetic records new ``Var``s (``Traced``)."""

    __slots__ = ("value", "index", "tape")

    def __init__(self, value: Any, index: int, tape: "Tape"):
        self.value = value
        self.index = index
        self.tape = tape

    def __repr__(self):
        return f"Var(index={self.index}, shape={tuple(self.shape)})"

    # ----- facts about the value (no gradient) -----
    shape = property(lambda self: tuple(self.value.shape))
    ndim = property(lambda self: self.value.ndim)
    dtype = property(lambda self: self.value.dtype)
    size = property(lambda self: int(self.tape.backend.numel(self.value)))

    @staticmethod
    def _raw(x):
        """A traced value's backend array; anything else as it is."""
        return x.value if type(x) is Var else x


# numpy's operator ufuncs (ndarray <op> Var reaches Var.__array_ufunc__) -> the primitive, without the dispatch layer
_UFUNC_OPS = {np.add: ADD, np.subtract: SUB, np.multiply: MUL, np.true_divide: DIV, np.matmul: MATMUL}
_COMPARISONS = frozenset((np.greater, np.greater_equal, np.less, np.less_equal, np.equal, np.not_equal))

# torch's name for ``tensor <op> var`` -> the Var method that records it
_TORCH_REFLECTED = {"add": "__radd__", "sub": "__rsub__", "mul": "__rmul__", "div": "__rtruediv__",
                    "matmul": "__rmatmul__", "pow": "__rpow__"}


_raw = Var._raw
_new_var = object.__new__


_NO_PARAMS: dict = {}  # shared by records without static parameters; never mutated
_LEAF = (None, None, None)  # a leaf's record: no op, nothing kept (its Var holds the value)


def _foreign_tape() -> ValueError:
    return ValueError("a value from another tape (another gradient call) reached this one; "
                      "do not keep traced values between calls")


def unpack_record(record: tuple) -> tuple:
    """``(op, params, out, parents, saved)`` of one record (see ``Tape``); ``op`` is None for a leaf."""
    return record[0], record[1], record[2], record[3::2], record[4::2]


class Tape:
    """A Wengert list on one backend. ``records[i] = (op, params, out, parent_0, saved_0, parent_1, saved_1, ...)``,
    one (parent, saved) pair per input of the primitive, flat (one tuple per record: at a small net's size the
    tape's own objects are a gradient's memory); leaves are ``(None, None, None)``. ``unpack_record`` names
    the parts.

    - ``parent_k``: the record index of input k if it is traced, None for a constant.
    - ``saved_k``: what the VJPs of the traced inputs read of input k (``Op.saves``): the value (a constant is
      kept as given, already converted by ``B.constant``), its shape, or None; ``out``: the output, or None.
      Everything else is dropped when the record is made: an intermediate that no rule reads is freed as
      soon as the model lets go of it, so a gradient's memory peaks where a hand-written backprop's does.

    ``keep_all=True`` keeps every input and output instead (for tools that inspect a recorded tape, such as
    the study's arithmetic count; gradients are the same, memory is not).
    """

    __slots__ = ("backend", "records", "n_leaves")
    keep_all = False

    def __new__(cls, backend: Any, keep_all: bool = False):
        # keep_all: the subclass below, so that the hot paths of an ordinary tape test nothing for it
        return object.__new__(_KeepAllTape if keep_all and cls is Tape else cls)

    def __init__(self, backend: Any, keep_all: bool = False):
        self.backend = backend
        self.records: list[tuple] = []
        self.n_leaves = 0

    def input(self, value: Any) -> Var:
        """Start tracking ``value`` (already a backend array): gradients can be taken with respect to it."""
        return self.inputs([value])[0]

    def inputs(self, values: list) -> list[Var]:
        """``[self.input(v) for v in values]`` in one call (an objective's parameter blocks, every gradient call)."""
        records = self.records
        start = len(records)
        records.extend([_LEAF] * len(values) if not self.keep_all else [(None, None, v) for v in values])
        self.n_leaves += len(values)
        return [Var(v, i, self) for i, v in enumerate(values, start)]

    def _record(self, op: Op, mask: int, parents: list, values: list, params: dict, out: Any,
                kept: Any = None) -> Var:
        """Append a record of ``op`` (``mask``: bit i set when input i is traced), keeping what its rules read
        (``kept``: what the record keeps in place of the output, for an op with a ``residual``)."""
        codes, keep_out = ((VALUE,) * len(values), True) if self.keep_all else op.keep[mask]
        record = [op, params or _NO_PARAMS, (kept if op.residual else out) if keep_out else None]
        for p, v, c in zip(parents, values, codes):
            record += (p, v if c == VALUE else v.shape if c == SHAPE else None)
        records = self.records
        records.append(tuple(record))
        return Var(out, len(records) - 1, self)

    def apply(self, op: Op | str, *args: Any, **params: Any) -> Any:
        """Run primitive ``op`` forward and record it. With no traced argument it just computes (no record)."""
        if type(op) is str:
            try:
                op = OPS[op]
            except KeyError:
                raise NotImplementedError(f"no primitive {op!r} (known: {', '.join(sorted(OPS))}); "
                                          "define it with defop() in reverse/ops.py") from None
        B = self.backend
        mask, values, parents = 0, [], []
        for k, a in enumerate(args):
            if type(a) is Var:
                if a.tape is not self:
                    raise _foreign_tape()
                mask |= 1 << k
                values.append(a.value)
                parents.append(a.index)
            else:
                values.append(B.constant(a))
                parents.append(None)
        out = op.forward(B, *values, **params)
        kept = None
        if op.residual:
            out, kept = out
        if not mask:
            return out
        return self._record(op, mask, parents, values, params, out, kept)

    def binary(self, op: Op, x: Any, y: Any) -> Any:
        """``apply(op, x, y)`` for a two-input primitive without static parameters (the hot path: inlined)."""
        mask = 0
        if type(x) is Var:
            if x.tape is not self:
                raise _foreign_tape()
            xv, px, mask = x.value, x.index, 1
        else:  # (a Python float stays as it is on every backend: no call)
            xv, px = x if type(x) is float else self.backend.constant(x), None
        if type(y) is Var:
            if y.tape is not self:
                raise _foreign_tape()
            yv, py, mask = y.value, y.index, mask | 2
        else:
            yv, py = y if type(y) is float else self.backend.constant(y), None
        out = op.forward(self.backend, xv, yv)
        if not mask:
            return out
        (cx, cy), keep_out = op.keep[mask]
        records = self.records
        records.append((op, _NO_PARAMS, out if keep_out else None,
                        px, xv if cx == VALUE else xv.shape if cx == SHAPE else None,
                        py, yv if cy == VALUE else yv.shape if cy == SHAPE else None))
        v = _new_var(Var)  # Var(out, index, self) without its __init__'s Python frame (the hot path of 0-d code)
        v.value, v.index, v.tape = out, len(records) - 1, self
        return v

    def unary(self, op: Op, x: Any, params: dict = _NO_PARAMS) -> Any:
        """``apply(op, x, **params)`` for a one-input primitive (``params``: its static parameters, if any).

        The reductions (sum, mean, logsumexp) come this way too: apply's generic argument loop and its
        ``**params`` packing cost more than the reduction itself on small arrays.
        """
        if type(x) is not Var or x.tape is not self:
            return self.apply(op, x, **params)  # a constant (no record), or the foreign-tape error
        xv = x.value
        out = op.forward(self.backend, xv) if params is _NO_PARAMS else op.forward(self.backend, xv, **params)
        (cx,), keep_out = op.keep[1]
        records = self.records
        records.append((op, params or _NO_PARAMS, out if keep_out else None,
                        x.index, xv if cx == VALUE else xv.shape if cx == SHAPE else None))
        v = _new_var(Var)  # (as in binary)
        v.value, v.index, v.tape = out, len(records) - 1, self
        return v

    def backward(self, output: Var, wrt: list[Var], into: list | None = None) -> tuple[list[Any], int]:
        """Gradients of scalar ``output`` with respect to each of ``wrt``, and the number of VJPs evaluated.

        Cotangents accumulate: a value used twice (the copy gate) receives the sum of both paths.
        A leaf that ``output`` does not depend on gets zeros. Constants get no VJP at all.
        The walk consumes the tape (as torch's backward does without ``retain_graph``): each record is
        released once used, leaves excepted. Record a fresh tape for another gradient.

        ``into``: optional arrays, one per ``wrt`` (or None), shaped like it, to receive its gradient;
        the gradients returned are then those arrays. A parameter's first contribution is computed
        straight into its array when its op offers an ``into`` rule (see ``ops.Op``).

        Each VJP is called as ``vjp(B, g, out, *saved, **params)`` with the record's kept values (see ``Tape``).
        """
        if output.tape is not self:  # a value kept from an earlier call: its index means nothing here
            raise _foreign_tape()
        B, records = self.backend, self.records
        cotangents: list[Any] = [None] * (output.index + 1)
        cotangents[output.index] = B.ones_like(output.value)
        n_vjps = 0
        dst = {v.index: d for v, d in zip(wrt, into) if d is not None} if into else None
        if output.index >= len(records) or records[output.index] is None:
            raise RuntimeError("this tape has already been walked back (backward consumes it); record the "
                               "function again on a fresh Tape for another gradient")
        no_params = _NO_PARAMS  # a local: the loop below is the hot path of small nets
        for i in range(output.index, -1, -1):
            g = cotangents[i]
            if g is None:
                continue
            record = records[i]
            op = record[0]
            if op is None:
                continue  # a leaf keeps its cotangent: it is a result
            # Free memory as we go: this node's cotangent is fully used, and every consumer of its value
            # (all recorded after it) has been processed, so its record goes too. The peak memory of the
            # backward pass stays near the forward pass's, which spares the allocator fresh pages.
            cotangents[i] = None
            records[i] = None
            n = len(record)
            if n == 5:  # one input, the commonest case, unrolled; then two inputs, then the general loop
                _, params, out, j, xv = record
                vjp = op.vjps[0]
                if vjp is None:
                    continue
                ct = vjp(B, g, out, xv) if params is no_params else vjp(B, g, out, xv, **params)
                n_vjps += 1
                prev = cotangents[j]
                cotangents[j] = ct if prev is None else prev + ct  # the copy gate adds
                continue
            if n == 7 and record[1] is no_params:
                # two inputs without parameters (add, mul, matmul, ...): the general loop below costs as much
                # as the VJPs themselves on small nets. Same order, same sums, same slots.
                _, _, out, px, xv, py, yv = record
                if op.pair is not None and px is not None and py is not None:  # both traced: one call (Op.pair)
                    ct_x, ct_y = op.pair(B, g, out, xv, yv)
                    n_vjps += 2
                    prev = cotangents[px]  # (x first, then y, as below: x * x adds its two halves in that order)
                    cotangents[px] = ct_x if prev is None else prev + ct_x
                    prev = cotangents[py]
                    cotangents[py] = ct_y if prev is None else prev + ct_y
                    continue
                vjp_x, vjp_y = op.vjps
                into_x, into_y = (op.into + (None, None))[:2] if dst and op.into else (None, None)
                if px is not None and vjp_x is not None:
                    prev = cotangents[px]
                    if prev is None and into_x is not None and px in dst:
                        ct = into_x(B, dst[px], g, out, xv, yv)  # the parameter's own slot
                    else:
                        ct = vjp_x(B, g, out, xv, yv)
                    n_vjps += 1
                    cotangents[px] = ct if prev is None else prev + ct
                if py is not None and vjp_y is not None:
                    prev = cotangents[py]
                    if prev is None and into_y is not None and py in dst:
                        ct = into_y(B, dst[py], g, out, xv, yv)
                    else:
                        ct = vjp_y(B, g, out, xv, yv)
                    n_vjps += 1
                    cotangents[py] = ct if prev is None else prev + ct
                continue
            _, params, out, parents, saved = unpack_record(record)
            for k, (j, vjp) in enumerate(zip(parents, op.vjps)):
                if vjp is None or j is None:
                    continue
                prev = cotangents[j]
                if prev is None and dst and j in dst and k < len(op.into) and op.into[k] is not None:
                    ct = op.into[k](B, dst[j], g, out, *saved, **params)  # the parameter's own slot
                else:
                    ct = vjp(B, g, out, *saved, **params)
                n_vjps += 1
                cotangents[j] = ct if prev is None else prev + ct  # the copy gate adds
        grads = []
        for n, v in enumerate(wrt):
            g = cotangents[v.index] if v.index <= output.index else None
            d = into[n] if into else None
            if d is None:
                grads.append(B.zeros_like(v.value) if g is None else g)
            elif g is not d:  # several contributions, or none: the sum (or zeros) goes into the slot
                grads.append(B.copy_into(d, 0.0 if g is None else g))
            else:
                grads.append(d)
        return grads, n_vjps


class _KeepAllTape(Tape):
    """``Tape(backend, keep_all=True)``: every record keeps all its inputs and its output (see ``Tape``)."""

    __slots__ = ()
    keep_all = True

    def binary(self, op: Op, x: Any, y: Any) -> Any:
        return self.apply(op, x, y)

    def unary(self, op: Op, x: Any, params: dict = _NO_PARAMS) -> Any:
        return self.apply(op, x, **params)


class TapeNamespace(Composites):
    """The ``xp`` models see under reverse mode: every call becomes a record on the tape.

    The core below is one primitive per function; ``Composites`` (diffsuite.namespace) adds the exact
    compositions (var, std, norm, clip, stack, tile, dot, tensordot, ...).
    """

    name = "tape"

    def __init__(self, tape: Tape):
        self.tape = tape

    def exp(self, x): return self.tape.unary(EXP, x)
    def log(self, x): return self.tape.unary(LOG, x)
    def tanh(self, x): return self.tape.unary(TANH, x)
    def sigmoid(self, x): return self.tape.unary(SIGMOID, x)
    def abs(self, x): return self.tape.unary(ABS, x)
    def step(self, x): return self.tape.unary(STEP, x)
    def maximum(self, a, b): return self.tape.binary(MAXIMUM, a, b)
    def minimum(self, a, b): return self.tape.binary(MINIMUM, a, b)
    def sum(self, x, axis=None, keepdims=False): return self.tape.unary(SUM, x, {"axis": axis, "keepdims": keepdims})
    def mean(self, x, axis=None, keepdims=False): return self.tape.unary(MEAN, x, {"axis": axis, "keepdims": keepdims})
    def logsumexp(self, x, axis=None, keepdims=False):  # (scipy's default: every axis)
        if not getattr(x, "ndim", np.ndim(x)):  # one value: log(exp(x)) is x (a 0-d value has no axis -1 to reduce)
            return x
        return self.tape.unary(LOGSUMEXP, x, {"axis": axis, "keepdims": keepdims})
    def _softmax(self, x, axis=-1): return self.tape.unary(OPS["softmax"], x, {"axis": int(axis)})  # nn.Softmax's
    def reshape(self, x, shape): return self.tape.apply(RESHAPE, x, shape=(int(shape),) if isinstance(shape, (int, np.integer)) else tuple(shape))
    def asarray(self, x):
        # np.asarray returns an array as it is: a traced value passes through (at every level of nesting), so the
        # function stays the one finite differences and the symbolic engine see; data becomes a constant
        return x if isinstance(x, Traced) else self.tape.backend.constant(x)

    # ----- the rest of the numpy subset (docs/language.md) -----
    def sqrt(self, x): return self.tape.unary(OPS["sqrt"], x)
    def sin(self, x): return self.tape.unary(OPS["sin"], x)
    def cos(self, x): return self.tape.unary(OPS["cos"], x)
    def tan(self, x): return self.tape.unary(OPS["tan"], x)
    def arcsin(self, x): return self.tape.unary(OPS["arcsin"], x)
    def arccos(self, x): return self.tape.unary(OPS["arccos"], x)
    def arctan(self, x): return self.tape.unary(OPS["arctan"], x)
    def arctan2(self, y, x): return self.tape.binary(OPS["arctan2"], y, x)
    def sinh(self, x): return self.tape.unary(OPS["sinh"], x)
    def cosh(self, x): return self.tape.unary(OPS["cosh"], x)
    def log1p(self, x): return self.tape.unary(OPS["log1p"], x)
    def expm1(self, x): return self.tape.unary(OPS["expm1"], x)
    def log2(self, x): return self.tape.unary(OPS["log2"], x)
    def log10(self, x): return self.tape.unary(OPS["log10"], x)
    def erf(self, x): return self.tape.unary(OPS["erf"], x)
    def softplus(self, x): return self.tape.unary(OPS["softplus"], x)
    def log_sigmoid(self, x): return self.tape.unary(OPS["log_sigmoid"], x)
    def sign(self, x): return self.tape.unary(OPS["sign"], x)
    def _sqrt0(self, x): return self.tape.unary(OPS["sqrt0"], x)

    def power(self, x, y):
        if type(x) is not Var and type(y) is not Var:
            return self.tape.apply(POW, x, y)
        return x ** y if type(x) is Var else self.tape.apply(POW, x, y)

    def where(self, cond, a, b):
        B = self.tape.backend
        return self.tape.apply(OPS["where"], a, b, cond=B.mask(_raw(cond)))

    def _reduce(self, op, x, axis, keepdims, who):
        """A reduction primitive that takes axis None or one int; a tuple of axes is merged into one first."""
        axes = normalize_axes(axis, len(np.shape(_raw(x))), who)
        if axes is None or len(axes) == 1:
            return self.tape.apply(op, x, axis=None if axes is None else axes[0], keepdims=keepdims)
        shape = np.shape(_raw(x))
        rest = [a for a in range(len(shape)) if a not in axes]
        moved = self.reshape(self.transpose(x, tuple(rest) + axes), tuple(shape[a] for a in rest) + (-1,))
        out = self.tape.apply(op, moved, axis=-1, keepdims=False)
        return self.reshape(out, tuple(1 if a in axes else n for a, n in enumerate(shape))) if keepdims else out

    def max(self, x, axis=None, keepdims=False): return self._reduce(OPS["max"], x, axis, keepdims, "max")
    def min(self, x, axis=None, keepdims=False): return self._reduce(OPS["min"], x, axis, keepdims, "min")
    def prod(self, x, axis=None, keepdims=False): return self._reduce(OPS["prod"], x, axis, keepdims, "prod")

    def cumsum(self, x, axis=None):
        if axis is None:
            return self.tape.apply(OPS["cumsum"], self.reshape(x, (-1,)), axis=0)
        return self.tape.apply(OPS["cumsum"], x, axis=int(axis))

    def transpose(self, x, axes=None):
        ndim = len(np.shape(_raw(x)))
        axes = tuple(reversed(range(ndim))) if axes is None else tuple(int(a) % ndim for a in axes)
        return self.tape.apply(OPS["permute"], x, axes=axes)

    def broadcast_to(self, x, shape): return self.tape.apply(OPS["broadcast_to"], x, shape=tuple(shape))
    def _pad(self, x, widths, value): return self.tape.apply(OPS["pad"], x, pad_width=widths, value=value)

    def concatenate(self, xs, axis=0):
        xs = list(xs)
        if not xs:
            raise ValueError("xp.concatenate needs at least one array to join; got none")
        ndim = len(np.shape(_raw(xs[0])))
        if ndim == 0:  # (numpy's own words)
            raise ValueError("zero-dimensional arrays cannot be concatenated; use xp.stack to join scalars")
        if not -ndim <= int(axis) < ndim:
            raise ValueError(f"xp.concatenate: axis {axis} is out of range for arrays of {ndim} dimensions")
        axis = int(axis) % ndim
        out = xs[0]
        for x in xs[1:]:  # pairwise: each join is one primitive of two inputs
            out = self.tape.apply(OPS["concatenate"], out, x, axis=axis, split=np.shape(_raw(out))[axis])
        return out if len(xs) > 1 else self.tape.apply(RESHAPE, out, shape=np.shape(_raw(out)))

    def einsum(self, subscripts, *operands):
        subscripts, operands = einsum_arguments(subscripts, operands)  # (numpy's sublist form too)
        ndims = [len(np.shape(_raw(x))) for x in operands]
        ins, out = _explicit_ellipsis(*parse_einsum(subscripts, ndims), ndims)
        while len(ins) > 3:  # contract the first two, keeping the letters the rest or the output still need
            rest = "".join(ins[2:]) + out
            keep = "".join(dict.fromkeys(c for c in ins[0] + ins[1] if c in rest))
            first = self.tape.apply(OPS["einsum2"], operands[0], operands[1], spec=((ins[0], ins[1]), keep))
            ins, operands = [keep] + ins[2:], (first,) + tuple(operands[2:])
        return self.tape.apply(OPS[f"einsum{len(ins)}"], *operands, spec=(tuple(ins), out))


def _explicit_ellipsis(ins: list[str], out: str, ndims: list[int]) -> tuple[list[str], str]:
    """einsum subscripts with each ``...`` written as letters no operand uses, right-aligned as numpy broadcasts
    them (the rules name every axis by its letter: a VJP swaps the operand's letters with the output's)."""
    if not any("..." in s for s in ins) and "..." not in out:
        return ins, out
    used = set("".join(ins) + out)
    widths = [nd - len(s.replace("...", "")) for s, nd in zip(ins, ndims)]
    k = max((w for s, w in zip(ins, widths) if "..." in s), default=0)
    free = [c for c in string.ascii_letters if c not in used][:k]
    if len(free) < k:
        raise NotImplementedError(f"xp.einsum: not enough free letters to name the {k} axes of '...'")
    ins = [s.replace("...", "".join(free[k - w:])) if "..." in s else s for s, w in zip(ins, widths)]
    return ins, out.replace("...", "".join(free))


Var._namespace = TapeNamespace  # (defined after Var, whose methods it records)
