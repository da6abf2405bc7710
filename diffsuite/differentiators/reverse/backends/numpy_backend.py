"""The numpy array backend of the reverse engine. Every backend has the same methods (tests check)."""
from __future__ import annotations

import math

import numpy as np

from ....namespace import _erf, _log_sigmoid, _logsumexp, _softplus, _step, log_sum_exp_shifted
from .placement import check_placement


_add_reduce, _max_reduce, _min_reduce = np.add.reduce, np.maximum.reduce, np.minimum.reduce
_isfinite = math.isfinite
_F64 = np.float64  # (a module constant: the 0-d fast paths test it once per value)
# numpy's scalar types (a 0-d operation's result): their shape is () without asking (``.shape`` on one costs more
# than the rest of ``sum_to``)
_NUMPY_SCALARS = frozenset(np.sctypeDict.values())
_REAL_SCALARS = frozenset({float, int, np.float64, np.float32, np.float16})  # (strong_div's one-divisor path)
_UINT_OF_SIZE = {4: np.uint32, 8: np.uint64}  # an unsigned integer as wide as float32 / float64


class NumpyBackend:
    """numpy arrays in ``dtype`` (float64 by default) on the CPU."""

    name = "numpy"

    def __init__(self, device: str = "cpu", dtype: str = "float64"):
        check_placement("numpy", device)
        self.device = "cpu"
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
        self._exp_max = float(np.log(np.finfo(self.dtype).max)) - 1.0  # exp() of more overflows
        # the same constants as 0-d arrays of this dtype, for sigmoid: numpy handles a 0-d array operand in about
        # half the time of a Python float (whose "weak" type it must resolve per call), with the same result
        self._exp_max_0d, self._one_0d = np.array(self._exp_max, self.dtype), np.array(1.0, self.dtype)
        self._sigmoid_floor = float(self._one_0d / (self._one_0d + np.exp(self._exp_max_0d)))  # sigmoid(-_exp_max)

    # ----- conversion -----
    def asarray(self, x):
        """A numpy array in this backend's dtype (float data is cast; other data is left alone)."""
        a = np.asarray(x)
        return a.astype(self.dtype, copy=False) if a.dtype.kind in "fiub" and a.dtype != self.dtype else a

    def leaf(self, x):
        """A parameter as the tape holds it: ``asarray(x)``, a 0-d array as numpy's scalar of its dtype. That is
        the type numpy's own 0-d operations return, and its arithmetic (numpy's scalar math) skips the ufunc
        machinery: ``g * w`` costs 0.1 us with a scalar ``w`` against 0.7 us with a 0-d array, the same IEEE
        operation, and the same promotion (NEP 50, numpy >= 2). (A chain of 0-d primitives on 0-d parameters paid
        that in most of its products.)"""
        a = self.asarray(x)
        return a[()] if not a.ndim else a

    def constant(self, x):
        """Convert a constant met inside a traced function; Python numbers stay numbers (dtype-neutral)."""
        if type(x) is np.ndarray and x.dtype is self.dtype:  # the common case (data), first and cheapest
            return x
        if isinstance(x, (int, float)):
            # (np.float64 is a float too, but not a "weak" one: numpy would promote a float32 array to float64)
            return x if type(x) is float or type(x) is int else float(x) if isinstance(x, float) else int(x)
        if isinstance(x, np.ndarray) and x.dtype == self.dtype:
            return x
        return self.asarray(x)

    @staticmethod
    def item(x) -> float:
        """A one-element array as a Python float."""
        return float(x) if type(x) is np.float64 or (type(x) is np.ndarray and x.ndim == 0) \
            else float(np.asarray(x).reshape(()))

    @staticmethod
    def to_numpy(x) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)

    def empty(self, n: int):
        """An uninitialised vector of ``n`` entries in this backend's dtype (an ``out=`` buffer)."""
        return np.empty(n, dtype=self.dtype)

    @staticmethod
    def split(flat, sizes, shapes):
        """Views of consecutive pieces of the vector ``flat``, ``sizes[i]`` entries each, reshaped to
        ``shapes[i]`` (``None``: left 1-D). Writing into a view writes into ``flat``."""
        out, start = [], 0
        for n, shape in zip(sizes, shapes):
            part = flat[start:start + n]
            out.append(part if shape is None else part.reshape(shape))
            start += n
        return out

    @staticmethod
    def concat_flat(parts, out=None):
        """The parts raveled and joined into one vector (into ``out`` if given)."""
        return np.concatenate(parts, axis=None, out=out)  # axis=None ravels each part (row-major): no reshapes

    def synchronize(self):
        """Wait for queued work (nothing to wait for on numpy)."""

    # ----- elementwise -----
    exp = staticmethod(np.exp)
    log = staticmethod(np.log)
    tanh = staticmethod(np.tanh)

    def sigmoid(self, x):
        # 1 / (1 + e^-x) is accurate to a few ulp; the exponent is clipped where e^-x would overflow (x below
        # -708.8 in float64, -87.7 in float32). Five ufuncs instead of the branch-free namespace version's nine,
        # and no np.errstate (a context manager costs more than the arithmetic on small arrays). Clipped entries
        # all come out as the smallest unclipped result (``_sigmoid_floor``): one minimum over the output finds
        # them, and there sigmoid(x) is e^x correctly rounded (1 + e^x rounds to 1), a subnormal number or 0
        # (a constant 1.5e-308 instead would make log(sigmoid(-720)) -708.8 with gradient 1e-5).
        if type(x) is np.ndarray and x.dtype is self.dtype:  # (any other input: Python floats, as numpy would cast)
            one = self._one_0d
            out = one / (one + np.exp(np.minimum(-x, self._exp_max_0d)))
        else:
            out = 1.0 / (1.0 + np.exp(np.minimum(-x, self._exp_max)))
        floor = self._sigmoid_floor
        if type(out) is not np.ndarray:
            clipped = out <= floor
        elif out.size <= 16:  # (a small array: Python's comparison of its floats is 4x cheaper than a reduction)
            clipped = any(map(floor.__ge__, out.ravel().tolist()))
        else:
            clipped = _min_reduce(out, axis=None, initial=np.inf) <= floor  # (initial: an empty array has no minimum)
        if clipped:  # rare: some x below -_exp_max (or x = -inf)
            out = np.where(np.less(x, -self._exp_max), np.exp(np.minimum(x, 0.0)), out)  # (no overflow elsewhere)
        return out

    abs = staticmethod(np.abs)
    sign = staticmethod(np.sign)
    step = staticmethod(_step)
    maximum = staticmethod(np.maximum)
    minimum = staticmethod(np.minimum)
    ge = staticmethod(np.greater_equal)
    le = staticmethod(np.less_equal)
    where = staticmethod(np.where)

    @staticmethod
    def zero_where_le(g, a, b):
        """``g`` with zeros where ``a <= b`` (where ``a`` is NaN, ``g`` stays); shapes broadcast."""
        uint = _UINT_OF_SIZE.get(g.itemsize) if type(g) is np.ndarray and g.dtype.kind == "f" else None
        if (uint is not None and type(a) is np.ndarray and a.shape == g.shape and a.ndim  # (0-d: a scalar mask)
                and isinstance(b, (int, float))):
            # relu's VJP, branch-free: np.where mispredicts a branch per element on a data-dependent mask
            # (about 40 us on 64x128 here, 14 us this way). Clearing g's bits where the gradient is cut gives
            # np.where's result bit for bit: +0.0 there (also where g is inf or NaN), g itself elsewhere.
            keep = np.less_equal(a, b).astype(uint)  # 1 where cut, 0 where kept
            keep -= 1  # 0 where cut, all bits set where kept (unsigned wrap-around)
            return np.bitwise_and(keep, g.view(uint), out=keep).view(g.dtype)
        return np.where(np.less_equal(a, b), 0.0, g)

    # ----- reductions and shapes -----
    # The ufuncs' own reduce rather than np.sum or x.sum: those are Python wrappers around it, and their
    # microseconds are most of an op's time on the small nets.
    @staticmethod
    def sum(x, axis=None, keepdims=False):
        if type(x) is np.ndarray and x.dtype.kind == "f":  # (add.reduce of booleans would be a logical or)
            return _add_reduce(x, axis=axis, keepdims=keepdims)
        return np.sum(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def mean(x, axis=None, keepdims=False):
        return x.mean(axis=axis, keepdims=keepdims) if type(x) is np.ndarray else np.mean(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def logsumexp(x, axis=-1, keepdims=False):
        """log(sum(exp(x), axis)), shifted by the max (its own gradient is not needed: see ops.logsumexp_vjp)."""
        x = np.asarray(x)
        m = _max_reduce(x, axis=axis, keepdims=True)
        if not math.isfinite(_add_reduce(m, axis=None)):  # an infinite max (rare): shift by 0 there, as the namespace does
            return _logsumexp(x, axis=axis, keepdims=keepdims)
        out = log_sum_exp_shifted(x - m, axis) + m  # log1p: a row (0, -50) gives e^-50, not 0
        return out if keepdims else out.squeeze(axis)

    @staticmethod
    def softmax(x, axis=-1):
        """exp(x - logsumexp(x)) along ``axis``: the softmax activation's composite, bit for bit (ops.SOFTMAX)."""
        return np.exp(x - NumpyBackend.logsumexp(x, axis=axis, keepdims=True))

    @staticmethod
    def reshape(x, shape):
        # the method, not np.reshape: one Python call less; a constant that is a number (constant() keeps numbers
        # dtype-neutral) has no such method
        return x.reshape(shape) if type(x) is np.ndarray else np.reshape(x, shape)

    @staticmethod
    def swapaxes(x, a, b):
        if x.ndim == 2 and type(x) is np.ndarray:
            return x.T  # the matmul VJPs' case: an attribute, not a Python wrapper
        return np.swapaxes(x, a, b)

    @staticmethod
    def expand_dims(x, axis):
        if type(axis) is int and type(x) is np.ndarray:
            shape = list(x.shape)
            shape.insert(axis if axis >= 0 else len(shape) + 1 + axis, 1)
            return x.reshape(shape)
        return np.expand_dims(x, axis)

    outer = staticmethod(np.outer)

    @staticmethod
    def matmul(x, y, out=None):
        return np.matmul(x, y, out=out)

    @staticmethod
    def copy_into(dst, x):
        """Write ``x`` into the array ``dst`` (broadcasting) and return ``dst``."""
        np.copyto(dst, x)
        return dst

    @staticmethod
    def numel(x) -> int:
        # numpy scalars (a full reduction's result, the usual output) have .size too: np.size is a Python wrapper
        return x.size if type(x) is np.ndarray or isinstance(x, np.generic) else int(np.size(x))

    @staticmethod
    def ones_like(x):
        if isinstance(x, np.generic):  # a numpy scalar (a full reduction's result: the usual output): 0-d ones
            return np.array(1, dtype=x.dtype)  # what empty_like + fill gives, in one call (empty_like(scalar) is slow)
        out = np.empty_like(x)  # empty_like + fill: np.ones_like is a slower Python wrapper of the same
        out.fill(1)
        return out

    @staticmethod
    def zeros_like(x):
        return np.zeros_like(x)

    @staticmethod
    def sum_to(g, like):
        """Undo broadcasting: sum ``g`` down to the shape of ``like`` (an array or a shape tuple)."""
        if type(g) in _NUMPY_SCALARS and (type(like) is tuple and not like or type(like) in _NUMPY_SCALARS):
            return g  # 0-d to 0-d: nothing to undo (and no .shape to ask a numpy scalar for)
        # (numpy scalars, e.g. a full reduction's result, have .shape == (): np.shape is a Python wrapper)
        if type(like) is tuple:
            shape = like
        else:
            shape = like.shape if type(like) is np.ndarray or isinstance(like, np.generic) else np.shape(like)
        try:  # arrays and numpy scalars have .shape (no call); a Python number does not
            gshape = g.shape
        except AttributeError:
            g = np.asarray(g)
            gshape = g.shape
        if gshape == shape:  # the common case, without a call
            return g
        lead = len(gshape) - len(shape)
        if lead == 1 and gshape[1:] == shape:  # a bias broadcast over the batch
            return _add_reduce(g, 0)  # (axis 0, positionally: keyword parsing costs on small arrays)
        if lead > 0:
            g = _add_reduce(g, axis=tuple(range(lead)))
        axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
        g = _add_reduce(g, axis=axes, keepdims=True) if axes else g
        return g.reshape(shape)

    @staticmethod
    def sum_to_into(dst, g):
        """``sum_to(g, dst)`` written into the array ``dst``; returns ``dst``. (A bias: no temporary, no copy.)"""
        if type(g) is np.ndarray and g.ndim == dst.ndim + 1 and g.shape[1:] == dst.shape:
            return _add_reduce(g, 0, out=dst)
        np.copyto(dst, NumpyBackend.sum_to(g, dst))
        return dst

    @staticmethod
    def expand_to(g, like, axis, keepdims):
        """Broadcast a reduction's cotangent back to the input's shape (the VJP of sum); ``like``: the input
        or its shape. The result has ``like``'s dtype, or ``g``'s when ``like`` is a shape."""
        shape = like if type(like) is tuple else np.shape(like)
        if axis is None and not keepdims:  # (keepdims: g has ndim dimensions of size 1, broadcast below)
            dtype = like.dtype if type(like) is np.ndarray else getattr(g, "dtype", None)
            if dtype is not None and dtype.kind == "f" and math.prod(shape) <= 65536:
                out = np.empty(shape, dtype)  # a filled array: cheaper than broadcast_to's Python checks here
                out.fill(g)
                return out
        elif axis is not None and not keepdims:
            g = np.expand_dims(g, axis)
        return np.broadcast_to(g, shape)

    @staticmethod
    def getitem(x, index):
        return x[index] if type(x) is np.ndarray else np.asarray(x)[index]  # (a number: see reshape)

    @staticmethod
    def scatter(g, like, index):
        """Zeros shaped like ``like`` (an array or a shape) with ``g`` added at ``index``."""
        if type(like) is tuple:
            out = np.zeros(like, dtype=np.result_type(g))
        else:
            out = np.zeros(np.shape(like), dtype=np.result_type(g, like))
        np.add.at(out, index, g)  # add.at: a repeated index gets every contribution
        return out

    # ----- the rest of the numpy subset (docs/language.md) -----
    sqrt, sin, cos, tan = (staticmethod(f) for f in (np.sqrt, np.sin, np.cos, np.tan))
    sqrt0 = staticmethod(np.sqrt)  # (sqrt0's forward: its own name, so that a lifted backend records sqrt0 itself)
    arcsin, arccos, arctan, arctan2 = (staticmethod(f) for f in (np.arcsin, np.arccos, np.arctan, np.arctan2))
    sinh, cosh, log1p, expm1 = (staticmethod(f) for f in (np.sinh, np.cosh, np.log1p, np.expm1))
    log2, log10, hypot = (staticmethod(f) for f in (np.log2, np.log10, np.hypot))
    erf = staticmethod(_erf)
    softplus = staticmethod(_softplus)
    log_sigmoid = staticmethod(_log_sigmoid)

    @staticmethod
    def expit(x):
        """sigmoid(x) to a few ulp everywhere, also where it is subnormal (x < -708), from u = exp(-|x|)."""
        u = np.exp(-np.abs(x))
        return np.where(np.asarray(x) >= 0, 1.0 / (1.0 + u), u / (1.0 + u))

    @staticmethod
    def dsigmoid(x):
        """sigmoid'(x) = u / (1 + u)^2 with u = exp(-|x|): no cancellation, no overflow, a few ulp everywhere."""
        if type(x) is np.float64:  # a scalar (0-d code): math.exp, without the 0.7 us of a ufunc call on a scalar
            u = math.exp(-abs(x))  # (exp of a non-positive number: no overflow; nan stays nan)
            v = 1.0 + u
            return u / (v * v)
        u = np.exp(-abs(x))  # (the operator: np.abs's result, exactly, without the ufunc's call cost on a scalar)
        v = 1.0 + u
        return u / (v * v)

    @staticmethod
    def one_minus_square(x):
        """1 - x^2 as (1 - x)(1 + x): exact near |x| = 1 (arcsin's and arccos's derivative)."""
        return (1.0 - x) * (1.0 + x)

    @staticmethod
    def exp_neg_square(x):
        """exp(-x^2) with x^2 split exactly into hi + lo (Dekker): correct to a few ulp even where x^2 is large."""
        x = x if isinstance(x, (np.ndarray, np.generic)) else np.asarray(x, dtype=np.float64)  # (float32 stays)
        c = x * (134217729.0 if x.dtype != np.float32 else 4097.0)  # 2^27 + 1 splits a float64 in halves, 2^12 + 1 a float32
        xh = c - (c - x)
        xl = x - xh
        hi = x * x
        lo = ((xh * xh - hi) + 2.0 * xh * xl) + xl * xl
        with np.errstate(over="ignore", invalid="ignore"):
            return np.where(np.isfinite(hi), np.exp(-hi) * (1.0 - lo), 0.0)

    @staticmethod
    def power(x, p):
        """x ** p, quietly: inf or nan at x = 0 or x < 0 are the caller's to mask (a strong zero, a where)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.power(x, p)

    @staticmethod
    def strong(g, d):
        """g * d, and 0 where g == 0 even if d is inf or nan (an unselected branch's cotangent).

        The common case (a finite local derivative ``d``) costs one sum of ``d`` (or, for a scalar, one
        subtraction) besides the product: the mask, and numpy's error state, only when ``d`` is not finite."""
        if type(d) is np.ndarray and d.ndim:
            # (huge finite d: the slow path; up to 16 entries Python's sum of the floats is 4x cheaper than a ufunc
            # reduction, which costs more than the arithmetic on the small nets)
            if d.dtype.kind != "f" or _isfinite(sum(d.ravel().tolist()) if d.size <= 16 else _add_reduce(d, axis=None)):
                return g * d
        elif _isfinite(d):  # a numpy or Python scalar, or a 0-d array (math.isfinite: the cheapest test)
            return g * d
        with np.errstate(invalid="ignore"):
            return np.where(g == 0, 0.0, g * d)

    @staticmethod
    def strong_to(g, d, like):
        """``sum_to(strong(g, d), like)``: mul's VJPs. One call instead of two, which is most of a 0-d VJP's cost."""
        kind = type(d)
        if (kind in _NUMPY_SCALARS or kind is np.ndarray and not d.ndim) and _isfinite(d):  # 0-d: strong's test
            p = g * d
            return p if type(p) in _NUMPY_SCALARS else NumpyBackend.sum_to(p, like)  # (a 0-d p needs no sum)
        return NumpyBackend.sum_to(NumpyBackend.strong(g, d), like)

    @staticmethod
    def strong_swap(g, x, y):
        """``(strong_to(g, y, x), strong_to(g, x, y))``: both of mul's VJPs in one call (``Op.pair``)."""
        if type(x) is _F64 and type(y) is _F64 and _isfinite(x) and _isfinite(y):  # 0-d, as strong_to's fast path
            p, q = g * y, g * x
            if type(p) is _F64:  # (g 0-d too: nothing to sum; else strong_to's path below)
                return p, q
        return NumpyBackend.strong_to(g, y, x), NumpyBackend.strong_to(g, x, y)

    @staticmethod
    def strong_div(g, d):
        """g / d, and 0 where g == 0 (also where d == 0)."""
        kind = type(d)
        if (kind in _REAL_SCALARS or kind is np.ndarray and not d.ndim and d.dtype.kind == "f") and d != 0 \
                and _isfinite(d):
            return g / d  # one finite nonzero divisor (a loss's batch size): g == 0 gives 0 without the mask
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(g == 0, 0.0, g / d)

    @staticmethod
    def mask(cond):
        """A boolean array for ``where`` (numpy bools, or anything numpy reads as them)."""
        return np.asarray(cond, dtype=bool)

    @staticmethod
    def amax(x, axis=None, keepdims=False):
        if type(x) is np.ndarray and x.size:  # (the ufunc's reduce: np.max is a Python wrapper around it)
            return _max_reduce(x, axis=axis, keepdims=keepdims)
        return np.max(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def amin(x, axis=None, keepdims=False):
        if type(x) is np.ndarray and x.size:
            return _min_reduce(x, axis=axis, keepdims=keepdims)
        return np.min(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def put_at_arg(g, x, axis, keepdims, largest):
        """Zeros shaped like ``x`` with ``g`` at the first maximal (``largest``) or minimal entry along ``axis``."""
        x = np.asarray(x)
        out = np.zeros(x.shape, dtype=np.result_type(g, x))
        arg = np.argmax if largest else np.argmin
        if axis is None:
            out.reshape(-1)[arg(x.reshape(-1))] = np.reshape(g, ())
            return out
        idx = np.expand_dims(arg(x, axis=axis), axis)
        np.put_along_axis(out, idx, g if keepdims else np.expand_dims(g, axis), axis)
        return out

    @staticmethod
    def prod(x, axis=None, keepdims=False):
        return np.prod(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def prod_of_others(x, axis):
        """For each entry, the product of the other entries along ``axis`` (all of them: None), without division."""
        x = np.asarray(x)
        if x.size == 0:  # no entries: nothing to multiply (the scans below would make a length-1 axis)
            return np.zeros_like(x)
        if axis is None:
            return NumpyBackend.prod_of_others(x.reshape(-1), 0).reshape(x.shape)
        m = np.moveaxis(x, axis, -1)
        ones = np.ones(m.shape[:-1] + (1,), dtype=m.dtype)
        left = np.cumprod(np.concatenate([ones, m[..., :-1]], axis=-1), axis=-1)
        right = np.cumprod(np.concatenate([ones, m[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
        return np.moveaxis(left * right, -1, axis)

    @staticmethod
    def cumsum(x, axis):
        return np.cumsum(x, axis=axis)

    @staticmethod
    def flip(x, axis):
        return np.flip(x, axis)

    @staticmethod
    def transpose(x, axes):
        return np.transpose(x, axes)

    @staticmethod
    def broadcast_to(x, shape):
        return np.broadcast_to(x, shape)

    @staticmethod
    def pad(x, pad_width, value):
        return np.pad(x, pad_width, mode="constant", constant_values=value)

    @staticmethod
    def concatenate(xs, axis):
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def einsum(spec, *xs):
        # optimize: two-operand contractions go to BLAS (tensordot) instead of einsum's own loops
        return np.einsum(spec, *xs, optimize=len(xs) > 1)

    @staticmethod
    def index(index):
        """An index as numpy reads it (the numpy backend's arrays are numpy already)."""
        return index
