"""Every primitive the reverse engine knows: its forward, one VJP per array input, and what each VJP reads.

One ``defop`` line per primitive::

    TANH = defop("tanh", lambda B, x: B.tanh(x),
                 lambda B, g, out, x: B.strong(g, 4.0 * B.dsigmoid(2.0 * x)),
                 saves=("x",))

- ``forward(B, *xs, **params) -> out``: ``B`` is the backend (numpy or torch arrays, the same method names;
  a rule never knows which array library runs it), ``xs`` the inputs by position, ``params`` the static
  parameters (axis, shape, index, exponent), keyword-only.
- ``vjps[i](B, g, out, *xs, **params)``, one per input (``None``: no gradient flows, as for ``step``): the
  cotangent of input ``i`` given the cotangent ``g`` of ``out``, already summed back to the input's shape
  (``B.sum_to`` undoes broadcasting). Rules use only ``B``'s methods and operators, so they also run on
  values that are themselves traced.
- ``saves``: what each VJP reads, one string per VJP, names separated by spaces: ``x``, ``y``, ``z`` (the
  inputs by position), ``out``, and ``x.shape`` (only the input's shape). The tape keeps exactly what the
  VJPs of the record's traced inputs read and drops the rest when it records (a hidden layer's pre-bias
  product is not kept alive for a rule that reads only its shape). A value not read arrives as ``None``;
  an input read only for its shape arrives as its shape (a tuple), or as the array itself when another VJP
  of the same record reads its value: write such rules with ``shape_of(x)`` or with ``B.sum_to``,
  ``B.expand_to``, ``B.scatter``, which take an array or a shape. ``test_ops.py`` runs every VJP with all
  it did not declare poisoned, so a rule reading a value it did not declare fails there, not silently.
- ``residual`` (optional, speed only): the forward returns ``(out, residual)``; the record keeps ``residual`` where
  it would keep the output (declared as ``out``), and the VJPs receive it as ``out``. A fused rule computes what
  its VJP needs once, in the forward pass (softmax cross-entropy keeps its softmax: ``fused.py``).
- ``into`` (optional, speed only): ``into[i](B, dst, g, out, *xs, **params)`` computes the same cotangent as
  ``vjps[i]`` straight into the array ``dst`` and returns it, reading no more than ``vjps[i]`` declares.
  The tape uses it for a parameter's first gradient contribution, written into its slot of the flat
  gradient: no temporary, no copy (matmul's weight gradient is the largest array of an MLP's backward).
- ``pair`` (optional, speed only, two-input ops without ``into``): ``pair(B, g, out, x, y)`` returns
  ``(vjps[0](...), vjps[1](...))``, the same values, in one call; the tape uses it when both inputs are traced
  (mul's: one backend call instead of four Python calls, most of a 0-d mul's backward).

The lecture's gate patterns are rules here: add *distributes* (g to both inputs, which reads nothing but
shapes), mul *swaps* (x gets g * y, y gets g * x: each reads the other), max *routes* (g to the larger
input, the first on ties: a comparison of the inputs, or of an input with the output); the copy gate (a
value used twice) *adds*, in ``Tape.backward``.

Adding a primitive: one ``defop`` line here (declare what each VJP reads), a way to call it (a ``Var``
operator or a ``TapeNamespace`` method in ``tape.py``), and a spec in ``tests/.../reverse/test_ops.py``
(``OP_SPECS``) and ``test_backends.py`` (``SPECS``); docs/reverse.md has the checklist.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

INPUTS = ("x", "y", "z")  # the names ``saves`` gives the inputs, by position
DROP, SHAPE, VALUE = 0, 1, 2  # what a record keeps of one input: nothing, its shape, the value


def shape_of(x) -> tuple:
    """The shape of ``x``, an array or already a shape (see the module docstring: inputs read for their shape)."""
    return x if isinstance(x, tuple) else x.shape


@dataclass(frozen=True)
class Op:
    """A primitive: ``forward``, ``vjps``, ``saves`` and ``into`` as in the module docstring.

    ``keep[mask]`` (derived from ``saves``): what a record keeps when the inputs in the bit mask ``mask`` are
    traced (bit ``i`` for input ``i``; the others are constants): ``(codes, keep_out)``, one code per input
    (``DROP``, ``SHAPE`` or ``VALUE``; a constant read by a rule is kept as it is: it is the caller's data).
    """

    name: str
    forward: Callable
    vjps: tuple
    saves: tuple
    into: tuple = ()
    keep: tuple = ()
    residual: bool = False
    pair: Callable | None = None


OPS: dict[str, Op] = {}


def _parse_saves(name: str, n_inputs: int, saves) -> list[tuple[dict, bool]]:
    """Per VJP: ({input position: SHAPE or VALUE}, reads out)."""
    names = INPUTS[:n_inputs]
    parsed = []
    for entry in saves:
        reads, out = {}, False
        for token in (entry or "").split():
            base, _, attr = token.partition(".")
            if token == "out":
                out = True
            elif base in names and attr in ("", "shape"):
                pos = names.index(base)
                reads[pos] = max(reads.get(pos, DROP), SHAPE if attr else VALUE)
            else:
                raise ValueError(f"defop({name!r}): saves names {token!r}; a VJP can read "
                                 f"{', '.join(names)}, out, or an input's shape ({names[0]}.shape)")
        parsed.append((reads, out))
    return parsed


def _keep_table(parsed: list, n_inputs: int) -> tuple:
    table = [None]  # mask 0: nothing traced, nothing recorded
    for mask in range(1, 2 ** n_inputs):
        running = [parsed[k] for k in range(n_inputs) if mask >> k & 1]  # the VJPs this record will run
        codes = []
        for pos in range(n_inputs):
            code = max((reads.get(pos, DROP) for reads, _ in running), default=DROP)
            codes.append(code if mask >> pos & 1 or code == DROP else VALUE)  # a constant: kept as it is
        table.append((tuple(codes), any(out for _, out in running)))
    return tuple(table)


def defop(name: str, forward: Callable, *vjps: Callable | None, saves: tuple, into: tuple = (),
          pair: Callable | None = None) -> Op:
    """Register a primitive: one VJP (or None) per input, in order, and per VJP what it reads (``saves``)."""
    if name in OPS:
        raise ValueError(f"op {name!r} is already defined in {__name__}")
    OPS[name] = make_op(name, forward, *vjps, saves=saves, into=into, pair=pair)
    return OPS[name]


def make_op(name: str, forward: Callable, *vjps: Callable | None, saves: tuple, into: tuple = (),
            residual: bool = False, pair: Callable | None = None) -> Op:
    """``defop`` without registering: an op that only its module records (the lifted backend's helpers)."""
    if len(vjps) > len(INPUTS):
        raise ValueError(f"defop({name!r}): {len(vjps)} inputs; saves names {len(INPUTS)} (extend INPUTS)")
    if isinstance(saves, str) or len(saves) != len(vjps):
        raise ValueError(f"defop({name!r}): saves needs one string per VJP ({len(vjps)}), naming what it reads "
                         f"(e.g. saves=('out',)); got {saves!r}")
    if pair is not None and (len(vjps) != 2 or into or None in vjps):
        raise ValueError(f"defop({name!r}): pair= is for ops of two inputs, each with a VJP and no into rule")
    parsed = _parse_saves(name, len(vjps), saves)
    return Op(name, forward, vjps, tuple(saves), into, _keep_table(parsed, len(vjps)), residual, pair)


# ----- arithmetic, with broadcasting -----
ADD = defop("add", lambda B, x, y: x + y,
            lambda B, g, out, x, y: B.sum_to(g, x),            # add distributes the gradient
            lambda B, g, out, x, y: B.sum_to(g, y),            # (reading only the shapes)
            saves=("x.shape", "y.shape"),
            # a bias's gradient (h @ W + b), summed over the batch straight into its slot
            into=(None, lambda B, dst, g, out, x, y: B.sum_to_into(dst, g)))
SUB = defop("sub", lambda B, x, y: x - y,
            lambda B, g, out, x, y: B.sum_to(g, x),
            lambda B, g, out, x, y: B.sum_to(-g, y),
            saves=("x.shape", "y.shape"))
MUL = defop("mul", lambda B, x, y: x * y,
            lambda B, g, out, x, y: B.strong_to(g, y, x),   # mul swaps: x gets g * y (summed to x's shape) ...
            lambda B, g, out, x, y: B.strong_to(g, x, y),   # ... and y gets g * x
            saves=("y x.shape", "x y.shape"),
            pair=lambda B, g, out, x, y: B.strong_swap(g, x, y))  # both at once (the same two values)
# (strong zeros: where(y != 0, x / y, 0) at y = 0 must not leak 0 / 0 = nan into the gradient)
DIV = defop("div", lambda B, x, y: x / y,
            lambda B, g, out, x, y: B.sum_to(B.strong_div(g, y), x),
            lambda B, g, out, x, y: B.sum_to(B.strong_div(B.strong(-g, out), y), y),  # d(x/y)/dy = -(x/y)/y
            saves=("y x.shape", "out y"))
NEG = defop("neg", lambda B, x: -x,
            lambda B, g, out, x: -g,
            saves=("",))


# x ** p for a constant number p (the common case: r ** 2); POW below when the exponent is an array.
def power_vjp(B, g, out, x, *, p):
    if p == 0:  # x ** 0 == 1 everywhere, also at 0 (where p * x ** -1 would be 0 * inf = nan)
        return g * 0.0
    if p == 1:
        return g
    if p < 1:  # infinite at x = 0: a strong zero there, so that an unselected where-branch cannot leak NaN
        return B.strong(g, p * B.power(x, p - 1))
    return B.strong(g, 2.0 * x if p == 2 else p * x ** (p - 1))


POWER = defop("power", lambda B, x, *, p: x ** p, power_vjp, saves=("x",))


def pow_dx(B, x, y):
    """d x^y / dx = y x^(y-1), and 0 where x == 0 and y == 0 (x^0 is constant), where y * x ** -1 would be 0 * inf:
    those entries take the exponent 0 instead (no inf, no warning), and the where puts their 0. Only those:
    elsewhere y == 0 gives 0 by the formula itself, whose derivative in y (x^(y-1) + ..., the Hessian's cross
    term) must stay. (At x == 0 the cross term is then 0^(y-1): 1 at y == 1, 0 for y > 1.)"""
    both_zero = (x == 0) & (y == 0)
    return B.where(both_zero, 0.0, y * B.power(x, B.where(both_zero, 1.0, y) - 1.0))


def pow_dy(B, out, x, y):
    """d x^y / dy = x^y log x, and 0 where x == 0: 0 ** y = 0 for every y > 0 (the one-sided derivative at the edge
    of the domain, autograd's and torch's value). That 0 is written out / y (= 0 / y) where y > 0, not as a
    constant: its derivative in x is then y 0^(y-1) / y = 0^(y-1), the same cross term as d/dy of ``pow_dx``, so
    the Hessian is symmetric (1 at x = 0, y = 1, where the mixed partial does not exist: d/dx (x log x) -> -inf;
    the symbolic differentiator's and the certified reference's convention too). Its value stays exactly 0."""
    zero = x == 0
    zero_pos = zero & (y > 0)  # (the division only there: elsewhere out / y could overflow, unselected)
    return B.where(zero, B.where(zero_pos, out / B.where(zero_pos, y, 1.0), 0.0), out * B.log(B.where(zero, 1.0, x)))


def _pow_vjp_x(B, g, out, x, y):
    return B.sum_to(B.strong(g, pow_dx(B, x, y)), x)


def _pow_vjp_y(B, g, out, x, y):
    return B.sum_to(B.strong(g, pow_dy(B, out, x, y)), y)


POW = defop("pow", lambda B, x, y: x ** y, _pow_vjp_x, _pow_vjp_y,  # an array exponent
            saves=("x y", "out x y"))

# ----- elementwise functions -----
EXP = defop("exp", lambda B, x: B.exp(x),
            lambda B, g, out, x: B.strong(g, out),             # reuse the output: exp' = exp
            saves=("out",))
LOG = defop("log", lambda B, x: B.log(x),
            lambda B, g, out, x: B.strong_div(g, x),          # log'(0) = inf: the unselected log(0) of a where
            saves=("x",))
# The derivatives of tanh and sigmoid are bell curves, computed as u / (1 + u)^2 with u = e^-|x| (``B.dsigmoid``):
# no cancellation, so they stay accurate to a few ulp in saturation, where 1 - tanh^2 and s (1 - s) lose every
# digit (1 - tanh(15)^2 has a relative error of 1e-4). tanh'(x) = 4 sigmoid'(2x). They read x, not the output:
# in saturation the output (1.0) no longer holds the derivative's digits.
TANH = defop("tanh", lambda B, x: B.tanh(x),
             lambda B, g, out, x: B.strong(g, 4.0 * B.dsigmoid(2.0 * x)),
             saves=("x",))
# A primitive, not 1/(1+exp(-x)): one record instead of four, and a forward that cannot overflow.
SIGMOID = defop("sigmoid", lambda B, x: B.sigmoid(x),
                lambda B, g, out, x: B.strong(g, B.dsigmoid(x)),  # sigma' = sigma (1 - sigma), without cancelling
                saves=("x",))
ABS = defop("abs", lambda B, x: B.abs(x),
            lambda B, g, out, x: B.strong(g, B.sign(x)),       # sign(0) = 0: abs'(0) = 0
            saves=("x",))
STEP = defop("step", lambda B, x: B.step(x),
             None,                                             # step' = 0: no gradient flows
             saves=("",))
# max routes: x gets g where x >= y, y gets g elsewhere (ties go to x). The y side compares x with the
# output instead (x >= y exactly where out <= x, NaN included), so relu = maximum(0, z) keeps only its
# output, which the next layer keeps anyway, and not z; its ``zero_where_le`` is one kernel on torch.
MAXIMUM = defop("maximum", lambda B, x, y: B.maximum(x, y),
                lambda B, g, out, x, y: B.sum_to(B.where(B.ge(x, y), g, 0.0), x),
                lambda B, g, out, x, y: B.sum_to(B.zero_where_le(g, out, x), y),   # = where(x >= y, 0, g)
                saves=("x y", "x out y.shape"))
MINIMUM = defop("minimum", lambda B, x, y: B.minimum(x, y),
                lambda B, g, out, x, y: B.sum_to(B.where(B.le(x, y), g, 0.0), x),
                lambda B, g, out, x, y: B.sum_to(B.zero_where_le(g, x, out), y),   # = where(x <= y, 0, g)
                saves=("x y", "x out y.shape"))

# ----- reductions -----
SUM = defop("sum", lambda B, x, *, axis=None, keepdims=False: B.sum(x, axis=axis, keepdims=keepdims),
            lambda B, g, out, x, *, axis=None, keepdims=False: B.expand_to(g, x, axis, keepdims),
            saves=("x.shape",))
MEAN = defop("mean", lambda B, x, *, axis=None, keepdims=False: B.mean(x, axis=axis, keepdims=keepdims),
             lambda B, g, out, x, *, axis=None, keepdims=False:  # (g has the output's shape and size)
             B.expand_to(g, x, axis, keepdims) * (B.numel(g) / max(_numel(shape_of(x)), 1)),  # (no entries: empty)
             saves=("x.shape",))


def _numel(shape) -> int:
    n = 1
    for k in shape:
        n *= k
    return n


def softmax_shifted(B, x, axis=-1):
    """softmax(x) along ``axis`` as e / sum(e) with e = exp(x - max(x)): the largest entries get exp(0) = 1 exactly.
    (exp(x - lse) would carry lse's rounding, eps * |lse|, into every entry: 1e-13 for logits near 1000.)"""
    m = B.amax(x, axis=axis, keepdims=True)
    d = x - m  # rounded (unless Sterbenz applies): TwoSum recovers the rounding error, and exp(d + err) uses it
    bv = d - x
    err = (x - (d - bv)) + (-m - bv)
    err = B.where(err - err == 0, err, 0.0)  # (an infinite entry: no correction, e = exp(-inf) = 0)
    e = B.exp(d) * (1.0 + err)
    return e / B.sum(e, axis=axis, keepdims=True)


def logsumexp_vjp(B, g, out, x, *, axis=-1, keepdims=False):
    # d lse / dx = softmax(x)
    if not keepdims and axis is not None:  # (axis=None: g is a scalar and broadcasts as it is)
        g = B.expand_dims(g, axis)
    return B.strong(g, softmax_shifted(B, x, axis))


LOGSUMEXP = defop("logsumexp", lambda B, x, *, axis=-1, keepdims=False: B.logsumexp(x, axis=axis, keepdims=keepdims),
                  logsumexp_vjp,  # a primitive for stability: the shift by max(x) has no gradient of its own
                  saves=("x",))


def softmax_vjp(B, g, out, x, *, axis=-1):
    # dx_j = p_j (g_j - sum_i p_i g_i), with every g_i shifted by c = g at the first maximal p along ``axis``
    # (valid for any c, since sum p = 1): the dominant entry's own term is then exactly 0, and its cotangent
    # -p_m sum_{i != m} p_i (g_i - g_m) forms no 1 - p_m. The composite exp(x - logsumexp(x)) gives
    # p_m g_m - p_m (p_m g_m + ...), which cancels completely once p_m rounds to 1. Strong zeros: a row whose
    # cotangent is 0 gets 0 even where p is NaN (an unselected where-branch).
    top = B.put_at_arg(1.0, out, axis, True, True) != 0  # a constant mask (a lifted backend's too)
    gc = g - B.sum(B.where(top, g, 0.0), axis=axis, keepdims=True)
    return B.strong(gc - B.sum(B.strong(gc, out), axis=axis, keepdims=True), out)


# softmax along ``axis`` (an int), a primitive for accuracy: the softmax activation's gradient (the namespaces'
# ``_softmax``); its forward is the composite's, exp(x - logsumexp(x)), bit for bit (backends' ``softmax``)
SOFTMAX = defop("softmax", lambda B, x, *, axis=-1: B.softmax(x, axis=axis), softmax_vjp, saves=("out",))


# ----- linear algebra -----
# x's cotangent is g @ y^T, y's is x^T @ g: each side reads the other input's value and its own shape.
# (A 1-D operand is a vector on its side of the product, numpy's rule: x of (k,) is a row, y of (k,) a column;
# with a stacked (>= 3-D) other operand, its cotangent sums over the stack.)
def matmul_vjp_x(B, g, out, x, y):
    x_ndim = len(x) if isinstance(x, tuple) else x.ndim  # (x: its shape, or the array; inlined shape_of)
    if x_ndim == 2 and y.ndim == 2:  # an MLP layer: g @ y^T has x's shape already (no batch to sum over)
        return g @ y.T
    if y.ndim == 1:  # out = x @ y has x's shape without its last axis: g[..., None] * y
        return B.outer(g, y) if x_ndim == 2 else g * y if x_ndim == 1 else B.sum_to(B.expand_dims(g, -1) * y, x)
    if x_ndim == 1:  # x @ y = (x[None] @ y)[..., 0, :]: y @ g[..., None], summed over y's stack
        return y @ g if y.ndim == 2 else B.sum_to(B.getitem(y @ B.expand_dims(g, -1), (Ellipsis, 0)), x)
    return B.sum_to(g @ B.swapaxes(y, -1, -2), x)


def matmul_vjp_y(B, g, out, x, y):
    y_ndim = len(y) if isinstance(y, tuple) else y.ndim
    if x.ndim == 2 and y_ndim == 2:  # an MLP layer: x^T @ g has y's shape already
        return x.T @ g
    if x.ndim == 1:  # out = x @ y has y's shape without its axis -2: x[:, None] * g[..., None, :]
        return B.outer(x, g) if y_ndim == 2 else g * x if y_ndim == 1 else \
            B.sum_to(B.expand_dims(x, -1) * B.expand_dims(g, -2), y)
    if y_ndim == 1:  # x^T @ g[..., None], summed over x's stack
        return B.sum_to(B.getitem(B.swapaxes(x, -1, -2) @ B.expand_dims(g, -1), (Ellipsis, 0)), y)
    return B.sum_to(B.swapaxes(x, -1, -2) @ g, y)


def matmul_vjp_y_into(B, dst, g, out, x, y):
    if x.ndim == 2 and g.ndim == 2:  # a weight matrix's gradient h^T g, computed in place
        return B.matmul(x.T, g, out=dst)
    return B.copy_into(dst, matmul_vjp_y(B, g, out, x, y))


MATMUL = defop("matmul", lambda B, x, y: x @ y, matmul_vjp_x, matmul_vjp_y,
               saves=("y x.shape", "x y.shape"), into=(None, matmul_vjp_y_into))

# ----- structural: the VJPs read only shapes -----
RESHAPE = defop("reshape", lambda B, x, *, shape: B.reshape(x, shape),
                lambda B, g, out, x, *, shape: B.reshape(g, shape_of(x)),
                saves=("x.shape",))
TRANSPOSE = defop("transpose", lambda B, x: B.swapaxes(x, -1, -2) if x.ndim > 1 else x,
                  lambda B, g, out, x: B.swapaxes(g, -1, -2) if len(shape_of(x)) > 1 else g,
                  saves=("x.shape",))
GETITEM = defop("getitem", lambda B, x, *, index: B.getitem(x, index),  # numpy's indexing on every backend
                lambda B, g, out, x, *, index: B.scatter(g, x, index),  # zeros shaped like x, g added at index
                saves=("x.shape",))


# ======================================================================================================
# The rest of the numpy subset (docs/language.md). "Strong zero" (``B.strong``): where the cotangent is 0
# the VJP gives 0 even if the local derivative is inf or nan, so the branch ``where`` did not select
# (sqrt at 0, log at 0, ...) cannot leak NaN into the gradient.
# ======================================================================================================
_LN2, _LN10, _TWO_OVER_SQRT_PI = 0.6931471805599453, 2.302585092994046, 1.1283791670955126

# ----- elementwise, smooth -----
SQRT = defop("sqrt", lambda B, x: B.sqrt(x),
             lambda B, g, out, x: B.strong_div(0.5 * g, out), saves=("out",))   # sqrt'(0) = inf: a true singularity
SIN = defop("sin", lambda B, x: B.sin(x), lambda B, g, out, x: B.strong(g, B.cos(x)), saves=("x",))
COS = defop("cos", lambda B, x: B.cos(x), lambda B, g, out, x: B.strong(-g, B.sin(x)), saves=("x",))
TAN = defop("tan", lambda B, x: B.tan(x), lambda B, g, out, x: B.strong(g, 1.0 + out * out), saves=("out",))
# 1 - x^2 as (1 - x)(1 + x) (``B.one_minus_square``): exact near |x| = 1, where the derivative is largest. A lifted
# backend records it as one op whose derivative is -2x exactly (the product's (1 - x) - (1 + x) is -2x only to
# within eps, which left arcsin'' = x / (1 - x^2)^1.5 a relative error of eps / |x| near 0).
ARCSIN = defop("arcsin", lambda B, x: B.arcsin(x),
               lambda B, g, out, x: B.strong_div(g, B.sqrt(B.one_minus_square(x))), saves=("x",))
ARCCOS = defop("arccos", lambda B, x: B.arccos(x),
               lambda B, g, out, x: B.strong_div(-g, B.sqrt(B.one_minus_square(x))), saves=("x",))
ARCTAN = defop("arctan", lambda B, x: B.arctan(x), lambda B, g, out, x: B.strong_div(g, 1.0 + x * x), saves=("x",))
SINH = defop("sinh", lambda B, x: B.sinh(x), lambda B, g, out, x: B.strong(g, B.cosh(x)), saves=("x",))
COSH = defop("cosh", lambda B, x: B.cosh(x), lambda B, g, out, x: B.strong(g, B.sinh(x)), saves=("x",))
LOG1P = defop("log1p", lambda B, x: B.log1p(x), lambda B, g, out, x: B.strong_div(g, 1.0 + x), saves=("x",))
EXPM1 = defop("expm1", lambda B, x: B.expm1(x), lambda B, g, out, x: B.strong(g, B.exp(x)), saves=("x",))  # not out + 1: cancels
LOG2 = defop("log2", lambda B, x: B.log2(x), lambda B, g, out, x: B.strong_div(g, x * _LN2), saves=("x",))
LOG10 = defop("log10", lambda B, x: B.log10(x), lambda B, g, out, x: B.strong_div(g, x * _LN10), saves=("x",))
ERF = defop("erf", lambda B, x: B.erf(x),  # exp(-x^2) with x^2 split exactly: a few ulp where x^2 is large
            lambda B, g, out, x: B.strong(g, _TWO_OVER_SQRT_PI * B.exp_neg_square(x)), saves=("x",))
# softplus(x) = log(1 + e^x): smooth, a primitive because max(x, 0) + log1p(e^-|x|) has two kinks whose
# conventions would not cancel at 0; its derivative is sigmoid, exact in saturation. log_sigmoid = -softplus(-x).
SOFTPLUS = defop("softplus", lambda B, x: B.softplus(x), lambda B, g, out, x: B.strong(g, B.expit(x)), saves=("x",))
LOG_SIGMOID = defop("log_sigmoid", lambda B, x: B.log_sigmoid(x), lambda B, g, out, x: B.strong(g, B.expit(-x)),
                    saves=("x",))
SIGN = defop("sign", lambda B, x: B.sign(x), None, saves=("",))                 # sign' = 0


def _arctan2_vjp(B, g, y, x, numerator):
    r = B.hypot(y, x)  # d atan2(y, x) = (x dy - y dx) / r^2, as (x / r) / r: no overflow of x^2 + y^2
    return B.where(r == 0, 0.0, g * (numerator / B.where(r == 0, 1.0, r)) / B.where(r == 0, 1.0, r))  # (0, 0): 0


ARCTAN2 = defop("arctan2", lambda B, y, x: B.arctan2(y, x),
                lambda B, g, out, y, x: B.sum_to(_arctan2_vjp(B, g, y, x, x), y),
                lambda B, g, out, y, x: B.sum_to(_arctan2_vjp(B, g, y, x, -y), x),
                saves=("x y", "x y"))
# sqrt with the convention sqrt0'(0) = 0: the last step of norm and std (a kink there, like |x| at 0). Its forward
# is B.sqrt0, not B.sqrt: differentiated again (a lifted backend), it must record sqrt0, whose rule keeps the
# convention, not sqrt, whose infinite derivative at 0 made second derivatives NaN.
SQRT0 = defop("sqrt0", lambda B, x: B.sqrt0(x),
              lambda B, g, out, x: B.where(out > 0, g * 0.5 / B.where(out > 0, out, 1.0), 0.0), saves=("out",))

# where(cond, a, b): cond is a static mask (a backend boolean array); no gradient reaches it.
WHERE = defop("where", lambda B, a, b, *, cond: B.where(cond, a, b),
              lambda B, g, out, a, b, *, cond: B.sum_to(B.where(cond, g, 0.0), a),
              lambda B, g, out, a, b, *, cond: B.sum_to(B.where(cond, 0.0, g), b),
              saves=("x.shape", "y.shape"))

# ----- reductions -----
# the whole cotangent goes to the first maximal (minimal) entry: argmax's own tie rule, maximum's too
AMAX = defop("max", lambda B, x, *, axis=None, keepdims=False: B.amax(x, axis=axis, keepdims=keepdims),
             lambda B, g, out, x, *, axis=None, keepdims=False: B.put_at_arg(g, x, axis, keepdims, True),
             saves=("x",))
AMIN = defop("min", lambda B, x, *, axis=None, keepdims=False: B.amin(x, axis=axis, keepdims=keepdims),
             lambda B, g, out, x, *, axis=None, keepdims=False: B.put_at_arg(g, x, axis, keepdims, False),
             saves=("x",))
# the product of all the *other* entries, from exclusive cumulative products from each side: no division,
# so zeros are exact (out / x would be 0 / 0 there)
PROD = defop("prod", lambda B, x, *, axis=None, keepdims=False: B.prod(x, axis=axis, keepdims=keepdims),
             lambda B, g, out, x, *, axis=None, keepdims=False:
             B.strong(B.expand_to(g, x, axis, keepdims), B.prod_of_others(x, axis)),
             saves=("x",))
CUMSUM = defop("cumsum", lambda B, x, *, axis: B.cumsum(x, axis),
               lambda B, g, out, x, *, axis: B.flip(B.cumsum(B.flip(g, axis), axis), axis),  # reversed cumsum
               saves=("",))

# ----- structure -----
PERMUTE = defop("permute", lambda B, x, *, axes: B.transpose(x, axes),
                lambda B, g, out, x, *, axes: B.transpose(g, tuple(sorted(range(len(axes)), key=axes.__getitem__))),
                saves=("",))
BROADCAST_TO = defop("broadcast_to", lambda B, x, *, shape: B.broadcast_to(x, shape),
                     lambda B, g, out, x, *, shape: B.sum_to(g, x), saves=("x.shape",))
PAD = defop("pad", lambda B, x, *, pad_width, value: B.pad(x, pad_width, value),
            lambda B, g, out, x, *, pad_width, value:
            B.getitem(g, tuple(slice(lo, lo + n) for (lo, _), n in zip(pad_width, shape_of(x)))),
            saves=("x.shape",))
# two arrays joined along ``axis``; the first has ``split`` entries there (xp.concatenate chains it)
CONCATENATE = defop("concatenate", lambda B, x, y, *, axis, split: B.concatenate((x, y), axis),
                    lambda B, g, out, x, y, *, axis, split: B.getitem(g, (slice(None),) * axis + (slice(0, split),)),
                    lambda B, g, out, x, y, *, axis, split: B.getitem(g, (slice(None),) * axis + (slice(split, None),)),
                    saves=("", ""))


def _einsum_vjp(i):
    """The VJP of operand ``i``: swap its subscripts with the output's, d/dx_i <g, einsum(...)> =
    einsum(g, the others -> x_i). Letters only x_i has (summed away) come back by broadcasting.

    numpy's einsum broadcasts a letter's size-1 axes against the same letter's size n in another operand: where x_i
    has the n, the contraction gives size 1 there (the others' axis), broadcast back (every entry along it has the
    same derivative); where x_i has the 1, it gives n, summed back (``sum_to``)."""
    def vjp(B, g, out, *xs, spec):
        ins, res = spec
        shape = tuple(shape_of(xs[i]))
        kept = "".join(c for c in ins[i] if c in res or any(c in s for j, s in enumerate(ins) if j != i))
        others = [x for j, x in enumerate(xs) if j != i]
        grad = B.einsum(",".join([res] + [s for j, s in enumerate(ins) if j != i]) + "->" + kept, g, *others)
        gshape = tuple(grad.shape[kept.index(c)] if c in kept else 1 for c in ins[i])
        if kept != ins[i]:
            grad = B.reshape(grad, gshape)
        full = tuple(a if b == 1 else b for a, b in zip(gshape, shape))  # (x_i's 1: g's n, summed below)
        if full != gshape:
            grad = B.broadcast_to(grad, full)
        return grad if full == shape else B.sum_to(grad, shape)
    return vjp


# einsum of one, two or three operands (``spec``: (input subscripts, output subscripts), no repeated letter within
# an operand); xp.einsum contracts more operands pairwise. Each VJP reads the other operands and its own shape.
EINSUM1 = defop("einsum1", lambda B, x, *, spec: B.einsum(spec[0][0] + "->" + spec[1], x), _einsum_vjp(0),
                saves=("x.shape",))
EINSUM2 = defop("einsum2", lambda B, x, y, *, spec: B.einsum(",".join(spec[0]) + "->" + spec[1], x, y),
                _einsum_vjp(0), _einsum_vjp(1), saves=("y x.shape", "x y.shape"))
EINSUM3 = defop("einsum3", lambda B, x, y, z, *, spec: B.einsum(",".join(spec[0]) + "->" + spec[1], x, y, z),
                _einsum_vjp(0), _einsum_vjp(1), _einsum_vjp(2), saves=("y z x.shape", "x z y.shape", "x y z.shape"))
