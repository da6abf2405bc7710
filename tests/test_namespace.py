"""The xp seam: every namespace implements every function of the table, clear errors for what is not there,
numpy's own functions on traced values, pytree parameters and argnums, and the bugs found by peers' cases."""
import re
from pathlib import Path

import numpy as np
import pytest

import diffsuite as ds
from diffsuite.differentiators.finite_diff.namespaces import COMPLEX, KinkTracker
from diffsuite.differentiators.reverse.backends import NumpyBackend
from diffsuite.differentiators.reverse.tape import Tape, TapeNamespace
from diffsuite.differentiators.symbolic.namespace import SYMPY
from diffsuite.namespace import FUNCTIONS, NAMESPACE_FUNCTIONS, NUMPY

README = Path(__file__).resolve().parents[1] / "README.md"
NAMESPACES = {"numpy": NUMPY, "complex": COMPLEX, "kinks": KinkTracker(NUMPY), "kinks+complex": KinkTracker(COMPLEX),
              "tape": TapeNamespace(Tape(NumpyBackend())), "sympy": SYMPY}
ALL = ["reverse", "symbolic", "finite_diff"]


@pytest.mark.parametrize("name", NAMESPACES)
def test_every_namespace_implements_every_function(name):
    xp = NAMESPACES[name]
    assert not [f for f in NAMESPACE_FUNCTIONS if not callable(getattr(xp, f, None))]


@pytest.mark.parametrize("name", NAMESPACES)
def test_an_unknown_name_lists_the_valid_ones(name):
    with pytest.raises(AttributeError, match=r"no function 'sofplus'.*Did you mean xp.softplus.*It has: exp, log"):
        getattr(NAMESPACES[name], "sofplus")


def test_the_readme_table_lists_every_function():
    text = README.read_text()
    section = text[text.index("### Your own functions: write the math once"):text.index("### Conventions")]
    listed = set(re.findall(r"`([a-z_0-9]+)[`(]", section))  # (`clip(x, lo, hi)`: the name before the bracket)
    assert not sorted(set(FUNCTIONS) - listed), "add them to the README's namespace table"


@pytest.mark.parametrize("method", ALL)
def test_numpy_functions_on_traced_values_run_as_the_xp_function(method):
    def f(xp, x):
        return np.sum(np.exp(x) * np.tanh(x), axis=0) @ np.ones(2) + np.max(np.where(x > 0, x, 0.0))
    x = np.array([[0.3, -0.2], [0.5, 0.1]])
    want = ds.get_differentiator("reverse").grad(lambda xp, t: xp.sum(xp.sum(xp.exp(t) * xp.tanh(t), axis=0))
                                                 + xp.max(xp.where(t > 0, t, 0.0)))(x)
    np.testing.assert_allclose(ds.get_differentiator(method).grad(f)(x), want, rtol=1e-9)


@pytest.mark.parametrize("method", ["reverse", "symbolic"])
def test_a_numpy_function_without_a_rule_names_itself_and_the_alternatives(method):
    with pytest.raises(TypeError, match=r"np.sinc cannot run on a (traced|symbolic) value.*Available: exp"):
        ds.get_differentiator(method).grad(lambda xp, x: np.sum(np.sinc(x)))(np.ones(2))
    with pytest.raises(TypeError, match=r"add.reduce cannot run.*Use xp.sum"):
        ds.get_differentiator("reverse").grad(lambda xp, x: np.add.reduce(x))(np.ones(2))


@pytest.mark.parametrize("method", ALL + ["forward"])
def test_pytree_parameters_and_argnums(method):
    def f(xp, p, y, scale):
        layer = p["layers"][0]
        return scale * xp.sum((layer["W"] @ y + p["layers"][1][0]) ** 2) + p["s"] ** 2

    p = {"layers": [{"W": np.ones((2, 3))}, (np.array([0.5, -1.0]),)], "s": 1.5}
    y = np.array([1.0, 2.0, 3.0])
    d = ds.get_differentiator(method)
    g = d.grad(f)(p, y, 2.0)
    r = np.array([6.5, 5.0])  # W @ y + b, by hand
    np.testing.assert_allclose(g["layers"][0]["W"], 2.0 * 2 * np.outer(r, y), rtol=1e-8)
    np.testing.assert_allclose(g["layers"][1][0], 2.0 * 2 * r, rtol=1e-8)
    assert isinstance(g["layers"][1], tuple) and g["s"] == pytest.approx(3.0, rel=1e-8)
    gp, gy = d.grad(f, argnums=(0, 1))(p, y, 2.0)
    np.testing.assert_allclose(gy, 2.0 * 2 * np.ones((2, 3)).T @ r, rtol=1e-8)
    np.testing.assert_allclose(gp["layers"][1][0], g["layers"][1][0], rtol=1e-12)
    with pytest.raises(ValueError, match="argnums=5"):
        d.grad(f, argnums=5)(p, y, 2.0)


@pytest.mark.parametrize("method", ALL)
def test_zero_size_parameters(method):
    g = ds.get_differentiator(method).grad(lambda xp, p: xp.sum(p["a"] ** 2) + xp.sum(p["b"] ** 2))(
        {"a": np.zeros((0, 3)), "b": np.array([1.0, 2.0])})
    assert g["a"].shape == (0, 3)
    np.testing.assert_allclose(g["b"], [2.0, 4.0], rtol=1e-8)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_bugs_found_by_peers_cases_are_fixed(backend):
    if backend == "torch":
        pytest.importorskip("torch")
    grad = ds.get_differentiator("reverse", backend=backend).grad
    x = np.arange(6.0).reshape(1, 2, 3)
    # a full reduction with keepdims=True (crashed: "setting an array element with a sequence")
    np.testing.assert_array_equal(grad(lambda xp, t: xp.sum(xp.mean(t, keepdims=True)))(x), np.full(x.shape, 1 / 6))
    # .T of a 3-D value reverses all axes, as numpy's (it swapped the last two)
    w = np.arange(6.0).reshape(3, 2, 1)
    np.testing.assert_array_equal(grad(lambda xp, t: xp.sum(t.T * w))(x), w.T)
    # the standard deviation of one element: 0 with gradient 0 (was NaN)
    np.testing.assert_array_equal(grad(lambda xp, t: xp.std(t))(np.array([2.5])), [0.0])


def test_comparisons_of_traced_values_are_constant_masks():
    seen = {}

    def f(xp, x):
        seen["mask"] = x > 0
        return xp.sum(xp.where(x > 0, x, -x) * (x != 0.5))
    g = ds.get_differentiator("reverse").grad(f)(np.array([-1.0, 0.5, 2.0]))
    assert seen["mask"].dtype == bool
    np.testing.assert_array_equal(g, [-1.0, 0.0, 1.0])


@pytest.mark.parametrize("method", ["reverse", "forward"])
def test_what_would_cut_the_path_says_what_to_write_instead(method):
    import math
    d = ds.get_differentiator(method)
    x = np.array([1.0, 2.0])
    with pytest.raises(TypeError, match=r"cannot become a Python number.*xp\.exp"):
        d.grad(lambda xp, t: math.exp(t[0]))(x)
    with pytest.raises(TypeError, match=r"cannot become a Python number"):
        d.grad(lambda xp, t: float(xp.sum(t)))(x)

    def assign(xp, t):
        t[0] = 0.0
        return xp.sum(t)
    with pytest.raises(TypeError, match=r"cannot be assigned in place.*xp\.where"):
        d.grad(assign)(x)
    with pytest.raises(TypeError, match=r"astype\('int64'\).*cut"):
        d.grad(lambda xp, t: xp.sum(t.astype("int64")))(x)
    # a floating astype and .real are the value itself (d/dt sum(t^2) = 2t)
    np.testing.assert_array_equal(d.grad(lambda xp, t: xp.sum(t.astype(np.float64).real ** 2))(x), 2 * x)


@pytest.mark.parametrize("method", ALL + ["forward"])
def test_value_and_grad_of_a_function_passes_its_extra_arguments(method):
    res = ds.get_differentiator(method).value_and_grad(lambda xp, t, c: xp.sum(t * c))(np.array([1.0, 2.0]),
                                                                                        np.array([3.0, 4.0]))
    assert res.value == pytest.approx(11.0) and np.allclose(res.grad, [3.0, 4.0])  # d/dt (t . c) = c
