"""A backend whose arrays are traced values: the VJP rules, run on it, are themselves differentiated.

Higher derivatives without a second rule table (as in HIPS autograd): the reverse engine's VJPs
and the forward engine's JVPs are written against a backend ``B``. Give them a ``LiftedBackend``
whose arrays are the values of an *outer* trace (``Var``s of an outer ``Tape``: the backward pass
is recorded, reverse-over-reverse; or ``Dual``s of a forward trace: forward-over-reverse and
forward-over-forward) and every array operation inside a rule becomes a primitive of that outer
trace, differentiable again. Only this backend knows about the nesting; rules and tapes do not.

Each backend method is expressed through primitives of ``ops.OPS`` (sum_to = sum + reshape,
expand_to = reshape + broadcasting add, outer = reshape * reshape, ...) plus two helper ops that
are linear in their traced input and live here: ``select`` (where(mask, x, 0) with a constant
mask) and ``scatter_add`` (the adjoint of getitem). Comparisons, signs, sizes and ``*_like``
constructors act on primal values and are constants of the outer trace (no derivative flows
through a mask). Arguments that are not traced values of the outer trace go to the inner backend
unchanged, so a rule on constants costs what it costs without nesting.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np

from .ops import GETITEM, MATMUL, OPS, RESHAPE, SUM, TRANSPOSE, Op, make_op
from .tape import _foreign_tape

def _numpy_scalar(v):
    """A recorded value as numpy's scalar: the numpy backend's 0-d dsigmoid is a Python float (its first-order hot
    path skips the conversion), and a record needs a value with a shape."""
    return np.float64(v) if type(v) is float else v


SELECT = make_op("select", lambda B, x, *, mask: B.where(mask, x, 0.0),
                 lambda B, g, out, x, *, mask: B.sum_to(B.where(mask, g, 0.0), x),
                 saves=("x.shape",))
SCATTER_ADD = make_op("scatter_add", lambda B, x, *, shape, index: B.scatter(x, shape, index),
                      lambda B, g, out, x, *, shape, index: B.getitem(g, index),
                      saves=("",))
# Two backend methods that the VJP rules call are recorded as ops of their own, for accuracy: differentiated
# through their compositions, their derivatives cancel near 0 (a relative error of eps / |x|: every digit below
# |x| = 1e-16). sigmoid'(x) = s(x) s(-x) gives sigmoid''(x) = sigmoid'(x) (s(-x) - s(x)), a difference of two
# values near 1/2, where -sigmoid'(x) tanh(x / 2) is exact to a few ulp: tanh'' (tanh' = 4 sigmoid'(2x)),
# sigmoid'' and the third derivative of softplus near 0. Likewise 1 - x^2 as (1 - x)(1 + x), arcsin's and
# arccos's: the product's derivative (1 - x) - (1 + x) is -2x only to within eps; recorded, it is -2x exactly.
DSIGMOID = make_op("dsigmoid", lambda B, x: _numpy_scalar(B.dsigmoid(x)),
                   lambda B, g, out, x: g * (B.tanh(-0.5 * x) * out),  # sigmoid'' = -sigmoid' tanh(x / 2)
                   saves=("out x",))
ONE_MINUS_SQUARE = make_op("one_minus_square", lambda B, x: B.one_minus_square(x),
                           lambda B, g, out, x: g * (-2.0 * x),
                           saves=("x",))
#: the helper ops this module records besides those of ``ops.OPS`` (each has a JVP too: forward/jvps.py)
LIFTED_OPS = {op.name: op for op in (SELECT, SCATTER_ADD, DSIGMOID, ONE_MINUS_SQUARE)}


_KEYWORDS: dict[str, list[str]] = {}


def _keyword_params(op: Op) -> list[str]:
    """The static parameters of ``op`` (keyword-only in its forward), read once per op."""
    if op.name not in _KEYWORDS:
        _KEYWORDS[op.name] = [p.name for p in inspect.signature(op.forward).parameters.values()
                              if p.kind == p.KEYWORD_ONLY]
    return _KEYWORDS[op.name]


def _any(mask) -> bool:
    """Whether a mask (numpy, torch or a Python bool) has any True entry."""
    return bool(mask.any()) if hasattr(mask, "any") else bool(mask)


def refuse_kept_value(out: Any, current: Any, backend: Any) -> None:
    """The error of a traced value kept from an earlier call: ``out`` is traced (it has a ``tape``) but belongs
    neither to ``current`` (the tape or trace that just ran) nor to a trace ``backend`` records on (an enclosing
    level's value, a constant here). Its index would mean nothing on this tape."""
    trace = getattr(out, "tape", None)
    if trace is not None and trace is not current and not is_outer_value(backend, out):
        raise _foreign_tape()


def is_outer_value(B: Any, v: Any) -> bool:
    """Whether traced ``v`` belongs to a trace that backend ``B`` records on (a constant here, as the enclosing
    levels' values are), walking down nested lifted backends; False for a value kept from a finished call."""
    while isinstance(B, LiftedBackend):
        if B.owns(v):
            return True
        B = B.inner
    return False


class LiftedBackend:
    """The backend ``inner`` with arrays replaced by values that ``apply`` records.

    Args:
        inner: the backend of the outer trace (numpy, torch, or another ``LiftedBackend``).
        apply: ``apply(op, *args, **params)`` of the outer trace (``Tape.apply``, ``ForwardTrace.apply``).
        owns: ``owns(x)`` is True for the outer trace's values.
        primal: ``primal(x)`` of an owned value: its inner array.
        tangent: ``tangent(x)`` of an owned value (forward mode's duals: leading direction axes, then x's shape), or
            None (a tape's values carry nothing yet). The strong zeros read it: a derivative whose value is finite
            can have an infinite tangent (sqrt at 0), and 0 times it must stay 0.
    """

    def __init__(self, inner: Any, apply: Callable, owns: Callable[[Any], bool], primal: Callable[[Any], Any],
                 tangent: Callable[[Any], Any] | None = None):
        self.inner, self._apply, self.owns, self._primal, self._tangent = inner, apply, owns, primal, tangent
        self.name = f"lifted({inner.name})"
        self.dtype, self.device = inner.dtype, inner.device

    def __repr__(self):
        return f"LiftedBackend({self.inner!r})"

    def raw(self, x):
        """The inner array under ``x`` (``x`` itself when it is not traced)."""
        return self._primal(x) if self.owns(x) else x

    def _shape(self, like) -> tuple:
        """The shape of ``like``: a traced value, an array, or already a shape (rules pass either)."""
        return tuple(like) if isinstance(like, tuple) else tuple(self.raw(like).shape)  # (torch.Size is a tuple)

    def _op(self, op: Op, *args, **params):
        return self._apply(op, *args, **params)

    # ----- conversion and facts (constants of the outer trace) -----
    def asarray(self, x): return self.inner.asarray(x)
    def constant(self, x): return x if self.owns(x) else self.inner.constant(x)
    def item(self, x) -> float: return self.inner.item(self.raw(x))
    def to_numpy(self, x): return self.inner.to_numpy(self.raw(x))
    def numel(self, x) -> int: return self.inner.numel(self.raw(x))
    def ones_like(self, x): return self.inner.ones_like(self.raw(x))
    def zeros_like(self, x): return self.inner.zeros_like(self.raw(x))
    def empty(self, n: int): return self.inner.empty(n)
    def synchronize(self): self.inner.synchronize()
    def sign(self, x): return self.inner.sign(self.raw(x))
    def ge(self, x, y): return self.inner.ge(self.raw(x), self.raw(y))
    def le(self, x, y): return self.inner.le(self.raw(x), self.raw(y))

    # ----- primitives of the table -----
    def exp(self, x): return self._op(OPS["exp"], x)
    def log(self, x): return self._op(OPS["log"], x)
    def tanh(self, x): return self._op(OPS["tanh"], x)
    def sigmoid(self, x): return self._op(OPS["sigmoid"], x)
    def abs(self, x): return self._op(OPS["abs"], x)
    def step(self, x): return self._op(OPS["step"], x)
    def maximum(self, x, y): return self._op(OPS["maximum"], x, y)
    def minimum(self, x, y): return self._op(OPS["minimum"], x, y)
    def sum(self, x, axis=None, keepdims=False): return self._op(SUM, x, axis=axis, keepdims=keepdims)
    def mean(self, x, axis=None, keepdims=False): return self._op(OPS["mean"], x, axis=axis, keepdims=keepdims)
    def logsumexp(self, x, axis=None, keepdims=False):
        return self._op(OPS["logsumexp"], x, axis=axis, keepdims=keepdims)
    def softmax(self, x, axis=-1): return self._op(OPS["softmax"], x, axis=axis)
    def reshape(self, x, shape): return self._op(RESHAPE, x, shape=tuple(shape) if not isinstance(shape, int) else shape)
    def getitem(self, x, index): return self._op(GETITEM, x, index=index)
    def matmul(self, x, y, out=None): return self._op(MATMUL, x, y)  # (no out=: a traced result is a new value)

    def swapaxes(self, x, a, b):
        if {a, b} != {-1, -2}:
            raise NotImplementedError(f"the lifted backend swaps the last two axes only; got axes {a}, {b}")
        return self._op(TRANSPOSE, x) if self.raw(x).ndim > 1 else x

    def expand_dims(self, x, axis):
        if not self.owns(x):
            return self.inner.expand_dims(x, axis)
        shape = list(self.raw(x).shape)
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
        ndim = len(shape) + len(axes)
        for a in sorted(a % ndim for a in axes):
            shape.insert(a, 1)
        return self.reshape(x, shape)

    def outer(self, x, y):
        if not (self.owns(x) or self.owns(y)):
            return self.inner.outer(x, y)
        return self.reshape(x, (-1, 1)) * self.reshape(y, (1, -1))

    # ----- linear helpers of the VJP rules -----
    def where(self, cond, x, y):
        cond = self.raw(cond)
        if not (self.owns(x) or self.owns(y)):
            return self.inner.where(cond, x, y)
        parts = [self._op(SELECT, v, mask=m) if self.owns(v) else self.inner.where(m, v, 0.0)
                 for v, m in ((x, cond), (y, ~cond)) if not (isinstance(v, (int, float)) and v == 0)]
        return parts[0] if len(parts) == 1 else parts[0] + parts[1]

    def zero_where_le(self, g, a, b):
        if not self.owns(g):
            return self.inner.zero_where_le(g, self.raw(a), self.raw(b))
        return self._op(SELECT, g, mask=~self.inner.le(self.raw(a), self.raw(b)))  # (NaN in a keeps g)

    def sum_to(self, g, like):
        if not self.owns(g):
            return self.inner.sum_to(g, self.raw(like))  # (a shape stays a shape)
        shape = self._shape(like)
        gshape = tuple(self.raw(g).shape)
        if gshape == shape:
            return g
        lead = len(gshape) - len(shape)
        if lead > 0:
            g = self.sum(g, axis=tuple(range(lead)))
            gshape = gshape[lead:]
        axes = tuple(i for i, n in enumerate(shape) if n == 1 and gshape[i] != 1)
        if axes:
            g = self.sum(g, axis=axes, keepdims=True)
        return g if tuple(self.raw(g).shape) == shape else self.reshape(g, shape)

    def expand_to(self, g, like, axis, keepdims):
        if not self.owns(g):
            return self.inner.expand_to(g, self.raw(like), axis, keepdims)
        if axis is not None and not keepdims:
            g = self.expand_dims(g, axis)
        zero = self.inner.sum(self.inner.zeros_like(self.raw(g)))  # a 0-d zero in g's dtype, on its device
        return g + self.inner.expand_to(zero, self._shape(like), None, False)  # broadcasting add: its VJP sums back

    def scatter(self, g, like, index):
        if not self.owns(g):
            return self.inner.scatter(g, self.raw(like), index)
        return self._op(SCATTER_ADD, g, shape=self._shape(like), index=index)

    # ----- backend methods of the numpy subset's rules (ops of the same name are recorded by __getattr__) -----
    def mask(self, cond): return self.inner.mask(self.raw(cond))
    def index(self, index): return self.inner.index(index)
    def expit(self, x): return self.sigmoid(x)
    def amax(self, x, axis=None, keepdims=False): return self._extreme("max", x, axis, keepdims)
    def amin(self, x, axis=None, keepdims=False): return self._extreme("min", x, axis, keepdims)

    def _extreme(self, name, x, axis, keepdims):
        """max / min over ``axis``; several axes (logsumexp's) are moved last and merged first, since the op's rule
        routes the gradient along one axis (to the first extreme entry in C order, as over the merged axis)."""
        if isinstance(axis, (tuple, list)) and len(axis) == 1:
            axis = axis[0]
        if not isinstance(axis, (tuple, list)):
            return self._op(OPS[name], x, axis=axis, keepdims=keepdims)
        shape = self._shape(x)
        axes = sorted(a % len(shape) for a in axis)
        kept = [a for a in range(len(shape)) if a not in axes]
        merged = self.reshape(self.transpose(x, kept + axes), tuple(shape[a] for a in kept) + (-1,))
        out = self._op(OPS[name], merged, axis=-1, keepdims=False)
        return self.reshape(out, tuple(1 if a in axes else n for a, n in enumerate(shape))) if keepdims else out
    def transpose(self, x, axes): return self._op(OPS["permute"], x, axes=tuple(axes))
    def cumsum(self, x, axis): return self._op(OPS["cumsum"], x, axis=axis)
    def pad(self, x, pad_width, value): return self._op(OPS["pad"], x, pad_width=pad_width, value=value)

    def dsigmoid(self, x):
        """sigmoid'(x), recorded as the op ``DSIGMOID``: the inner backend's value, and the derivative
        -sigmoid'(x) tanh(x / 2), accurate in saturation and near 0 (s(x) s(-x) differentiated cancels near 0;
        s (1 - s) in saturation)."""
        if not self.owns(x):
            return self.inner.dsigmoid(x)
        return self._op(DSIGMOID, x)

    def one_minus_square(self, x):
        """1 - x^2, recorded as the op ``ONE_MINUS_SQUARE`` (derivative -2x, exactly)."""
        if not self.owns(x):
            return self.inner.one_minus_square(x)
        return self._op(ONE_MINUS_SQUARE, x)

    def exp_neg_square(self, x):
        return self.inner.exp_neg_square(x) if not self.owns(x) else self.exp(-(x * x))

    def hypot(self, y, x):
        if not (self.owns(x) or self.owns(y)):
            return self.inner.hypot(y, x)
        return self._op(OPS["sqrt"], x * x + y * y)

    # The strong zeros mask only where the primal cotangent is 0 *and* the local derivative is inf or nan (or, for
    # a division, 0): a zero cotangent whose own derivative is not zero (a gradient that vanishes at the point,
    # differentiated again) must keep its second-order term; masking every g == 0 made Hessians wrong.
    def _tangent_parts(self, x):
        """(whether each entry's tangent is 0 in every direction, whether it is inf or nan in some), primal-shaped;
        None where ``x`` has no plain tangent array (a tape's value, a constant, a deeper trace's dual)."""
        if self._tangent is None or not self.owns(x):
            return None
        t, p = self._tangent(x), self.raw(x)
        if type(t) is not type(p) and not (type(t) is np.ndarray and isinstance(p, np.generic)):  # (a 0-d value:
            return None                                                         # numpy's scalar, its tangent an array)
        zero, bad = t == 0, t - t != 0
        for _ in range(t.ndim - p.ndim):  # fold the direction axes
            zero, bad = zero.all(0), bad.any(0)
        return zero, bad

    def _strong_mask(self, g, d, also_zero_d: bool):
        """Where g * d (g / d) is a strong zero: g is 0 and d is inf or nan (or 0, for a division) in value, or in
        tangent where g's own tangent is 0 too (then g is 0 to first order, and so is the product)."""
        g_zero = self.raw(g) == 0
        if not _any(g_zero):  # the common case: nothing can be masked, and no tangent needs reading
            return g_zero
        rd = self.raw(d)
        with np.errstate(invalid="ignore"):  # (inf - inf: the entries masked)
            bad_d = rd - rd != 0
            if also_zero_d:
                bad_d = bad_d | (rd == 0)
            td = self._tangent_parts(d)
            if td is not None:
                tg = self._tangent_parts(g)
                bad_d = bad_d | (td[1] & (True if tg is None else tg[0]))
        return g_zero & bad_d

    def strong(self, g, d):
        """g * d, and 0 where g == 0 and d is inf or nan (the masks read the primal values, and duals' tangents)."""
        if not (self.owns(g) or self.owns(d)):
            return self.inner.strong(g, d)
        bad = self._strong_mask(g, d, False)
        if not _any(bad):  # the common case: no mask recorded (a mask shaped like a batched tangent g would also
            return g * d   # broadcast against the outer trace's own directions in SELECT's rule)
        return self.where(bad, 0.0, g * d)

    def strong_to(self, g, d, like):
        """``sum_to(strong(g, d), like)`` (mul's VJPs), recorded as its two parts."""
        return self.sum_to(self.strong(g, d), like)

    def strong_swap(self, g, x, y):
        """``(strong_to(g, y, x), strong_to(g, x, y))``: both of mul's VJPs (``Op.pair``)."""
        return self.strong_to(g, y, x), self.strong_to(g, x, y)

    def strong_div(self, g, d):
        """g / d, and 0 where g == 0 and d is 0, inf or nan."""
        if not (self.owns(g) or self.owns(d)):
            return self.inner.strong_div(g, d)
        bad = self._strong_mask(g, d, True)
        if not _any(bad):  # (as strong)
            return g / d
        return self.where(bad, 0.0, g / self.where(bad, 1.0, d))

    def power(self, x, y):
        """x ** y: a constant scalar exponent records ``power`` (its parameter), a traced or array one ``pow``."""
        if not (self.owns(x) or self.owns(y)):
            return self.inner.power(x, y)
        if self.owns(y) or np.ndim(y) != 0:  # (power's rules branch on p: a scalar only)
            return self._op(OPS["pow"], x, y)
        return self._op(OPS["power"], x, p=y)

    def put_at_arg(self, g, x, axis, keepdims, largest):
        """Linear in g: g (expanded to x's shape) where x has its first maximal (minimal) entry, 0 elsewhere."""
        if not self.owns(g):
            return self.inner.put_at_arg(g, self.raw(x), axis, keepdims, largest)
        raw_g, raw_x = self.raw(g), self.raw(x)
        hit = self.inner.put_at_arg(self.inner.ones_like(raw_g), raw_x, axis, keepdims, largest) != 0
        return self._op(SELECT, self.expand_to(g, raw_x, axis, keepdims), mask=hit)

    def flip(self, x, axis):
        if not self.owns(x):
            return self.inner.flip(x, axis)
        nd = self.raw(x).ndim
        axes = range(nd) if axis is None else [a % nd for a in ((axis,) if isinstance(axis, int) else axis)]
        return self.getitem(x, tuple(slice(None, None, -1) if a in axes else slice(None) for a in range(nd)))

    def concatenate(self, xs, axis=0):
        xs = list(xs)
        if not any(self.owns(x) for x in xs):
            return self.inner.concatenate(tuple(xs), axis)
        nd = self.raw(xs[0]).ndim
        axis %= nd
        out = xs[0]
        for x in xs[1:]:
            out = self._op(OPS["concatenate"], out, x, axis=axis, split=self.raw(out).shape[axis])
        return out

    def broadcast_to(self, x, shape):
        if not self.owns(x):
            return self.inner.broadcast_to(x, shape)
        return self._op(OPS["broadcast_to"], x, shape=tuple(shape))

    def prod_of_others(self, x, axis):
        """For each entry, the product of the other entries along ``axis`` (None: all), through traced primitives:
        inclusive products from each side (a log-step scan of getitem, mul and concatenate), then
        others[k] = left[k - 1] * right[k + 1]. No division, so zeros are exact, and each step is differentiable
        again (prod's Hessian, and deeper: prod's own rule calls this)."""
        if not self.owns(x):
            return self.inner.prod_of_others(x, axis)
        shape = tuple(self.raw(x).shape)
        if 0 in shape:  # no entries: nothing to multiply, a constant
            return self.inner.ones_like(self.raw(x)) * 0.0
        if axis is None:
            return self.reshape(self.prod_of_others(self.reshape(x, (-1,)), 0), shape)
        axis %= len(shape)
        n = shape[axis]
        if n == 1:  # no other entries: the empty product, a constant
            return self.inner.ones_like(self.raw(x))

        def part(a, lo, hi):
            return self.getitem(a, (slice(None),) * axis + (slice(lo, hi),))

        def scan(a):  # inclusive products along axis: a[..., k] = x[..., 0] * ... * x[..., k]
            s = 1
            while s < n:
                a = self.concatenate([part(a, 0, s), part(a, s, n) * part(a, 0, n - s)], axis)
                s *= 2
            return a

        left, right = scan(x), self.flip(scan(self.flip(x, axis)), axis)
        pieces = [part(right, 1, 2)]  # others[0] = right[1]
        if n > 2:
            pieces.append(part(left, 0, n - 2) * part(right, 2, n))  # others[k] = left[k - 1] * right[k + 1]
        pieces.append(part(left, n - 2, n - 1))  # others[n - 1] = left[n - 2]
        return self.concatenate(pieces, axis)

    def einsum(self, subscripts, *operands):
        if not any(self.owns(x) for x in operands):
            return self.inner.einsum(subscripts, *operands)
        ins, out = subscripts.replace(" ", "").split("->")
        ins = tuple(ins.split(","))
        return self._op(OPS[f"einsum{len(ins)}"], *operands, spec=(ins, out))

    # ----- what only the first-order fast paths use -----
    def _first_order_only(self, name):
        raise NotImplementedError(f"backend method {name!r} writes into a buffer: the first-order fast path only; "
                                  "a recorded backward pass has no buffers (this is a bug if you see it)")

    def copy_into(self, dst, x): self._first_order_only("copy_into")
    def sum_to_into(self, dst, g): self._first_order_only("sum_to_into")

    def __getattr__(self, name: str):
        # a backend method added with a new primitive of the same name: record that primitive
        op = OPS.get(name)
        if op is None or name.startswith("_"):
            raise AttributeError(f"backend method {name!r} has no lifted version, so rules that call it cannot be "
                                 "differentiated again; add it to LiftedBackend in differentiators/reverse/lifted.py")
        n_inputs = len(op.vjps)  # the op's traced inputs; static parameters are keyword-only in its forward
        names = _keyword_params(op)

        def lifted(*args, **params):
            if len(args) > n_inputs:  # backend methods take static parameters positionally (broadcast_to(x, shape))
                if len(args) - n_inputs > len(names):
                    raise TypeError(f"backend method {name!r}: {len(args)} positional arguments, but op {op.name!r} "
                                    f"has {n_inputs} inputs and the parameters {names}")
                params = {**dict(zip(names, args[n_inputs:])), **params}
                args = args[:n_inputs]
            return self._op(op, *args, **params)
        return lifted
