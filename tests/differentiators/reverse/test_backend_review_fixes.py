"""Backend parity and float32 findings of a review, each against an independent oracle: hand values, torch.autograd
in float64 (tests/torch_oracle's convention: the same function written in torch), mpmath at 50 digits."""
import warnings

import mpmath
import numpy as np
import pytest

import diffsuite as ds

torch = pytest.importorskip("torch")
BACKENDS = ["numpy", "torch"]
MODES = ["reverse", "forward"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reduce", ["sum", "mean", "Var.sum", "max", "min", "prod", "logsumexp"])
def test_axis_empty_tuple_reduces_nothing(mode, backend, reduce):
    """numpy's axis=() reduces no axis (torch's dim=() reduced every one): f = sum(r(x) * c) is sum(x * c), whose
    gradient is c (by hand)."""
    x = np.arange(12.0).reshape(3, 4) / 10
    c = np.arange(12.0).reshape(3, 4)
    r = {"Var.sum": lambda xp, x: x.sum(axis=())}.get(reduce, lambda xp, x: getattr(xp, reduce)(x, axis=()))
    res = ds.get_differentiator(mode, backend=backend).value_and_grad(lambda xp, x: xp.sum(r(xp, x) * c))(x)
    assert res.value == pytest.approx(float((x * c).sum()), rel=1e-14)
    np.testing.assert_allclose(res.grad, c, rtol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_leaves_are_the_users_own_arrays(backend):
    """The VJP of a sum is one value broadcast (stride 0); the leaves handed back must be writable, and changing one
    entry must change that entry only (numpy semantics)."""
    d = ds.get_differentiator("reverse", backend=backend)
    g = d.grad(lambda xp, x: xp.sum(x))(np.arange(4.0))
    g[0] = 5.0
    np.testing.assert_array_equal(g, [5.0, 1.0, 1.0, 1.0])
    p = d.grad(lambda xp, p: xp.sum(p["a"]) + xp.sum(p["b"]))({"a": np.ones(3), "b": np.ones(3)})
    p["a"][0] = 0.0
    np.testing.assert_array_equal(p["b"], np.ones(3))
    big = d.grad(lambda xp, x: xp.sum(x))(np.ones(70_000))
    big *= 0.5  # (was a read-only broadcast view above 65,536 entries)
    assert big[0] == 0.5


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_mode_an_infinite_partial_stays_in_its_own_entry(backend):
    """d/dx sum(log x) = 1/x: [inf, 1, 0.5] at [0, 1, 2]; d/dx sum(exp x) at [800, 1] = [inf, e]."""
    F = ds.get_differentiator("forward", backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        np.testing.assert_array_equal(F.grad(lambda xp, x: xp.sum(xp.log(x)))(np.array([0.0, 1.0, 2.0])),
                                      [np.inf, 1.0, 0.5])
        np.testing.assert_allclose(F.grad(lambda xp, x: xp.sum(xp.exp(x)))(np.array([800.0, 1.0])),
                                   [np.inf, np.e], rtol=1e-15)


SHAPES = [((4,), (2, 3, 4, 5)), ((2, 3, 5), (5,)), ((5,), (5, 3)), ((3, 5), (5,)), ((5,), (5,)),
          ((2, 1, 3, 5), (4, 5, 2)), ((3, 4), (2, 4, 5))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sa,sb", SHAPES, ids=[f"{a}@{b}" for a, b in SHAPES])
def test_matmul_of_vectors_and_stacks_against_torch(mode, backend, sa, sb):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=sa), rng.normal(size=sb)
    c = rng.normal(size=np.shape(a @ b))
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    (torch.matmul(ta, tb) * torch.tensor(c)).sum().backward()
    ga, gb = ds.get_differentiator(mode, backend=backend).grad(lambda xp, a, b: xp.sum((a @ b) * c),
                                                               argnums=(0, 1))(a, b)
    np.testing.assert_allclose(ga, ta.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=1e-12, atol=1e-14)


EINSUMS = [("...ij,...jk->...ik", (2, 3, 4), (2, 4, 5)), ("...ij,jk", (2, 3, 4), (4, 5)),
           ("i...,i...->...", (3, 2, 4), (3, 2, 4)), ("...i,...i", (5, 3), (1, 3)), ("ij...,jk->ik...", (2, 3, 4), (3, 5))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("spec,sa,sb", EINSUMS, ids=[e[0] for e in EINSUMS])
def test_reverse_einsum_with_an_ellipsis_against_torch(backend, spec, sa, sb):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=sa), rng.normal(size=sb)
    c = rng.normal(size=np.shape(np.einsum(spec, a, b)))
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    (torch.einsum(spec, ta, tb) * torch.tensor(c)).sum().backward()
    ga, gb = ds.get_differentiator("reverse", backend=backend).grad(
        lambda xp, a, b: xp.sum(xp.einsum(spec, a, b) * c), argnums=(0, 1))(a, b)
    np.testing.assert_allclose(ga, ta.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_erf_derivative_within_a_few_ulp(backend):
    """erf'(x) = 2/sqrt(pi) exp(-x^2), with x^2 split exactly: Dekker's split constant for float32 is 2^12 + 1
    (2^27 + 1 left an error of about 60 ulp)."""
    xs = np.array([0.5, 1.7, 2.9, 3.6, 4.1])
    got = ds.get_differentiator("reverse", backend=backend, dtype="float32").grad(
        lambda xp, t: xp.sum(xp.erf(t)))(xs)
    with mpmath.workdps(50):
        want = [float(2 / mpmath.sqrt(mpmath.pi) * mpmath.exp(-mpmath.mpf(float(np.float32(x))) ** 2)) for x in xs]
    np.testing.assert_allclose(got, want, rtol=8 * np.finfo(np.float32).eps)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_stays_float32_with_a_numpy_float64_constant(backend):
    """t * np.sqrt(2.0) in float32: the value is the float32 product's sum (numpy's float64 scalar would have
    promoted the numpy backend's arrays to float64)."""
    t = np.array([1.0, 2.0])
    res = ds.get_differentiator("reverse", backend=backend, dtype="float32").value_and_grad(
        lambda xp, t: xp.sum(t * np.sqrt(2.0)))(t)
    want = float(np.sum(t.astype(np.float32) * np.float32(np.sqrt(2.0)), dtype=np.float32))
    assert res.value == want


def test_a_read_only_theta_on_torch_raises_no_warning():
    theta = np.array([1.0, 2.0])
    theta.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = ds.get_differentiator("reverse", backend="torch").grad(lambda xp, t: xp.sum(t * t))(theta)
    np.testing.assert_array_equal(g, [2.0, 4.0])
