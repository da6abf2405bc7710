"""One JVP per primitive, keyed by the op names of the reverse engine's table (``reverse/ops.py``).

Rule signature: ``jvp(B, ts, out, *xs, **params) -> tangent of out`` (or ``None``: zero).
``B`` is the backend (the same numpy/torch methods the VJPs use), ``ts`` one tangent per array
input (``None`` for a constant input), ``out`` the primal output, ``xs`` the primal inputs and
``params`` the op's static parameters. The forward values come from the op's own ``forward``:
only the tangent is defined here.

Batched tangents: a tangent may carry *leading* axes beyond its primal's shape (``k`` directions
at once: ``t.shape == lead + x.shape``); every rule keeps those axes in front, so one pass gives
``k`` JVPs (a Jacobian or Hessian in one sweep). Rules therefore use negative axes, align
tangents of broadcast inputs with ``_align``, and broadcast a lone tangent up to the output with
``_fit``. Without leading axes they reduce to the textbook rules.

Kinks follow the conventions of the VJPs (docs/architecture.md, "Kink conventions"): ``maximum`` takes its
first argument's tangent on ties, ``abs'(0) = 0``, ``step' = 0``. So forward and reverse mode agree everywhere.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..reverse.ops import OPS, pow_dx, pow_dy, softmax_shifted


def _ndim(a) -> int:
    return getattr(a, "ndim", 0)


def _shape(a) -> tuple:
    return tuple(getattr(a, "shape", ()))


def _lead(t, x) -> int:
    """How many leading (batch-of-directions) axes the tangent ``t`` has beyond its primal ``x``."""
    return _ndim(t) - _ndim(x)


def _align(B, t, x, ndim: int):
    """``t`` (tangent of ``x``) reshaped so that it broadcasts like ``x`` against a result of ``ndim`` axes:
    ones inserted between the leading direction axes and ``x``'s own axes (numpy aligns trailing axes)."""
    if t is None:
        return None
    x_ndim = _ndim(x)
    gap = ndim - x_ndim
    if gap <= 0:
        return t
    lead = t.ndim - x_ndim
    if lead == 0:
        return t
    s = _shape(t)
    return B.reshape(t, s[:lead] + (1,) * gap + s[lead:])


def _fit(B, t, out):
    """``t`` broadcast to its full shape (leading axes + ``out``'s shape): a lone tangent of a broadcast input."""
    if t is None:
        return None
    want = _shape(out)
    s = _shape(t)
    if s[len(s) - len(want):] == want and len(s) >= len(want):
        return t
    return t + B.zeros_like(out)


def _add(a, b):
    """Sum of two tangents where either may be None (zero)."""
    if a is None:
        return b
    return a if b is None else a + b


def _neg_axes(axis, ndim: int):
    """``axis`` counted from the end, so that leading direction axes of a tangent do not shift it."""
    if axis is None:
        return tuple(range(-ndim, 0))
    if isinstance(axis, tuple):
        return tuple(a - ndim if a >= 0 else a for a in axis)
    return axis - ndim if axis >= 0 else axis


def _reduce(B, fn, t, x, axis, keepdims):
    axes = _neg_axes(axis, _ndim(x))
    if axes == ():  # a 0-d input: nothing to reduce (torch would read dim=() as "every axis")
        return t
    return fn(t, axis=axes, keepdims=keepdims)


# ----- arithmetic, with broadcasting -----
def add_jvp(B, ts, out, x, y):
    n = _ndim(out)
    return _fit(B, _add(_align(B, ts[0], x, n), _align(B, ts[1], y, n)), out)


def sub_jvp(B, ts, out, x, y):
    n = _ndim(out)
    tx, ty = _align(B, ts[0], x, n), _align(B, ts[1], y, n)
    return _fit(B, tx if ty is None else (-ty if tx is None else tx - ty), out)


# The products of a tangent with a local derivative are strong zeros (``B.strong``, the VJPs' own): the tangents
# of every direction travel together, and a direction that does not move x must get 0 from an infinite
# derivative (log at 0, an overflowed exp), not 0 * inf = nan, which would poison the other entries' gradient.
def mul_jvp(B, ts, out, x, y):  # the product rule
    n = _ndim(out)
    tx, ty = _align(B, ts[0], x, n), _align(B, ts[1], y, n)
    return _fit(B, _add(None if tx is None else B.strong(tx, y), None if ty is None else B.strong(ty, x)), out)


def div_jvp(B, ts, out, x, y):  # (tx - out ty) / y
    n = _ndim(out)
    tx, ty = _align(B, ts[0], x, n), _align(B, ts[1], y, n)
    num = tx if ty is None else (-B.strong(ty, out) if tx is None else tx - B.strong(ty, out))
    return _fit(B, B.strong_div(num, y), out)


def neg_jvp(B, ts, out, x):
    return -ts[0]


def power_jvp(B, ts, out, x, *, p):
    if p == 0:  # x ** 0 == 1: constant
        return None
    if p == 1:
        return ts[0]
    if p < 1:  # infinite at x = 0: a strong zero (power_vjp's), so a direction that does not move x gets 0, not nan
        return B.strong(ts[0], p * x ** (p - 1))
    return B.strong(ts[0], 2.0 * x if p == 2 else p * x ** (p - 1))


def pow_jvp(B, ts, out, x, y):
    """pow's VJP conventions (reverse/ops.py ``pow_dx``, ``pow_dy``): d/dx = y x^(y-1), 0 where y == 0 (also at
    x == 0); d/dy = x^y log x, 0 where x == 0 (with the derivative in x that keeps the Hessian symmetric). Each
    term is a strong zero in its tangent: a direction that does not move y gets no log(0) or log(x < 0) = nan from
    d/dy (nor one that does not move x an inf from d/dx), so a NaN in one direction does not poison the others."""
    n = _ndim(out)
    tx, ty = _align(B, ts[0], x, n), _align(B, ts[1], y, n)
    dx = None if tx is None else B.strong(tx, pow_dx(B, x, y))
    dy = None if ty is None else B.strong(ty, pow_dy(B, out, x, y))
    return _fit(B, _add(dx, dy), out)


# ----- elementwise functions (diagonal Jacobians) -----
def exp_jvp(B, ts, out, x): return B.strong(ts[0], out)
def log_jvp(B, ts, out, x): return B.strong_div(ts[0], x)
# tanh' and sigmoid' from x as reverse mode's rules (ops.TANH, ops.SIGMOID): 1 - tanh^2 and s (1 - s) lose every
# digit in saturation (s (1 - s) at x = 40 is 0 or a rounding error where the exact value is 4.2e-18)
def tanh_jvp(B, ts, out, x): return ts[0] * (4.0 * B.dsigmoid(2.0 * x))
def sigmoid_jvp(B, ts, out, x): return ts[0] * B.dsigmoid(x)
def abs_jvp(B, ts, out, x): return ts[0] * B.sign(x)  # sign(0) = 0: abs'(0) = 0
def step_jvp(B, ts, out, x): return None              # step' = 0


def _select(B, mask, t, u, out):
    """where(mask, t, u) for tangents t, u (None = zero), broadcast to the full shape."""
    if t is None and u is None:
        return None
    t = 0.0 if t is None else t
    u = 0.0 if u is None else u
    return _fit(B, B.where(mask, t, u), out)


def maximum_jvp(B, ts, out, x, y):  # max routes: x's tangent where x >= y (ties to x), else y's
    n = _ndim(out)
    return _select(B, B.ge(x, y), _align(B, ts[0], x, n), _align(B, ts[1], y, n), out)


def minimum_jvp(B, ts, out, x, y):
    n = _ndim(out)
    return _select(B, B.le(x, y), _align(B, ts[0], x, n), _align(B, ts[1], y, n), out)


# ----- reductions -----
def sum_jvp(B, ts, out, x, *, axis=None, keepdims=False):
    return _reduce(B, B.sum, ts[0], x, axis, keepdims)


def mean_jvp(B, ts, out, x, *, axis=None, keepdims=False):
    return _reduce(B, B.mean, ts[0], x, axis, keepdims)


def logsumexp_jvp(B, ts, out, x, *, axis=-1, keepdims=False):
    # d lse = sum(softmax(x) * dx), the softmax as the VJP's (ops.logsumexp_vjp): e / sum(e), e = exp(x - max x).
    # Not exp(x - lse), which carries lse's rounding, eps |lse|, into every entry (and at x = (1e16, 1e16), where
    # lse rounds to x, gives (1, 1) for (0.5, 0.5)). A strong zero as the VJP's: a direction that does not move x.
    return _reduce(B, B.sum, B.strong(ts[0], softmax_shifted(B, x, axis)), x, axis, keepdims)


def softmax_jvp(B, ts, out, x, *, axis=-1):
    # dp_j = p_j ((t_j - c) - sum_i p_i (t_i - c)), c = t at the first maximal p: the VJP's shift (ops.softmax_vjp),
    # so the dominant entry's tangent forms no 1 - p_m. The mask has out's shape and broadcasts over the directions.
    t, ax = ts[0], _neg_axes(axis, _ndim(x))
    top = B.put_at_arg(1.0, out, axis, True, True) != 0
    tc = t - B.sum(B.where(top, t, 0.0), axis=ax, keepdims=True)
    return B.strong(tc - B.sum(B.strong(tc, out), axis=ax, keepdims=True), out)


# ----- linear algebra -----
def _matmul_right(B, x, ty, y):
    """x @ ty with ty a (possibly batched) tangent of y."""
    lead = _lead(ty, y)
    if lead == 0:
        return x @ ty
    if _ndim(y) == 1:  # a batch of vectors: x @ v for each
        if _ndim(x) == 1:
            return ty @ x
        # each direction's vector as a (k, 1) column, behind x's stack axes: x @ it, then the column axis dropped
        column = B.reshape(ty, _shape(ty)[:lead] + (1,) * (_ndim(x) - 2) + (_shape(y)[0], 1))
        return B.getitem(x @ column, (Ellipsis, 0))
    return x @ _align(B, ty, y, max(_ndim(x), _ndim(y)))


def _matmul_left(B, tx, x, y):
    """tx @ y with tx a (possibly batched) tangent of x."""
    lead = _lead(tx, x)
    if _ndim(x) > 1:
        return _align(B, tx, x, max(_ndim(x), _ndim(y))) @ y
    if lead == 0 or _ndim(y) <= 2:  # (a batch of row vectors against a matrix or a vector: matmul's own rule)
        return tx @ y
    # x a vector, y stacked: each direction's vector as a (1, k) row behind y's stack axes, then the row axis dropped
    row = B.reshape(tx, _shape(tx)[:lead] + (1,) * (_ndim(y) - 2) + (1, _shape(x)[0]))
    return B.getitem(row @ y, (Ellipsis, 0, slice(None)))


def matmul_jvp(B, ts, out, x, y):
    tx, ty = ts
    a = None if tx is None else _matmul_left(B, tx, x, y)
    return _add(a, None if ty is None else _matmul_right(B, x, ty, y))


# ----- structural (linear: the op applied to the tangent) -----
def reshape_jvp(B, ts, out, x, *, shape):
    t = ts[0]
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return B.reshape(t, _shape(t)[:_lead(t, x)] + shape)


def transpose_jvp(B, ts, out, x):
    return B.swapaxes(ts[0], -1, -2) if _ndim(x) > 1 else ts[0]


def _index_parts(index) -> tuple:
    return index if type(index) is tuple else (index,)


def _is_basic(parts: tuple) -> bool:
    """True for ints, slices, None and Ellipsis only: numpy keeps the axes in order, so axes put in front of
    the indexed ones stay in front. (Next to an index array, ints count as advanced indices.)"""
    return all(p is None or p is Ellipsis or type(p) is slice or (isinstance(p, (int, np.integer)) and
                                                                  not isinstance(p, bool)) for p in parts)


def _explicit(parts: tuple, ndim: int) -> tuple:
    """``parts`` with its Ellipsis written out as slices for an array of ``ndim`` axes, so that axes appended
    after those ``ndim`` are not swallowed by it."""
    if not any(p is Ellipsis for p in parts):
        return parts
    used = 0
    for p in parts:
        if p is None or p is Ellipsis or isinstance(p, (bool, np.bool_)):
            continue  # (a lone bool is a 0-d mask: it adds an axis, as None does)
        if isinstance(p, (int, np.integer, slice)):
            used += 1
        else:
            a = np.asarray(p)
            used += a.ndim if a.dtype == bool else 1  # a mask consumes as many axes as it has
    at = next(i for i, p in enumerate(parts) if p is Ellipsis)
    return parts[:at] + (slice(None),) * (ndim - used) + parts[at + 1:]


def _with_lead(B, fn, t, lead: int, index, ndim: int):
    """``fn(t', index')`` (getitem or scatter) for a tangent ``t`` with ``lead`` direction axes in front of the
    ``ndim`` axes that ``index`` reads; the result has its direction axes in front again.

    A basic index gets slices for the direction axes prepended. An advanced one (index arrays, masks) cannot:
    numpy moves the dimensions of advanced indices that a slice separates (``t[[0, 1], :, [2, 3]]``, ``t[0, :,
    [1, 2]]``) to the front, before the prepended axes, where the primal has none. So the direction axes go
    last, where no index reaches them and the indexed axes are laid out as in the primal, and then back."""
    if lead == 0:
        return fn(t, index)
    parts = _index_parts(index)
    if _is_basic(parts):
        return fn(t, (slice(None),) * lead + parts)
    nd = _ndim(t)
    r = fn(B.transpose(t, tuple(range(lead, nd)) + tuple(range(lead))), _explicit(parts, ndim))
    n = _ndim(r)
    return B.transpose(r, tuple(range(n - lead, n)) + tuple(range(n - lead)))


def getitem_jvp(B, ts, out, x, *, index):
    t = ts[0]
    return _with_lead(B, B.getitem, t, _lead(t, x), index, _ndim(x))


#: op name -> JVP rule. Every op of ``reverse.ops.OPS`` must have one (a test checks).
JVPS: dict[str, Callable] = {
    "add": add_jvp, "sub": sub_jvp, "mul": mul_jvp, "div": div_jvp, "neg": neg_jvp,
    "power": power_jvp, "pow": pow_jvp,
    "exp": exp_jvp, "log": log_jvp, "tanh": tanh_jvp, "sigmoid": sigmoid_jvp, "abs": abs_jvp, "step": step_jvp,
    "maximum": maximum_jvp, "minimum": minimum_jvp,
    "sum": sum_jvp, "mean": mean_jvp, "logsumexp": logsumexp_jvp, "softmax": softmax_jvp,
    "matmul": matmul_jvp,
    "reshape": reshape_jvp, "transpose": transpose_jvp, "getitem": getitem_jvp,
}


def defjvp(name: str, rule: Callable) -> Callable:
    """Register the JVP of primitive ``name`` (an op of the reverse table, or a lifted helper op)."""
    if name in JVPS:
        raise ValueError(f"op {name!r} already has a JVP in {__name__}")
    JVPS[name] = rule
    return rule


def jvp_rule(name: str) -> Callable:
    """The JVP of op ``name``, or a clear error naming the op and where to add its rule."""
    try:
        return JVPS[name]
    except KeyError:
        known = "an op of reverse/ops.py" if name in OPS else "not an op of reverse/ops.py either"
        raise NotImplementedError(f"op {name!r} ({known}) has no JVP rule, so forward mode cannot differentiate "
                                  "it; add one with defjvp() in differentiators/forward/jvps.py") from None


# ----- the lifted backend's helper ops (reverse/lifted.py): linear in their traced input -----
def select_jvp(B, ts, out, x, *, mask):
    # the mask has the output's shape, which x may broadcast up to: the tangent is aligned with it first, so that
    # its leading direction axes stay in front (else they would meet the mask's own axes)
    return B.where(mask, _align(B, ts[0], x, _ndim(out)), 0.0)


def scatter_add_jvp(B, ts, out, x, *, shape, index):
    t = ts[0]  # (x: the values scattered, shaped like a[index]; shape: a's)
    lead, shape = _lead(t, x), tuple(shape)
    directions = _shape(t)[:lead]
    # the direction axes where _with_lead puts them: in front for a basic index, else last
    full = directions + shape if _is_basic(_index_parts(index)) else shape + directions
    return _with_lead(B, lambda v, i: B.scatter(v, full, i), t, lead, index, len(shape))


def dsigmoid_jvp(B, ts, out, x):  # sigmoid'' = -sigmoid' tanh(x / 2), as the lifted op's VJP (reverse/lifted.py)
    return ts[0] * (B.tanh(-0.5 * x) * out)


def one_minus_square_jvp(B, ts, out, x):  # d(1 - x^2) = -2x dx, exactly
    return ts[0] * (-2.0 * x)


JVPS.update({"select": select_jvp, "scatter_add": scatter_add_jvp, "dsigmoid": dsigmoid_jvp,
             "one_minus_square": one_minus_square_jvp})


# ----- the rest of the numpy subset (docs/language.md): registered for the ops the table defines -----
def _diagonal_from_vjp(name: str) -> Callable:
    """The JVP of an elementwise unary primitive: its Jacobian is diagonal, so the JVP is the VJP applied to the
    tangent (the VJP is linear in its cotangent and keeps its shape; "strong zeros" carry over: a zero
    tangent gives zero where the derivative is infinite)."""
    vjp = OPS[name].vjps[0]

    def jvp(B, ts, out, x, **params):
        return vjp(B, ts[0], out, x, **params)

    jvp.__name__ = f"{name}_jvp"
    return jvp


def arctan2_jvp(B, ts, out, y, x):  # d atan2(y, x) = (x dy - y dx) / r^2, 0 at the origin (the VJP's convention)
    n = _ndim(out)
    ty, tx = _align(B, ts[0], y, n), _align(B, ts[1], x, n)
    r = B.hypot(y, x)
    safe = B.where(r == 0, 1.0, r)
    num = _add(None if ty is None else ty * x, None if tx is None else -(tx * y))
    return _fit(B, B.where(r == 0, 0.0, num / safe / safe), out)


def where_jvp(B, ts, out, a, b, *, cond):
    n = _ndim(out)
    return _select(B, cond, _align(B, ts[0], a, n), _align(B, ts[1], b, n), out)


def _at_arg(largest: bool):
    def jvp(B, ts, out, x, *, axis=None, keepdims=False):
        # the tangent of the first maximal (minimal) entry: the VJP's routing, as a one-hot mask
        mask = B.put_at_arg(B.ones_like(out), x, axis, keepdims, largest)
        return _reduce(B, B.sum, ts[0] * mask, x, axis, keepdims)
    return jvp


def prod_jvp(B, ts, out, x, *, axis=None, keepdims=False):
    return _reduce(B, B.sum, ts[0] * B.prod_of_others(x, axis), x, axis, keepdims)


def cumsum_jvp(B, ts, out, x, *, axis):
    return B.cumsum(ts[0], _neg_axes(axis, _ndim(x)))


def permute_jvp(B, ts, out, x, *, axes):
    t, nd = ts[0], _ndim(x)
    lead = _lead(t, x)
    return B.transpose(t, tuple(range(lead)) + tuple(lead + (a % nd) for a in axes))


def broadcast_to_jvp(B, ts, out, x, *, shape):
    t = ts[0]
    lead = _shape(t)[:_lead(t, x)]
    return B.broadcast_to(_align(B, t, x, len(shape)), lead + tuple(shape))


def pad_jvp(B, ts, out, x, *, pad_width, value):
    t = ts[0]
    return B.pad(t, ((0, 0),) * _lead(t, x) + tuple(tuple(p) for p in pad_width), 0.0)


def concatenate_jvp(B, ts, out, x, y, *, axis, split):
    tx, ty = ts
    some = tx if tx is not None else ty
    lead = _shape(some)[:_lead(some, x if tx is not None else y)]
    parts = [t if t is not None else B.broadcast_to(B.zeros_like(v), lead + _shape(v)) for t, v in ((tx, x), (ty, y))]
    return B.concatenate(tuple(parts), axis - _ndim(x) if axis >= 0 else axis)


def _einsum_jvp(B, ts, out, *xs, spec):
    ins, res = spec
    letters = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in "".join(ins) + res]
    total = None
    for i, t in enumerate(ts):
        if t is None:
            continue
        lead = "".join(letters[:_lead(t, xs[i])])
        subs = [lead + s if j == i else s for j, s in enumerate(ins)]
        ops = [t if j == i else x for j, x in enumerate(xs)]
        term = B.einsum(",".join(subs) + "->" + lead + res, *ops)
        total = term if total is None else total + term  # (every term has the same lead: one batch of directions)
    return total


JVPS.update({name: _diagonal_from_vjp(name) for name in (
    "sqrt", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "log1p", "expm1", "log2", "log10",
    "erf", "softplus", "log_sigmoid", "sqrt0") if name in OPS})
JVPS.update({k: v for k, v in {
    "sign": lambda B, ts, out, x: None, "arctan2": arctan2_jvp, "where": where_jvp,
    "max": _at_arg(True), "min": _at_arg(False), "prod": prod_jvp, "cumsum": cumsum_jvp, "permute": permute_jvp,
    "broadcast_to": broadcast_to_jvp, "pad": pad_jvp, "concatenate": concatenate_jvp,
    "einsum1": _einsum_jvp, "einsum2": _einsum_jvp, "einsum3": _einsum_jvp}.items() if k in OPS})
