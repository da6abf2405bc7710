"""Property tests (hypothesis): random shapes and broadcasting, the engine against torch.autograd in float64
(or against central differences where torch is missing)."""
import importlib.util

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import diffsuite as ds

grad = ds.get_differentiator("reverse").grad
HAVE_TORCH = importlib.util.find_spec("torch") is not None

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (1.5 + b * b),
}


def oracle(f_torch, a, b, w):
    if HAVE_TORCH:
        import torch
        ta = torch.tensor(a, requires_grad=True)
        tb = torch.tensor(b, requires_grad=True)
        (f_torch(ta, tb) * torch.tensor(w)).sum().backward()
        return ta.grad.numpy(), tb.grad.numpy()
    raise RuntimeError("torch needed")  # pragma: no cover


@settings(max_examples=60, deadline=None)
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
       op=st.sampled_from(["add", "sub", "mul", "div"]), seed=st.integers(0, 2**16))
def test_broadcasting_binary_ops_match_torch(shapes, op, seed):
    rng = np.random.default_rng(seed)
    (sa, sb), out_shape = shapes.input_shapes, shapes.result_shape
    a, b, w = rng.normal(size=sa), rng.normal(size=sb), rng.normal(size=out_shape)
    f = BINARY[op]
    g = grad(lambda xp, p: xp.sum(f(p["a"], p["b"]) * w))({"a": a, "b": b})
    if HAVE_TORCH:
        ga, gb = oracle(f, a, b, w)
    else:  # central differences, entry by entry
        ga, gb = (np.array([(_shift(f, a, b, w, which, i, 1e-6)) for i in range(x.size)]).reshape(x.shape)
                  for which, x in (("a", a), ("b", b)))
    np.testing.assert_allclose(np.asarray(g["a"]).reshape(sa), ga, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(g["b"]).reshape(sb), gb, rtol=1e-10, atol=1e-12)


def _shift(f, a, b, w, which, i, h):
    def val(d):
        aa, bb = a.copy(), b.copy()
        (aa if which == "a" else bb).flat[i] += d
        return np.sum(f(aa, bb) * w)
    return (val(h) - val(-h)) / (2 * h)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 4), k=st.integers(1, 4), m=st.integers(1, 4), seed=st.integers(0, 2**16),
       reduce=st.sampled_from(["sum", "mean", "logsumexp"]))
def test_matmul_and_reductions_match_torch(n, k, m, seed, reduce):
    import pytest
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    x, W, b = rng.normal(size=(n, k)), rng.normal(size=(k, m)), rng.normal(size=m)

    def f(xp, p):
        h = xp.tanh(x @ p["W"] + p["b"])
        return {"sum": lambda: xp.sum(h * h), "mean": lambda: xp.mean(xp.exp(h)),
                "logsumexp": lambda: xp.sum(xp.logsumexp(h, axis=-1))}[reduce]()

    g = grad(f)({"W": W, "b": b})
    tW, tb = torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)
    h = torch.tanh(torch.tensor(x) @ tW + tb)
    {"sum": lambda: (h * h).sum(), "mean": lambda: torch.exp(h).mean(),
     "logsumexp": lambda: torch.logsumexp(h, dim=-1).sum()}[reduce]().backward()
    np.testing.assert_allclose(g["W"], tW.grad.numpy(), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(g["b"], tb.grad.numpy(), rtol=1e-11, atol=1e-13)
