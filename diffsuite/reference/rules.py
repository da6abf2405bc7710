"""Value and local-derivative rules of every SymPy function the reference evaluates, in any arithmetic.

A rule gives a function node's value from its arguments' values and its partial derivatives
(one per argument). Rules are written once against the ``Arithmetic`` interface (arb balls or mpmath
numbers). Derivatives are the exact ones, written without cancellation where a textbook form has it
(tanh' = sech^2, not 1 - tanh^2), so the balls stay narrow; ball arithmetic would certify either.

Kinks follow the project's conventions (docs/architecture.md) at exact ties: |u|'(0) = 0, sign'(u) = step'(u) = 0,
max/min route the derivative to their first argument, Heaviside(0) is its stored second argument
(diffsuite's ``Step`` is 0 there). A tie is decided by the ``Run`` (certified sign, or the exact
rational value); where it cannot be, the rule returns ``UNDECIDED``.

Any other ``sympy.Function`` subclass is evaluated through SymPy itself: its value through a
rewrite into known functions (``rewrite(exp)``, ``rewrite(log)``, ``expand_func``), its partials
through its ``fdiff``. A class with neither raises NotImplementedError naming it.
"""
from __future__ import annotations

import re
from fractions import Fraction
from typing import Any, Callable

import sympy as sp

from ..differentiators.symbolic.namespace import Abs0, Max1, Min1, Sign0, Step, TieStep

from sympy.codegen.cfunctions import expm1 as _expm1, log1p as _log1p, log2 as _log2, log10 as _log10


def _undecided():
    from .program import UNDECIDED
    return UNDECIDED


class Rule:
    """``value(run, i, args)`` and ``partials(run, i, args, value)`` of one function class."""

    def __init__(self, value: Callable, partials: Callable):
        self._value, self._partials = value, partials

    def value(self, run, i: int, a: list) -> Any:
        return self._value(run, i, a)

    def partials(self, run, i: int, a: list, v: Any) -> list:
        return self._partials(run, i, a, v)


def _unary(fn: str, deriv: Callable[[Any, Any, Any], Any], check: Callable | None = None) -> Rule:
    """f(x) = A.<fn>(x) with f'(x) = deriv(A, x, f(x)); ``check(run, i, x)`` notes exact singularities."""

    def value(run, i, a):
        if check is not None:
            check(run, i, a[0])
        return getattr(run.A, fn)(a[0])

    return Rule(value, lambda run, i, a, v: [deriv(run.A, a[0], v)])


def _log_check(run, i, x):
    if run.A.sign(x) in (0, -1):
        run.note_singular(f"the log of a non-positive number in {_node(run, i)}")


def _log_value(run, i, a):
    _log_check(run, i, a[0])
    log_one_plus = getattr(run.A, "log_one_plus", None)
    if log_one_plus is not None:  # (mpmath: no enclosures to show what 1 + e^-100 absorbed)
        rest = _one_plus(run, run.prog.args[i][0])
        if rest is not None:
            return log_one_plus(rest)
    return run.A.log(a[0])


def _one_plus(run, j: int) -> list | None:
    """If node j is a sum 1 + r_1 + ... (softplus log(1 + e^u), the shifted cross-entropy's log(e^0 + ...)), the
    values of the r_k, else None: log of it is then log1p(r_1 + ...), where the r_k are not absorbed into the 1."""
    from .program import ADD
    prog = run.prog
    if prog.kinds[j] != ADD:
        return None
    args = prog.args[j]
    ones = [k for k in args if run.values[k] == 1 and run.exact(k) == 1]  # (an exact 1, computed exactly)
    if len(ones) != 1 or len(args) < 2:
        return None
    return [run.values[k] for k in args if k != ones[0]]


def _log1p_check(run, i, x):
    if run.A.sign(run.A.one() + x) in (0, -1):
        run.note_singular(f"the log of a non-positive number in {_node(run, i)}")


def _arc_value(fn: str) -> Callable:
    """asin, acos: undefined (as real functions) outside [-1, 1]; a certified |u| > 1 is noted, so that the refusal
    says so at once instead of climbing to max_bits."""
    def value(run, i, a):
        A, u = run.A, a[0]
        if A.sign(u - A.one()) == 1 or A.sign(u + A.one()) == -1:
            run.note_singular(f"{fn} of a number outside [-1, 1] in {_node(run, i)}")
        return getattr(A, fn)(u)
    return value


def _arc_partials(sign: int) -> Callable:
    """asin' = 1 / sqrt(1 - u^2), acos' = -asin'. At u = +-1 exactly that divides by an exact zero: noted, so that
    the refusal names it (no precision can help there)."""
    def partials(run, i, a, v):
        A = run.A
        r = A.one() - a[0] * a[0]
        if A.is_exact_zero(r):
            run.note_singular(f"a division by an exact zero in the derivative of {_node(run, i)} "
                              "(1 / sqrt(1 - u^2) at u = +-1)")
        d = A.one() / A.sqrt(r)
        return [d if sign > 0 else -d]
    return partials


def _node(run, i: int) -> str:
    return _short(run.prog.nodes[i])


def _short(node: Any, n: int = 120) -> str:
    s = str(node)
    return s if len(s) <= n else s[:n - 3] + "..."


def _sign_of_arg(run, i, x, derivative: bool = False) -> Any:
    """sign(x) in {-1, 0, 1} as a value of the arithmetic, or UNDECIDED (``derivative``: see ``Run.sign``)."""
    s = run.sign(x, run.prog.args[i][0], derivative=derivative)
    return _undecided() if s is None else run.A.number(sp.Integer(s))


def _indicator(strict: bool) -> Callable:
    def value(run, i, a):
        s = run.sign(a[0], run.prog.args[i][0])
        if s is None:
            return _undecided()
        return run.A.one() if (s > 0 if strict else s >= 0) else run.A.zero()
    return value


def _heaviside(run, i, a):
    s = run.sign(a[0], run.prog.args[i][0])
    if s is None:
        return _undecided()
    if s == 0:
        return a[1] if len(a) > 1 else run.A.number(sp.Rational(1, 2))
    return run.A.one() if s > 0 else run.A.zero()


def _zero_partials(run, i, a, v):
    return [None] * len(a)  # None: an exact zero (piecewise constant)


def _first_wins(run, i, a, larger: bool) -> list:
    """Partials of max (``larger``) or min of any number of arguments: 1 for the first one that attains it."""
    idx = run.prog.args[i]
    for k in range(len(a)):
        wins = True
        for m in range(len(a)):
            if m == k:
                continue
            s = run.sign(a[k] - a[m], idx[k], idx[m], derivative=True)
            if s is None:
                return [_undecided()] * len(a)
            if (s < 0 if larger else s > 0) or (s == 0 and m < k):
                wins = False
                break
        if wins:
            return [run.A.one() if m == k else None for m in range(len(a))]
    return [_undecided()] * len(a)


def _fold(fn: str) -> Callable:
    def value(run, i, a):
        out = a[0]
        for x in a[1:]:
            out = getattr(run.A, fn)(out, x)
        return out
    return value


def _atan2_partials(run, i, a, v):
    y, x = a
    r2 = x * x + y * y
    return [x / r2, -y / r2]


def _atan2_value(run, i, a):
    y, x = a
    if run.A.is_exact_zero(x) and run.A.is_exact_zero(y):
        run.note_singular(f"atan2(0, 0) in {_node(run, i)}")
    return run.A.atan2(y, x)


def _build_table() -> dict:
    t = {
        sp.exp: _unary("exp", lambda A, x, v: v),
        sp.log: Rule(_log_value, lambda run, i, a, v: [run.A.one() / a[0]]),
        sp.sin: _unary("sin", lambda A, x, v: A.cos(x)),
        sp.cos: _unary("cos", lambda A, x, v: -A.sin(x)),
        sp.tan: _unary("tan", lambda A, x, v: A.one() + v * v),
        sp.asin: Rule(_arc_value("asin"), _arc_partials(1)),
        sp.acos: Rule(_arc_value("acos"), _arc_partials(-1)),
        sp.atan: _unary("atan", lambda A, x, v: A.one() / (A.one() + x * x)),
        sp.sinh: _unary("sinh", lambda A, x, v: A.cosh(x)),
        sp.cosh: _unary("cosh", lambda A, x, v: A.sinh(x)),
        sp.tanh: _unary("tanh", lambda A, x, v: A.sech(x) ** 2),
        sp.erf: _unary("erf", lambda A, x, v: A.number(sp.Integer(2)) / A.sqrt(A.number(sp.pi)) * A.exp(-x * x)),
        sp.atan2: Rule(_atan2_value, _atan2_partials),
        sp.Abs: Rule(lambda run, i, a: run.A.abs(a[0]), lambda run, i, a, v: [_sign_of_arg(run, i, a[0], True)]),
        Abs0: Rule(lambda run, i, a: run.A.abs(a[0]), lambda run, i, a, v: [_sign_of_arg(run, i, a[0], True)]),
        sp.sign: Rule(lambda run, i, a: _sign_of_arg(run, i, a[0]), _zero_partials),
        Sign0: Rule(lambda run, i, a: _sign_of_arg(run, i, a[0]), _zero_partials),
        Step: Rule(_indicator(strict=True), _zero_partials),
        TieStep: Rule(_indicator(strict=False), _zero_partials),
        sp.Heaviside: Rule(_heaviside, _zero_partials),
        sp.DiracDelta: Rule(lambda run, i, a: _dirac(run, i, a), _zero_partials),
        Max1: Rule(_fold("max"), lambda run, i, a, v: _first_wins(run, i, a, larger=True)),
        Min1: Rule(_fold("min"), lambda run, i, a, v: _first_wins(run, i, a, larger=False)),
        sp.Max: Rule(_fold("max"), lambda run, i, a, v: _first_wins(run, i, a, larger=True)),
        sp.Min: Rule(_fold("min"), lambda run, i, a, v: _first_wins(run, i, a, larger=False)),
    }
    t[_log1p] = _unary("log1p", lambda A, x, v: A.one() / (A.one() + x), _log1p_check)
    t[_expm1] = _unary("expm1", lambda A, x, v: A.exp(x))
    for cls, base in ((_log2, 2), (_log10, 10)):
        t[cls] = Rule(_log_base(base), lambda run, i, a, v, b=base: [run.A.one() / (a[0] * run.A.log(
            run.A.number(sp.Integer(b))))])
    return t


def _log_base(base: int) -> Callable:
    def value(run, i, a):
        _log_check(run, i, a[0])
        return run.A.log(a[0]) / run.A.log(run.A.number(sp.Integer(base)))
    return value


def _dirac(run, i, a):
    """DiracDelta (SymPy's derivative of Heaviside, under engine='sympy'): 0 off the origin, and 0 at an exact
    zero too, so that step'(0) = 0 as everywhere else."""
    s = run.sign(a[0], run.prog.args[i][0])
    return _undecided() if s is None else run.A.zero()


TABLE = _build_table()
_TEMPLATES: dict = {}


def known_names() -> str:
    return ", ".join(sorted({getattr(c, "__name__", str(c)) for c in TABLE}))


def rule_for(node: sp.Basic) -> Rule:
    """The rule of ``node``'s function class: the table's, else one through SymPy's rewrite and fdiff."""
    cls = type(node)
    rule = TABLE.get(cls)
    if rule is None:
        key = (cls, len(node.args))
        if key not in _TEMPLATES:
            _TEMPLATES[key] = TemplateRule(cls, len(node.args))
        rule = _TEMPLATES[key]
    return rule


class TemplateRule(Rule):
    """A custom ``sympy.Function``: its partials from its own ``fdiff`` (so its kink conventions hold), its value
    from the rule of a known base class (``class Tanh(sympy.tanh)``) or from a rewrite into known functions.

    The partials' programs are compiled on first use: a derivative may contain the class itself (x^y).
    """

    def __init__(self, cls, n: int):
        from .program import Program
        self.cls, self.n = cls, n
        self.dummies = [sp.Dummy(f"u{k}", real=True) for k in range(n)]
        self.base = next((TABLE[b] for b in cls.__mro__[1:] if b in TABLE), None)
        self.value_prog = None
        if self.base is None:
            expr = _standard_value(cls(*self.dummies, evaluate=False), cls)
            self.value_prog = Program([expr], self.dummies)
        self.partial_progs = None

    def _partial_programs(self) -> list:
        from .program import Program
        if self.partial_progs is None:
            call = self.cls(*self.dummies, evaluate=False)
            try:
                exprs = [call.fdiff(k + 1) for k in range(self.n)]
            except Exception as e:  # noqa: BLE001
                raise NotImplementedError(f"the reference cannot differentiate {self.cls.__name__}: its fdiff "
                                          f"failed ({e})") from e
            if any(p.has(sp.Derivative, sp.Subs) for p in exprs):
                raise NotImplementedError(f"the reference cannot differentiate {self.cls.__name__}: SymPy leaves "
                                          "its derivative unevaluated (define fdiff)")
            self.partial_progs = [Program([p], self.dummies) for p in exprs]
        return self.partial_progs

    def _sub(self, run, i, prog, a):
        from .program import Run
        sub = Run(prog, run.A, a, [run.exact(j) for j in run.prog.args[i]])
        if sub.singular:  # (named in the user's terms: the sub-program's dummies _u0, _u1 are this call's arguments)
            args = [_short(run.prog.nodes[j], 60) for j in run.prog.args[i]]
            run.note_singular(re.sub(r"\b_u(\d+)\b", lambda m: args[int(m.group(1))], sub.singular))
        run.ties += sub.ties
        if sub.ties:
            run.tie_nodes.append(tuple(run.prog.args[i]))  # (a tie inside: it depends on this call's arguments)
        if run.side and sub.ties:  # (the sub-program decides its ties by the conventions: not one-sided)
            run.side_incomplete = True
        return sub.values[prog.roots[0]]

    def value(self, run, i, a):
        if self.base is not None:
            return self.base.value(run, i, a)
        return self._sub(run, i, self.value_prog, a)

    def partials(self, run, i, a, v):
        return [self._sub(run, i, p, a) for p in self._partial_programs()]


def _standard_value(call: sp.Basic, cls) -> sp.Basic:
    """``call`` rewritten into functions the reference knows (real-valued: no I), or NotImplementedError."""
    targets = [sp.log, sp.Pow, sp.exp, sp.tanh, sp.atan2]
    for attempt in [lambda e, t=t: e.rewrite(t) for t in targets] + [sp.expand_func]:
        try:
            candidate = attempt(call)
        except Exception:  # noqa: BLE001 - a rewrite the class does not have
            continue
        if not candidate.has(cls) and not candidate.has(sp.I):
            return candidate
    raise NotImplementedError(
        f"the reference has no rule for the function {cls.__name__}: it is not one of {known_names()}, and SymPy "
        "cannot rewrite it into them (give the class an _eval_rewrite_as_log (or _exp, _Pow), or add a rule to "
        "diffsuite.reference.rules.TABLE)")


def exact_value(node: sp.Basic, vals: list[Fraction]) -> Fraction | None:
    """The exact value of a piecewise-linear kink function of exact arguments; None for anything else."""
    cls = type(node)
    if cls in (Max1, sp.Max):
        return max(vals)
    if cls in (Min1, sp.Min):
        return min(vals)
    if cls in (Abs0, sp.Abs):
        return abs(vals[0])
    if cls in (Sign0, sp.sign):
        return Fraction((vals[0] > 0) - (vals[0] < 0))
    if cls is Step:
        return Fraction(int(vals[0] > 0))
    if cls is TieStep:
        return Fraction(int(vals[0] >= 0))
    if len(vals) == 1 and vals[0] == 0:  # transcendental functions at 0 with a rational value there
        for base in cls.__mro__:
            if base in _RATIONAL_AT_ZERO:
                return Fraction(_RATIONAL_AT_ZERO[base])
    if cls in (sp.log, _log2, _log10, sp.acos) and vals[0] == 1:  # (vouches for the mpmath fallback's log 1)
        return Fraction(0)
    return None


def exact_by_decision(run, i: int, vals: list) -> Fraction | None:
    """A kink function's exact value where an argument has none but the arithmetic has decided the branch:
    min(z, 0) = 0 for a certified z > 0 (z transcendental), step(z) = 1, sign(z) = 1."""
    cls, args = type(run.prog.nodes[i]), run.prog.args[i]
    values = [run.values[k] for k in args]
    if cls in (Max1, Min1, sp.Max, sp.Min) and len(args) == 2:
        s = run.A.sign(values[0] - values[1])
        if s is None or s == 0:
            return None
        first = (s > 0) == (cls in (Max1, sp.Max))
        return vals[0] if first else vals[1]
    if cls in (Step, TieStep, Sign0, sp.sign):
        s = run.A.sign(values[0])
        if s is None or s == 0:
            return None
        return Fraction(s) if cls in (Sign0, sp.sign) else Fraction(int(s > 0))
    return None


_RATIONAL_AT_ZERO = {sp.exp: 1, sp.cos: 1, sp.cosh: 1, sp.tanh: 0, sp.sin: 0, sp.sinh: 0, sp.tan: 0, sp.asin: 0,
                     sp.atan: 0, sp.erf: 0, _log1p: 0, _expm1: 0}
