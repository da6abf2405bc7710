"""Default tolerances of the gradient check, by method and dtype.

An entry passes when ``|g - ref| <= atol + rtol * |ref|``. The default ``rtol`` comes from the table
below; the default ``atol`` is ``rtol * max|ref|``: entries are judged against the gradient's scale,
so an entry that is nearly zero is not failed for the rounding noise of the large ones.

Where the numbers come from (eps = 2.2e-16 in float64, 1.2e-7 in float32): reverse mode and the
symbolic gradient (and forward mode) carry rounding error only (a few hundred eps after a deep network);
forward/backward differences have error ~ sqrt(eps), central ~ eps^(2/3), five-point and Richardson
~ eps^(4/5) at their best steps, times the function's curvature; complex step is exact up to rounding.
Each default leaves at least an order of magnitude (mostly two to four) of headroom over the largest
error the quick accuracy grid measures (``baselines/accuracy_quick.json``, smooth activations), and
stays far below the O(1) relative error of a wrong rule (a sign slip is off by 2 |ref|).
"""
from __future__ import annotations

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


def default_rtol(kind: str, dtype: str) -> float:
    """The default rtol for a method kind in a dtype; unknown kinds get the loosest of their dtype."""
    if (kind, dtype) in DEFAULT_RTOL:
        return DEFAULT_RTOL[kind, dtype]
    same_dtype = [v for (k, d), v in DEFAULT_RTOL.items() if d == dtype]
    return max(same_dtype) if same_dtype else max(DEFAULT_RTOL.values())


def tolerance_table_markdown() -> str:
    """The defaults as a Markdown table (for docs; a test keeps docs/gradcheck.md in step with it)."""
    kinds = list(dict.fromkeys(k for k, _ in DEFAULT_RTOL))
    rows = ["| method | float64 rtol | float32 rtol |", "|---|---|---|"]
    rows += [f"| {k} | {DEFAULT_RTOL[k, 'float64']:.0e} | {DEFAULT_RTOL[k, 'float32']:.0e} |" for k in kinds]
    return "\n".join(rows)
