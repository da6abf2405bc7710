"""mpmath arithmetic for the reference where python-flint is missing: no enclosures, so no proof.

The fallback runs the same program at a precision, then at twice that, and accepts when both round to
the same float64 in every entry (``reference.engine``); a single fixed precision is never trusted. Two
precisions can agree on a wrong 0 when both cancel every bit (1 - sigmoid(100) is 0 at 64 and at 128
bits), so a pass in which a sum kept fewer than 24 bits of its largest term (and no exact rational value
vouches for it) is not accepted either: the precision rises until no sum cancels that far. Absorption is
the same loss seen later: 1 + e^-100 is exactly 1 at 64 and at 128 bits, harmless in a product, but a
log of it is a wrong 0 (log x ~ x - 1 cancels). So an operation that magnifies its argument's last bits by
2^(bits - 24) or more counts as such a sum too: log (and acos) of an argument within 2^(24 - bits) of 1,
a power whose exponent is 2^(bits - 24) or more in size, and exp of an argument that large (exp(y) multiplies
y's relative rounding error by |y|: exp(2^100 cos(2^-70)) / exp(2^100) is 1.0 at 64 and at 128 bits, where
cos(2^-70) rounds to 1; the exact ratio is 1 - 4.5e-13).
Exact zeros are ties only where the exact rational value (or, failing that, the arithmetic) says so.
Undefined operations (log of a non-positive number, division by zero) give NaN, like arb's.
"""
from __future__ import annotations

import mpmath
import sympy as sp


_CONTEXTS: dict[int, mpmath.MPContext] = {}


class MpArithmetic:
    name = "mpmath"
    zero_means_tie = True  # a computed exact 0 that no exact rational value contradicts is taken as a tie

    def __init__(self, bits: int):
        if bits not in _CONTEXTS:  # (creating a context costs milliseconds: one per precision)
            _CONTEXTS[bits] = mpmath.MPContext()
            _CONTEXTS[bits].prec = bits
        self.ctx = c = _CONTEXTS[bits]
        self._guard = c.ldexp(c.mpf(1), 24 - bits)  # a sum below 2^-(bits - 24) of its largest term kept < 24 bits
        self.lost = 0  # sums that cancelled beyond the guard, where no exact value vouches for them
        # set by the operation that just lost (almost) every bit; the Run reads and clears it (take_cancelled)
        self.cancelled = False
        self._nan = c.nan
        for name in ("sin", "cos", "tan", "atan", "sinh", "cosh", "tanh", "sech", "erf", "expm1"):
            setattr(self, name, getattr(c, name))

    def number(self, node: sp.Basic):
        c = self.ctx
        if isinstance(node, sp.Integer):
            return c.mpf(int(node))
        if isinstance(node, sp.Rational):
            return c.mpf(int(node.p)) / int(node.q)
        if isinstance(node, sp.Float):
            return c.make_mpf(node._mpf_)
        if node is sp.E:
            return c.e + 0
        if node is sp.pi:
            return c.pi + 0
        raise NotImplementedError(f"the reference cannot evaluate the constant {node} ({type(node).__name__}); "
                                  "it knows integers, rationals, binary floats, E and pi")

    def from_float(self, x: float):
        return self.ctx.mpf(x)

    def sign(self, x) -> int | None:
        if self.ctx.isnan(x):
            return None
        return 1 if x > 0 else -1 if x < 0 else None  # None: let the exact value decide a zero

    @staticmethod
    def is_exact_zero(x) -> bool:
        return x == 0

    def finite(self, x) -> bool:
        return bool(self.ctx.isfinite(x))

    def one(self):
        return self.ctx.mpf(1)

    def zero(self):
        return self.ctx.mpf(0)

    def nan(self):
        return self._nan

    def take_cancelled(self) -> bool:
        """Whether an operation since the last call lost (almost) every bit; clears the flag."""
        flag, self.cancelled = self.cancelled, False
        return flag

    def add(self, xs):
        s = self.ctx.fsum(xs)
        if self._cancels(s, max(abs(x) for x in xs)):
            self.cancelled = True
        return s

    def accumulate(self, acc, term):
        """acc + term, counting a sum that cancels (almost) every bit as a lost one (see the module docstring)."""
        s = acc + term
        if self._cancels(s, max(abs(acc), abs(term))):
            self.lost += 1
        return s

    def _cancels(self, s, scale) -> bool:
        return bool(scale) and abs(s) <= scale * self._guard

    def mul(self, xs):
        return self.ctx.fprod(xs)

    def _real(self, v):
        return v if not isinstance(v, self.ctx.mpc) else self._nan

    def _near_one(self, x) -> None:
        """log x and acos x lose the bits that x - 1 cancels (an x absorbed into exactly 1 leaves none)."""
        if abs(x - 1) <= self._guard:
            self.cancelled = True

    def _magnifies(self, e) -> None:
        """x^e multiplies x's relative rounding error by |e|: 2^(bits - 24) or more leaves < 24 bits."""
        if abs(e) * self._guard >= 1:
            self.cancelled = True

    def exp(self, x):
        self._magnifies(x)  # (exp(y)'s relative error is |y| times y's: the same loss as a huge power's)
        return self.ctx.exp(x)

    def ipow(self, x, n: int):
        if x == 0 and n < 0:
            return self._nan
        self._magnifies(n)
        return x ** n

    def pow(self, x, e):
        self._magnifies(e)
        return self._nan if x < 0 else (self.ctx.power(x, e) if x > 0 else self.zero() if e > 0 else self._nan)

    def log(self, x):
        self._near_one(x)
        return self.ctx.log(x) if x > 0 else self._nan

    def log_one_plus(self, rest):
        """log(1 + sum(rest)), evaluated as log1p(sum(rest)): e^-100 is not absorbed into the 1 first. The sum of
        rest has the guard of any sum; log1p itself magnifies nothing near 0."""
        r = self.add(rest) if len(rest) > 1 else rest[0]
        return self.ctx.log1p(r) if r > -1 else self._nan

    def log1p(self, x):
        return self.ctx.log1p(x) if x > -1 else self._nan

    def sqrt(self, x):
        return self.ctx.sqrt(x) if x >= 0 else self._nan

    def asin(self, x):
        return self.ctx.asin(x) if -1 <= x <= 1 else self._nan

    def acos(self, x):
        self._near_one(x)
        return self.ctx.acos(x) if -1 <= x <= 1 else self._nan

    def atan2(self, y, x):
        return self.ctx.atan2(y, x)

    @staticmethod
    def max(a, b):
        return a if a >= b else b

    @staticmethod
    def min(a, b):
        return a if a <= b else b

    @staticmethod
    def abs(x):
        return abs(x)


def to_float(x) -> float:
    """An mpmath number rounded to the nearest float64 (ties to even)."""
    return mpmath.libmp.to_float(x._mpf_, rnd="n")
