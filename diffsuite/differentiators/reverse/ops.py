"""Every primitive the reverse engine knows: its forward, one VJP per array input, and what each VJP reads.

One ``defop`` line per primitive::

    TANH = defop("tanh", lambda B, x: B.tanh(x),
                 lambda B, g, out, x: g * (1.0 - out * out),   # tanh' = 1 - tanh^2
                 saves=("out",))

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
- ``into`` (optional, speed only): ``into[i](B, dst, g, out, *xs, **params)`` computes the same cotangent as
  ``vjps[i]`` straight into the array ``dst`` and returns it, reading no more than ``vjps[i]`` declares.
  The tape uses it for a parameter's first gradient contribution, written into its slot of the flat
  gradient: no temporary, no copy (matmul's weight gradient is the largest array of an MLP's backward).

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


def defop(name: str, forward: Callable, *vjps: Callable | None, saves: tuple, into: tuple = ()) -> Op:
    """Register a primitive: one VJP (or None) per input, in order, and per VJP what it reads (``saves``)."""
    if name in OPS:
        raise ValueError(f"op {name!r} is already defined in {__name__}")
    OPS[name] = make_op(name, forward, *vjps, saves=saves, into=into)
    return OPS[name]


def make_op(name: str, forward: Callable, *vjps: Callable | None, saves: tuple, into: tuple = ()) -> Op:
    """``defop`` without registering: an op that only its module records (the lifted backend's helpers)."""
    if len(vjps) > len(INPUTS):
        raise ValueError(f"defop({name!r}): {len(vjps)} inputs; saves names {len(INPUTS)} (extend INPUTS)")
    if isinstance(saves, str) or len(saves) != len(vjps):
        raise ValueError(f"defop({name!r}): saves needs one string per VJP ({len(vjps)}), naming what it reads "
                         f"(e.g. saves=('out',)); got {saves!r}")
    parsed = _parse_saves(name, len(vjps), saves)
    return Op(name, forward, vjps, tuple(saves), into, _keep_table(parsed, len(vjps)))


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
            lambda B, g, out, x, y: B.sum_to(g * y, x),        # mul swaps: x gets g * y ...
            lambda B, g, out, x, y: B.sum_to(g * x, y),        # ... and y gets g * x
            saves=("y x.shape", "x y.shape"))
DIV = defop("div", lambda B, x, y: x / y,
            lambda B, g, out, x, y: B.sum_to(g / y, x),
            lambda B, g, out, x, y: B.sum_to(-g * out / y, y),  # d(x/y)/dy = -(x/y)/y
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
    return g * (2.0 * x if p == 2 else p * x ** (p - 1))


POWER = defop("power", lambda B, x, *, p: x ** p, power_vjp, saves=("x",))
POW = defop("pow", lambda B, x, y: x ** y,
            lambda B, g, out, x, y: B.sum_to(g * y * x ** (y - 1), x),
            lambda B, g, out, x, y: B.sum_to(g * out * B.log(x), y),
            saves=("x y", "out x y.shape"))

# ----- elementwise functions -----
EXP = defop("exp", lambda B, x: B.exp(x),
            lambda B, g, out, x: g * out,                      # reuse the output: exp' = exp
            saves=("out",))
LOG = defop("log", lambda B, x: B.log(x),
            lambda B, g, out, x: g / x,
            saves=("x",))
TANH = defop("tanh", lambda B, x: B.tanh(x),
             lambda B, g, out, x: g * (1.0 - out * out),        # tanh' = 1 - tanh^2
             saves=("out",))
# A primitive, not 1/(1+exp(-x)): one record instead of four, and a forward that cannot overflow.
SIGMOID = defop("sigmoid", lambda B, x: B.sigmoid(x),
                lambda B, g, out, x: g * out * (1.0 - out),     # sigma' = sigma (1 - sigma)
                saves=("out",))
ABS = defop("abs", lambda B, x: B.abs(x),
            lambda B, g, out, x: g * B.sign(x),                # sign(0) = 0: abs'(0) = 0
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
             B.expand_to(g, x, axis, keepdims) * (B.numel(g) / _numel(shape_of(x))),
             saves=("x.shape",))


def _numel(shape) -> int:
    n = 1
    for k in shape:
        n *= k
    return n


def logsumexp_vjp(B, g, out, x, *, axis=-1, keepdims=False):
    # d lse / dx = softmax(x) = exp(x - lse): finite for any x because x - lse <= 0
    if not keepdims and axis is not None:  # (axis=None: g and out are scalars and broadcast as they are)
        g, out = B.expand_dims(g, axis), B.expand_dims(out, axis)
    return g * B.exp(x - out)


LOGSUMEXP = defop("logsumexp", lambda B, x, *, axis=-1, keepdims=False: B.logsumexp(x, axis=axis, keepdims=keepdims),
                  logsumexp_vjp,  # a primitive for stability: the shift by max(x) has no gradient of its own
                  saves=("x out",))


# ----- linear algebra -----
# x's cotangent is g @ y^T, y's is x^T @ g: each side reads the other input's value and its own shape.
def matmul_vjp_x(B, g, out, x, y):
    x_ndim = len(x) if isinstance(x, tuple) else x.ndim  # (x: its shape, or the array; inlined shape_of)
    if x_ndim == 2 and y.ndim == 2:  # an MLP layer: g @ y^T has x's shape already (no batch to sum over)
        return g @ y.T
    if y.ndim == 1:
        return B.outer(g, y) if x_ndim == 2 else g * y
    return B.sum_to(g @ B.swapaxes(y, -1, -2), x) if x_ndim > 1 else y @ g


def matmul_vjp_y(B, g, out, x, y):
    y_ndim = len(y) if isinstance(y, tuple) else y.ndim
    if x.ndim == 2 and y_ndim == 2:  # an MLP layer: x^T @ g has y's shape already
        return x.T @ g
    if x.ndim == 1:
        return B.outer(x, g) if y_ndim == 2 else g * x
    return B.sum_to(B.swapaxes(x, -1, -2) @ g, y) if y_ndim > 1 else B.swapaxes(x, -1, -2) @ g


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
