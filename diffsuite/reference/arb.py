"""Ball arithmetic (FLINT's arb, through python-flint) for the reference: certified enclosures.

Every operation returns a ball [mid +- rad] that provably contains the exact result of the same
operation on any points of the argument balls, so a chain of them encloses the exact derivative.
``sign`` is certified too: 0 only for a ball that is exactly zero, None when the ball contains 0 but is
not exact (the caller decides it exactly, or raises the precision).
"""
from __future__ import annotations

from contextlib import contextmanager

import sympy as sp
from flint import arb, ctx


@contextmanager
def precision(bits: int):
    """flint's working precision (a process-wide setting) for the block, restored afterwards."""
    old = ctx.prec
    ctx.prec = bits
    try:
        yield
    finally:
        ctx.prec = old


class ArbArithmetic:
    name = "arb"

    @staticmethod
    def number(node: sp.Basic) -> arb:
        if isinstance(node, sp.Integer):
            return arb(int(node))
        if isinstance(node, sp.Rational):
            return arb(int(node.p)) / arb(int(node.q))
        if isinstance(node, sp.Float):
            sign, man, exp, _ = node._mpf_
            return arb(-man if sign else man) * arb(2) ** int(exp)
        if node is sp.E:
            return arb.const_e()
        if node is sp.pi:
            return arb.pi()
        raise NotImplementedError(f"the reference cannot evaluate the constant {node} ({type(node).__name__}); "
                                  "it knows integers, rationals, binary floats, E and pi")

    @staticmethod
    def from_float(x: float) -> arb:
        return arb(x)  # exact: a double is a dyadic rational

    @staticmethod
    def sign(x: arb) -> int | None:
        if x > 0:
            return 1
        if x < 0:
            return -1
        return 0 if x.is_zero() else None

    @staticmethod
    def is_exact_zero(x: arb) -> bool:
        return x.is_zero()

    @staticmethod
    def finite(x: arb) -> bool:
        return x.is_finite()

    @staticmethod
    def one() -> arb:
        return arb(1)

    @staticmethod
    def zero() -> arb:
        return arb(0)

    @staticmethod
    def nan() -> arb:
        return arb.nan()

    @staticmethod
    def add(xs: list) -> arb:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out

    @staticmethod
    def mul(xs: list) -> arb:
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out

    @staticmethod
    def ipow(x: arb, n: int) -> arb:
        return x ** n

    @staticmethod
    def pow(x: arb, e: arb) -> arb:
        return x ** e

    @staticmethod
    def atan2(y: arb, x: arb) -> arb:
        return arb.atan2(y, x)

    @staticmethod
    def max(a: arb, b: arb) -> arb:
        return a.max(b)

    @staticmethod
    def min(a: arb, b: arb) -> arb:
        return a.min(b)

    @staticmethod
    def abs(x: arb) -> arb:
        return abs(x)

    # exp, log, sqrt, sin, ..., sech, erf, log1p, expm1: arb's own methods
    def __getattr__(self, name):
        method = getattr(arb, name)
        return lambda *xs: method(*xs)


def settle(x):
    """(float, radius) if every point of the ball x rounds to one float64, else None; x None is an exact 0."""
    if x is None:
        return 0.0, 0.0
    if not x.is_finite():
        return None
    lo, hi = float(x.lower()), float(x.upper())
    if lo != hi:
        return None
    return (lo if lo != 0 else 0.0), float(x.rad())


def to_man_exp(x) -> tuple[int, int]:
    """The ball's midpoint as an exact (mantissa, exponent) pair: value = m 2^e (None: an exact 0)."""
    if x is None:
        return 0, 0
    m, e = x.mid().man_exp()
    return int(m), int(e)
