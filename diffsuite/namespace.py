"""The array namespace ``xp`` that models, losses and users' functions are written against.

Each differentiator supplies its own ``xp``: numpy values for finite differences (``NUMPY`` here),
tape values for reverse mode, SymPy expressions for symbolic. Values support ``+ - * / ** @``,
unary minus, numpy broadcasting and indexing (integers, slices, integer arrays, boolean masks);
comparisons ``> >= < <= == !=`` give constant masks (no gradient flows through a comparison);
everything else is one of the functions listed in ``FUNCTIONS`` (name, numpy equivalent, kink rule).

Kink conventions (docs/architecture.md), honoured by every implementation of the namespace: ``maximum``/``minimum``
and the ``max``/``min`` reductions route the gradient to their *first* (maximal) argument on ties,
``abs'(0) = 0``, ``step' = sign' = 0`` everywhere, ``relu'(0) = 0``, ``clip`` passes the gradient at its
bounds, ``norm`` and ``std`` have gradient 0 where they are 0. ``where(c, a, b)`` differentiates only the
selected branch: a NaN or inf in the other one (``where(x > 0, sqrt(x), 0)`` at 0) never reaches the gradient.
Smooth functions are primitives where their usual formulas have kinks or lose digits (``softplus``,
``log_sigmoid``, ``sigmoid``, ``logsumexp``): their derivatives are the true ones everywhere.
"""
from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np

#: Every function of the namespace: name -> (numpy equivalent, kink convention or "smooth").
#: A new one is a design decision: every differentiator (numpy here and the complex/kink-tracking
#: namespaces of finite differences, the reverse tape, the symbolic namespace) must implement it,
#: and the tests check that each does.
FUNCTIONS: dict[str, tuple[str, str]] = {
    # elementwise
    "exp": ("np.exp", "smooth"),
    "log": ("np.log", "smooth on x > 0"),
    "sqrt": ("np.sqrt", "smooth on x > 0; sqrt'(0) = inf"),
    "square": ("np.square", "smooth"),
    "sin": ("np.sin", "smooth"), "cos": ("np.cos", "smooth"), "tan": ("np.tan", "smooth between poles"),
    "arcsin": ("np.arcsin", "smooth on |x| < 1"), "arccos": ("np.arccos", "smooth on |x| < 1"),
    "arctan": ("np.arctan", "smooth"),
    "arctan2": ("np.arctan2", "smooth except at (0, 0), where the gradient is 0; jumps across y = 0, x < 0"),
    "sinh": ("np.sinh", "smooth"), "cosh": ("np.cosh", "smooth"), "tanh": ("np.tanh", "smooth"),
    "log1p": ("np.log1p", "smooth on x > -1"), "expm1": ("np.expm1", "smooth"),
    "log2": ("np.log2", "smooth on x > 0"), "log10": ("np.log10", "smooth on x > 0"),
    "erf": ("scipy.special.erf", "smooth"),
    "sigmoid": ("scipy.special.expit", "smooth (a primitive: no overflow)"),
    "softplus": ("np.logaddexp(0, x)", "smooth (a primitive: no kink at 0)"),
    "log_sigmoid": ("-np.logaddexp(0, -x)", "smooth (a primitive: no kink at 0)"),
    "relu": ("np.maximum(0, x)", "relu'(0) = 0"),
    "abs": ("np.abs", "abs'(0) = 0"),
    "sign": ("np.sign", "sign' = 0"),
    "step": ("(x > 0) * 1.0", "step' = 0"),
    "clip": ("np.clip(x, lo, hi)", "gradient 1 at the bounds (x == lo or hi)"),
    "maximum": ("np.maximum", "ties: the gradient goes to the first argument"),
    "minimum": ("np.minimum", "ties: the gradient goes to the first argument"),
    "power": ("np.power", "at x = 0, y > 0: gradient 0 in y, y 0 ** (y - 1) in x (1 at y = 1); x ** 0: 0 in x"),
    "where": ("np.where(cond, a, b)", "no gradient to cond; only the selected branch is differentiated"),
    # reductions
    "sum": ("np.sum(x, axis, keepdims)", "smooth"),
    "mean": ("np.mean(x, axis, keepdims)", "smooth"),
    "prod": ("np.prod(x, axis, keepdims)", "smooth (exact with zeros)"),
    "max": ("np.max(x, axis, keepdims)", "ties: the gradient goes to the first maximal entry"),
    "min": ("np.min(x, axis, keepdims)", "ties: the gradient goes to the first minimal entry"),
    "var": ("np.var(x, axis, ddof, keepdims)", "smooth"),
    "std": ("np.std(x, axis, ddof, keepdims)", "gradient 0 where std = 0"),
    "norm": ("np.linalg.norm(x, ord, axis, keepdims): vectors ord None/2/1/inf/-inf, matrices "
             "None/'fro'/1/-1/inf/-inf", "2-norm: gradient 0 at x = 0; abs, max, min: their own rules"),
    "cumsum": ("np.cumsum(x, axis)", "smooth"),
    "logsumexp": ("scipy.special.logsumexp(x, axis, keepdims)", "smooth (a primitive: no overflow)"),
    # structure
    "reshape": ("np.reshape", "linear"), "transpose": ("np.transpose(x, axes)", "linear"),
    "moveaxis": ("np.moveaxis", "linear"), "expand_dims": ("np.expand_dims", "linear"),
    "squeeze": ("np.squeeze", "linear"), "broadcast_to": ("np.broadcast_to", "linear"),
    "concatenate": ("np.concatenate", "linear"), "stack": ("np.stack", "linear"),
    "split": ("np.split", "linear"), "tile": ("np.tile", "linear"), "repeat": ("np.repeat", "linear"),
    "pad": ("np.pad(x, pad_width, constant_values=c)", "linear (mode 'constant' only)"),
    # linear algebra
    "matmul": ("np.matmul", "bilinear"), "dot": ("np.dot", "bilinear"),
    "tensordot": ("np.tensordot", "bilinear"), "einsum": ("np.einsum", "multilinear"),
    "outer": ("np.outer", "bilinear"), "trace": ("np.trace", "linear"),
    # constants
    "asarray": ("np.asarray", "a constant: no gradient flows into it"),
}
NAMESPACE_FUNCTIONS = tuple(FUNCTIONS)


def unknown_name_error(namespace: str, name: str) -> AttributeError:
    """The error for ``xp.<name>`` that does not exist: it lists the names that do."""
    import difflib
    close = difflib.get_close_matches(name, NAMESPACE_FUNCTIONS, n=3)
    hint = f" Did you mean {', '.join('xp.' + c for c in close)}?" if close else ""
    return AttributeError(f"the xp namespace ({namespace}) has no function {name!r}.{hint} It has: "
                          f"{', '.join(NAMESPACE_FUNCTIONS)} (and the operators + - * / ** @, comparisons and indexing). "
                          "docs/language.md lists them with their numpy equivalents.")


class Namespace(Protocol):
    """The array functions a model, loss or user function may call besides the operators (see ``FUNCTIONS``)."""

    def exp(self, x: Any) -> Any: ...
    def sigmoid(self, x: Any) -> Any:
        """1 / (1 + exp(-x)), evaluated without overflow."""
    def where(self, cond: Any, a: Any, b: Any) -> Any:
        """a where cond else b (cond: a constant mask, e.g. a comparison of traced values)."""
    def sum(self, x: Any, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any: ...
    def asarray(self, x: Any) -> Any:
        """Data as a constant of this namespace's array type; a traced value as it is (np.asarray returns an array
        unchanged, and its derivative flows on: the same function in every differentiator)."""


# ----- the numpy implementations (shared by the reverse engine's numpy backend) -----
def _sigmoid(x):
    # exp of a non-positive number never overflows; both branches are accurate to an ulp or two.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softplus(x):
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow, accurate to a few ulp everywhere."""
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _log_sigmoid(x):
    return -_softplus(-np.asarray(x))


def _logsumexp(x, axis=None, keepdims=False):  # (scipy.special.logsumexp's default: every axis)
    if np.ndim(x) == 0:  # one value: log(exp(x)) is x (a 0-d value has no axis -1 to reduce)
        return x
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    out = log_sum_exp_shifted(x - m, axis) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def log_sum_exp_shifted(d, axis):
    """log(sum(exp(d), axis, keepdims=True)) for d = x - max(x), as log1p of the sum without one maximal entry
    (an exact 1): a row (0, -50) gives e^-50, where log(1 + e^-50) would round to 0. Rows without a 0 (a max
    of -inf or +inf shifted by 0) come out as log(sum): the count of zeros less one makes the sum's -1."""
    top = d == 0  # (ufunc reductions, not np.sum/np.where: this runs per gradient call on tiny arrays)
    rest = np.add.reduce(np.exp(d), axis=axis, keepdims=True, where=~top)
    return np.log1p(rest + (np.add.reduce(top, axis=axis, keepdims=True, dtype=rest.dtype) - 1.0))


def _step(x):
    x = np.asarray(x)
    return (x > 0).astype(x.dtype if x.dtype.kind == "f" else np.float64)


def _relu(x):
    return np.maximum(0.0, x)


def _clip(x, lo, hi):  # (a None bound: no bound, as numpy's clip)
    x = x if lo is None else np.maximum(x, lo)
    return x if hi is None else np.minimum(x, hi)


_VECTOR_ORDS = (None, 2, 1, math.inf, -math.inf)
_MATRIX_ORDS = (None, "fro", 1, -1, math.inf, -math.inf)


def linalg_norm(ns: Any, x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    """``np.linalg.norm(x, ord, axis, keepdims)``, composed of ``ns``'s own ``sum abs max min reshape _sqrt0``, so that
    every namespace differentiates it by its own rules (and a kink tracker sees its kinks). The orders without an SVD
    or a root other than sqrt: vectors ``None, 2`` (sqrt of the sum of squares; gradient 0 at 0), ``1``, ``inf``,
    ``-inf``; matrices ``None``/``'fro'``, ``1``, ``-1``, ``inf``, ``-inf``. Others raise NotImplementedError."""
    shape = np.shape(x)
    ndim = len(shape)
    if axis is None and ord is None:  # numpy: the 2-norm of all entries, whatever ndim
        return ns._sqrt0(ns.sum(x * x, axis=None, keepdims=keepdims))
    if axis is None:
        if ndim not in (1, 2):
            raise ValueError(f"norm with ord={ord!r} and no axis needs a vector or a matrix; got shape {shape}. "
                             "Give axis= (an int for vector norms, a pair for matrix norms).")
        axis = tuple(range(ndim))
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    normalize_axes(axes, ndim, "norm")  # (the range check and its message)
    axes = tuple(int(a) % ndim for a in axes)  # in the caller's order: a matrix norm's (rows, columns)
    if len(axes) == 2 and axes[0] == axes[1]:
        raise ValueError(f"norm: the two axes of a matrix norm must differ; got axis={axis!r}")
    if len(axes) == 1:
        if ord not in _VECTOR_ORDS:
            raise NotImplementedError(
                f"xp.norm computes the vector norms ord=None, 2, 1, inf and -inf; got ord={ord!r}. Write others with "
                "xp.sum, xp.abs and ** (their gradient at 0 needs a convention of yours).")
        if ord in (None, 2):
            return ns._sqrt0(ns.sum(x * x, axis=axes, keepdims=keepdims))
        if ord == 1:
            return ns.sum(ns.abs(x), axis=axes, keepdims=keepdims)
        return (ns.max if ord > 0 else ns.min)(ns.abs(x), axis=axes[0], keepdims=keepdims)
    if len(axes) != 2:
        raise ValueError(f"norm takes one axis (a vector norm) or two (a matrix norm); got axis={axis!r}")
    if ord not in _MATRIX_ORDS:
        raise NotImplementedError(
            f"xp.norm computes the matrix norms ord=None/'fro', 1, -1, inf and -inf; got ord={ord!r} (2, -2 and "
            "'nuc' need singular values, which the namespace has no rule for).")
    if ord in (None, "fro"):
        return ns._sqrt0(ns.sum(x * x, axis=axes, keepdims=keepdims))
    rows, cols = axes  # 1 / -1: the largest / smallest column sum of |x|; inf / -inf: row sums
    summed, extreme = (rows, cols) if abs(ord) == 1 else (cols, rows)
    out = (ns.max if ord > 0 else ns.min)(ns.sum(ns.abs(x), axis=summed, keepdims=True), axis=extreme, keepdims=True)
    return out if keepdims else ns.reshape(out, tuple(n for a, n in enumerate(shape) if a not in axes))


def _pad(x, pad_width, constant_values=0.0):
    return np.pad(x, pad_width, mode="constant", constant_values=constant_values)


try:  # scipy's erf is a ufunc; without scipy, math.erf element by element (slower, as accurate)
    from scipy.special import erf as _erf
except ImportError:  # pragma: no cover - scipy is installed wherever scikit-learn or the bench extra is
    _erf = np.vectorize(math.erf, otypes=[np.float64])


def _var(x, axis=None, ddof=0, keepdims=False):
    degrees_of_freedom(np.shape(x), axis, ddof)  # (numpy would return inf or nan with a RuntimeWarning)
    return np.var(x, axis=axis, ddof=ddof, keepdims=keepdims)


def _std(x, axis=None, ddof=0, keepdims=False):
    degrees_of_freedom(np.shape(x), axis, ddof)
    return np.std(x, axis=axis, ddof=ddof, keepdims=keepdims)


def _trace(x, offset=0, axis1=0, axis2=1):
    return np.trace(x, offset=offset, axis1=axis1, axis2=axis2)


class NumpyNamespace:
    """Plain evaluation: numbers in, numbers out. Used by finite differences and forward passes."""

    name = "numpy"
    # staticmethod matters: np.mean is a plain function and would otherwise become a bound method.
    exp, log, sqrt, square = (staticmethod(f) for f in (np.exp, np.log, np.sqrt, np.square))
    sin, cos, tan = (staticmethod(f) for f in (np.sin, np.cos, np.tan))
    arcsin, arccos, arctan, arctan2 = (staticmethod(f) for f in (np.arcsin, np.arccos, np.arctan, np.arctan2))
    sinh, cosh, tanh = (staticmethod(f) for f in (np.sinh, np.cosh, np.tanh))
    log1p, expm1, log2, log10 = (staticmethod(f) for f in (np.log1p, np.expm1, np.log2, np.log10))
    erf = staticmethod(_erf)
    sigmoid = staticmethod(_sigmoid)
    softplus = staticmethod(_softplus)
    log_sigmoid = staticmethod(_log_sigmoid)
    relu = staticmethod(_relu)
    abs = staticmethod(np.abs)
    sign = staticmethod(np.sign)
    step = staticmethod(_step)
    clip = staticmethod(_clip)
    maximum = staticmethod(np.maximum)
    minimum = staticmethod(np.minimum)
    power = staticmethod(np.power)
    where = staticmethod(np.where)
    sum = staticmethod(np.sum)
    mean = staticmethod(np.mean)
    prod = staticmethod(np.prod)
    max = staticmethod(np.max)
    min = staticmethod(np.min)
    var = staticmethod(_var)
    std = staticmethod(_std)
    norm = staticmethod(lambda x, ord=None, axis=None, keepdims=False: linalg_norm(NUMPY, x, ord, axis, keepdims))
    _sqrt0 = staticmethod(np.sqrt)  # (the 2-norm's last step; values only here)
    cumsum = staticmethod(np.cumsum)
    logsumexp = staticmethod(_logsumexp)
    reshape = staticmethod(np.reshape)
    transpose = staticmethod(np.transpose)
    moveaxis = staticmethod(np.moveaxis)
    expand_dims = staticmethod(np.expand_dims)
    squeeze = staticmethod(np.squeeze)
    broadcast_to = staticmethod(np.broadcast_to)
    concatenate = staticmethod(np.concatenate)
    stack = staticmethod(np.stack)
    split = staticmethod(np.split)
    tile = staticmethod(np.tile)
    repeat = staticmethod(np.repeat)
    pad = staticmethod(_pad)
    matmul = staticmethod(np.matmul)
    dot = staticmethod(np.dot)
    tensordot = staticmethod(np.tensordot)
    einsum = staticmethod(np.einsum)
    outer = staticmethod(np.outer)
    trace = staticmethod(_trace)
    asarray = staticmethod(np.asarray)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise unknown_name_error(self.name, name)


NUMPY = NumpyNamespace()


# ----- pieces shared by the traced namespaces (reverse tape, SymPy): composites of a small core -----
def shape_after(fn, shape: tuple, *args, **kwargs) -> tuple:
    """The shape numpy's ``fn`` gives an array of ``shape`` (computed on a broadcast view: nothing allocated)."""
    return np.shape(fn(np.broadcast_to(np.float64(0.0), tuple(shape)), *args, **kwargs))


def positions(fn, shape: tuple, *args, **kwargs) -> np.ndarray:
    """Which flat entries of an array of ``shape`` numpy's ``fn`` picks: ``fn`` applied to their flat indices.

    A rearranging function (tile, repeat, diagonal, ...) is then ``reshape(x, -1)[positions]`` in any
    namespace: one gather, whose gradient (a scatter-add) every differentiator already has.
    """
    return np.asarray(fn(np.arange(math.prod(shape)).reshape(shape), *args, **kwargs))


def degrees_of_freedom(shape: tuple, axis: Any, ddof: Any) -> int:
    """n - ddof for ``var``/``std`` over ``axis`` of an array of ``shape`` (n: the entries each result averages), or
    a ValueError where that leaves none (numpy returns inf or nan there), in every namespace alike."""
    axes = normalize_axes(axis, len(shape), "var")
    n = math.prod(shape) if axes is None else math.prod(shape[a] for a in axes)
    if n - ddof <= 0:
        raise ValueError(f"xp.var / xp.std: {n} entries with ddof={ddof} leave {n - ddof} degrees of freedom; "
                         "need at least one (use a smaller ddof)")
    return n - ddof


def normalize_axes(axis, ndim: int, who: str) -> tuple[int, ...] | None:
    """``axis`` (None, an int or a tuple of ints) as a sorted tuple of non-negative axes, or None for all."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not (isinstance(a, (int, np.integer)) and -ndim <= a < ndim):
            raise ValueError(f"xp.{who}: axis {a!r} is out of range for an array of {ndim} dimensions")
        out.append(int(a) % ndim)
    return tuple(sorted(set(out)))


_SUBLIST_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # numpy's: 0 is A, 26 is a


def einsum_arguments(subscripts: Any, operands: tuple) -> tuple[str, tuple]:
    """(subscripts string, operands) of an einsum call in either of numpy's forms: ``einsum("ij,jk->ik", a, b)``,
    or interleaved sublists ``einsum(a, [0, 1], b, [1, 2], [0, 2])`` (axis labels 0-51, ``...`` as Ellipsis)."""
    if isinstance(subscripts, str):
        return subscripts, operands
    args = (subscripts,) + tuple(operands)
    pairs, out = (args[:-1], args[-1]) if len(args) % 2 else (args, None)

    def letters(sublist: Any) -> str:
        if not isinstance(sublist, (list, tuple)):
            raise TypeError("xp.einsum takes a subscripts string first, or operands each followed by a list of axis "
                            f"labels (numpy's sublist form: einsum(a, [0, 1], b, [1, 2])); got {type(sublist).__name__} "
                            "where a list was expected")
        text = ""
        for label in sublist:
            if label is Ellipsis:
                text += "..."
            elif isinstance(label, (int, np.integer)) and not isinstance(label, bool) and 0 <= label < 52:
                text += _SUBLIST_LETTERS[int(label)]
            else:
                raise ValueError(f"xp.einsum: a sublist's axis labels are ints from 0 to 51 or Ellipsis; got {label!r}")
        return text

    spec = ",".join(letters(s) for s in pairs[1::2]) + ("" if out is None else "->" + letters(out))
    return spec, tuple(pairs[0::2])


def parse_einsum(subscripts: str, ndims: list[int]) -> tuple[list[str], str]:
    """(input subscripts, output subscripts) of an einsum, the implicit output made explicit.

    Letters may not repeat within one operand (a diagonal: use xp.trace or indexing); ``...`` is kept.
    """
    spec = subscripts.replace(" ", "")
    ins_part, _, out = spec.partition("->")
    ins = ins_part.split(",")
    if len(ins) != len(ndims):
        raise ValueError(f"xp.einsum: subscripts {subscripts!r} name {len(ins)} operands; {len(ndims)} were given")
    for s in ins:
        letters = s.replace("...", "")
        if len(set(letters)) != len(letters):
            raise NotImplementedError(f"xp.einsum: a letter repeated within one operand ({s!r}, a diagonal) is not "
                                      "supported; use xp.trace, or index the diagonal with integer arrays")
    if "->" not in spec:
        letters = "".join(s.replace("...", "") for s in ins)
        out = ("..." if any("..." in s for s in ins) else "") + "".join(
            sorted(c for c in set(letters) if letters.count(c) == 1))
    return ins, out


class Composites:
    """The namespace functions that are exact compositions of others, for the traced namespaces.

    A subclass provides the core: the elementwise functions, ``where``, the reductions ``sum mean max min
    prod cumsum``, ``reshape transpose broadcast_to concatenate pad einsum``, indexing on its values, and
    ``_sqrt0`` (sqrt whose derivative at 0 is taken to be 0: the last step of ``norm`` and ``std``).
    """

    def square(self, x): return x ** 2
    def relu(self, x): return self.maximum(0.0, x)

    def clip(self, x, lo, hi):
        # maximum/minimum route ties to their first argument, x: the gradient passes at the bounds (as torch.clamp)
        if lo is not None:
            x = self.maximum(x, lo)
        return x if hi is None else self.minimum(x, hi)

    def matmul(self, a, b): return a @ b

    def var(self, x, axis=None, ddof=0, keepdims=False):
        n = degrees_of_freedom(np.shape(x), axis, ddof) + ddof
        d = x - self.mean(x, axis=axis, keepdims=True)
        return self.sum(d * d, axis=axis, keepdims=keepdims) / float(n - ddof)  # (divided: exact in symbolic builds)

    def std(self, x, axis=None, ddof=0, keepdims=False):
        return self._sqrt0(self.var(x, axis=axis, ddof=ddof, keepdims=keepdims))  # gradient 0 where std = 0

    def norm(self, x, ord=None, axis=None, keepdims=False):  # numpy's np.linalg.norm order: ord second
        return linalg_norm(self, x, ord, axis, keepdims)  # the 2-norm's gradient is 0 at x = 0, like abs's

    def moveaxis(self, x, source, destination):
        ndim = len(np.shape(x))
        src = [s % ndim for s in ((source,) if isinstance(source, int) else source)]
        dst = [d % ndim for d in ((destination,) if isinstance(destination, int) else destination)]
        order = [n for n in range(ndim) if n not in src]
        for d, s in sorted(zip(dst, src)):
            order.insert(d, s)
        return self.transpose(x, tuple(order))

    def expand_dims(self, x, axis): return self.reshape(x, shape_after(np.expand_dims, np.shape(x), axis))
    def squeeze(self, x, axis=None): return self.reshape(x, shape_after(np.squeeze, np.shape(x), axis))

    def stack(self, xs, axis=0):
        xs = list(xs)
        ndim = len(np.shape(xs[0])) + 1
        return self.concatenate([self.expand_dims(x, axis % ndim) for x in xs], axis=axis % ndim)

    def split(self, x, indices_or_sections, axis=0):
        shape = np.shape(x)
        axis = axis % len(shape)
        pieces = np.split(np.arange(shape[axis]), indices_or_sections)  # numpy's own checks and boundaries
        lead = (slice(None),) * axis
        return [x[lead + (slice(int(p[0]), int(p[-1]) + 1),)] if len(p) else x[lead + (slice(0, 0),)]
                for p in pieces]

    def _gather(self, x, fn, *args, **kwargs):
        return self.reshape(x, (-1,))[positions(fn, np.shape(x), *args, **kwargs)]

    def tile(self, x, reps): return self._gather(x, np.tile, reps)
    def repeat(self, x, repeats, axis=None): return self._gather(x, np.repeat, repeats, axis=axis)

    def trace(self, x, offset=0, axis1=0, axis2=1):
        return self.sum(self._gather(x, np.diagonal, offset=offset, axis1=axis1, axis2=axis2), axis=-1)

    def outer(self, a, b):
        return self.einsum("i,j->ij", self.reshape(a, (-1,)), self.reshape(b, (-1,)))

    def tensordot(self, a, b, axes=2):
        na, nb = len(np.shape(a)), len(np.shape(b))
        if isinstance(axes, (int, np.integer)):
            ax_a, ax_b = list(range(na - axes, na)), list(range(axes))
        else:
            ax_a, ax_b = ([x] if isinstance(x, int) else list(x) for x in axes)
        ax_a, ax_b = [i % na for i in ax_a], [i % nb for i in ax_b]
        letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        sa = [next(letters) for _ in range(na)]
        sb = [next(letters) for _ in range(nb)]
        for i, j in zip(ax_a, ax_b):
            sb[j] = sa[i]
        out = [c for i, c in enumerate(sa) if i not in ax_a] + [c for j, c in enumerate(sb) if j not in ax_b]
        return self.einsum(f"{''.join(sa)},{''.join(sb)}->{''.join(out)}", a, b)

    def dot(self, a, b):
        na, nb = len(np.shape(a)), len(np.shape(b))
        if na == 0 or nb == 0:
            return a * b
        return self.tensordot(a, b, axes=([na - 1], [max(nb - 2, 0)]))

    def pad(self, x, pad_width, mode="constant", constant_values=0.0):
        if mode != "constant":
            raise NotImplementedError(f"xp.pad supports mode='constant' only; got mode={mode!r}")
        ndim = len(np.shape(x))
        widths = [tuple(int(v) for v in w) for w in np.broadcast_to(np.asarray(pad_width), (ndim, 2))]
        if not isinstance(constant_values, (int, float, np.integer, np.floating)):
            raise NotImplementedError("xp.pad: constant_values must be one number")
        return self._pad(x, tuple(widths), float(constant_values))

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise unknown_name_error(getattr(self, "name", type(self).__name__), name)


# ----- numpy's own functions on traced values (NEP 13 / NEP 18): the same rules, or an error naming xp.<f> -----
_UFUNC_NAMES = {"absolute": "abs", "fabs": "abs", "divide": "true_divide", "arctan2": "arctan2"}
_OPERATORS = {
    "add": lambda a, b: a + b, "subtract": lambda a, b: a - b, "multiply": lambda a, b: a * b,
    "true_divide": lambda a, b: a / b, "negative": lambda a: -a, "positive": lambda a: a,
    "matmul": lambda a, b: a @ b, "greater": lambda a, b: a > b, "greater_equal": lambda a, b: a >= b,
    "less": lambda a, b: a < b, "less_equal": lambda a, b: a <= b, "equal": lambda a, b: a == b,
    "not_equal": lambda a, b: a != b,
}


def dispatch_ufunc(xp: Any, kind: str, ufunc, method: str, inputs: tuple, kwargs: dict) -> Any:
    """``np.<ufunc>(traced, ...)`` as the namespace ``xp`` computes it (NEP 13), or a TypeError naming xp.<f>."""
    name = _UFUNC_NAMES.get(ufunc.__name__, ufunc.__name__)
    if method == "__call__" and not kwargs:
        if name in _OPERATORS:
            return _OPERATORS[name](*inputs)
        if name in FUNCTIONS and name != "asarray":
            return getattr(xp, name)(*inputs)
    reduce_hint = {"add": "xp.sum", "multiply": "xp.prod", "maximum": "xp.max", "minimum": "xp.min"}.get(name)
    suggestion = (f"xp.{name}" if name in FUNCTIONS and method == "__call__" else reduce_hint
                  if method in ("reduce", "accumulate") and reduce_hint else None)
    raise TypeError(f"numpy's {ufunc.__name__}{'' if method == '__call__' else '.' + method}"
                    f"{' with ' + ', '.join(kwargs) if kwargs else ''} cannot run on a {kind} value: its gradient "
                    f"would be lost. {'Use ' + suggestion + ' instead' if suggestion else 'The xp namespace has no such function'}"
                    " (the xp your function receives; docs/language.md lists them).")


# numpy functions whose arguments differ from the xp function of the same name: (name, numpy's call -> xp's call)
_NUMPY_SIGNATURES = {
    np.linalg.norm: ("norm", lambda xp, x, ord=None, axis=None, keepdims=False:
                     xp.norm(x, axis=axis, keepdims=keepdims, ord=ord)),
    np.linalg.trace: ("trace", lambda xp, x, offset=0, dtype=None:  # (the last two axes, not the first two)
                      xp.trace(x, offset=offset, axis1=-2, axis2=-1)),
}


def dispatch_function(xp: Any, kind: str, func, args: tuple, kwargs: dict) -> Any:
    """``np.<func>(traced, ...)`` (NEP 18) through ``xp.<func>`` when the namespace has it, else a TypeError."""
    if func in _NUMPY_SIGNATURES:
        name, call = _NUMPY_SIGNATURES[func]
        return call(xp, *args, **kwargs)
    name = getattr(func, "__name__", str(func))
    name = {"amax": "max", "amin": "min"}.get(name, name)
    if name in ("shape", "ndim", "size") and len(args) == 1 and not kwargs:
        return getattr(args[0], name)  # facts about the value: no gradient involved
    if name in FUNCTIONS and name != "asarray":
        try:
            return getattr(xp, name)(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"np.{name} on a {kind} value runs as xp.{name}, which refused these arguments: {e}. "
                            f"Call xp.{name} directly with the arguments docs/language.md lists.") from None
    raise TypeError(f"np.{name} cannot run on a {kind} value: the xp namespace has no {name!r}, so its gradient "
                    f"would be lost. Available: {', '.join(NAMESPACE_FUNCTIONS)}.")
