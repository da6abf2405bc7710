"""Gradient checks for users' test suites: ``check_gradients`` (a report) and ``assert_gradients_close``.

    from diffsuite.testing import assert_gradients_close

    def loss(xp, theta, x, y):
        return xp.mean((xp.tanh(x @ theta["W"] + theta["b"]) - y) ** 2)

    assert_gradients_close(loss, {"W": W, "b": b}, x, y)     # AssertionError naming the worst entries
    assert_hessians_close(loss, {"W": W, "b": b}, x, y)      # the same for second derivatives

Both accept a user's function ``f(xp, theta, *args) -> scalar`` (theta an array, a dict of arrays or
a scalar) or an ``Objective`` (then no extra args). Every method's gradient is compared entry by
entry with a reference; an entry passes when ``|g - ref| <= atol + rtol * |ref|``.

Defaults:
- ``methods``: reverse mode and central differences, plus complex step when the function calls no
  non-analytic namespace function (abs, step, maximum, minimum).
- ``reference="auto"``: the exact gradient (``diffsuite.reference``, certified by arb ball arithmetic, at the
  same float64 point) for problems of at most ``EXACT_MAX_PARAMS`` entries, else reverse mode in
  float64; the report says which. Also ``"exact"``, any method alias or differentiator, or a gradient
  you computed yourself (in theta's structure).
- ``rtol``: by method and dtype (``diffsuite.gradcheck.tolerances.DEFAULT_RTOL``; float32 looser; a method of
  unknown kind, e.g. a user's own differentiator, gets reverse mode's strict one). ``atol``: for methods exact
  up to rounding (reverse, forward_mode, symbolic, complex step, unknown kinds) ``ROUNDING_FLOOR_EPS`` eps times
  max|ref| (the whole gradient's); for finite differences ``rtol * max|ref|`` over the whole gradient. Either
  may be one number for all methods or a dict by method label.
- ``on_kink="skip"``: an entry where a finite-difference step straddled a kink is reported, not counted.

Non-finite values: f(theta) NaN or inf is a ValueError (no gradient to check). The tolerance scale
``max|ref|`` is taken over the finite reference entries; a non-finite reference entry fails for every
method (the report's notes name it), and so does any non-finite entry of a method the user named. A default
method (chosen by the check) that is non-finite where the reference is finite overflowed inside itself: the
report notes that it cannot evaluate there and does not count those entries; an entry no method could evaluate
fails the check as unchecked.

The pytest plugin (``diffsuite.pytest_plugin``) exposes ``assert_gradients_close`` as the ``gradcheck`` fixture.
"""
from __future__ import annotations

import warnings
from typing import Any, Iterable, Mapping

import numpy as np

from .gradcheck.methods import METHOD_ALIASES, Method, Problem, resolve_method, without_reference
from .gradcheck.report import ON_KINK, GradcheckReport, MethodResult
from .gradcheck.tolerances import DEFAULT_RTOL, atol_reason, default_atol, default_rtol, rtol_reason

#: the largest problem (number of entries) for which reference="auto" computes the exact reference
EXACT_MAX_PARAMS = 64
#: seconds the exact reference may take under reference="auto" before reverse mode replaces it
EXACT_TIME_BUDGET_S = 5.0
DEFAULT_METHODS = ("reverse", "central")
EXACT_LABEL = "exact (certified, arb)"
OWN_ROUNDING_FACTOR = 32  # the tolerance over f's own float64 error, where f cancels (see _own_rounding)
OWN_ROUNDING_CAP = 1e-2  # ... up to this: a check that would need more cannot tell a 1 % gradient bug from rounding


def check_gradients(f: Any, theta: Any, *args: Any, methods: Iterable | None = None, reference: Any = "auto",
                    rtol: float | Mapping[str, float] | None = None, atol: float | Mapping[str, float] | None = None,
                    dtype: str = "float64", on_kink: str = "skip") -> GradcheckReport:
    """Run every method on ``f`` at ``theta`` (with ``args``) and compare each with the reference.

    Args:
        f: ``f(xp, theta, *args) -> scalar``, or an ``Objective``.
        theta: the point: an array, a dict of arrays or scalars, or a scalar (an Objective: its flat vector).
        methods: aliases (``reverse``, ``reverse_torch``, ``forward_mode`` (forward-mode AD), ``symbolic``,
            ``forward`` (the forward difference), ``backward``, ``central``, ``five_point``, ``richardson``,
            ``complex_step``), differentiators from ``get_differentiator``, or any object with a ``name`` (str)
            and ``value_and_grad`` (and ``grad`` for a function f): a kind the tolerance table does not know
            gets the strict AD tolerance of its dtype.
        reference: ``"auto"``, ``"exact"``, a method (as above), or a gradient in theta's structure (every leaf
            of theta's shape; a dict with exactly theta's keys).
        rtol, atol: a number for every method, or ``{method label: number}`` (labels carry the dtype:
            ``central[float32]``); None: the defaults (the report says which each method got, and why).
        dtype: the dtype of methods given by alias (``"float32"`` loosens their default tolerances).
        on_kink: ``"skip"`` (default) or ``"fail"``: whether entries where a finite-difference step
            straddled a kink count.

    Returns:
        a ``GradcheckReport``: print it, ``.to_frame()`` it, or ``.raise_if_failed()``.
    """
    if on_kink not in ON_KINK:
        raise ValueError(f"on_kink must be one of {', '.join(ON_KINK)}; got {on_kink!r}")
    problem = Problem.build(f, theta, args)
    if problem.flat.size == 0:
        raise ValueError(f"nothing to check: theta has no entries ({problem.label} at an empty theta); a gradient "
                         "check needs at least one parameter")
    f64_value = _require_finite_value(problem)
    notes: list[str] = []
    chosen = _choose_methods(problem, methods, dtype)
    ref, ref_label, value, ref_method = _reference(problem, reference, notes)
    own_error = _own_rounding(f64_value, value if ref_label == EXACT_LABEL else None, problem, notes)
    chosen = without_reference(chosen, ref_method, notes, "('reverse', 'central')")
    finite = np.isfinite(ref)
    if not finite.all():
        bad = [problem.names[i] for i in np.flatnonzero(~finite)]
        notes.append(f"the reference ({ref_label}) is not finite at {len(bad)} entr{'y' if len(bad) == 1 else 'ies'} "
                     f"({', '.join(bad[:8])}{' ...' if len(bad) > 8 else ''}): those entries fail for every method; "
                     "the tolerance scales are taken over the finite entries only")
    rtols = _per_method("rtol", rtol, chosen)
    atols = _per_method("atol", atol, chosen)
    results = []
    for m in chosen:
        if m.label in rtols:
            r_tol, r_why = rtols[m.label], "given"
        else:
            r_tol, r_why = default_rtol(m.kind, m.dtype), rtol_reason(m.kind, m.dtype)
            if OWN_ROUNDING_FACTOR * own_error > OWN_ROUNDING_CAP:
                raise ValueError(
                    f"cannot check gradients of {problem.label} at this theta: its float64 value is {own_error:.1e} "
                    f"(relative) off its exact value, so a tolerance that allowed for that rounding ("
                    f"{OWN_ROUNDING_FACTOR}x, above {OWN_ROUNDING_CAP:g}) would pass a wrong gradient. Move theta, "
                    "rewrite f to cancel less (its value here is nearly 0 next to its terms), or give rtol= yourself")
            if OWN_ROUNDING_FACTOR * own_error > r_tol:
                r_tol, r_why = OWN_ROUNDING_FACTOR * own_error, (
                    f"raised from {r_tol:g} to {OWN_ROUNDING_FACTOR}x f's own float64 error here ({own_error:.1e})")
        if m.label in atols:
            a_tol, a_why = atols[m.label], "given"
        else:
            a_tol, a_why = default_atol(m.kind, m.dtype, r_tol, ref), atol_reason(m.kind, m.dtype)
        try:
            with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                _ignore_kink_warnings()  # the report marks those entries itself
                if m.default:
                    warnings.simplefilter("ignore", RuntimeWarning)  # an overflow is reported below instead
                m_value, grad, stats = problem.gradient(m.differentiator)
        except Exception as e:  # a method that cannot run is a finding, not a crash of the check
            if m.auto:
                notes.append(f"{m.label} was not run: {type(e).__name__}: {e}")
                continue
            results.append(MethodResult(m, None, r_tol, a_tol, error=f"{type(e).__name__}: {e}", rtol_why=r_why,
                                        atol_why=a_why))
            continue
        unevaluable = frozenset()
        if m.default:  # the check chose this method: its overflow is its own limit, not the user's error
            where = np.flatnonzero(~np.isfinite(grad) & finite)
            if where.size:
                unevaluable = frozenset(int(i) for i in where)
                names = [problem.names[i] for i in where]
                notes.append(f"{m.label} cannot evaluate the gradient here: it is not finite (NaN or inf: an overflow "
                             f"inside the method) at {len(names)} of {len(problem.names)} entries ("
                             f"{', '.join(names[:8])}{' ...' if len(names) > 8 else ''}) where f and the reference "
                             "are finite; those entries are not counted against the reference (name the method in "
                             "methods= to count them)")
        results.append(MethodResult(m, grad, r_tol, a_tol, _kinks(stats, problem.names), m_value, stats,
                                    rtol_why=r_why, atol_why=a_why, unevaluable=unevaluable))
    report = GradcheckReport(problem.label, problem.names, ref, ref_label, results, value, notes, on_kink)
    if ref_label != EXACT_LABEL and results and not any(
            r.grad is not None and not report.failing(r).any() for r in results):
        report.reference_vs_exact = _compare_with_exact(problem, ref)
    return report


def assert_gradients_close(f: Any, theta: Any, *args: Any, n_worst: int = 5, **options: Any) -> GradcheckReport:
    """``check_gradients`` that raises an AssertionError naming the worst entries; returns the report if all pass."""
    return check_gradients(f, theta, *args, **options).raise_if_failed(n_worst)


# ----- helpers -----
def _own_rounding(f64_value: float | None, exact_value: float | None, problem: Problem, notes: list[str]) -> float:
    """f's own float64 error at theta, relative: |f64(theta) - f(theta)| / |f(theta)| against the exact value, where
    it is more than a few ulp (cancellation in f itself, such as a residual tanh(z) - y of 1e-9 next to y = 1), else
    0. Every float64 method's gradient carries an error of that order there (larger per entry: the value averages
    the residuals' errors, a gradient entry weights them differently), whatever its own quality: the
    tolerances are raised to ``OWN_ROUNDING_FACTOR`` times it (a note says so), so that a correct gradient of an
    ill-conditioned f is not a false alarm, while a gradient bug larger than that is still caught."""
    if f64_value is None or exact_value is None or not exact_value:
        return 0.0
    err = abs(f64_value - exact_value) / abs(exact_value)
    if err <= 64 * np.finfo(np.float64).eps:
        return 0.0
    notes.append(f"{problem.label}(theta) in float64 is {err:.1e} (relative) off its exact value: f itself cancels "
                 f"here, and every float64 gradient carries an error of that order; the default tolerances are raised "
                 f"to {OWN_ROUNDING_FACTOR}x it, so a gradient error below that cannot be told from f's own rounding "
                 "at this point (move theta, or rewrite f to cancel less, for a sharper check)")
    return err


def _require_finite_value(problem: Problem) -> float | None:
    """f(theta) in float64 numpy (``Problem.build`` evaluated it once), or None if it is not a plain number (left to
    the methods, which report it themselves). A ValueError when it is NaN or inf: no gradient to check there, and
    every method (and any fallback reference) would disagree for that reason alone."""
    value = problem.value
    if value is None:
        return None
    if np.isfinite(value):
        return value
    point = np.array2string(problem.flat, threshold=8, precision=6)
    raise ValueError(f"check_gradients needs a finite function value at theta; {problem.label}(theta) = {value} at "
                     f"theta = {point} ({', '.join(problem.names[:8])}{' ...' if len(problem.names) > 8 else ''}), "
                     "so there is no gradient to compare (every method and reference would be NaN or inf). Move "
                     "theta into the function's domain (log and sqrt of positive numbers, no division by zero, no "
                     "overflow) or fix the function.")


def _choose_methods(problem: Problem, methods: Iterable | None, dtype: str) -> list[Method]:
    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32'; got {dtype!r}")
    if methods is None:
        chosen = [resolve_method(m, dtype, default=True) for m in DEFAULT_METHODS]
        if problem.is_analytic():
            chosen.append(resolve_method("complex_step", dtype, auto=True))
    else:
        if isinstance(methods, str):
            methods = [methods]
        chosen = [resolve_method(m, dtype) for m in methods]
        if not chosen:
            raise ValueError("methods must name at least one method, e.g. methods=('reverse', 'central')")
    labels = [m.label for m in chosen]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ValueError(f"methods must be distinct; {', '.join(dupes)} given more than once")
    return chosen


def _reference(problem: Problem, reference: Any, notes: list[str]) -> tuple[np.ndarray, str, float | None, Any]:
    """(flat reference gradient, label, value, the ``Method`` used as reference or None)."""
    if isinstance(reference, str) and reference in ("auto", "exact"):
        if reference == "exact" or problem.flat.size <= EXACT_MAX_PARAMS:
            try:
                from .reference import reference_gradient
                budget = None if reference == "exact" else EXACT_TIME_BUDGET_S
                res = reference_gradient(problem.target, problem.theta, *problem.args, dtype="float64",
                                         time_budget_s=budget)
                return problem.flatten_like_theta(res.grad), EXACT_LABEL, res.value, None
            except Exception as e:  # noqa: BLE001 - "auto" means the best reference that works here
                if reference == "exact":
                    raise
                notes.append(f"the exact reference was not available ({type(e).__name__}: {e}); "
                             "reverse mode in float64 is the reference instead")
        else:
            notes.append(f"{problem.flat.size} entries is more than EXACT_MAX_PARAMS={EXACT_MAX_PARAMS}: reverse "
                         "mode in float64 is the reference (pass reference='exact' to insist)")
        reference = "reverse"
    if isinstance(reference, str) or callable(getattr(reference, "value_and_grad", None)):
        m = resolve_method(reference, "float64")
        try:
            value, grad, _ = problem.gradient(m.differentiator)
        except Exception as e:
            raise RuntimeError(f"the reference method {m.label} failed on {problem.label}: {type(e).__name__}: {e}. "
                               "Choose another reference (reference='exact', 'central', ...).") from e
        return grad, f"{m.label} ({m.dtype})", value, m
    return problem.flatten_like_theta(reference), "the given gradient", None, None


def _compare_with_exact(problem: Problem, ref: np.ndarray) -> tuple[bool, str] | None:
    """When no method agrees with a reference that is not the exact one: does the reference agree with the exact
    gradient (strict AD tolerance)? (agrees, detail), or None where the exact gradient cannot be had here."""
    if problem.flat.size > EXACT_MAX_PARAMS:
        return None
    try:
        from .reference import reference_gradient
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = reference_gradient(problem.target, problem.theta, *problem.args, dtype="float64",
                                     time_budget_s=EXACT_TIME_BUDGET_S)
        exact = problem.flatten_like_theta(res.grad, "the exact gradient")
    except Exception:  # noqa: BLE001 - a hint only
        return None
    rtol = default_rtol("reverse", "float64")
    tol = default_atol("reverse", "float64", rtol, exact) + rtol * np.abs(exact)
    with np.errstate(invalid="ignore"):
        off = ~(np.abs(ref - exact) <= tol)
    if not off.any():
        return True, f"to rtol {rtol:.0e} at every entry"
    i = int(np.flatnonzero(off)[np.argmax(np.nan_to_num(np.abs(ref - exact)[off], nan=np.inf))])
    return False, f"e.g. {problem.names[i]}: given {ref[i]:.12g}, exact {exact[i]:.12g}"


def _per_method(what: str, given: Any, chosen: list[Method]) -> dict[str, float]:
    labels = [m.label for m in chosen]
    if given is None:
        return {}
    if isinstance(given, Mapping):
        unknown = [k for k in given if k not in labels]
        if unknown:
            raise ValueError(f"{what} names unknown method(s) {', '.join(map(repr, unknown))}; the methods checked "
                             f"are {', '.join(labels)}")
        values = dict(given)
    else:
        values = {label: given for label in labels}
    for label, v in values.items():
        if not (isinstance(v, (int, float, np.floating)) and np.isfinite(v) and v >= 0):
            raise ValueError(f"{what} for {label} must be a finite number >= 0; got {v!r}")
    return {k: float(v) for k, v in values.items()}


def _ignore_kink_warnings() -> None:
    try:
        from .differentiators.finite_diff import KinkWarning
    except ImportError:
        return
    warnings.filterwarnings("ignore", category=KinkWarning)


def _kinks(stats: dict, names: list[str]) -> frozenset:
    if stats.get("kink_indices") is not None:
        return frozenset(int(i) for i in np.ravel(stats["kink_indices"]))
    if stats.get("kink_params"):
        where = {n: i for i, n in enumerate(names)}
        return frozenset(where[n] for n in stats["kink_params"] if n in where)
    return frozenset()


# Hessians, with the same per-entry report (gradcheck/hessian.py)
from .gradcheck.hessian import HESSIAN_RTOL, assert_hessians_close, check_hessian  # noqa: E402

__all__ = ["DEFAULT_METHODS", "DEFAULT_RTOL", "EXACT_MAX_PARAMS", "GradcheckReport", "HESSIAN_RTOL", "METHOD_ALIASES",
           "assert_gradients_close", "assert_hessians_close", "check_gradients", "check_hessian"]
