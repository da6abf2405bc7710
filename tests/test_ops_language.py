"""The numpy subset (docs/language.md), one spec per xp function (tests/op_specs.py), in every differentiator.

Oracles: the 50-digit reference (exact SymPy derivative evaluated in mpmath) at random points; at kinks, the
gradient the conventions give, written out by hand in the spec. Reverse mode on numpy and on torch, complex
step and central differences are compared with them per spec; the symbolic differentiator's compiled kernels
once per family of specs (one compile each, to keep this file fast).
"""
import warnings

import numpy as np
import pytest

import diffsuite as ds
from diffsuite.namespace import NAMESPACE_FUNCTIONS, NUMPY
from diffsuite.reference import reference_gradient
from op_specs import XP_SPECS, draw

IDS = [s.name for s in XP_SPECS]
try:
    import torch  # noqa: F401
    BACKENDS = ["numpy", "torch"]
except ImportError:  # pragma: no cover
    BACKENDS = ["numpy"]


def problem(spec, seed=0):
    """(f(xp, theta), theta): theta a tuple of the spec's inputs; f sums its output against fixed weights."""
    rng = np.random.default_rng(seed + IDS.index(spec.name))
    theta = tuple(draw(shape, domain, rng) for shape, domain in spec.domains)
    weights = np.round(rng.normal(size=np.shape(spec.fn(NUMPY, *theta))), 3)

    def f(xp, t):
        return xp.sum(spec.fn(xp, *t) * weights)
    f.__name__ = spec.name
    return f, theta


def close(got, want, rtol, atol=0.0, what=""):
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=what)


def test_every_xp_function_has_a_spec():
    names = {s.name.split("[")[0] for s in XP_SPECS}
    assert not sorted(set(NAMESPACE_FUNCTIONS) - names), "add a Spec to tests/op_specs.py"


@pytest.mark.parametrize("spec", XP_SPECS, ids=IDS)
def test_reverse_matches_the_50_digit_reference(spec):
    f, theta = problem(spec)
    reverse = ds.get_differentiator("reverse").grad(f)(theta)
    if not spec.symbolic:  # not expressible as one expression for every theta: complex step is the oracle
        want = ds.get_differentiator("finite_diff", scheme="complex_step").grad(f)(theta)
    else:
        want = reference_gradient(f, theta, engine="sympy").grad
    close(reverse, want, rtol=1e-13, atol=1e-15, what=spec.name)


@pytest.mark.parametrize("spec", XP_SPECS, ids=IDS)
def test_torch_backend_agrees_with_numpy_and_finite_differences_with_reverse(spec):
    f, theta = problem(spec)
    want = ds.get_differentiator("reverse").grad(f)(theta)
    if "torch" in BACKENDS:
        close(ds.get_differentiator("reverse", backend="torch").grad(f)(theta), want, 1e-12, 1e-14, spec.name)
    close(ds.get_differentiator("finite_diff", scheme="complex_step").grad(f)(theta), want, 1e-12, 1e-14, spec.name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (a kink warning would be a false alarm: the draws avoid kinks)
        close(ds.get_differentiator("finite_diff", scheme="central").grad(f)(theta), want, 1e-6, 1e-8, spec.name)


KINKS = [(s, k) for s in XP_SPECS for k in s.kinks]


@pytest.mark.parametrize("spec,kink", KINKS, ids=[f"{s.name}: {k[2][:40]}" for s, k in KINKS])
def test_kinks_follow_the_conventions_in_every_differentiator(spec, kink):
    inputs, expected, _ = kink
    inputs = tuple(np.asarray(x, dtype=float) for x in inputs)

    def f(xp, t):
        return xp.sum(spec.fn(xp, *t))
    f.__name__ = spec.name
    methods = {f"reverse[{b}]": ds.get_differentiator("reverse", backend=b) for b in BACKENDS}
    methods["complex_step"] = ds.get_differentiator("finite_diff", scheme="complex_step", kink_check=False)
    got = {name: d.grad(f)(inputs) for name, d in methods.items()}
    if spec.symbolic:
        got["reference"] = reference_gradient(f, inputs, engine="sympy").grad
    for name, g in got.items():
        close(g, expected, rtol=1e-14, atol=1e-30, what=f"{spec.name} {name}")  # (complex step: O(h^2) = 1e-40)


ELEMENTWISE = [s for s in XP_SPECS if all(shape == (2, 3) for shape, _ in s.domains)][:31]


def test_symbolic_kernels_of_the_elementwise_functions_agree_with_reverse():
    """One compile for every elementwise function, each on its own scalar parameters (structure and reductions
    are checked through the reference above, which evaluates the same SymPy expressions exactly)."""
    rng = np.random.default_rng(5)
    thetas = tuple(tuple(draw((), domain, rng) for _, domain in s.domains) for s in ELEMENTWISE)

    def f(xp, ts):
        return sum(s.fn(xp, *t) * (k + 1.0) for k, (s, t) in enumerate(zip(ELEMENTWISE, ts)))
    got = ds.get_differentiator("symbolic", metrics=False).grad(f)(thetas)
    want = ds.get_differentiator("reverse").grad(f)(thetas)
    assert {s.name for s in ELEMENTWISE} >= {"erf", "softplus", "arctan2", "power", "where", "log1p", "tan"}
    for s, g, w in zip(ELEMENTWISE, got, want):
        close(g, w, rtol=1e-13, atol=1e-15, what=s.name)


def test_symbolic_kernel_kinks():
    specs = [(s, k) for s, k in KINKS if s.symbolic]

    def f(xp, thetas):
        return sum(xp.sum(s.fn(xp, *t)) for (s, _), t in zip(specs, thetas))
    thetas = tuple(tuple(np.asarray(x, dtype=float) for x in k[0]) for _, k in specs)
    got = ds.get_differentiator("symbolic", metrics=False, cse=False).grad(f)(thetas)
    for (s, k), g in zip(specs, got):
        close(g, k[1], rtol=1e-14, what=s.name)
