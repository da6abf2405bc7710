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
DIV = defop("div", lambda B, x, y: x / y,
            lambda B, g, out, x, y: B.sum_to(g / y, x),
            lambda B, g, out, x, y: B.sum_to(-g * out / y, y))  # d(x/y)/dy = -(x/y)/y
NEG = defop("neg", lambda B, x: -x,
            lambda B, g, out, x: -g)
# x ** p for a constant number p (the common case: r ** 2); POW below when the exponent is an array.
def power_vjp(B, g, out, x, *, p):
    if p == 0:  # x ** 0 == 1 everywhere, also at 0 (where p * x ** -1 would be 0 * inf = nan)
        return g * 0.0
    if p == 1:
        return g
    return g * (2.0 * x if p == 2 else p * x ** (p - 1))


POWER = defop("power", lambda B, x, *, p: x ** p, power_vjp)
POW = defop("pow", lambda B, x, y: x ** y,
            lambda B, g, out, x, y: B.sum_to(g * y * x ** (y - 1), x),
            lambda B, g, out, x, y: B.sum_to(g * out * B.log(x), y))

# ----- elementwise functions -----
EXP = defop("exp", lambda B, x: B.exp(x),
            lambda B, g, out, x: g * out)                      # reuse the output: exp' = exp
LOG = defop("log", lambda B, x: B.log(x),
            lambda B, g, out, x: g / x)
TANH = defop("tanh", lambda B, x: B.tanh(x),
             lambda B, g, out, x: g * (1.0 - out * out))        # tanh' = 1 - tanh^2
# A primitive, not 1/(1+exp(-x)): one record instead of four, and a forward that cannot overflow.
SIGMOID = defop("sigmoid", lambda B, x: B.sigmoid(x),
                lambda B, g, out, x: g * out * (1.0 - out))     # sigma' = sigma (1 - sigma)
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
    # d lse / dx = softmax(x) = exp(x - lse): finite for any x because x - lse <= 0
    if not keepdims and axis is not None:  # (axis=None: g and out are scalars and broadcast as they are)
        g, out = B.expand_dims(g, axis), B.expand_dims(out, axis)
    return g * B.exp(x - out)


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
