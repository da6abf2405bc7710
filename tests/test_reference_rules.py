"""Every SymPy function the reference evaluates, against mpmath's own numerical derivative at 60 digits (an
independent oracle: mpmath.diff differentiates the mpmath function, never our rules), in both arithmetics;
custom Function classes through SymPy's rewrite and fdiff; a clear error for anything else."""
import mpmath
import numpy as np
import pytest
import sympy as sp

from diffsuite.reference import NotCertified, expression_gradient

x, y = sp.symbols("x y", real=True)
M = mpmath.mp

# (SymPy expression, the same function written with mpmath, point)
CASES = {
    "sin cos": (sp.sin(x) * sp.cos(y), lambda a, b: M.sin(a) * M.cos(b), (0.7, 1.3)),
    "tan asin": (sp.tan(x) + sp.asin(y / 2), lambda a, b: M.tan(a) + M.asin(b / 2), (0.7, 1.3)),
    "acos atan": (sp.acos(y / 3) * sp.atan(x), lambda a, b: M.acos(b / 3) * M.atan(a), (0.7, 1.3)),
    "atan2": (sp.atan2(y, x), lambda a, b: M.atan2(b, a), (-0.7, 1.3)),
    "sinh cosh tanh": (sp.sinh(x) * sp.cosh(y) - sp.tanh(x * y), lambda a, b: M.sinh(a) * M.cosh(b) - M.tanh(a * b),
                       (0.7, 1.3)),
    "exp log": (sp.exp(x) * sp.log(y), lambda a, b: M.exp(a) * M.log(b), (0.7, 1.3)),
    "log1p": (sp.log(1 + x * y), lambda a, b: M.log(1 + a * b), (0.7, 1.3)),
    "erf": (sp.erf(x * y), lambda a, b: M.erf(a * b), (0.7, 1.3)),
    "sqrt": (sp.sqrt(x ** 2 + y), lambda a, b: M.sqrt(a ** 2 + b), (0.7, 1.3)),
    "rational power": (x ** sp.Rational(3, 2) * y ** sp.Rational(-1, 3), lambda a, b: a ** 1.5 * M.cbrt(b) ** -1,
                       (0.7, 1.3)),
    "symbolic power": (x ** y, lambda a, b: a ** b, (0.7, 1.3)),
    "integer power": (1 / (x - y) ** 3, lambda a, b: 1 / (a - b) ** 3, (0.7, 1.3)),
    "Abs": (sp.Abs(x - y) * x, lambda a, b: abs(a - b) * a, (0.7, 1.3)),
    "sign Heaviside": (sp.sign(x) * y ** 2 + sp.Heaviside(y - 1) * x, lambda a, b: M.sign(a) * b ** 2 + a,
                       (0.7, 1.3)),
    "Max Min": (sp.Max(x, y) ** 2 + sp.Min(x, y) * 3, lambda a, b: max(a, b) ** 2 + min(a, b) * 3, (0.7, 1.3)),
    "Piecewise": (sp.Piecewise((x ** 2, x > y), (y ** 3 * x, True)), lambda a, b: a ** 2 if a > b else b ** 3 * a,
                  (0.7, 1.3)),
    "pi and E": (sp.pi * x + sp.E ** y, lambda a, b: M.pi * a + M.e ** b, (0.7, 1.3)),
}


@pytest.mark.parametrize("arithmetic", ["arb", "mpmath"])
@pytest.mark.parametrize("name", list(CASES))
def test_function_matches_mpmath_diff(name, arithmetic):
    expr, fn, point = CASES[name]
    res = expression_gradient(expr, [x, y], point, arithmetic=arithmetic)
    with mpmath.workdps(60):
        a, b = (mpmath.mpf(v) for v in point)
        assert res.value == float(fn(a, b))
        expected = [float(mpmath.diff(lambda t: fn(t, b), a)), float(mpmath.diff(lambda t: fn(a, t), b))]
    assert list(res.grad) == expected


class Softplus(sp.Function):
    """A custom function as the symbolic namespace might define one: a rewrite and an fdiff, no numeric rule."""

    nargs = 1

    def _eval_rewrite_as_exp(self, u, **kwargs):
        return sp.log(1 + sp.exp(u))

    def fdiff(self, argindex=1):
        return 1 / (1 + sp.exp(-self.args[0]))


def test_custom_function_through_its_rewrite_and_fdiff():
    res = expression_gradient(Softplus(x * y), [x, y], (0.7, 1.3))
    with mpmath.workdps(60):
        f = lambda a, b: mpmath.log(1 + mpmath.exp(a * b))  # noqa: E731
        a, b = mpmath.mpf(0.7), mpmath.mpf(1.3)
        assert res.value == float(f(a, b))
        assert list(res.grad) == [float(mpmath.diff(lambda t: f(t, b), a)), float(mpmath.diff(lambda t: f(a, t), b))]


class Opaque(sp.Function):
    nargs = 1


def test_unknown_function_is_named():
    with pytest.raises(NotImplementedError, match="no rule for the function Opaque"):
        expression_gradient(Opaque(x) + y, [x, y], (0.7, 1.3))


def test_complex_constants_are_refused():
    with pytest.raises(NotImplementedError, match="cannot evaluate the constant I"):
        expression_gradient(sp.I * x, [x], (0.7,))


def test_kink_conventions_of_sympy_functions_at_exact_ties():
    """|u|'(0) = 0, sign' = Heaviside' = 0, Max routes ties to its first (stored) argument."""
    assert list(expression_gradient(sp.Abs(x - y), [x, y], (1.0, 1.0)).grad) == [0.0, 0.0]
    assert list(expression_gradient(sp.Heaviside(x - y) + sp.sign(x - y), [x, y], (1.0, 1.0)).grad) == [0.0, 0.0]
    first = sp.Max(x, y, evaluate=False).args[0]
    g = expression_gradient(sp.Max(x, y, evaluate=False), [x, y], (1.0, 1.0)).grad
    assert list(g) == ([1.0, 0.0] if first == x else [0.0, 1.0])


def test_domain_errors_are_certified_singularities():
    with pytest.raises(NotCertified, match="log of a non-positive number"):
        expression_gradient(sp.log(x - y), [x, y], (1.0, 1.0))
    with pytest.raises(NotCertified, match="square root of a negative number"):
        expression_gradient(sp.sqrt(x - y), [x, y], (1.0, 2.0))
    assert np.isfinite(expression_gradient(sp.sqrt(x - y), [x, y], (2.0, 1.0)).grad).all()


class TanhSech(sp.tanh):
    """A subclass of a known function with its own derivative (as the symbolic namespace's Tanh)."""

    def fdiff(self, argindex=1):
        return sp.cosh(self.args[0]) ** -2


class Atan2Zero(sp.atan2):
    """atan2 whose gradient at the origin is 0 by convention (Piecewise in its fdiff)."""

    def fdiff(self, argindex=1):
        y, x = self.args
        r2 = x * x + y * y
        return sp.Piecewise(((x if argindex == 1 else -y) / r2, sp.Ne(r2, 0)), (0, True))


class PowZero(sp.Function):
    """x^y whose derivative contains the class itself (compiled lazily), with conventions at x = 0 and y = 0."""

    nargs = 2

    def fdiff(self, argindex=1):
        x, y = self.args
        if argindex == 1:
            return sp.Piecewise((0, sp.Eq(y, 0)), (y * PowZero(x, y - 1), True))
        return sp.Piecewise((0, sp.Eq(x, 0)), (PowZero(x, y) * sp.log(x), True))

    def _eval_rewrite_as_Pow(self, x, y, **kwargs):
        return sp.Pow(x, y)


def test_subclasses_and_self_referencing_functions_keep_their_own_derivatives():
    with mpmath.workdps(60):
        a, b = mpmath.mpf(0.7), mpmath.mpf(1.3)
        res = expression_gradient(TanhSech(x * y), [x, y], (0.7, 1.3))
        t = lambda u, v: mpmath.tanh(u * v)  # noqa: E731
        assert list(res.grad) == [float(mpmath.diff(lambda s: t(s, b), a)), float(mpmath.diff(lambda s: t(a, s), b))]
        res = expression_gradient(PowZero(x, y), [x, y], (0.7, 1.3))
        p = lambda u, v: u ** v  # noqa: E731
        assert res.value == float(p(a, b))
        assert list(res.grad) == [float(mpmath.diff(lambda s: p(s, b), a)), float(mpmath.diff(lambda s: p(a, s), b))]
    assert list(expression_gradient(Atan2Zero(y, x), [x, y], (0.0, 0.0)).grad) == [0.0, 0.0]  # the convention
    assert list(expression_gradient(PowZero(x, y), [x, y], (0.0, 2.0)).grad) == [0.0, 0.0]  # 2 x = 0; x^y log x: 0
    g = expression_gradient(Atan2Zero(y, x), [x, y], (2.0, 1.0)).grad
    assert list(g) == [-1.0 / 5.0, 2.0 / 5.0]  # by hand: (-y, x) / (x^2 + y^2)


def test_log2_log10_and_expm1():
    from sympy.codegen.cfunctions import expm1, log2, log10
    res = expression_gradient(log2(x) + log10(y) + expm1(x * y), [x, y], (0.7, 1.3))
    with mpmath.workdps(60):
        f = lambda u, v: mpmath.log(u, 2) + mpmath.log10(v) + mpmath.expm1(u * v)  # noqa: E731
        a, b = mpmath.mpf(0.7), mpmath.mpf(1.3)
        assert res.value == float(f(a, b))
        assert list(res.grad) == [float(mpmath.diff(lambda s: f(s, b), a)), float(mpmath.diff(lambda s: f(a, s), b))]
