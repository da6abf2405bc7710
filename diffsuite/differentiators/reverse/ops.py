"""Every primitive the reverse engine knows: its forward and one VJP per array input, side by side.

Conventions: ``B`` is the backend (numpy or torch arrays, same method names), ``g`` the cotangent of
the output ``out``, ``x, y`` the array inputs (positional); static parameters (axis, shape, index,
exponent) are keyword-only. A VJP returns the cotangent of its input, already summed back to the
input's shape (``B.sum_to`` undoes broadcasting). ``None`` in place of a VJP: no gradient flows.

The lecture's gate patterns are rules here: add *distributes* (g to both inputs), mul *swaps*
(x gets g * y, y gets g * x), max *routes* (g to the larger input, the first on ties); the copy
gate (a value used twice) *adds*, in ``Tape.backward``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Op:
    """A primitive: ``forward(B, *xs, **params) -> out``; ``vjps[i](B, g, out, *xs, **params)``.

    ``into`` (optional, for speed only): ``into[i](B, dst, g, out, *xs, **params)`` computes the same
    cotangent as ``vjps[i]`` straight into the array ``dst`` and returns it. The tape uses it for a
    parameter's first gradient contribution, written into its slot of the flat gradient: no temporary,
    no copy (matmul's weight gradient is the largest array of an MLP's backward pass).
    """

    name: str
    forward: Callable
    vjps: tuple
    into: tuple = ()


OPS: dict[str, Op] = {}


def defop(name: str, forward: Callable, *vjps: Callable | None, into: tuple = ()) -> Op:
    """Register a primitive. Give one VJP (or None) per array input, in order (``into``: see ``Op``)."""
    if name in OPS:
        raise ValueError(f"op {name!r} is already defined in {__name__}")
    OPS[name] = Op(name, forward, vjps, into)
    return OPS[name]


# ----- arithmetic, with broadcasting -----
ADD = defop("add", lambda B, x, y: x + y,
            lambda B, g, out, x, y: B.sum_to(g, x),            # add distributes the gradient
            lambda B, g, out, x, y: B.sum_to(g, y),
            # a bias's gradient (h @ W + b), summed over the batch straight into its slot
            into=(None, lambda B, dst, g, out, x, y: B.sum_to_into(dst, g)))
SUB = defop("sub", lambda B, x, y: x - y,
            lambda B, g, out, x, y: B.sum_to(g, x),
            lambda B, g, out, x, y: B.sum_to(-g, y))
MUL = defop("mul", lambda B, x, y: x * y,
            lambda B, g, out, x, y: B.sum_to(g * y, x),        # mul swaps: x gets g * y ...
            lambda B, g, out, x, y: B.sum_to(g * x, y))        # ... and y gets g * x
# (strong zeros: where(y != 0, x / y, 0) at y = 0 must not leak 0 / 0 = nan into the gradient)
DIV = defop("div", lambda B, x, y: x / y,
            lambda B, g, out, x, y: B.sum_to(B.strong_div(g, y), x),
            lambda B, g, out, x, y: B.sum_to(B.strong_div(-g * out, y), y))  # d(x/y)/dy = -(x/y)/y
NEG = defop("neg", lambda B, x: -x,
            lambda B, g, out, x: -g)
# x ** p for a constant number p (the common case: r ** 2); POW below when the exponent is an array.
def power_vjp(B, g, out, x, *, p):
    if p == 0:  # x ** 0 == 1 everywhere, also at 0 (where p * x ** -1 would be 0 * inf = nan)
        return g * 0.0
    if p == 1:
        return g
    if p < 1:  # infinite at x = 0: a strong zero there, so that an unselected where-branch cannot leak NaN
        return B.strong(g, p * x ** (p - 1))
    return g * (2.0 * x if p == 2 else p * x ** (p - 1))


POWER = defop("power", lambda B, x, *, p: x ** p, power_vjp)


def _pow_vjp_x(B, g, out, x, y):
    # y x^(y-1); y == 0 gives 0 even at x == 0 (x^0 is constant), where y * x ** -1 would be 0 * inf
    return B.sum_to(B.strong(g, B.where(y == 0, 0.0, y * x ** (y - 1.0))), x)


def _pow_vjp_y(B, g, out, x, y):
    # x^y log x, and 0 where x == 0: 0 ** y = 0 for every y > 0 (the gradient of autograd and torch there)
    return B.sum_to(B.strong(g, B.where(x == 0, 0.0, out * B.log(B.where(x == 0, 1.0, x)))), y)


POW = defop("pow", lambda B, x, y: x ** y, _pow_vjp_x, _pow_vjp_y)  # an array exponent

# ----- elementwise functions -----
EXP = defop("exp", lambda B, x: B.exp(x),
            lambda B, g, out, x: g * out)                      # reuse the output: exp' = exp
LOG = defop("log", lambda B, x: B.log(x),
            lambda B, g, out, x: g / x)
# The derivatives of tanh and sigmoid are bell curves, computed as u / (1 + u)^2 with u = e^-|x| (``B.dsigmoid``):
# no cancellation, so they stay accurate to a few ulp in saturation, where 1 - tanh^2 and s (1 - s) lose
# every digit (1 - tanh(15)^2 has a relative error of 1e-4). tanh'(x) = 4 sigmoid'(2x).
TANH = defop("tanh", lambda B, x: B.tanh(x),
             lambda B, g, out, x: g * (4.0 * B.dsigmoid(2.0 * x)))
# A primitive, not 1/(1+exp(-x)): one record instead of four, and a forward that cannot overflow.
SIGMOID = defop("sigmoid", lambda B, x: B.sigmoid(x),
                lambda B, g, out, x: g * B.dsigmoid(x))           # sigma' = sigma (1 - sigma), without cancelling
ABS = defop("abs", lambda B, x: B.abs(x),
            lambda B, g, out, x: g * B.sign(x))                # sign(0) = 0: abs'(0) = 0
STEP = defop("step", lambda B, x: B.step(x),
             None)                                             # step' = 0: no gradient flows
# max routes: x gets g where x >= y, y gets g elsewhere (ties go to x). The y side, relu's VJP
# (relu = maximum(0, z)), is ``zero_where_le``: one kernel on torch where where(ge(...)) takes two.
MAXIMUM = defop("maximum", lambda B, x, y: B.maximum(x, y),
                lambda B, g, out, x, y: B.sum_to(B.where(B.ge(x, y), g, 0.0), x),
                lambda B, g, out, x, y: B.sum_to(B.zero_where_le(g, y, x), y))   # = where(x >= y, 0, g)
MINIMUM = defop("minimum", lambda B, x, y: B.minimum(x, y),
                lambda B, g, out, x, y: B.sum_to(B.where(B.le(x, y), g, 0.0), x),
                lambda B, g, out, x, y: B.sum_to(B.zero_where_le(g, x, y), y))   # = where(x <= y, 0, g)

# ----- reductions -----
SUM = defop("sum", lambda B, x, *, axis=None, keepdims=False: B.sum(x, axis=axis, keepdims=keepdims),
            lambda B, g, out, x, *, axis=None, keepdims=False: B.expand_to(g, x, axis, keepdims))
MEAN = defop("mean", lambda B, x, *, axis=None, keepdims=False: B.mean(x, axis=axis, keepdims=keepdims),
             lambda B, g, out, x, *, axis=None, keepdims=False:
             B.expand_to(g, x, axis, keepdims) * (B.numel(out) / B.numel(x)))


def logsumexp_vjp(B, g, out, x, *, axis=-1, keepdims=False):
    # d lse / dx = softmax(x), as e / sum(e) with e = exp(x - max(x)): the largest entries get exp(0) = 1 exactly.
    # (exp(x - lse) would carry lse's rounding, eps * |lse|, into every entry: 1e-13 for logits near 1000.)
    if not keepdims and axis is not None:  # (axis=None: g is a scalar and broadcasts as it is)
        g = B.expand_dims(g, axis)
    e = B.exp(x - B.amax(x, axis=axis, keepdims=True))
    return g * (e / B.sum(e, axis=axis, keepdims=True))


LOGSUMEXP = defop("logsumexp", lambda B, x, *, axis=-1, keepdims=False: B.logsumexp(x, axis=axis, keepdims=keepdims),
                  logsumexp_vjp)  # a primitive for stability: the shift by max(x) has no gradient of its own


# ----- linear algebra -----
def matmul_vjp_x(B, g, out, x, y):
    if x.ndim == 2 and y.ndim == 2:  # an MLP layer: g @ y^T has x's shape already (no batch to sum over)
        return g @ B.swapaxes(y, -1, -2)
    if y.ndim == 1:
        return B.outer(g, y) if x.ndim == 2 else g * y
    return B.sum_to(g @ B.swapaxes(y, -1, -2), x) if x.ndim > 1 else y @ g


def matmul_vjp_y(B, g, out, x, y):
    if x.ndim == 2 and y.ndim == 2:  # an MLP layer: x^T @ g has y's shape already
        return B.swapaxes(x, -1, -2) @ g
    if x.ndim == 1:
        return B.outer(x, g) if y.ndim == 2 else g * x
    return B.sum_to(B.swapaxes(x, -1, -2) @ g, y) if y.ndim > 1 else B.swapaxes(x, -1, -2) @ g


def matmul_vjp_y_into(B, dst, g, out, x, y):
    if x.ndim == 2 and g.ndim == 2:  # a weight matrix's gradient h^T g, computed in place
        return B.matmul(B.swapaxes(x, -1, -2), g, out=dst)
    return B.copy_into(dst, matmul_vjp_y(B, g, out, x, y))


MATMUL = defop("matmul", lambda B, x, y: x @ y, matmul_vjp_x, matmul_vjp_y, into=(None, matmul_vjp_y_into))

# ----- structural -----
RESHAPE = defop("reshape", lambda B, x, *, shape: B.reshape(x, shape),
                lambda B, g, out, x, *, shape: B.reshape(g, x.shape))
TRANSPOSE = defop("transpose", lambda B, x: B.swapaxes(x, -1, -2) if x.ndim > 1 else x,
                  lambda B, g, out, x: B.swapaxes(g, -1, -2) if x.ndim > 1 else g)
GETITEM = defop("getitem", lambda B, x, *, index: B.getitem(x, index),  # numpy's indexing on every backend
                lambda B, g, out, x, *, index: B.scatter(g, x, index))  # zeros shaped like x, g added at index


# ======================================================================================================
# The rest of the numpy subset (docs/language.md). Conventions as above; "strong zero" (``B.strong``):
# where the cotangent is 0 the VJP gives 0 even if the local derivative is inf or nan, so the branch
# ``where`` did not select (sqrt at 0, log at 0, ...) cannot leak NaN into the gradient.
# ======================================================================================================
_LN2, _LN10, _TWO_OVER_SQRT_PI = 0.6931471805599453, 2.302585092994046, 1.1283791670955126

# ----- elementwise, smooth -----
SQRT = defop("sqrt", lambda B, x: B.sqrt(x),
             lambda B, g, out, x: B.strong(g, 0.5 / out))                       # sqrt'(0) = inf (a true singularity)
SIN = defop("sin", lambda B, x: B.sin(x), lambda B, g, out, x: g * B.cos(x))
COS = defop("cos", lambda B, x: B.cos(x), lambda B, g, out, x: -g * B.sin(x))
TAN = defop("tan", lambda B, x: B.tan(x), lambda B, g, out, x: g * (1.0 + out * out))
# 1 - x^2 as (1 - x)(1 + x): exact near |x| = 1, where the derivative is largest
ARCSIN = defop("arcsin", lambda B, x: B.arcsin(x),
               lambda B, g, out, x: B.strong(g, 1.0 / B.sqrt((1.0 - x) * (1.0 + x))))
ARCCOS = defop("arccos", lambda B, x: B.arccos(x),
               lambda B, g, out, x: B.strong(g, -1.0 / B.sqrt((1.0 - x) * (1.0 + x))))
ARCTAN = defop("arctan", lambda B, x: B.arctan(x), lambda B, g, out, x: g / (1.0 + x * x))
SINH = defop("sinh", lambda B, x: B.sinh(x), lambda B, g, out, x: g * B.cosh(x))
COSH = defop("cosh", lambda B, x: B.cosh(x), lambda B, g, out, x: g * B.sinh(x))
LOG1P = defop("log1p", lambda B, x: B.log1p(x), lambda B, g, out, x: B.strong(g, 1.0 / (1.0 + x)))
EXPM1 = defop("expm1", lambda B, x: B.expm1(x), lambda B, g, out, x: g * B.exp(x))   # not out + 1: it cancels
LOG2 = defop("log2", lambda B, x: B.log2(x), lambda B, g, out, x: B.strong(g, 1.0 / (x * _LN2)))
LOG10 = defop("log10", lambda B, x: B.log10(x), lambda B, g, out, x: B.strong(g, 1.0 / (x * _LN10)))
ERF = defop("erf", lambda B, x: B.erf(x),
            lambda B, g, out, x: g * (_TWO_OVER_SQRT_PI * B.exp_neg_square(x)))  # exp(-x^2) with x^2 exact
# softplus(x) = log(1 + e^x): smooth, a primitive because max(x, 0) + log1p(e^-|x|) has two kinks
# whose conventions would not cancel at 0; its derivative is sigmoid, which is exact in saturation.
SOFTPLUS = defop("softplus", lambda B, x: B.softplus(x), lambda B, g, out, x: g * B.sigmoid(x))
LOG_SIGMOID = defop("log_sigmoid", lambda B, x: B.log_sigmoid(x), lambda B, g, out, x: g * B.sigmoid(-x))
SIGN = defop("sign", lambda B, x: B.sign(x), None)                                # sign' = 0


def _arctan2_vjp(B, g, y, x, numerator):
    r = B.hypot(y, x)  # d atan2(y, x) = (x dy - y dx) / r^2, as (x / r) / r: no overflow of x^2 + y^2
    return B.where(r == 0, 0.0, g * (numerator / r) / r)  # (0, 0): no derivative; 0 by convention


ARCTAN2 = defop("arctan2", lambda B, y, x: B.arctan2(y, x),
                lambda B, g, out, y, x: B.sum_to(_arctan2_vjp(B, g, y, x, x), y),
                lambda B, g, out, y, x: B.sum_to(_arctan2_vjp(B, g, y, x, -y), x))
# sqrt with the convention sqrt0'(0) = 0: the last step of norm and std (a kink there, like |x| at 0)
SQRT0 = defop("sqrt0", lambda B, x: B.sqrt(x),
              lambda B, g, out, x: B.where(out > 0, g * 0.5 / B.where(out > 0, out, 1.0), 0.0))




# where(cond, a, b): cond is a static mask (a backend boolean array); no gradient reaches it.
WHERE = defop("where", lambda B, a, b, *, cond: B.where(cond, a, b),
              lambda B, g, out, a, b, *, cond: B.sum_to(B.where(cond, g, 0.0), a),
              lambda B, g, out, a, b, *, cond: B.sum_to(B.where(cond, 0.0, g), b))


# ----- reductions -----
AMAX = defop("max", lambda B, x, *, axis=None, keepdims=False: B.amax(x, axis=axis, keepdims=keepdims),
             lambda B, g, out, x, *, axis=None, keepdims=False: B.put_at_arg(g, x, axis, keepdims, True))
AMIN = defop("min", lambda B, x, *, axis=None, keepdims=False: B.amin(x, axis=axis, keepdims=keepdims),
             lambda B, g, out, x, *, axis=None, keepdims=False: B.put_at_arg(g, x, axis, keepdims, False))


def _prod_vjp(B, g, out, x, *, axis=None, keepdims=False):
    # the product of all the *other* entries, from an exclusive cumulative product from each side:
    # no division, so zeros are exact (out / x would be 0 / 0 there)
    return B.expand_to(g, x, axis, keepdims) * B.prod_of_others(x, axis)


PROD = defop("prod", lambda B, x, *, axis=None, keepdims=False: B.prod(x, axis=axis, keepdims=keepdims), _prod_vjp)
CUMSUM = defop("cumsum", lambda B, x, *, axis: B.cumsum(x, axis),
               lambda B, g, out, x, *, axis: B.flip(B.cumsum(B.flip(g, axis), axis), axis))  # reversed cumsum

# ----- structure -----
PERMUTE = defop("permute", lambda B, x, *, axes: B.transpose(x, axes),
                lambda B, g, out, x, *, axes: B.transpose(g, tuple(sorted(range(len(axes)), key=axes.__getitem__))))
BROADCAST_TO = defop("broadcast_to", lambda B, x, *, shape: B.broadcast_to(x, shape),
                     lambda B, g, out, x, *, shape: B.sum_to(g, x))
PAD = defop("pad", lambda B, x, *, pad_width, value: B.pad(x, pad_width, value),
            lambda B, g, out, x, *, pad_width, value:
            B.getitem(g, tuple(slice(lo, lo + n) for (lo, _), n in zip(pad_width, x.shape))))

MAX_OPERANDS = 64  # concatenate / einsum: one VJP per operand position


def _concat_vjp(i):
    def vjp(B, g, out, *xs, axis, bounds):
        index = (slice(None),) * (axis % g.ndim) + (slice(bounds[i], bounds[i + 1]),)
        return B.getitem(g, index)
    return vjp


CONCATENATE = defop("concatenate", lambda B, *xs, axis, bounds: B.concatenate(xs, axis),
                    *(_concat_vjp(i) for i in range(MAX_OPERANDS)))


def _einsum_vjp(i):
    def vjp(B, g, out, *xs, spec):
        # swap operand i's subscripts with the output's: d/dx_i sum(g * einsum(...)) = einsum(out, others -> x_i);
        # letters only x_i has (summed away) are restored by broadcasting, size-1 broadcasts summed back
        ins, res = spec
        kept = "".join(c for c in ins[i] if c in res or any(c in s for j, s in enumerate(ins) if j != i))
        others = [s for j, s in enumerate(ins) if j != i]
        grad = B.einsum(",".join([res] + others) + "->" + kept, g, *[x for j, x in enumerate(xs) if j != i])
        if kept != ins[i]:
            shape = [1 if c not in kept else None for c in ins[i]]
            grad = B.reshape(grad, tuple(grad.shape[kept.index(c)] if s is None else 1 for c, s in zip(ins[i], shape)))
            grad = B.broadcast_to(grad, tuple(xs[i].shape))
        return B.sum_to(grad, xs[i])
    return vjp


EINSUM = defop("einsum", lambda B, *xs, spec: B.einsum(",".join(spec[0]) + "->" + spec[1], *xs),
               *(_einsum_vjp(i) for i in range(MAX_OPERANDS)))
