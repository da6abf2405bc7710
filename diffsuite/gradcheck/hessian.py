"""Hessian checks: every method's Hessian against a reference, entry by entry, with the gradient check's report.

``check_hessian(f, theta, *args)`` runs each method's ``hessian`` (docs/higher_order.md), flattens it to
n x n named entries (``H[W0[0, 1]; b0[1]]``: the second derivative by those two parameters) and compares
them with the reference in a ``GradcheckReport``: the same per-entry failure report as ``check_gradients``.

Defaults: methods ``reverse`` (reverse-over-reverse), ``forward_mode`` (forward-over-reverse) and
``central`` (second differences, step ~ eps^(1/4)), plus ``complex_step`` (complex step over a central
difference, error ~ eps^(2/3)) when the function is analytic. Reference ``"auto"``: the exact Hessian
(``reference_hessian``: certified, each entry correctly rounded; a true kink is named in a note) for at most ``EXACT_MAX_PARAMS`` parameters, else reverse mode (then
not checked against itself). rtol by method (``HESSIAN_RTOL``), atol ``rtol * max|ref|``. Finite
differences have no kink detection for second derivatives: check them at points away from kinks.

The inputs are checked as ``check_gradients`` checks them (``methods.checked_problem``, ``methods.choose_methods``):
an empty theta, a non-finite f(theta), ``methods=[]``, a method named twice, or an unknown dtype is a ValueError.
"""
from __future__ import annotations

import warnings
from typing import Any, Iterable, Mapping

import numpy as np

from ..structure import Structure, flat_hessian
from .methods import Problem, checked_problem, choose_methods, reference_advice, resolve_method, without_reference
from .report import GradcheckReport, MethodResult
from .tolerances import REAL_FD_SCHEMES

#: the largest number of parameters for which reference="auto" computes the exact Hessian (n^2 expressions)
EXACT_MAX_PARAMS = 12
#: seconds the exact reference may take under reference="auto" before reverse mode replaces it
EXACT_TIME_BUDGET_S = 10.0
DEFAULT_METHODS = ("reverse", "forward_mode", "central")
EXACT_LABEL = "exact Hessian (certified, arb)"

#: (method kind, dtype) -> default rtol of a Hessian entry. AD and symbolic: rounding only. Central second
#: differences: error ~ sqrt(eps) times the function's scale over its curvature, so 1e-8 at best; complex
#: step over a central difference: ~ eps^(2/3) ~ 4e-11 at best. Two to three orders of headroom.
HESSIAN_RTOL = {
    ("reverse", "float64"): 1e-9, ("forward_mode", "float64"): 1e-9, ("symbolic", "float64"): 1e-9,
    ("complex_step", "float64"): 1e-7, ("central", "float64"): 1e-4,
    ("reverse", "float32"): 1e-4, ("forward_mode", "float32"): 1e-4, ("symbolic", "float32"): 1e-4,
    ("complex_step", "float32"): 1e-2, ("central", "float32"): 3e-1,
}



def hessian_names(names: list[str]) -> list[str]:
    """Entry names of the flattened Hessian, row-major: ``H[a; b]`` for parameters ``a`` and ``b``."""
    return [f"H[{a}; {b}]" for a in names for b in names]


def _flat(problem: Problem, d: Any) -> tuple[np.ndarray, dict]:
    """Method ``d``'s Hessian of the problem as one flat (n*n) float64 vector, and its stats."""
    h = d.hessian(problem.target)
    H = h(problem.theta, *problem.args)
    structure = Structure.of(problem.flat if problem.is_objective else problem.theta)
    return flat_hessian(H, structure).reshape(-1), dict(getattr(h, "stats", {}))


def check_hessian(f: Any, theta: Any, *args: Any, methods: Iterable | None = None, reference: Any = "auto",
                  rtol: float | Mapping[str, float] | None = None, atol: float | Mapping[str, float] | None = None,
                  dtype: str = "float64") -> GradcheckReport:
    """Every method's Hessian of ``f`` at ``theta`` against the reference (see the module docstring).

    Args:
        f: ``f(xp, theta, *args) -> scalar``, or an ``Objective``.
        methods: aliases (``reverse``, ``reverse_torch``, ``forward_mode``, ``symbolic``, ``central``,
            ``complex_step``) or differentiators from ``get_differentiator``.
        reference: ``"auto"``, ``"exact"``, a method (as above), or a Hessian you computed (n x n, or
            in the shape the methods return).
        rtol, atol: a number for every method or ``{method label: number}``; None: ``HESSIAN_RTOL``.
    """
    from ..testing import _per_method  # (the shared option parsing of check_gradients)

    problem = checked_problem(f, theta, args, "check_hessian")
    chosen = choose_methods(problem, methods, dtype, DEFAULT_METHODS)
    notes: list[str] = []
    ref, ref_label, ref_method = _reference(problem, reference, dtype, notes)
    chosen = without_reference(chosen, ref_method, notes, "('reverse', 'forward_mode')")
    finite = np.isfinite(ref)
    scale = float(np.max(np.abs(ref[finite]))) if finite.any() else 0.0
    rtols, atols = _per_method("rtol", rtol, chosen), _per_method("atol", atol, chosen)
    results = []
    for m in chosen:
        # (a kind the table does not know, a user's own method: the strict AD tolerance, as for gradients)
        # (every real finite-difference scheme takes the same four-point second difference: central's tolerance)
        kind = "central" if m.kind in REAL_FD_SCHEMES else m.kind
        r_tol = rtols.get(m.label, HESSIAN_RTOL.get((kind, m.dtype), HESSIAN_RTOL[("reverse", m.dtype)]))
        a_tol = atols.get(m.label, r_tol * (scale if scale > 0 else 1.0))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                H, stats = _flat(problem, m.differentiator)
        except Exception as e:  # noqa: BLE001 - a method that cannot run is a finding, not a crash of the check
            results.append(MethodResult(m, None, r_tol, a_tol, error=f"{type(e).__name__}: {e}"))
            continue
        results.append(MethodResult(m, H, r_tol, a_tol, stats=stats))
    return GradcheckReport(problem.label, hessian_names(problem.names), ref, ref_label, results, None, notes,
                           kind="Hessian", reference_exact=ref_label == EXACT_LABEL)


def assert_hessians_close(f: Any, theta: Any, *args: Any, n_worst: int = 5, **options: Any) -> GradcheckReport:
    """``check_hessian`` that raises an AssertionError naming the worst entries; returns the report if all pass."""
    return check_hessian(f, theta, *args, **options).raise_if_failed(n_worst)


def _reference(problem: Problem, reference: Any, dtype: str, notes: list[str]) -> tuple[np.ndarray, str, Any]:
    n, exact_failed = problem.flat.size, None
    if isinstance(reference, str) and reference in ("auto", "exact"):
        if reference == "exact" or n <= EXACT_MAX_PARAMS:
            try:
                from ..reference_hessian import ReferenceKinkWarning, reference_hessian
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ReferenceKinkWarning)
                    res = reference_hessian(problem.target, problem.theta, *problem.args,
                                            time_budget_s=None if reference == "exact" else EXACT_TIME_BUDGET_S)
                # a true kink at theta: the report says so (the Hessian's entries there follow the conventions)
                notes.extend(str(w.message) for w in caught
                             if issubclass(w.category, ReferenceKinkWarning))
                for w in caught:  # anything else, as it came
                    if not issubclass(w.category, ReferenceKinkWarning):
                        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                return flat_hessian(res, Structure.of(problem.flat if problem.is_objective else problem.theta)
                                    ).reshape(-1), EXACT_LABEL, None
            except Exception as e:  # noqa: BLE001 - "auto" means the best reference that works here
                if reference == "exact":
                    raise
                exact_failed = f"{type(e).__name__}: {e}"
                notes.append(f"the exact Hessian was not available ({exact_failed}); reverse mode in float64 is the "
                             "reference instead")
        else:
            notes.append(f"{n} parameters is more than EXACT_MAX_PARAMS={EXACT_MAX_PARAMS} (n^2 exact second "
                         "derivatives): reverse mode in float64 is the reference (pass reference='exact' to insist)")
        reference = "reverse"
    if isinstance(reference, str) or callable(getattr(reference, "hessian", None)):
        m = resolve_method(reference, "float64", role="reference")
        try:
            H, _ = _flat(problem, m.differentiator)
        except Exception as e:
            raise RuntimeError(f"the reference method {m.label} failed on {problem.label}: {type(e).__name__}: {e}"
                               + (f" (and the exact Hessian could not be built: {exact_failed})" if exact_failed
                                  else "") + ". "
                               + reference_advice(m.label, exact_failed is not None, "Hessian")) from e
        return H, f"{m.label} ({m.dtype})", m
    given = np.asarray(reference, dtype=np.float64) if not isinstance(reference, dict) else None
    if given is not None and given.size == n * n:
        return given.reshape(-1), "the given Hessian", None
    if given is not None:  # (an array of another size: a dict of blocks goes to flat_hessian below)
        raise ValueError(f"reference must be the Hessian: {n}x{n} entries ({n} parameters), shaped ({n}, {n}) or "
                         f"theta's shape twice; got shape {given.shape} ({given.size} entries)")
    H = flat_hessian(reference, Structure.of(problem.flat if problem.is_objective else problem.theta))
    return H.reshape(-1), "the given Hessian", None
