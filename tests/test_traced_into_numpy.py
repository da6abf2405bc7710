"""A traced value written into a numpy array (``out = np.zeros(2); out[0] = t[0]``) cannot carry a derivative. numpy
took reverse and forward mode's traced values, which can be indexed, for sequences, and the user read only numpy's
"setting an array element with a sequence." Every tracing differentiator now says what happened and what to write
instead, at every entry point (gradients and higher order)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import diffsuite as ds

TRACING = [("reverse", {}), ("forward", {}), ("symbolic", {}),
           pytest.param("reverse", {"backend": "torch"}, marks=pytest.mark.skipif(
               importlib.util.find_spec("torch") is None, reason="torch is not installed"))]


def fills_a_numpy_array(xp, t):
    out = np.zeros(2)
    out[0] = t[0]
    return xp.sum(out * t)


@pytest.mark.parametrize("name, options", TRACING)
@pytest.mark.parametrize("entry", ["grad", "hessian"])
def test_writing_a_traced_value_into_numpy_names_the_mistake_and_the_fix(name, options, entry):
    d = ds.get_differentiator(name, **options)
    fn = d.value_and_grad_fn(fills_a_numpy_array) if entry == "grad" else d.hessian(fills_a_numpy_array)
    with pytest.raises(TypeError, match=r"numpy array.*xp\.stack"):
        fn(np.array([1.0, 2.0]))


def test_finite_differences_evaluate_floats_and_differentiate_it():
    """f(t) = t0 * t0 (out = [t0, 0]): gradient [2 t0, 0], written out by hand."""
    res = ds.get_differentiator("finite_diff", scheme="central").value_and_grad_fn(fills_a_numpy_array)(
        np.array([1.5, 2.0]))
    np.testing.assert_allclose(res.grad, [3.0, 0.0], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["reverse", "forward"])
def test_a_value_error_of_the_users_own_passes_through(name):
    def bad(xp, t):
        raise ValueError("my own message")

    with pytest.raises(ValueError, match="my own message"):
        ds.get_differentiator(name).value_and_grad_fn(bad)(np.array([1.0]))


@pytest.mark.parametrize("name", ["reverse", "forward"])
def test_numpys_longer_sequence_errors_are_not_taken_for_a_traced_value(name):
    """A ragged nested list is numpy's "setting an array element with a sequence. The requested array has an
    inhomogeneous shape ...": the user's own mistake, passed through as numpy's ValueError."""
    def ragged(xp, t):
        np.array([[1.0], [1.0, 2.0]], dtype=float)
        return xp.sum(t)

    with pytest.raises(ValueError, match="inhomogeneous"):
        ds.get_differentiator(name).value_and_grad_fn(ragged)(np.array([1.0]))
