"""``Op.pair``: an op's two VJPs in one call, used by the tape when both inputs are traced. It must give exactly
what the two VJPs give (the same bits: it is a speed path), on every backend the tape runs on, at 0-d values (the
numpy backend's fast path), with broadcasting, and where strong zeros apply (a zero cotangent against an infinite
operand)."""
import numpy as np
import pytest

import diffsuite as ds
from diffsuite.differentiators.reverse.backends.numpy_backend import NumpyBackend
from diffsuite.differentiators.reverse.ops import OPS, defop

B = NumpyBackend()
PAIRED = [name for name, op in OPS.items() if op.pair is not None]

CASES = [  # (g, x, y): 0-d numpy scalars, a 0-d array cotangent (the seed), broadcasting, infinite operands
    (np.float64(0.7), np.float64(0.3), np.float64(-1.9)),
    (np.array(1.0), np.float64(2.5), np.float64(0.25)),
    (np.float64(0.0), np.float64(np.inf), np.float64(3.0)),
    (np.float64(2.0), np.float64(np.nan), np.float64(3.0)),
    (np.ones((2, 3)), np.arange(6.0).reshape(2, 3), np.array([1.0, -2.0, 0.5])),
    (np.array([[0.0, 1.0]]), np.array([[np.inf, 2.0]]), np.float64(4.0)),
    (np.float32(0.5), np.float32(1.5), np.float32(-2.0)),
]


def test_mul_has_a_pair():
    assert "mul" in PAIRED


@pytest.mark.parametrize("name", PAIRED)
@pytest.mark.parametrize("g, x, y", CASES)
def test_a_pair_gives_the_two_vjps_bit_for_bit(name, g, x, y):
    op = OPS[name]
    with np.errstate(all="ignore"):
        out = op.forward(B, x, y)
        want = tuple(vjp(B, g, out, x, y) for vjp in op.vjps)
        got = op.pair(B, g, out, x, y)
    for a, b in zip(got, want):
        assert np.shape(a) == np.shape(b) and np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_array_equal(a, b)


def test_a_pair_on_the_tape_gives_the_gradients_of_the_separate_rules():
    """x * x (the same value on both sides) adds its two halves; a chain of products of 0-d values (the pair's
    fast path) and of arrays, against the derivatives written out by hand."""
    grad = ds.get_differentiator("reverse").grad
    assert float(grad(lambda xp, t: t * t)(np.array(3.0))) == 6.0
    w = np.array([0.5, -2.0, 3.0])
    got = grad(lambda xp, p: xp.sum(p["a"] * p["b"] * p["a"]))({"a": np.array(1.5), "b": w})
    assert got["a"] == 2 * 1.5 * w.sum()  # d/da (a^2 sum b) = 2 a sum(b): exact in binary (1.5 * 3 * 1.5)
    np.testing.assert_array_equal(got["b"], np.full(3, 1.5 * 1.5))


def test_a_pair_is_refused_where_the_tape_would_not_use_it():
    with pytest.raises(ValueError, match="pair= is for ops of two inputs"):
        defop("tmp_pair_one", lambda B, x: x, lambda B, g, out, x: g, saves=("",), pair=lambda *a: a)
    with pytest.raises(ValueError, match="no into rule"):
        defop("tmp_pair_into", lambda B, x, y: x + y, lambda B, g, out, x, y: g, lambda B, g, out, x, y: g,
              saves=("", ""), into=(None, lambda B, dst, g, out, x, y: dst), pair=lambda *a: a)
    assert not {"tmp_pair_one", "tmp_pair_into"} & set(OPS)


def test_a_pair_differentiated_again():
    """The lifted backend's pair (second order): the Hessian of a^2 b through it against the hand-written one."""
    hess = ds.get_differentiator("reverse").hessian(lambda xp, t: t[0] * t[1] * t[0])(np.array([1.5, -0.5]))
    a, b = 1.5, -0.5  # f = a^2 b: f_aa = 2b, f_ab = 2a, f_bb = 0
    np.testing.assert_array_equal(hess, [[2 * b, 2 * a], [2 * a, 0.0]])


@pytest.mark.parametrize("name", PAIRED)
def test_a_pair_on_torch(name):
    torch = pytest.importorskip("torch")
    from diffsuite.differentiators.reverse.backends.torch_backend import TorchBackend
    T = TorchBackend(device="cpu", dtype="float64")
    op = OPS[name]
    x, y, g = (torch.tensor(v, dtype=torch.float64) for v in ([1.0, -2.0], [[0.5], [3.0]], [[1.0, 2.0], [0.0, 4.0]]))
    out = op.forward(T, x, y)
    want = tuple(vjp(T, g, out, x, y) for vjp in op.vjps)
    for a, b in zip(op.pair(T, g, out, x, y), want):
        assert torch.equal(a, b)
