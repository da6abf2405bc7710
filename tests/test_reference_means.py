"""The losses and var/std divide by the batch size (n - ddof), so the exact reference certifies the mean itself.

They multiplied by the float fl(1/n), which the symbolic build (and so the certified reference) reads as its exact
binary value: for n = 3 the reference then returned the correctly rounded value of sum * fl(1/3), one ulp off the
mean in most problems, and refused var([1, 2, 4]) as a rounding tie (14/9 times 1 - 2^-54 is a float64 midpoint).

Oracle: exact rational arithmetic (fractions.Fraction of the float64 inputs), rounded once.
"""
from fractions import Fraction

import mpmath
import numpy as np
import pytest

import diffsuite as ds


def exact_quadratic_mean(X, Y, W, b):
    """1/2 sum (X W + b - Y)^2 / n, every operation exact, for a linear model (identity activation)."""
    n, total = X.shape[0], Fraction(0)
    for i in range(n):
        for k in range(Y.shape[1]):
            z = sum(Fraction(float(X[i, j])) * Fraction(float(W[j, k])) for j in range(X.shape[1])) \
                + Fraction(float(b[k]))
            total += (z - Fraction(float(Y[i, k]))) ** 2
    return total / (2 * n)


@pytest.mark.parametrize("seed", range(8))
def test_the_reference_value_of_a_batch_of_three_is_the_exact_mean(seed):
    rng = np.random.default_rng(seed)
    X, Y = rng.normal(size=(3, 2)), rng.normal(size=(3, 1))
    model = ds.MLP(layers=(2, 1), activation="identity", output_activation="identity")
    obj = ds.Objective(model, "quadratic", X, Y)
    theta = model.init(seed)
    p = model.unpack(theta)
    assert ds.reference_gradient(obj, theta).value == float(exact_quadratic_mean(X, Y, p["W0"], p["b0"]))


def test_var_is_certified_to_the_exact_rational():
    """var([1, 2, 4]) = 14/9, d/dt_i = 2 (t_i - 7/3) / 3: -8/9, -2/9, 10/9. Before: NotCertified (a false tie)."""
    t = np.array([1.0, 2.0, 4.0])
    res = ds.reference_gradient(lambda xp, t: xp.var(t), t)
    assert res.value == float(Fraction(14, 9))
    assert res.grad.tolist() == [float(Fraction(-8, 9)), float(Fraction(-2, 9)), float(Fraction(10, 9))]
    mp = ds.reference_gradient_mp(lambda xp, t: xp.var(t), t, dps=40)
    with mpmath.workdps(60):
        assert abs(mp.value - mpmath.mpf(14) / 9) < mpmath.mpf(10) ** -40
        std = ds.reference_gradient_mp(lambda xp, t: xp.std(t), t, dps=40).value
        assert abs(std - mpmath.sqrt(mpmath.mpf(14) / 9)) < mpmath.mpf(10) ** -39


def test_var_with_ddof_divides_by_n_minus_ddof_exactly():
    """var(t, ddof=1) of [1, 2, 4.5]: sum of squares 6.5 about the mean 2.5, over 2: 3.25, exact in float64."""
    assert ds.reference_gradient(lambda xp, t: xp.var(t, ddof=1), np.array([1.0, 2.0, 4.5])).value == 3.25
