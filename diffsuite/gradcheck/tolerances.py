"""Default tolerances of the gradient check, by method and dtype.

An entry passes when ``|g - ref| <= atol + rtol * |ref|``. The default ``rtol`` comes from the table
below. The default ``atol`` is an absolute floor for the entries near zero, tied to what the method's
error actually scales with (``default_atol``):

- exact-up-to-rounding methods (reverse, forward_mode, symbolic, complex step, and any method of a kind
  this table does not know): ``ROUNDING_FLOOR_EPS * eps(dtype) * max|ref|`` over the whole gradient. Their
  error is rounding, so a small entry (a feature in other units, an early layer with vanishing gradients) is
  still held to far below its own size: a sign flip on an entry 1e-5 of the largest is caught. (Not per leaf:
  a leaf whose gradient cancels to nearly 0 carries rounding of the terms it sums.)
- finite differences: ``rtol * max|ref|`` over the whole gradient: their error (truncation ~ h^k f^(k+1),
  rounding ~ eps |f| / h) scales with the function, not with the entry, so entries far below the largest
  are beyond what they can resolve; the exact-up-to-rounding methods check those.

Where every reference entry (of the leaf, then of the gradient) is 0 the scale is 1.

The finite-difference floor is also at least what f's own rounding makes of a difference quotient
(``rounding_floor``): ``VALUE_ROUNDING_EPS`` eps |f| times the sum of the quotient's weights' sizes, over its
step h_i. A quotient differences f's values, so it carries their rounding whatever the gradient's size; near a
stationary point (a fitted model, a least-squares solution) the gradient is far below |f| / h, and the floor
relative to max|ref| alone failed correct quotients there. The exact-up-to-rounding methods get no such floor:
their rounding is that of the terms the gradient sums, which |f| does not measure (a constant added to f changes
|f| and not their error); where the whole reference is below ``VALUE_ROUNDING_EPS`` eps |f| / max(1, |theta_i|)
the check adds a note instead (``stationary_scale``).

Where the numbers come from (eps = 2.2e-16 in float64, 1.2e-7 in float32): reverse mode and the
symbolic gradient (and forward mode) carry rounding error only (a few hundred eps after a deep network);
forward/backward differences have error ~ sqrt(eps), central ~ eps^(2/3), five-point and Richardson
~ eps^(4/5) at their best steps, times the function's curvature; complex step is exact up to rounding.
Each default leaves at least an order of magnitude (mostly two to four) of headroom over the largest
error the quick accuracy grid measures (``baselines/accuracy_quick.json``, smooth activations), and
stays far below the O(1) relative error of a wrong rule (a sign slip is off by 2 |ref|).
"""
from __future__ import annotations

import numpy as np

from ..differentiators.finite_diff.steps import SCHEMES

#: the finite-difference schemes that difference f's real values (all but the complex step): their second
#: differences share one tolerance, and their quotients inherit f's own rounding where its value cancels
REAL_FD_SCHEMES = tuple(s for s in SCHEMES if s != "complex_step")

#: (method kind, dtype) -> default rtol. The kind is "reverse", "symbolic", or a finite-difference scheme.
DEFAULT_RTOL: dict[tuple[str, str], float] = {
    ("reverse", "float64"): 1e-9,
    ("forward_mode", "float64"): 1e-9,
    ("symbolic", "float64"): 1e-9,
    ("complex_step", "float64"): 1e-9,
    ("five_point", "float64"): 1e-7,
    ("richardson", "float64"): 1e-7,
    ("central", "float64"): 1e-6,
    ("forward", "float64"): 1e-4,
    ("backward", "float64"): 1e-4,
    # float32: eps is 5e8 times larger
    ("reverse", "float32"): 1e-4,
    ("forward_mode", "float32"): 1e-4,
    ("symbolic", "float32"): 1e-4,
    ("complex_step", "float32"): 1e-4,
    ("five_point", "float32"): 1e-2,
    ("richardson", "float32"): 1e-2,
    ("central", "float32"): 3e-2,
    ("forward", "float32"): 1e-1,
    ("backward", "float32"): 1e-1,
}


#: method kinds whose error is rounding only (the absolute floor is per leaf, ROUNDING_FLOOR_EPS eps)
EXACT_KINDS = frozenset({"reverse", "forward_mode", "symbolic", "complex_step"})
#: finite-difference kinds (the absolute floor is rtol * max|ref| over the whole gradient)
FD_KINDS = frozenset({"forward", "backward", "central", "five_point", "richardson"})
#: the kind whose tolerance a method of unknown kind (a user's own differentiator) is held to: the strict one
STRICT_KIND = "reverse"
#: the absolute floor of exact-up-to-rounding methods, in eps of the dtype, times the leaf's max|ref|
ROUNDING_FLOOR_EPS = 512
#: the rounding of f's values that the floors allow for, in eps of the dtype times |f| (``rounding_floor``)
VALUE_ROUNDING_EPS = 16
#: sum of |weights| of each scheme's difference quotient, times its step: how much of one value's rounding, over h,
#: reaches the quotient (Richardson's depends on its levels: ``quotient_weight``)
_QUOTIENT_WEIGHT = {"forward": 2.0, "backward": 2.0, "central": 1.0, "five_point": 1.5}


def tolerance_kind(kind: str) -> str:
    """The kind whose defaults apply: the kind itself when the table knows it, else the strict AD kind."""
    return kind if kind in EXACT_KINDS | FD_KINDS else STRICT_KIND


def default_rtol(kind: str, dtype: str) -> float:
    """The default rtol for a method kind in a dtype. A kind the table does not know (a user's own
    differentiator) gets the strict AD tolerance of its dtype: the one reverse mode gets, so that a
    user's gradient is held to what a correct gradient achieves (pass ``rtol=`` to loosen it)."""
    dtype = dtype if dtype in ("float64", "float32") else "float64"
    return DEFAULT_RTOL[tolerance_kind(kind), dtype]


def rtol_reason(kind: str, dtype: str) -> str:
    """Why a method got its default rtol, in words for the report."""
    if kind in EXACT_KINDS | FD_KINDS:
        return f"default for {kind}, {dtype}"
    return (f"default for a method of unknown kind {kind.removeprefix('user:')!r}: the strict AD tolerance "
            f"({STRICT_KIND}, {dtype}); pass rtol= to loosen it")  # (user:<name>: a user's object, see resolve_method)


def eps(dtype: str) -> float:
    return float(np.finfo(np.float32 if dtype == "float32" else np.float64).eps)


def default_atol(kind: str, dtype: str, rtol: float, reference: np.ndarray) -> np.ndarray:
    """The default absolute floor, per entry (see the module docstring); non-finite reference entries do not count
    towards the scale."""
    ref = np.where(np.isfinite(reference), np.abs(reference), 0.0)
    whole = float(ref.max()) if ref.size else 0.0
    whole = whole if whole > 0 else 1.0
    if tolerance_kind(kind) in FD_KINDS:
        return np.full(ref.shape, rtol * whole)
    # Over the whole gradient, not per leaf: an entry's rounding scales with the terms it sums, and a leaf whose
    # gradient cancels to nearly 0 (a least-squares fit at its solution) still carries rounding of the gradient's
    # own size (a per-leaf floor failed correct gradients there). 512 eps of the largest entry still catches an
    # entry wrong by more than that: a sign flip of one 1e-10 of the largest.
    return np.full(ref.shape, ROUNDING_FLOOR_EPS * eps(dtype) * whole)


def quotient_weight(scheme: str, levels: int = 1) -> float:
    """How much of one value's rounding, over the step h, a scheme's result carries: the sum of its weights' sizes
    times h. Richardson: central quotients at h, h/2, ..., h/2^(levels-1) (each carrying 2^k / h) combined by the
    extrapolation weights that cancel h^2, h^4, ..., which are solved for here."""
    if scheme != "richardson":
        return _QUOTIENT_WEIGHT[scheme]
    k = np.arange(levels)
    x = 4.0 ** -k  # each level's h^2, relative to the first's
    weights = np.linalg.solve(np.vander(x, levels, increasing=True).T, np.eye(levels)[0])  # sum w x^j = [j == 0]
    return float(np.sum(np.abs(weights) * 2.0 ** k))


def rounding_floor(kind: str, dtype: str, value: float | None, theta: np.ndarray, stats: dict) -> np.ndarray | None:
    """Per entry, the error a finite-difference result has from f's own rounding alone, where f's value is
    ``value``: ``VALUE_ROUNDING_EPS eps |f| quotient_weight / h_i`` (``stats["steps"]``). None for the other kinds,
    where f's value is not a finite number, or where a difference method reports no steps."""
    if tolerance_kind(kind) not in FD_KINDS or value is None or not np.isfinite(value):
        return None
    steps = np.asarray(stats.get("steps", ()), dtype=np.float64).reshape(-1)
    if steps.shape != np.shape(theta) or not np.all(np.isfinite(steps) & (steps > 0)):
        return None
    weight = quotient_weight(kind, int(stats.get("levels", 1)))
    return VALUE_ROUNDING_EPS * eps(dtype) * abs(float(value)) * weight / steps


def stationary_scale(dtype: str, value: float | None, theta: np.ndarray) -> np.ndarray | None:
    """``VALUE_ROUNDING_EPS eps |f| / max(1, |theta_i|)``: a reference wholly below it suggests a stationary point
    (or a large constant in f), where the check adds a note; None where f's value is not a finite number."""
    if value is None or not np.isfinite(value):
        return None
    return VALUE_ROUNDING_EPS * eps(dtype) * abs(float(value)) / np.maximum(1.0, np.abs(np.asarray(theta, float)))


def rounding_floor_reason(kind: str, dtype: str) -> str:
    return (f"at least {VALUE_ROUNDING_EPS} eps({dtype}) |f| over the step, through the quotient (f's own rounding "
            "in a difference quotient, which near a stationary point exceeds the gradient's scale)")


def atol_reason(kind: str, dtype: str) -> str:
    if tolerance_kind(kind) in FD_KINDS:
        return "default: rtol * max|ref| (finite differences resolve entries down to the gradient's scale)"
    return f"default: {ROUNDING_FLOOR_EPS} eps({dtype}) * max|ref| (rounding)"


def tolerance_table_markdown() -> str:
    """The defaults as a Markdown table (for docs; a test keeps docs/gradcheck.md in step with it)."""
    kinds = list(dict.fromkeys(k for k, _ in DEFAULT_RTOL))
    rows = ["| method | float64 rtol | float32 rtol |", "|---|---|---|"]
    rows += [f"| {k} | {DEFAULT_RTOL[k, 'float64']:.0e} | {DEFAULT_RTOL[k, 'float32']:.0e} |" for k in kinds]
    return "\n".join(rows)
