"""The namespaces finite differences evaluate objectives with: complex-safe numpy, and kink tracking.

``COMPLEX`` evaluates with complex numbers for the complex step. Every branch (maximum, minimum,
abs, step, and the stable sigmoid and log-sum-exp) is decided on the *real part*, so the imaginary
perturbation is carried through the branch the real evaluation takes, with DESIGN.md's kink
conventions at ties: maximum/minimum pick their first argument, abs'(0) = 0, step' = 0. The
complex step therefore returns exactly the conventional subgradient at a kink (relu'(0) = 0).

``KinkTracker`` wraps a namespace and records, for each evaluation, which branch every kink op
took (the masks of maximum/minimum, the sign seen by abs and step). Two evaluations of one stencil
whose records differ straddle a kink. Under the complex namespace branches cannot change (the real
part is the unperturbed point), so it records instead whether a perturbed entry sat exactly on a tie.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ...namespace import NAMESPACE_FUNCTIONS, NUMPY


def _complex_sigmoid(z):
    # decide on the real part; exp only ever sees a non-positive real part, so it cannot overflow
    negative = np.real(z) < 0
    e = np.exp(np.where(negative, z, -z))
    return np.where(negative, e / (1.0 + e), 1.0 / (1.0 + e))


def _complex_abs(z):
    r = np.real(z)
    return np.where(r > 0, z, np.where(r < 0, -z, 0.0 * z))  # abs'(0) = 0: the perturbation is dropped


def _complex_step(z):
    r = np.real(z)
    return (r > 0).astype(r.dtype if r.dtype.kind == "f" else np.float64)


def _complex_maximum(a, b):
    return np.where(np.real(a) >= np.real(b), a, b)  # ties go to the first argument


def _complex_minimum(a, b):
    return np.where(np.real(a) <= np.real(b), a, b)


def _complex_logsumexp(x, axis=-1, keepdims=False):
    m = np.max(np.real(x), axis=axis, keepdims=True)  # any real shift gives the same value
    m = np.where(np.isfinite(m), m, 0.0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


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
    reshape = staticmethod(np.reshape)
    asarray = staticmethod(np.asarray)


COMPLEX = ComplexNamespace()

#: the ops whose derivative jumps: the ones a tracker watches
KINK_OPS = ("maximum", "minimum", "abs", "step")


class KinkTracker:
    """Wraps ``NUMPY`` (or ``COMPLEX``) and records the branch each kink op takes in one evaluation.

    ``start()`` before an evaluation, ``record()`` after it: the branch choices as bytes for the real
    namespace (two evaluations took the same branches iff their records are equal), or for the complex
    namespace a bool, True if some perturbed entry sat exactly on a kink (a tie decided by convention).
    """

    def __init__(self, base: Any = NUMPY):
        for fname in NAMESPACE_FUNCTIONS:
            if fname not in KINK_OPS:  # the kink ops are this class's methods, which record and delegate
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

