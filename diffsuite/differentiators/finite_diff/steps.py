"""Difference schemes and step rules of the finite-difference differentiator.

A real scheme is a stencil: offsets (multiples of the step h) at which the objective is evaluated
and the weights that turn those values into a derivative, ``f'(x) ~ sum_k w_k f(x + o_k h) / h``.
Richardson extrapolation runs the central stencil at h, h/2, h/4, ... and combines the results
(each level removes one more even power of h). Complex step is not a stencil: ``Im f(x + ih) / h``.

Step rule ("auto"): the step that balances truncation error C h^p against rounding error eps / h
for a scheme of order p in a dtype with machine epsilon eps is h ~ eps^(1 / (p + 1)); it is scaled
to each parameter, h_i = eps^(1/(p+1)) * max(1, |theta_i|), then made exactly representable:
h_i <- (theta_i + h_i) - theta_i, computed in the evaluation dtype, so that the denominator is the
distance between the points really evaluated.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DTYPES = {"float64": np.float64, "float32": np.float32}
COMPLEX_DTYPES = {"float64": np.complex128, "float32": np.complex64}

#: The complex step's default: no subtraction happens, so the step only has to keep h^2 terms
#: below the rounding of the real part; 1e-20 does in float64 and float32 alike.
COMPLEX_STEP = 1e-20


@dataclass(frozen=True)
class Stencil:
    """``f'(x) ~ (w0 f(x) + sum_k w_k f(x + o_k h)) / h``; ``order`` p: truncation error O(h^p)."""

    offsets: tuple[float, ...]  # nonzero offsets, in units of h; each costs one evaluation per parameter
    weights: tuple[float, ...]  # one per offset
    center_weight: float        # the weight of f(x), whose evaluation is shared by all parameters
    order: int


#: The real schemes that are a single stencil. Richardson is built from CENTRAL; complex step apart.
STENCILS = {
    "forward": Stencil((1.0,), (1.0,), -1.0, 1),
    "backward": Stencil((-1.0,), (-1.0,), 1.0, 1),
    "central": Stencil((1.0, -1.0), (0.5, -0.5), 0.0, 2),
    # (-f(x+2h) + 8 f(x+h) - 8 f(x-h) + f(x-2h)) / 12h
    "five_point": Stencil((2.0, 1.0, -1.0, -2.0), (-1 / 12, 8 / 12, -8 / 12, 1 / 12), 0.0, 4),
}
SCHEMES = (*STENCILS, "richardson", "complex_step")


def scheme_order(scheme: str, levels: int = 1) -> int:
    """The order p of the truncation error O(h^p)."""
    if scheme == "richardson":
        return 2 * levels
    if scheme == "complex_step":
        return 2
    return STENCILS[scheme].order


def richardson_combine(values: np.ndarray, steps: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Extrapolate central differences to h -> 0.

    ``values``: (n, 2 * levels) objective values at ``richardson_offsets``; ``steps``: (n, levels),
    the exact step of each level. Returns the estimate R[L-1, L-1] of the tableau and an error
    estimate |R[L-1, L-1] - R[L-1, L-2]| (zeros for one level).
    """
    column = [(values[:, 2 * l] - values[:, 2 * l + 1]) / (2 * steps[:, l]) for l in range(levels)]
    last_row = [column[-1]]
    for m in range(1, levels):  # step ratio 2: R[l, m] = R[l, m-1] + (R[l, m-1] - R[l-1, m-1]) / (4^m - 1)
        column = [column[l] + (column[l] - column[l - 1]) / (4 ** m - 1) for l in range(1, len(column))]
        last_row.append(column[-1])
    estimate = last_row[-1]
    error = np.abs(estimate - last_row[-2]) if levels > 1 else np.zeros_like(estimate)
    return estimate, error


def auto_steps(theta: np.ndarray, order: int, dtype: str) -> np.ndarray:
    """h_i = eps^(1/(p+1)) * max(1, |theta_i|) in float64 (made exact later, per evaluated point)."""
    eps = float(np.finfo(DTYPES[dtype]).eps)
    return eps ** (1.0 / (order + 1)) * np.maximum(1.0, np.abs(theta.astype(np.float64)))


def exact_steps(theta: np.ndarray, nominal: np.ndarray) -> np.ndarray:
    """(theta + h) - theta in theta's dtype, returned as float64: the step really taken (0 if it vanished)."""
    h = nominal.astype(theta.dtype)
    return ((theta + h) - theta).astype(np.float64)
