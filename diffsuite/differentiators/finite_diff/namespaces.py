"""The namespaces finite differences evaluate objectives with: complex-safe numpy, and kink tracking.

``COMPLEX`` evaluates with complex numbers for the complex step. Every branch (maximum, minimum,
abs, step, and the stable sigmoid and log-sum-exp) is decided on the *real part*, so the imaginary
perturbation is carried through the branch the real evaluation takes, with the project's kink
conventions at ties: maximum/minimum pick their first argument, abs'(0) = 0, step' = 0. The
complex step therefore returns exactly the conventional subgradient at a kink (relu'(0) = 0).

``KinkTracker`` wraps a namespace and records, for each evaluation, which branch every kink op
took (the masks of maximum/minimum, the sign seen by abs and step). Two evaluations of one stencil
whose records differ straddle a kink. Under the complex namespace branches cannot change (the real
part is the unperturbed point), so it records instead whether a perturbed entry sat exactly on a tie.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any

import numpy as np

from ...namespace import NAMESPACE_FUNCTIONS, NUMPY, degrees_of_freedom, linalg_norm, unknown_name_error


def _complex_sigmoid(z):
    # decide on the real part; exp only ever sees a non-positive real part, so it cannot overflow
    negative = np.real(z) < 0
    e = np.exp(np.where(negative, z, -z))
    return np.where(negative, e / (1.0 + e), 1.0 / (1.0 + e))


def _complex_abs(z):
    r = np.real(z)
    return np.where(r > 0, z, np.where(r < 0, -z, 0.0 * z))  # abs'(0) = 0: the perturbation is dropped


def _complex_step(z):
    # step' = 0: a complex input gives a complex 0/1 with imaginary part 0, so that f stays complex and its
    # derivative through the step is exactly 0 (a real result would read as a dropped imaginary part)
    z = np.asarray(z)
    return (np.real(z) > 0).astype(z.dtype if z.dtype.kind in "fc" else np.float64)


def _complex_maximum(a, b):
    return np.where(np.real(a) >= np.real(b), a, b)  # ties go to the first argument


def _complex_minimum(a, b):
    return np.where(np.real(a) <= np.real(b), a, b)


def _complex_logsumexp(x, axis=None, keepdims=False):
    if np.ndim(x) == 0:  # (as namespace._logsumexp)
        return x
    m = np.max(np.real(x), axis=axis, keepdims=True)  # any real shift gives the same value
    m = np.where(np.isfinite(m), m, 0.0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _complex_softmax(z, axis=-1):
    """nn.Softmax's primitive (``xp._softmax``) under the complex step. A complex input is shifted by its own entry
    z_m at the first maximum of the real part: e = exp(z - z_m) (e_m = 1 exactly), p = e / sum(e). The imaginary
    part of p_m is then -p_m sum_{i != m} p_i (h_i - h_m) / (sum e) to first order, computed without cancelling;
    the composite exp(z - logsumexp(z)) forms it as h_m - Im(logsumexp(z)), i.e. (1 - p_m) h_m, which loses every
    digit once p_m rounds near 1 (half the derivative, or none). A real input (or a non-finite maximum) takes the
    composite, exactly as before."""
    composite = lambda: np.exp(z - _complex_logsumexp(z, axis=axis, keepdims=True))  # noqa: E731
    if not np.iscomplexobj(z) or np.ndim(z) == 0:
        return composite()
    r = np.real(z)
    top = np.take_along_axis(z, np.expand_dims(np.argmax(r, axis=axis), axis), axis)  # z_m, the complex entry
    if not np.all(np.isfinite(np.real(top))):
        return composite()
    e = np.exp(z - top)
    return e / np.sum(e, axis=axis, keepdims=True)


class NotAnalyticError(Exception):
    """A numpy ufunc that is not analytic (np.abs, np.sign, np.conj, np.floor, ...) was applied to a complex-step
    theta that carries a perturbation: its imaginary part would not be the derivative's (or would be lost). Raised
    from ``RealOrdered.__array_wrap__`` (not a TypeError there: numpy takes a TypeError from it for an old signature
    and calls it again without the context); the differentiator turns it into its TypeError, naming the parameter."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"complex_step needs the function to carry complex numbers through analytically; it called "
                         f"np.{name} on theta, which is not analytic (the imaginary part it returns is not the "
                         "derivative's). Use the xp functions (xp.abs, xp.sign, xp.maximum, ...), or scheme='central'.")


#: ufuncs whose complex value is not analytic in z: refused on a perturbed ``RealOrdered`` (``NotAnalyticError``)
NOT_ANALYTIC = frozenset({np.absolute, np.conjugate, np.sign, np.floor, np.ceil, np.trunc, np.rint, np.fabs})
#: ordering ufuncs called directly (np.greater(t, 0)): decided on the real part, as the operators are
ORDERING = frozenset({np.greater, np.greater_equal, np.less, np.less_equal})
_SPECIAL = NOT_ANALYTIC | ORDERING


class RealOrdered(np.ndarray):
    """A complex array whose comparisons look at the real part only: ``x > 0`` at x = 0 + ih is False.

    (numpy orders complex numbers lexicographically, so 0 + 1e-20j > 0 would be True.) The complex step
    binds theta as this type, so masks a user's function computes from theta are those of the real point;
    ufunc results keep the type. So do scalars: an index (``t[0]``), a full reduction (``xp.sum(t)``,
    ``t @ w``) or any ufunc on a 0-d array returns a 0-d RealOrdered, not numpy's complex scalar, which compares
    lexicographically (``xp.where(t[0] > 1, 3 t[0], -t[0])`` at 1 took the 3 t[0] branch). A comparison at an
    exact tie through which the imaginary perturbation flows (equal real parts, different imaginary parts) is
    reported to ``tie_sink`` (a complex ``KinkTracker``, set by ``reporting_ties`` while the complex step runs: a
    class attribute, so that no array pays for carrying it).
    """

    tie_sink: Any = None

    @classmethod
    @contextmanager
    def reporting_ties(cls, sink: Any):
        """Comparisons on this type report ties to ``sink`` (its ``tie()``) inside the block."""
        previous, cls.tie_sink = cls.tie_sink, sink
        try:
            yield
        finally:
            cls.tie_sink = previous

    def __array_wrap__(self, array, context=None, return_scalar=False, /):
        """Every ufunc result comes back through here: of this type, 0-d rather than a scalar (``return_scalar``
        ignored), with the tie sink. A ufunc that is not analytic, on a perturbed complex theta, is refused
        (``NOT_ANALYTIC``: np.sign(t) * t gave 2 for 1; np.conj(t) * t leaves no imaginary part to see); an ordering
        ufunc called directly (np.greater(t, 0)) is decided on the real part, as the operators are."""
        if context is not None and context[0] in _SPECIAL:
            ufunc, inputs = context[0], context[1]
            if ufunc in NOT_ANALYTIC and any(isinstance(x, np.ndarray) and x.dtype.kind == "c"
                                             and np.any(x.imag != 0) for x in inputs):
                raise NotAnalyticError(ufunc.__name__)
            if ufunc in ORDERING and len(inputs) == 2:
                a, b = inputs
                return (a if isinstance(a, RealOrdered) else np.asarray(a).view(RealOrdered))._compare(b, ufunc)
        return array.view(RealOrdered)

    def __array_function__(self, func, types, args, kwargs):
        # np.dot, np.tensordot, np.where, ... of theta: a complex scalar or plain array result as this type too
        result = super().__array_function__(func, types, args, kwargs)
        if isinstance(result, np.complexfloating) or (type(result) is np.ndarray and result.dtype.kind == "c"):
            return np.asarray(result).view(RealOrdered)
        return result

    def __getitem__(self, key):
        out = super().__getitem__(key)
        if isinstance(out, np.generic):  # t[0]: a 0-d array that keeps comparing on the real part
            out = np.asarray(out).view(RealOrdered)
        return out

    def __float__(self):
        # as numpy's complex scalar did (the real part, with numpy's ComplexWarning): a function calling float() on
        # theta is then found to have dropped the imaginary part and refused with the complex step's TypeError
        return float(self.view(np.ndarray).reshape(-1)[0]) if self.size == 1 else float(self.view(np.ndarray))

    def _compare(self, other, op):
        a, b = self.view(np.ndarray), np.asarray(other)
        sink = RealOrdered.tie_sink
        if sink is not None and (a.dtype.kind == "c" or b.dtype.kind == "c") and \
                np.any((a.real == b.real) & (a.imag != b.imag)):  # (real parts compared by the namespace: no tie)
            sink.tie()
        return op(a.real, b.real)

    def __gt__(self, o): return self._compare(o, np.greater)
    def __ge__(self, o): return self._compare(o, np.greater_equal)
    def __lt__(self, o): return self._compare(o, np.less)
    def __le__(self, o): return self._compare(o, np.less_equal)
    def __eq__(self, o): return self._compare(o, np.equal)
    def __ne__(self, o): return self._compare(o, np.not_equal)
    __hash__ = None


def _dual(f, df):
    """An elementwise function numpy has no complex version of, carried along the complex step to first order:
    f(a + ib) = f(a) + i b f'(a). Exact for the complex step's h (1e-20): the next term is O(h^2)."""
    def complex_f(z):
        a, b = np.real(z), np.imag(z)
        return f(a) + 1j * b * df(a)
    return complex_f


def _erf_prime(a):
    return (2.0 / math.sqrt(math.pi)) * np.exp(-a * a)


def _complex_arctan2(y, x):
    a, b = np.real(y), np.real(x)
    r2 = a * a + b * b
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(r2 == 0, 0.0, (b * np.imag(y) - a * np.imag(x)) / np.where(r2 == 0, 1.0, r2))  # 0 at the origin
    return np.arctan2(a, b) + 1j * d


def _complex_softplus(z):
    positive = np.real(z) > 0
    e = np.exp(np.where(positive, -z, z))  # a non-positive real part: no overflow
    return np.where(positive, z, 0.0) + np.log1p(e)


def _complex_power(x, y):
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.power(x, y)
    return np.where(np.asarray(x) == 0, 0.0 * out, out) if np.any(np.asarray(x) == 0) else out  # 0^y = 0 (y > 0)


def _sqrt0(s):
    # norm and std: sqrt with gradient 0 at 0. At a real zero the complex step leaves Re s = -h^2 <= 0.
    with np.errstate(invalid="ignore"):
        return np.where(np.real(s) > 0, np.sqrt(s), 0.0 * s)


def _complex_extreme(x, axis=None, keepdims=False, largest=True):
    x = np.asanyarray(x)  # (a RealOrdered theta stays one: its maximum compares on the real part)
    arg = np.argmax if largest else np.argmin  # decided on the real part; ties: the first, as argmax
    if axis is None:
        out = x.reshape(-1)[arg(np.real(x).reshape(-1))]
        return np.reshape(out, (1,) * x.ndim) if keepdims else out
    if not isinstance(axis, (int, np.integer)):
        axes = sorted(a % x.ndim for a in axis)
        rest = [a for a in range(x.ndim) if a not in axes]
        moved = np.transpose(x, rest + axes).reshape(tuple(x.shape[a] for a in rest) + (-1,))
        out = _complex_extreme(moved, -1, False, largest)
        return out.reshape(tuple(1 if a in axes else n for a, n in enumerate(x.shape))) if keepdims else out
    idx = np.expand_dims(arg(np.real(x), axis=axis), axis)
    out = np.take_along_axis(x, idx, axis)
    return out if keepdims else np.squeeze(out, axis)


def _complex_var(x, axis=None, ddof=0, keepdims=False):
    x = np.asarray(x)
    dof = degrees_of_freedom(np.shape(x), axis, ddof)
    d = x - np.mean(x, axis=axis, keepdims=True)
    return np.sum(d * d, axis=axis, keepdims=keepdims) / dof  # d * d, not |d|^2: analytic


class ComplexNamespace:
    """numpy on complex arrays, analytic along the imaginary step, branches decided on the real part."""

    name = "numpy_complex"
    exp = staticmethod(np.exp)
    log = staticmethod(np.log)
    tanh = staticmethod(np.tanh)
    sigmoid = staticmethod(_complex_sigmoid)
    abs = staticmethod(_complex_abs)
    step = staticmethod(_complex_step)
    maximum = staticmethod(_complex_maximum)
    minimum = staticmethod(_complex_minimum)
    sum = staticmethod(np.sum)
    mean = staticmethod(np.mean)
    logsumexp = staticmethod(_complex_logsumexp)
    _softmax = staticmethod(_complex_softmax)  # (nn.Softmax's primitive: see _complex_softmax)
    reshape = staticmethod(np.reshape)
    asarray = staticmethod(np.asarray)
    # numpy's complex functions are analytic: the complex step through them is exact
    sqrt, sin, cos, tan = (staticmethod(f) for f in (np.sqrt, np.sin, np.cos, np.tan))
    arcsin, arccos, arctan = (staticmethod(f) for f in (np.arcsin, np.arccos, np.arctan))
    sinh, cosh, log1p, expm1 = (staticmethod(f) for f in (np.sinh, np.cosh, np.log1p, np.expm1))
    log2, log10 = staticmethod(np.log2), staticmethod(np.log10)
    erf = staticmethod(_dual(NUMPY.erf, _erf_prime))
    arctan2 = staticmethod(_complex_arctan2)
    softplus = staticmethod(_complex_softplus)
    log_sigmoid = staticmethod(lambda z: -_complex_softplus(-z))
    relu = staticmethod(lambda z: _complex_maximum(0.0, z))
    sign = staticmethod(lambda z: _complex_step(z) - _complex_step(-np.asarray(z)))  # (complex, as step's: sign' = 0)
    clip = staticmethod(lambda z, lo, hi: _complex_minimum(_complex_maximum(z, lo), hi))
    power = staticmethod(_complex_power)
    where = staticmethod(lambda c, a, b: np.where(np.real(c) if np.iscomplexobj(c) else c, a, b))
    prod = staticmethod(np.prod)
    max = staticmethod(lambda x, axis=None, keepdims=False: _complex_extreme(x, axis, keepdims, True))
    min = staticmethod(lambda x, axis=None, keepdims=False: _complex_extreme(x, axis, keepdims, False))
    var = staticmethod(_complex_var)
    std = staticmethod(lambda x, axis=None, ddof=0, keepdims=False: _sqrt0(_complex_var(x, axis, ddof, keepdims)))
    norm = staticmethod(lambda x, ord=None, axis=None, keepdims=False: linalg_norm(COMPLEX, x, ord, axis, keepdims))
    _sqrt0 = staticmethod(_sqrt0)
    # structure and linear algebra: numpy's own (linear, and no conjugation anywhere: einsum, dot, tensordot)
    for _name in ("square", "cumsum", "transpose", "moveaxis", "expand_dims", "squeeze", "broadcast_to",
                  "concatenate", "stack", "split", "tile", "repeat", "pad", "matmul", "dot", "tensordot", "einsum",
                  "outer", "trace"):
        locals()[_name] = type(NUMPY).__dict__[_name]  # (the staticmethod itself)
    del _name

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise unknown_name_error(self.name, name)


COMPLEX = ComplexNamespace()


class KinkTracker:
    """Wraps ``NUMPY`` (or ``COMPLEX``) and records the branch each kink op takes in one evaluation.

    ``start()`` before an evaluation, ``record()`` after it: the branch choices as bytes for the real
    namespace (two evaluations took the same branches iff their records are equal), or for the complex
    namespace a bool, True if some perturbed entry sat exactly on a kink (a tie decided by convention).
    """

    def __init__(self, base: Any = NUMPY):
        for fname in NAMESPACE_FUNCTIONS:
            if fname not in vars(KinkTracker):  # the kink ops (and norm, composed of them) are this class's own
                setattr(self, fname, getattr(base, fname))
        self.base, self.complex = base, base is COMPLEX
        self.name = f"{base.name}+kinks"
        self._masks: list = []
        self._tie = False

    def start(self) -> None:
        self._masks, self._tie = [], False

    def record(self) -> Any:
        if self.complex:
            return self._tie
        return b"".join(m.tobytes() for m in self._masks)  # bytes: comparing two records is one ==

    def tie(self) -> None:
        """Complex: a comparison on theta (``RealOrdered``) met an exact tie that the perturbation flows through."""
        self._tie = True

    def _watch(self, first, second=None):
        """Real: remember the branch. Complex: flag a tie through which a perturbation flows."""
        if not self.complex:
            # maximum/minimum: which argument won; abs: the sign (0 is its own branch, abs'(0) = 0)
            self._masks.append(np.asarray(first >= second) if second is not None
                               else np.sign(np.asarray(first)).astype(np.int8))
        elif not self._tie:
            if second is None:
                tie = (np.real(first) == 0) & (np.imag(first) != 0)
            else:
                tie = (np.real(first) == np.real(second)) & (np.imag(first) != np.imag(second))
            self._tie = bool(np.any(tie))

    def maximum(self, a, b):
        self._watch(a, b)  # real: the first argument wins where a >= b
        return self.base.maximum(a, b)

    def minimum(self, a, b):
        self._watch(a, b) if self.complex else self._watch(b, a)  # the first argument wins where b >= a
        return self.base.minimum(a, b)

    def abs(self, x):
        self._watch(x)
        return self.base.abs(x)

    def step(self, x):
        if self.complex:
            self._watch(x)
        else:
            self._masks.append(np.asarray(np.real(x) > 0))
        return self.base.step(x)

    def sign(self, x):
        return self.step(x) - self.step(-x) if self.complex else (self._watch(x), self.base.sign(x))[1]

    def relu(self, x):
        return self.maximum(0.0, x)

    def clip(self, x, lo, hi):  # (a None bound: no bound, as numpy's clip)
        x = x if lo is None else self.maximum(x, lo)
        return x if hi is None else self.minimum(x, hi)

    def where(self, cond, a, b):
        if not self.complex:  # the mask itself is the branch (a comparison decided it)
            self._masks.append(np.asarray(cond, dtype=bool))
        return self.base.where(cond, a, b)

    def arctan2(self, y, x):
        """Two places where arctan2 has no derivative: the origin (gradient 0 by convention) and its jump of
        2 pi across the negative x axis; the branch is which side of both a point lies on."""
        a, b = np.real(np.asarray(y)), np.real(np.asarray(x))
        origin = (a == 0) & (b == 0)
        if not self.complex:
            self._masks.append(np.asarray(origin | ((b < 0) & (a >= 0))))
        elif not self._tie:
            moved = (np.imag(np.asarray(y)) != 0) | (np.imag(np.asarray(x)) != 0)
            self._tie = bool(np.any(origin & moved))
        return self.base.arctan2(y, x)

    def norm(self, x, ord=None, axis=None, keepdims=False):
        return linalg_norm(self, x, ord, axis, keepdims)  # through this tracker: its abs/max/min are watched

    _sqrt0 = property(lambda self: self.base._sqrt0)
    _softmax = property(lambda self: self.base._softmax)  # (smooth: nothing to watch; only COMPLEX has one)

    def max(self, x, axis=None, keepdims=False):
        return self._extreme(x, axis, keepdims, True)

    def min(self, x, axis=None, keepdims=False):
        return self._extreme(x, axis, keepdims, False)

    def _extreme(self, x, axis, keepdims, largest):
        r = np.real(np.asarray(x))
        if not self.complex:  # which entry wins (argmax's first) is the branch
            flat = r.reshape(-1) if axis is None else r
            arg = np.argmax if largest else np.argmin
            self._masks.append(np.asarray(arg(flat) if axis is None else arg(flat, axis=axis if isinstance(axis, int)
                                                                                  else None)))
        else:  # a perturbed entry tied with the winner
            best = np.max(r, axis=axis, keepdims=True) if largest else np.min(r, axis=axis, keepdims=True)
            ties = np.sum(r == best, axis=axis) > 1
            self._tie = self._tie or bool(np.any(ties) and np.any(np.imag(np.asarray(x)) != 0))
        return (self.base.max if largest else self.base.min)(x, axis=axis, keepdims=keepdims)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise unknown_name_error(self.name, name)

