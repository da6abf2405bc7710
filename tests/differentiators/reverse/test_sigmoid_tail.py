"""sigmoid's far negative tail on both backends: below -709 (float64) sigmoid(x) is the subnormal e^x, not a
clipped constant (numpy) or 0 (torch.sigmoid), so log(sigmoid(x)) keeps its value. Oracle: mpmath at 50 digits,
rounded to the dtype."""
import warnings

import mpmath
import numpy as np
import pytest

import diffsuite as ds

try:
    import torch  # noqa: F401
    BACKENDS = ["numpy", "torch"]
except ImportError:  # pragma: no cover
    BACKENDS = ["numpy"]

POINTS = {"float64": [-760.0, -745.5, -744.0, -720.0, -710.0, -709.5, -708.5, -700.0, -37.0, 0.0, 3.0],
          "float32": [-110.0, -103.0, -95.0, -89.0, -88.0, -87.0, -80.0, -17.0, 0.0, 3.0]}


def exact_sigmoid(x, dtype):
    with mpmath.workdps(50):
        return np.dtype(dtype).type(float(1 / (1 + mpmath.exp(-mpmath.mpf(float(x))))))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sigmoid_is_correctly_rounded_in_its_subnormal_tail(backend, dtype):
    B = ds.get_differentiator("reverse", backend=backend, dtype=dtype).load()
    xs = np.array(POINTS[dtype], dtype=dtype)
    got = np.asarray(B.to_numpy(B.sigmoid(B.asarray(xs))), dtype=dtype)
    want = np.array([exact_sigmoid(x, dtype) for x in xs], dtype=dtype)
    # e^x at a subnormal result is within half a subnormal step; elsewhere a few ulp
    # (the absolute floor, one subnormal step, is what tells e^x = 2e-313 from the 0 or 1.5e-308 of before)
    np.testing.assert_allclose(got, want, rtol=4 * np.finfo(dtype).eps, atol=np.finfo(dtype).smallest_subnormal)


@pytest.mark.parametrize("backend", BACKENDS)
def test_log_of_sigmoid_keeps_its_value_in_the_tail(backend):
    rev = ds.get_differentiator("reverse", backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # log'(2e-313) overflows in the backward pass: its gradient is
        res = rev.value_and_grad_fn(lambda xp, t: xp.sum(xp.log(xp.sigmoid(t))))(np.array([-720.0]))  # log_sigmoid's job
    assert res.value == pytest.approx(-720.0, rel=1e-13)  # log(sigmoid(x)) = x - log1p(e^x) = x here


def test_symbolic_sigmoid_derivative_in_its_far_tail():
    """sigmoid'(x) = e^-x / (1 + e^-x)^2: below -354.9 the square overflows while e^-x does not; a silent x*x = inf
    made the derivative 0 (it is 1.9e-174 at -400). Oracle: mpmath at 50 digits."""
    xs = np.array([-700.0, -400.0, -355.0, -300.0, 0.5, 400.0])
    got = ds.get_differentiator("symbolic").grad(lambda xp, t: xp.sum(xp.sigmoid(t)))(xs)
    with mpmath.workdps(50):
        want = [float(mpmath.exp(-mpmath.mpf(x)) / (1 + mpmath.exp(-mpmath.mpf(x))) ** 2) for x in xs]
    np.testing.assert_allclose(got, want, rtol=4 * np.finfo(float).eps, atol=0)
