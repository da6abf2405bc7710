"""Certified reference gradients: the ground truth of the accuracy study and of the project's tests.

``reference_gradient(objective, theta)`` is the exact gradient at exactly the binary point ``theta``
that the other methods see, correctly rounded to float64, with a certificate. The loss is built
symbolically with every constant exact (data as the Rationals of their binary values); its
derivative (the chain rule run backwards over the exact expression DAG, each node's local derivative
SymPy's own; or SymPy's / SymEngine's symbolic derivative: ``engine``) is evaluated in ball
arithmetic (FLINT's arb, through python-flint) at 128, 256, 512, ... bits until every entry's ball
rounds to a single float64: the rounding is then proven, not estimated. Without python-flint,
mpmath evaluates at 64, 128, 256, ... bits until two successive passes agree in every float64
(evidence, not proof; the certificate says which). With ``dtype="float32"`` theta and the data are first
rounded to float32 (what a float32 run sees); the result is still the float64 rounding.

Kinks follow the project's conventions (docs/architecture.md) at exact ties (max routes to its first
argument, |x|'(0) = 0, step' = 0, Heaviside(0) = its stored value): a tie is decided exactly (a ball that is exactly zero,
or the exact rational value of the compared quantities), never by rounding. Where no precision up
to ``max_bits`` settles an entry (a kink that exact arithmetic cannot decide, a true singularity),
``NotCertified`` (a ValueError) names the entries and the cause. See docs/reference.md.
"""
from __future__ import annotations

import importlib.util
import time
from typing import Any, Callable

import mpmath
import numpy as np

from .. import pytree
from ..budget import Budget, run_budgeted
from ..differentiators.base import Gradient, grad_leaf
from ..objective import Objective
from .certificate import Certificate, NotCertified
from .engine import DTYPES, ENGINES, agree_mp, certify_arb, compile_problem
from .mp import to_float as to_float64

__all__ = ["reference_gradient", "reference_gradient_mp", "expression_gradient", "Certificate", "NotCertified",
           "to_float64", "has_flint"]

ARITHMETICS = ("auto", "arb", "mpmath")


def has_flint() -> bool:
    """Whether python-flint (ball arithmetic, the certified engine) is importable."""
    return importlib.util.find_spec("flint") is not None


def _check(dtype: str, engine: str, arithmetic: str, max_bits: int) -> tuple[str, str]:
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    if engine == "auto":
        engine = "adjoint"
    if engine not in ENGINES:
        raise ValueError(f"engine must be 'auto', {', '.join(repr(e) for e in ENGINES)}; got {engine!r}")
    if engine == "symengine" and importlib.util.find_spec("symengine") is None:
        raise ImportError("engine='symengine' needs SymEngine: pip install 'diffsuite[symengine]' (or use "
                          "engine='adjoint', the default)")
    return engine, check_arithmetic(arithmetic, max_bits)


def check_arithmetic(arithmetic: str, max_bits: int) -> str:
    """``arithmetic`` checked, "auto" resolved ("arb" where python-flint is installed, else "mpmath")."""
    if arithmetic not in ARITHMETICS:
        raise ValueError(f"arithmetic must be one of {', '.join(ARITHMETICS)}; got {arithmetic!r}")
    if arithmetic == "auto":
        arithmetic = "arb" if has_flint() else "mpmath"
    elif arithmetic == "arb" and not has_flint():
        raise ImportError("arithmetic='arb' needs python-flint: pip install python-flint (or arithmetic='mpmath', "
                          "which is not certified)")
    if not (isinstance(max_bits, int) and max_bits >= 64):
        raise ValueError(f"max_bits must be an int >= 64; got {max_bits!r}")
    return arithmetic


def evaluate(compiled, arithmetic: str, *, max_bits: int, budget: Budget | None = None, accept=None, same=None,
             want_mp: bool = False) -> tuple[list, Certificate]:
    """(raw entries, value first; certificate): ``compiled`` run through the precision loop of ``arithmetic``
    (``certify_arb`` or ``agree_mp``). Entries are float64s, or with ``want_mp`` exact mpmath raw forms
    (``to_mpfs``); ``accept``/``same`` replace "rounds to one float64" (``digits_tests``)."""
    if arithmetic == "arb":
        out, cert = certify_arb(compiled, max_bits=max_bits, budget=budget, accept=accept)
        return [mid if want_mp else rounded for rounded, mid in out], cert
    out, cert = agree_mp(compiled, max_bits=max_bits, budget=budget, same=same)
    return ([x._mpf_ for x in out] if want_mp else [to_float64(x) for x in out]), cert


def _compute(target, theta, args, *, dtype, engine, arithmetic, max_bits, node_budget, time_budget_s, accept=None,
             same=None, want_mp: bool = False):
    """(raw entries, value first: floats, or exact mpmath forms with want_mp; certificate; stats; theta's leaves)."""
    engine, arithmetic = _check(dtype, engine, arithmetic, max_bits)

    def work(budget: Budget):
        clock, stats = time.perf_counter, {}
        t = clock()
        compiled = compile_problem(target, theta, args, dtype, engine, budget)
        stats["build_s"] = clock() - t
        budget.enter("evaluate", arithmetic)
        t = clock()
        raw, cert = evaluate(compiled, arithmetic, max_bits=max_bits, budget=budget, accept=accept, same=same,
                             want_mp=want_mp)
        stats["eval_s"] = clock() - t
        stats["nodes"] = len(compiled.program)
        return raw, cert, stats, compiled.leaves  # (picklable: the work may run in a worker process)

    raw, cert, stats, leaves = run_budgeted(work, Budget(time_s=time_budget_s, nodes=node_budget))
    stats.update(reference=cert.arithmetic, bits=cert.bits, max_radius=cert.max_radius, certificate=cert,
                 dtype=dtype, engine=engine, n_params=len(raw) - 1)
    return raw, cert, stats, leaves


def _shape_like(flat: list, leaves: list[np.ndarray], target: Any, theta: Any, leaf: Callable) -> Any:
    """The flat entries in theta's structure: an Objective's one flat vector, else put back by
    ``diffsuite.pytree.flatten``'s rebuild (nested dicts, lists, tuples and namedtuples as they were given)."""
    parts, start = [], 0
    for lf in leaves:
        part = np.empty(lf.size, dtype=object)
        part[:] = flat[start:start + lf.size]
        parts.append(leaf(part.reshape(lf.shape)) if lf.ndim else leaf(part[0]))
        start += lf.size
    if isinstance(target, Objective):
        return parts[0]
    return pytree.flatten(theta)[1](parts)


def reference_gradient(target: Objective | Callable, theta: Any, *args: Any, dtype: str = "float64",
                       engine: str = "auto", arithmetic: str = "auto", max_bits: int = 1 << 15,
                       node_budget: int | None = 1_000_000, time_budget_s: float | None = 120.0,
                       dps: int | None = None) -> Gradient:
    """The exact gradient at the binary point theta, correctly rounded to float64, with its certificate.

    ``target``: an ``Objective`` (theta flat, as everywhere) or a function ``f(xp, theta, *args)``
    (theta a flat or shaped array, a dict of arrays or scalars, or a scalar; the gradient comes back
    in the same structure). ``engine``: "auto" (= "adjoint": the chain rule backwards over the exact
    loss DAG), "sympy" or "symengine" (their symbolic derivatives; slower, an independent path).
    ``arithmetic``: "auto" (arb when python-flint is installed, else mpmath), "arb", "mpmath".
    ``max_bits``: the highest working precision tried. ``dps``: accepted for compatibility, unused
    (the precision is chosen per problem). ``stats``: ``certificate`` (a ``Certificate``), ``reference``
    ("arb" or "mpmath"), ``bits``, ``max_radius``, ``dtype``, ``engine``, ``build_s``, ``eval_s``.

    Raises ``BudgetExceeded`` when the problem is too large for the budgets, ``NotCertified`` (a
    ValueError) when no precision up to ``max_bits`` settles an entry, naming it and the cause.
    """
    raw, cert, stats, leaves = _compute(target, theta, args, dtype=dtype, engine=engine, arithmetic=arithmetic,
                                        max_bits=max_bits, node_budget=node_budget, time_budget_s=time_budget_s)
    value, *flat = raw

    def leaf(g):
        return float(g) if not isinstance(g, np.ndarray) else grad_leaf(g.astype(np.float64))

    return Gradient(value, _shape_like(flat, leaves, target, theta, leaf), stats)


def reference_gradient_mp(target: Objective | Callable, theta: Any, *args: Any, dtype: str = "float64",
                          dps: int = 50, engine: str = "auto", arithmetic: str = "auto", max_bits: int = 1 << 15,
                          node_budget: int | None = 1_000_000, time_budget_s: float | None = 120.0) -> Gradient:
    """Like ``reference_gradient``, but ``value`` and ``grad`` hold mpmath ``mpf`` numbers with ``dps`` correct
    significant digits, however small (arb: every entry's ball has relative radius below 10^-dps, or is exact;
    mpmath: two successive precisions agree to that). One exception, arb only: an entry whose ball still
    contains 0 (it may be exactly 0, as exp(w) - exp(w), which no precision proves) is accepted once its
    radius is below 2^-1100; its digits are then absolute, about 331 decimal places. Measures errors below one
    ulp; do arithmetic on them under ``mpmath.workdps(dps)`` or more.
    """
    accept, same = digits_tests(dps, "reference_gradient_mp")
    raw, cert, stats, leaves = _compute(target, theta, args, dtype=dtype, engine=engine, arithmetic=arithmetic,
                                        max_bits=max_bits, node_budget=node_budget, time_budget_s=time_budget_s,
                                        accept=accept, same=same, want_mp=True)
    stats["dps"] = dps
    value, *flat = to_mpfs(raw, cert)
    return Gradient(value, _shape_like(flat, leaves, target, theta, lambda g: g), stats)


def digits_tests(dps: int, who: str) -> tuple[Callable, Callable]:
    """(accept, same) for ``dps`` correct significant digits: ``accept(ball)`` for arb (``certify_arb``), ``same(a,
    b)`` for two mpmath passes (``agree_mp``); see ``reference_gradient_mp``."""
    if not (isinstance(dps, int) and dps >= 17):
        raise ValueError(f"{who} needs dps >= 17 significant digits (an int); got {dps!r}")
    rel = mpmath.mpf(10) ** -dps
    tiny = mpmath.mpf(2) ** -1100  # far below float64's smallest subnormal: an absolute floor for zeros

    def accept(x):  # arb ball: relative radius below 10^-dps, or absolutely negligible around a possible 0
        from .arb import to_man_exp  # (called at the working precision)
        if not x.is_finite():
            return False
        rad, mid = (mpmath.mp.make_mpf(mpmath.libmp.from_man_exp(*to_man_exp(y))) for y in (x.rad(), x))
        # (the floor only where the ball holds 0: a nonzero entry as tiny as exp(-800) still gets dps digits)
        return rad <= rel * abs(mid) or (rad >= abs(mid) and rad <= tiny)

    def same(a, b):  # (mpmath: relative agreement; its guard refuses the sums that cancel to noise)
        return abs(a - b) <= rel * max(abs(a), abs(b))

    return accept, same


def to_mpfs(raw: list, cert: Certificate) -> list:
    """The raw results of a ``want_mp`` run as mpmath numbers, exactly: arb midpoints' (mantissa, exponent) pairs,
    or mpmath's raw tuples."""
    return [mpmath.mp.make_mpf(mpmath.libmp.from_man_exp(*r) if cert.arithmetic == "arb" else r) for r in raw]


def expression_gradient(expr: Any, wrt: list, point: Any, data: dict | None = None, *,
                        arithmetic: str = "auto", max_bits: int = 1 << 15) -> Gradient:
    """The certified value and gradient of a SymPy expression in the symbols ``wrt`` at ``point`` (floats,
    taken as their exact binary values); ``data`` binds any other symbols. ``grad``: a float64 array.
    For functions the models cannot express yet (sin, atan2, erf, custom Function classes)."""
    from .engine import compile_expression
    arithmetic = check_arithmetic(arithmetic, max_bits)
    wrt, values = list(wrt), np.ravel(np.asarray(point, dtype=np.float64))
    twice = sorted({str(s) for k, s in enumerate(wrt) if s in wrt[:k]})
    if twice:
        raise ValueError(f"expression_gradient needs each symbol once in wrt; {', '.join(twice)} appears more than "
                         "once (its values would be silently dropped). Pass each symbol once.")
    both = sorted(str(s) for s in wrt if s in (data or {}))
    if both:
        raise ValueError(f"expression_gradient needs wrt and data to name different symbols; {', '.join(both)} is in "
                         "both (data's value would silently replace the point's). Keep it in wrt or in data, not both.")
    if len(values) != len(wrt):
        raise ValueError(f"expression_gradient needs one value per symbol of wrt ({len(wrt)}: "
                         f"{', '.join(map(str, wrt))}); point has {len(values)}. Pass the point in wrt's order.")
    for what, names, vals in (("point", wrt, values), ("data", list(data or {}), list((data or {}).values()))):
        for name, v in zip(names, vals):
            if not np.isfinite(float(v)):
                raise ValueError(f"expression_gradient needs finite values (exact binary numbers); {what} gives "
                                 f"{name} = {float(v)!r}. Choose a finite point.")
    compiled = compile_expression(expr, wrt, list(values), data)
    raw, cert = evaluate(compiled, arithmetic, max_bits=max_bits)
    value, *flat = raw
    return Gradient(value, np.array(flat, dtype=np.float64),
                    {"reference": cert.arithmetic, "bits": cert.bits, "certificate": cert})
