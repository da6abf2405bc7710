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
- ``reference="auto"``: the exact gradient (``diffsuite.reference``, certified by arb ball arithmetic) for problems of
  at most ``EXACT_MAX_PARAMS`` entries, else reverse mode in float64; the report says which. The exact gradient is
  taken at the point the methods evaluate: theta itself in float64, theta and the float data rounded to float32
  with ``dtype="float32"``. Also ``"exact"``, any method alias or differentiator, or a gradient
  you computed yourself (in theta's structure).
- ``rtol``: by method and dtype (``diffsuite.gradcheck.tolerances.DEFAULT_RTOL``; float32 looser; a method of
  unknown kind, e.g. a user's own differentiator, gets reverse mode's strict one). ``atol``: for methods exact
  up to rounding (reverse, forward_mode, symbolic, complex step, unknown kinds) ``ROUNDING_FLOOR_EPS`` eps times
  max|ref| (the whole gradient's); for finite differences ``rtol * max|ref|`` over the whole gradient. Either
  may be one number for all methods or a dict by method label.
- ``on_kink="skip"``: an entry where a finite-difference step straddled a kink is reported, not counted.

Where f cancels at theta (its value nearly 0 next to its terms), the default rtols are raised to
``OWN_ROUNDING_FACTOR`` times f's own rounding error there, measured against the exact reference as the smaller of
two figures: the relative error of f's value, and the normwise relative error of diffsuite's reverse-mode gradient
(in the check's dtype). Only where both are large (the gradient itself carries the value's rounding, as in a
residual ``tanh(z) - y`` of 1e-9) is a correct gradient that far off; a gradient with nothing cancelling in it is
held to the plain defaults however much the value cancels. Above ``OWN_ROUNDING_CAP`` the check refuses (a
ValueError) rather than pass a wrong gradient. The notes say which figure was used.

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

from .gradcheck.methods import (METHOD_ALIASES, Method, Problem, checked_problem, choose_methods, reference_advice,
                                resolve_method, without_reference)
from .gradcheck.report import ON_KINK, GradcheckReport, MethodResult
from .gradcheck.tolerances import (DEFAULT_RTOL, REAL_FD_SCHEMES, VALUE_ROUNDING_EPS, atol_reason, default_atol,
                                   default_rtol, eps, rounding_floor, rounding_floor_reason, rtol_reason,
                                   stationary_scale)

#: the largest problem (number of entries) for which reference="auto" computes the exact reference
EXACT_MAX_PARAMS = 64
#: seconds the exact reference may take under reference="auto" before reverse mode replaces it
EXACT_TIME_BUDGET_S = 5.0
DEFAULT_METHODS = ("reverse", "central")
EXACT_LABEL = "exact (certified, arb)"
OWN_ROUNDING_FACTOR = 32  # the tolerance over f's own rounding error, where f cancels (see _own_rounding)
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
        dtype: the dtype of methods given by alias (``"float32"`` loosens their default tolerances); the exact
            reference is taken at the point they evaluate (theta and float data rounded to float32).
        on_kink: ``"skip"`` (default) or ``"fail"``: whether entries where a finite-difference step
            straddled a kink count.

    Returns:
        a ``GradcheckReport``: print it, ``.to_frame()`` it, or ``.raise_if_failed()``.
    """
    if on_kink not in ON_KINK:
        raise ValueError(f"on_kink must be one of {', '.join(ON_KINK)}; got {on_kink!r}")
    problem = checked_problem(f, theta, args, "check_gradients")
    notes: list[str] = []
    chosen = choose_methods(problem, methods, dtype, DEFAULT_METHODS)
    ref, ref_label, value, ref_method, exact = _reference(problem, reference, dtype, notes)
    own_error, basis = _own_rounding(problem, dtype, value, ref, notes) if exact else (0.0, "")
    value_rounding = _value_rounding(problem, dtype, value) if exact else 0.0
    if exact and dtype == "float32":
        other = [m.label for m in chosen if m.dtype != "float32"]
        if other:
            notes.append(f"{', '.join(other)} evaluate{'s' if len(other) == 1 else ''} at the float64 theta, while "
                         "the exact reference is at theta rounded to float32 (dtype='float32'): entries may differ "
                         "by that rounding of the point")
    chosen = without_reference(chosen, ref_method, notes, "('reverse', 'central')")
    finite = np.isfinite(ref)
    if not finite.all():
        bad = [problem.names[i] for i in np.flatnonzero(~finite)]
        notes.append(f"the reference ({ref_label}) is not finite at {len(bad)} entr{'y' if len(bad) == 1 else 'ies'} "
                     f"({', '.join(bad[:8])}{' ...' if len(bad) > 8 else ''}): those entries fail for every method; "
                     "the tolerance scales are taken over the finite entries only")
    rtols = _per_method("rtol", rtol, chosen)
    atols = _per_method("atol", atol, chosen)
    f_value = value if value is not None and np.isfinite(value) else problem.value
    _note_stationary(ref, stationary_scale(dtype, f_value, problem.flat), f_value, notes)
    results = []
    for m in chosen:
        if m.label in rtols:
            r_tol, r_why = rtols[m.label], "given"
        else:
            r_tol, r_why = default_rtol(m.kind, m.dtype), rtol_reason(m.kind, m.dtype)
            if OWN_ROUNDING_FACTOR * own_error > OWN_ROUNDING_CAP:
                raise ValueError(
                    f"cannot check gradients of {problem.label} at this theta: in {dtype}, its {basis} "
                    + ("are at least {:.1e} (relative) off their exact values (f cancels here, and its gradient with "
                       "it)" if " and " in basis else "is {:.1e} (relative) off its exact value (f cancels here)")
                    .format(own_error)
                    + f", so a tolerance that allowed for that rounding ({OWN_ROUNDING_FACTOR}x, above "
                    f"{OWN_ROUNDING_CAP:g}) would pass a wrong gradient. "
                    "Move theta, rewrite f to cancel less (its value here is nearly 0 next to its terms), or give "
                    "rtol= yourself")
            if OWN_ROUNDING_FACTOR * own_error > r_tol:
                r_tol, r_why = OWN_ROUNDING_FACTOR * own_error, (
                    f"raised from {r_tol:g} to {OWN_ROUNDING_FACTOR}x f's own {dtype} rounding error here "
                    f"({own_error:.1e}, of its {basis})")
        if m.label in atols:
            a_tol, a_why = atols[m.label], "given"
        else:
            a_tol, a_why = default_atol(m.kind, m.dtype, r_tol, ref), atol_reason(m.kind, m.dtype)
        try:
            with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                _ignore_fd_warnings(unsettled=m.default)  # the report marks kinks, and notes unsettled steps
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
        unsettled = list(stats.get("unsettled_params") or [])
        if unsettled:
            notes.append(f"{m.label}: its step control did not settle at {len(unsettled)} entr"
                         f"{'y' if len(unsettled) == 1 else 'ies'} ({', '.join(map(str, unsettled[:8]))}"
                         f"{' ...' if len(unsettled) > 8 else ''}): its results at successive steps kept changing "
                         "without converging (f's float evaluation is rough on that scale, or the tries ran out), so "
                         "its result there has no error bound; it is still compared with the reference")
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
        if value_rounding and m.kind in REAL_FD_SCHEMES and m.label not in rtols:
            r_tol, r_why = _differenced_rounding(value_rounding, stats, ref, r_tol, r_why)
            if m.label not in atols:
                a_tol = default_atol(m.kind, m.dtype, r_tol, ref)
        if m.label not in atols:  # near a stationary point f's own rounding exceeds the gradient's scale
            floor = rounding_floor(m.kind, m.dtype, f_value, problem.flat, stats)
            if floor is not None and np.any(floor > a_tol):
                a_tol, a_why = np.maximum(a_tol, floor), f"{a_why}; {rounding_floor_reason(m.kind, m.dtype)}"
        results.append(MethodResult(m, grad, r_tol, a_tol, _kinks(stats, problem.names), m_value, stats,
                                    rtol_why=r_why, atol_why=a_why, unevaluable=unevaluable))
    report = GradcheckReport(problem.label, problem.names, ref, ref_label, results, value, notes, on_kink,
                             reference_exact=exact)
    if not exact and results and any(r.grad is None or report.failing(r).any() for r in results):
        # a method disagrees with a reference that is not the exact one: is the reference right? (also when a
        # looser method agrees with it: central's 1e-6 passed a given gradient 1e-6 off, and reverse mode was blamed)
        report.reference_vs_exact = _compare_with_exact(problem, ref)
    return report


def assert_gradients_close(f: Any, theta: Any, *args: Any, n_worst: int = 5, **options: Any) -> GradcheckReport:
    """``check_gradients`` that raises an AssertionError naming the worst entries; returns the report if all pass."""
    return check_gradients(f, theta, *args, **options).raise_if_failed(n_worst)


# ----- helpers -----
def _own_rounding(problem: Problem, dtype: str, exact_value: float | None, exact_grad: np.ndarray,
                  notes: list[str]) -> tuple[float, str]:
    """f's own rounding error at the point the methods evaluate, relative, in ``dtype``, against the exact value and
    gradient; 0 where it is within a few ulp. Two figures:

    - e_value: |f(theta) - exact| / |exact| for f's value (float64: the numpy evaluation ``Problem.build`` made;
      float32: the value diffsuite's reverse mode computes in float32);
    - e_grad: the normwise relative error of diffsuite's reverse-mode gradient in ``dtype``,
      max|g - exact| / max|exact| over the exact gradient's finite entries.

    The figure is min(e_value, e_grad). A value that cancels (a residual tanh(z) - y of 1e-9 next to y = 1) makes
    a gradient carry that rounding only where the gradient is built from the same cancelling terms (there the
    residual multiplies every entry); a gradient with nothing cancelling in it (sum(p log(p/q)) near q = p, whose
    gradient is -p/q) is as accurate as ever, and a tolerance raised for its value alone passed wrong gradients.
    The min keeps the rule from being circular: the gradient figure comes from our own reverse mode, which may be
    the method under test, but it can only lower the value's figure, never loosen the check beyond it. Where
    reverse mode cannot run on f, the value's figure is used alone (float64) or none (float32), with a note. The
    tolerances are raised to ``OWN_ROUNDING_FACTOR`` times the figure, so that a correct gradient of an
    ill-conditioned f is not a false alarm, while a gradient bug larger than that is still caught.

    Returns (the figure, what it measured: "value and reverse-mode gradient", or "value"); (0.0, "") where none."""
    if exact_value is None or not exact_value or not np.isfinite(exact_value):
        return 0.0, ""
    tiny = 64 * eps(dtype)
    if dtype == "float64" and (problem.value is None or not abs(problem.value - exact_value) > tiny * abs(exact_value)):
        return 0.0, ""  # (f's value does not cancel: the common case, decided without running reverse mode)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            r_value, r_grad, _ = problem.gradient(resolve_method("reverse", dtype).differentiator)
        why_not = None
    except Exception as e:  # noqa: BLE001 - then the value's figure alone (float64), or none (float32)
        r_value, r_grad, why_not = None, None, f"{type(e).__name__}: {e}"
    value = problem.value if dtype == "float64" else r_value
    if value is None:
        if why_not:
            notes.append(f"f's own {dtype} rounding at theta was not measured (reverse mode cannot run on "
                         f"{problem.label}: {why_not}): the default tolerances are not raised for it")
        return 0.0, ""
    e_value = abs(value - exact_value) / abs(exact_value)
    if not e_value > tiny:
        return 0.0, ""
    where = f"{problem.label}(theta) in {dtype} is {e_value:.1e} (relative) off its exact value: f cancels here"
    if r_grad is None:
        notes.append(f"{where}; reverse mode cannot run on {problem.label} ({why_not}), so the rounding of a "
                     f"gradient here was not measured, and the default tolerances are raised to "
                     f"{OWN_ROUNDING_FACTOR}x the value's error: a gradient error below that cannot be told from "
                     "f's own rounding at this point (move theta, or rewrite f to cancel less, for a sharper check)")
        return e_value, "value"
    e_grad = _normwise_error(np.asarray(r_grad, dtype=np.float64), exact_grad)
    own = min(e_value, e_grad)
    if not own > tiny:
        notes.append(f"{where}, but its gradient does not (diffsuite's reverse-mode gradient is {e_grad:.1e} "
                     "off the exact one, normwise): the default tolerances stand")
        return 0.0, ""
    notes.append(f"{where}, and its gradient with it (diffsuite's reverse-mode gradient in {dtype} is {e_grad:.1e} "
                 f"off the exact one, normwise): a correct {dtype} gradient carries an error of that order, so the "
                 f"default tolerances are raised to {OWN_ROUNDING_FACTOR}x the smaller figure ({own:.1e}); a "
                 "gradient error below that cannot be told from f's own rounding at this point (move theta, or "
                 "rewrite f to cancel less, for a sharper check)")
    return own, "value and reverse-mode gradient"


def _note_stationary(ref: np.ndarray, scale: np.ndarray | None, value: float | None, notes: list[str]) -> None:
    """A note where every finite reference entry is below ``stationary_scale``: at a stationary point a correct
    gradient is its own rounding, which no tolerance tells from a wrong gradient that small."""
    finite = np.isfinite(ref)
    if scale is None or not finite.any() or np.any(np.abs(ref[finite]) > scale[finite]):
        return
    notes.append(f"every reference entry (the largest {float(np.max(np.abs(ref[finite]))):.1e}) is below "
                 f"{VALUE_ROUNDING_EPS} eps |f| / max(1, |theta_i|) (f = {value:.6g}): if theta is at or next to a "
                 "stationary point (a fitted model), a correct gradient there is mostly rounding, and a check cannot "
                 "tell it from a wrong one; check at a point away from it (theta plus a random step of the "
                 "parameters' scale). (A large constant in f makes this scale large with no such point.)")


def _value_rounding(problem: Problem, dtype: str, exact_value: float | None) -> float:
    """|f(theta) - exact|, absolute, where f's float64 value cancels (more than 64 ulp off, relative), else 0."""
    if dtype != "float64" or problem.value is None or exact_value is None or not np.isfinite(exact_value):
        return 0.0
    err = abs(problem.value - exact_value)
    return err if err > 64 * eps(dtype) * abs(exact_value) else 0.0


def _differenced_rounding(value_rounding: float, stats: dict, ref: np.ndarray, r_tol: float,
                          r_why: str) -> tuple[float, str]:
    """A finite-difference method's rtol where f's value cancels: a quotient of values each off by about
    ``value_rounding`` carries up to 2 value_rounding / h of it (h: its smallest step), relative to max|ref|,
    whatever our reverse mode's gradient does (the difference quotient sees f's values, not its gradient)."""
    steps = np.asarray(stats.get("steps", ()), dtype=np.float64).reshape(-1)
    steps = steps[np.isfinite(steps) & (steps > 0)]
    finite = ref[np.isfinite(ref)]
    scale = float(np.max(np.abs(finite))) if finite.size else 0.0
    if not steps.size or not scale:
        return r_tol, r_why
    figure = 2.0 * value_rounding / float(steps.min()) / scale
    if OWN_ROUNDING_FACTOR * figure <= r_tol:
        return r_tol, r_why
    return OWN_ROUNDING_FACTOR * figure, (
        f"raised from {r_tol:g} to {OWN_ROUNDING_FACTOR}x the rounding its quotients inherit from f's float64 value "
        f"here ({figure:.1e}: f is {value_rounding:.1e} off its exact value, over its step {steps.min():.1e})")


def _normwise_error(g: np.ndarray, exact: np.ndarray) -> float:
    """max|g - exact| / max|exact| over the exact gradient's finite entries (inf where g is not finite there, or
    where exact is 0 and g is not)."""
    finite = np.isfinite(exact)
    if not finite.any():
        return float("inf")
    with np.errstate(invalid="ignore"):
        diff = np.abs(g[finite] - exact[finite])
    worst = float(np.max(np.nan_to_num(diff, nan=np.inf)))
    scale = float(np.max(np.abs(exact[finite])))
    if scale == 0:
        return 0.0 if worst == 0 else float("inf")
    return worst / scale


def _reference(problem: Problem, reference: Any, dtype: str,
               notes: list[str]) -> tuple[np.ndarray, str, float | None, Any, bool]:
    """(flat reference gradient, label, value, the ``Method`` used as reference or None, whether it is the exact
    one). The exact gradient is taken at the point the methods evaluate: with ``dtype="float32"`` theta and the
    float data rounded to float32 (a float32 method never sees the float64 theta, and near a kink or where f
    cancels the gradients at the two points differ by far more than float32's rounding)."""
    exact_failed = None
    if isinstance(reference, str) and reference in ("auto", "exact"):
        if reference == "exact" or problem.flat.size <= EXACT_MAX_PARAMS:
            try:
                from .reference import reference_gradient
                budget = None if reference == "exact" else EXACT_TIME_BUDGET_S
                res = reference_gradient(problem.target, problem.theta, *problem.args, dtype=dtype,
                                         time_budget_s=budget)
                label = EXACT_LABEL if dtype == "float64" else f"{EXACT_LABEL} at theta and data rounded to {dtype}"
                return problem.flatten_like_theta(res.grad), label, res.value, None, True
            except Exception as e:  # noqa: BLE001 - "auto" means the best reference that works here
                if reference == "exact":
                    raise
                exact_failed = f"{type(e).__name__}: {e}"
                notes.append(f"the exact reference was not available ({exact_failed}); reverse mode in float64 is "
                             "the reference instead")
        else:
            notes.append(f"{problem.flat.size} entries is more than EXACT_MAX_PARAMS={EXACT_MAX_PARAMS}: reverse "
                         "mode in float64 is the reference (pass reference='exact' to insist)")
        reference = "reverse"
    if isinstance(reference, str) or callable(getattr(reference, "value_and_grad", None)):
        m = resolve_method(reference, "float64", role="reference")
        try:
            value, grad, _ = problem.gradient(m.differentiator)
        except Exception as e:
            raise RuntimeError(f"the reference method {m.label} failed on {problem.label}: {type(e).__name__}: {e}"
                               + (f" (and the exact reference could not be built: {exact_failed})" if exact_failed
                                  else "")
                               + ". " + reference_advice(m.label, exact_failed is not None)) from e
        return grad, f"{m.label} ({m.dtype})", value, m, False
    return problem.flatten_like_theta(reference), "the given gradient", None, None, False


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
        # (bool is an int to Python: rtol=True would be 1.0, a check that passes everything)
        if isinstance(v, (bool, np.bool_)) or not (isinstance(v, (int, float, np.integer, np.floating))
                                                   and np.isfinite(v) and v >= 0):
            raise ValueError(f"{what} for {label} must be a finite number >= 0 (not a bool); got {v!r}")
    return {k: float(v) for k, v in values.items()}


def _ignore_fd_warnings(unsettled: bool) -> None:
    """Inside a ``warnings.catch_warnings()``: silence finite differences' KinkWarning (the report marks those
    entries) and, with ``unsettled`` (a method the check chose itself), UnsettledStepWarning (the report notes those
    entries): the check's report says it, not a warning in the user's test output."""
    try:
        from .differentiators.finite_diff import KinkWarning, UnsettledStepWarning
    except ImportError:
        return
    warnings.filterwarnings("ignore", category=KinkWarning)
    if unsettled:
        warnings.filterwarnings("ignore", category=UnsettledStepWarning)


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
