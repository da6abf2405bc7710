"""Difference schemes and step rules of the finite-difference differentiator.

A real scheme is a stencil: offsets (multiples of the step h) at which the objective is evaluated
and the weights that turn those values into a derivative, ``f'(x) ~ sum_k w_k f(x + o_k h) / h``.
Richardson extrapolation runs the central stencil at h, h/2, h/4, ... and combines the results
(each level removes one more even power of h). Complex step is not a stencil: ``Im f(x + ih) / h``.

Step rule ("auto"): the step that balances truncation error C h^p against rounding error eps / h
for a scheme of order p in a dtype with machine epsilon eps is h ~ eps^(1 / (p + 1)); it is scaled
to each parameter, h_i = eps^(1/(p+1)) * max(1, |theta_i|), then made exactly representable:
h_i <- (theta_i + h_i) - theta_i, computed in the evaluation dtype, so that the denominator is the
distance between the points really evaluated (``control.Rule.steps``, which also combines the values).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DTYPES = {"float64": np.float64, "float32": np.float32}
COMPLEX_DTYPES = {"float64": np.complex128, "float32": np.complex64}

#: The complex step's automatic step for |theta_i| >= 1 and theta_i == 0, and the cap of its retries: no
#: subtraction happens, so the step only has to keep the truncation h^2 f''' / 6 below the rounding of f';
#: 1e-20 does in float64 and float32 alike wherever f varies on the scale max(1, |theta_i|).
COMPLEX_STEP = 1e-20
#: For 0 < |theta_i| < 1 the automatic complex step is relative (``complex_steps``).
COMPLEX_RELATIVE_STEP = COMPLEX_STEP


def complex_steps(theta: np.ndarray, dtype: str) -> np.ndarray:
    """The complex step's automatic steps: float64 values, each exactly representable in ``dtype``.

    h_i = 1e-20 for |theta_i| >= 1 and for theta_i == 0 (no scale to go by at 0); for 0 < |theta_i| < 1,
    1e-20 |theta_i| rounded down to a power of two (0.5e-20 to 1e-20 times |theta_i|), so that a function
    singular at 0 (log, sqrt, 1/x: relative truncation ~ (h / theta_i)^2) keeps its accuracy next to it.
    A power of two divides Im f(x + ih) exactly. The step is never below the smallest *normal* float of
    ``dtype`` (2^-1022 in float64, 2^-126 in float32): a subnormal h carries fewer bits, and so does every
    h f' computed from it (an Im f that still comes out subnormal is evaluated again at a longer step,
    ``FiniteDiff._complex``). Below |theta_i| ~ 2e-288 (float64) the step therefore stops shrinking with
    theta_i, and below ~1e-300 it is no longer small next to |theta_i| (docs/finite_diff.md, "Complex step:
    the step and its accuracy")."""
    real = DTYPES[dtype]
    tiny = float(np.finfo(real).tiny)
    a = np.abs(theta.astype(real).astype(np.float64))  # the point evaluated
    scaled = COMPLEX_RELATIVE_STEP * a  # 0 once |theta_i| < 5e-305: the floor applies there anyway
    _, e = np.frexp(scaled)  # scaled = m 2^e with 0.5 <= m < 1
    relative = np.where(scaled >= tiny, np.ldexp(1.0, e - 1), tiny)
    return np.where((a > 0) & (a < 1), relative, COMPLEX_STEP).astype(real).astype(np.float64)


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


def auto_steps(theta: np.ndarray, order: int, dtype: str) -> np.ndarray:
    """h_i = eps^(1/(p+1)) * max(1, |theta_i|) in float64 (made exact later, per evaluated point)."""
    eps = float(np.finfo(DTYPES[dtype]).eps)
    return eps ** (1.0 / (order + 1)) * np.maximum(1.0, np.abs(theta.astype(np.float64)))
