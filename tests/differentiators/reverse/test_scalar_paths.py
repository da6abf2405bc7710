"""0-d values take scalar shortcuts in the numpy backend (numpy scalars, math.exp in sigmoid's derivative): the
gradients they give must be as accurate as the array path's, checked against mpmath at 50 digits."""
import mpmath
import numpy as np
import pytest

import diffsuite as ds

POINTS = [0.0, 1e-300, -3e-9, 0.5, -1.7, 20.0, -40.0, 300.0, -709.0, 800.0]


def exact(name: str, x: float) -> float:
    with mpmath.workdps(50):
        t = mpmath.mpf(x)
        d = mpmath.sech(t) ** 2 if name == "tanh" else mpmath.exp(-t) / (1 + mpmath.exp(-t)) ** 2
        return float(d)  # (sech^2, not 1 - tanh^2: that cancels to 0 at 50 digits for |x| > 60)


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
@pytest.mark.parametrize("x", POINTS)
def test_scalar_and_array_derivatives_match_mpmath(name, x):
    grad = ds.get_differentiator("reverse").grad(lambda xp, t: getattr(xp, name)(t))
    truth = exact(name, x)
    scalar = float(grad(np.array(x)))
    array = float(ds.get_differentiator("reverse").grad(lambda xp, t: xp.sum(getattr(xp, name)(t)))(np.array([x]))[0])
    for got in (scalar, array):
        assert got == pytest.approx(truth, rel=4 * np.finfo(float).eps, abs=0.0), (got, truth)
