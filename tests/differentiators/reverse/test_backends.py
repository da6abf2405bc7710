"""Backends: the same method set everywhere, every rule giving the same numbers on every installed
backend, and clear errors for what is missing (torch, CUDA) or unknown."""
import sys

import numpy as np
import pytest

from diffsuite.differentiators.reverse.backends import BACKENDS, NumpyBackend, load_backend
from diffsuite.differentiators.reverse.ops import OPS
from op_specs import POSITIVE, PRIMITIVE_SPECS, draw

# one draw per op: (input shapes, static params, positive inputs?). Shapes exercise broadcasting.
SPECS = {
    "add": ([(3, 4), (4,)], {}, False), "sub": ([(3, 1), (1, 4)], {}, False),
    "mul": ([(2, 3, 4), (3, 1)], {}, False), "div": ([(3, 4), (3, 4)], {}, True), "neg": ([(3, 4)], {}, False),
    "power": ([(3, 4)], {"p": 3}, False), "pow": ([(3, 4), (4,)], {}, True), "exp": ([(3, 4)], {}, False),
    "log": ([(3, 4)], {}, True), "tanh": ([(3, 4)], {}, False), "sigmoid": ([(3, 4)], {}, False),
    "abs": ([(3, 4)], {}, False), "step": ([(3, 4)], {}, False), "maximum": ([(3, 4), (4,)], {}, False),
    "minimum": ([(3, 4), (3, 1)], {}, False), "sum": ([(3, 4, 2)], {"axis": 1}, False),
    "mean": ([(3, 4)], {"axis": 0, "keepdims": True}, False), "logsumexp": ([(3, 4)], {"axis": -1}, False),
    "matmul": ([(3, 4), (4, 2)], {}, False), "reshape": ([(3, 4)], {"shape": (2, 6)}, False),
    "transpose": ([(3, 4)], {}, False),
    "getitem": ([(5, 4)], {"index": (slice(None, None, -2), np.array([0, 2, 2]))}, False),  # reversed + repeated
}
SPECS.update(PRIMITIVE_SPECS)  # the numpy subset's primitives (tests/op_specs.py): a domain instead of the flag


def installed_backends():
    names = ["numpy"]
    try:
        load_backend("torch")
        names.append("torch")
    except ImportError:
        pass
    return names


def test_every_op_has_a_parity_spec():
    assert not sorted(set(OPS) - set(SPECS)), "add the op to SPECS in test_backends.py"


def test_backends_expose_the_same_methods():
    torch_backend = pytest.importorskip("diffsuite.differentiators.reverse.backends.torch_backend")

    def methods(cls):
        return {n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n))}

    assert methods(NumpyBackend) == methods(torch_backend.TorchBackend)
    assert set(BACKENDS) == {"numpy", "torch"}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_rule_gives_the_same_numbers_on_every_backend(name, dtype):
    """Forward and every VJP of each op on torch equal numpy's (a reordered sum may differ in the last bits)."""
    if "torch" not in installed_backends():
        pytest.skip("torch not installed: only numpy to compare")
    shapes, params, positive = SPECS[name]
    rng = np.random.default_rng(3)
    domain = POSITIVE if positive is True else None if positive is False else positive
    xs = [draw(s, domain, rng) for s in shapes]
    op, rtol = OPS[name], (1e-12 if dtype == "float64" else 1e-5)
    results = {}
    for b in ("numpy", "torch"):
        B = load_backend(b, dtype=dtype)
        vals = [B.asarray(x) for x in xs]
        out = op.forward(B, *vals, **params)
        g = B.asarray(rng.normal(size=np.shape(B.to_numpy(out))) if b == "numpy" else results["numpy"][1])
        vjps = [None if v is None else B.to_numpy(v(B, g, out, *vals, **params)) for v in op.vjps]
        results[b] = (B.to_numpy(out), B.to_numpy(g), vjps)
    (out_n, _, vjps_n), (out_t, _, vjps_t) = results["numpy"], results["torch"]
    np.testing.assert_allclose(out_t, out_n, rtol=rtol, atol=rtol)
    for i, (a, b) in enumerate(zip(vjps_t, vjps_n)):
        if b is None:
            assert a is None
            continue
        assert a.shape == b.shape == np.shape(xs[i]), f"{name}: VJP {i} shape"
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol, err_msg=f"{name}: VJP of input {i}")


def test_maximum_routes_ties_to_the_first_argument_on_every_backend():
    for b in installed_backends():
        B = load_backend(b)
        x, y, g = B.asarray([1.0, 2.0, 3.0]), B.asarray([1.0, 5.0, 0.0]), B.asarray([10.0, 20.0, 30.0])
        gx, gy = (B.to_numpy(v(B, g, OPS["maximum"].forward(B, x, y), x, y)) for v in OPS["maximum"].vjps)
        np.testing.assert_array_equal(gx, [10.0, 0.0, 30.0])
        np.testing.assert_array_equal(gy, [0.0, 20.0, 0.0])


def test_zero_where_le_keeps_g_only_where_a_exceeds_b_on_every_backend():
    """relu's VJP primitive: ``a <= b ? 0 : g`` elementwise. Written out by hand: ties give 0, NaN in ``a``
    keeps g (as where(x >= y, 0, g) does: NaN compares false), and both torch paths are exercised (a number
    ``b`` with ``a`` shaped like ``g``: torch's relu-backward kernel; a broadcast array ``b``: the general one)."""
    a = [[-1.0, 0.0, 2.0, np.nan], [3.0, -np.inf, np.inf, 1e-300], [-2.0, -3.0, 0.0, -0.0]]
    g = [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [np.inf, np.nan, -np.inf, -1.0]]  # cut inf/nan -> 0
    for backend in installed_backends():
        for dtype in ("float64", "float32"):
            B = load_backend(backend, dtype=dtype)
            got = B.to_numpy(B.zero_where_le(B.asarray(g), B.asarray(a), 0.0))
            expected = [[0.0, 0.0, 3.0, 4.0], [5.0, 0.0, 7.0, 8.0 if dtype == "float64" else 0.0],  # 1e-300 -> 0
                        [0.0, 0.0, 0.0, 0.0]]
            np.testing.assert_array_equal(got, expected, err_msg=f"{backend} {dtype}")
            assert not np.signbit(got[got == 0]).any(), "a cut gradient is +0.0"
            b_row = B.asarray([0.0, 0.0, 2.0, 5.0])  # broadcast over the rows; a tie at [0, 2]
            got = B.to_numpy(B.zero_where_le(B.asarray(g), B.asarray(a), b_row))
            np.testing.assert_array_equal(got, [[0.0, 0.0, 0.0, 4.0], [5.0, 0.0, 7.0, 0.0], [0.0, 0.0, 0.0, 0.0]],
                                          err_msg=f"{backend} {dtype}")


def test_relu_of_a_scalar_on_every_backend():
    # 0-d values take zero_where_le's general path (numpy's comparison of 0-d arrays gives a scalar)
    for backend in installed_backends():
        relu_grad = __import__("diffsuite").get_differentiator("reverse", backend=backend).grad(
            lambda xp, t: xp.maximum(0.0, t) * 2.0)
        assert [relu_grad(t) for t in (3.0, -2.0, 0.0)] == [2.0, 0.0, 0.0], backend


def test_a_slot_written_first_still_receives_later_contributions_on_every_backend():
    """Tape.backward(into=...): a parameter's first contribution goes into its slot; a later one must add to
    it, never overwrite it. b is used by two adds and W2 by two matmuls (as x and as y), and the loss's last
    terms are walked first, so each slot is written before the other contributions arrive. Oracle: the
    gradient written out by hand (z1 = X W1 + b, h = tanh z1, z2 = h W2 + b, f = sum(z2^2) + sum(W2 W2))."""
    from diffsuite.differentiators.reverse.tape import Tape, TapeNamespace

    rng = np.random.default_rng(0)
    X, W1, W2, b = rng.normal(size=(5, 4)), rng.normal(size=(4, 3)), rng.normal(size=(3, 3)), rng.normal(size=3)
    h = np.tanh(X @ W1 + b)
    dz2 = 2.0 * (h @ W2 + b)
    dz1 = (dz2 @ W2.T) * (1.0 - h * h)
    ones = np.ones((3, 3))
    expected = [X.T @ dz1,
                h.T @ dz2 + ones @ W2.T + W2.T @ ones,  # d sum(W2 W2) / dW2 = 1 W2^T + W2^T 1
                dz2.sum(0) + dz1.sum(0)]
    for backend in installed_backends():
        B = load_backend(backend)
        tape = Tape(B)
        xp = TapeNamespace(tape)
        w1, w2, bb = wrt = tape.inputs([B.asarray(W1), B.asarray(W2), B.asarray(b)])
        hh = xp.tanh(B.asarray(X) @ w1 + bb)
        z2 = hh @ w2 + bb
        out = xp.sum(z2 * z2) + xp.sum(w2 @ w2)
        slots = [B.asarray(np.full(a.shape, np.nan)) for a in (W1, W2, b)]
        grads, _ = tape.backward(out, list(wrt), slots)
        assert all(g is d for g, d in zip(grads, slots)), backend
        for name, g, e in zip(("W1", "W2", "b"), grads, expected):
            np.testing.assert_allclose(B.to_numpy(g), e, rtol=1e-13, atol=1e-13, err_msg=f"{backend} {name}")


def test_sum_to_into_writes_the_reduced_cotangent_into_the_given_array_on_every_backend():
    g = np.arange(12.0).reshape(3, 4)
    for backend in installed_backends():
        B = load_backend(backend)
        dst = B.asarray(np.full(4, np.nan))
        out = B.sum_to_into(dst, B.asarray(g))  # a bias's gradient: the batch summed out
        assert out is dst
        np.testing.assert_array_equal(B.to_numpy(dst), [12.0, 15.0, 18.0, 21.0])
        dst = B.asarray(np.full((3, 1), np.nan))  # the general case: a kept axis
        assert B.sum_to_into(dst, B.asarray(g)) is dst
        np.testing.assert_array_equal(B.to_numpy(dst), [[6.0], [22.0], [38.0]])


def test_split_gives_writable_views_of_the_flat_vector_on_every_backend():
    for backend in installed_backends():
        B = load_backend(backend)
        flat = B.asarray(np.arange(10.0))
        w, b = B.split(flat, [6, 4], [(2, 3), None])
        np.testing.assert_array_equal(B.to_numpy(w), [[0, 1, 2], [3, 4, 5]])
        np.testing.assert_array_equal(B.to_numpy(b), [6, 7, 8, 9])
        B.copy_into(w, 0.0)
        np.testing.assert_array_equal(B.to_numpy(flat), [0, 0, 0, 0, 0, 0, 6, 7, 8, 9])


def test_missing_torch_says_how_to_install_it(monkeypatch):
    # a None entry in sys.modules makes the import fail, as on a machine without torch
    monkeypatch.setitem(sys.modules, "diffsuite.differentiators.reverse.backends.torch_backend", None)
    with pytest.raises(ImportError, match=r"backend 'torch' needs PyTorch.*pip install 'diffsuite\[torch\]'"):
        load_backend("torch")


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown backend 'jax'; choose one of numpy, torch"):
        load_backend("jax")


def test_numpy_backend_refuses_cuda_and_points_to_torch():
    with pytest.raises(ValueError, match="backend='torch', device='cuda'"):
        load_backend("numpy", device="cuda")


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("reg", [(0.0, 0.0), (0.001, 0.01)], ids=["no-reg", "l1+l2"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_large_objectives_write_gradients_into_their_slots_correctly(reg, dtype, activation):
    """From 10^4 parameters on, weight gradients are computed straight into the flat result (Tape.backward's
    ``into``); with L1/L2 a weight gets several contributions and the slot receives their sum. Oracle: the
    hand-written backprop of tests/handprop.py."""
    import diffsuite as ds
    from handprop import value_and_grad as hand_value_and_grad

    rng = np.random.default_rng(5)
    model = ds.MLP((20, 300, 30, 5), activation=activation)
    assert model.n_params >= 10_000
    obj = ds.Objective(model, "cross_entropy", rng.normal(size=(8, 20)), rng.integers(0, 5, size=8),
                       l1=reg[0], l2=reg[1])
    theta = model.init(seed=5)
    value, grads = hand_value_and_grad(model.unpack(theta), obj.inputs, obj.prepared_targets, activation=activation,
                                       output_activation="identity", loss="cross_entropy", l1=reg[0], l2=reg[1])
    tol = 1e-12 if dtype == "float64" else 1e-4
    for backend in installed_backends():
        res = ds.get_differentiator("reverse", backend=backend, dtype=dtype).value_and_grad(obj)(theta)
        first = res.grad.copy()
        again = ds.get_differentiator("reverse", backend=backend, dtype=dtype).value_and_grad(obj)(theta)
        np.testing.assert_array_equal(first, res.grad)  # a later call never writes into an earlier result
        expected = model.pack(grads)
        assert np.max(np.abs(again.grad - expected)) <= tol * np.max(np.abs(expected)), backend
        assert res.value == pytest.approx(value, rel=tol)


def test_backward_consumes_the_tape_and_says_so_when_walked_twice():
    from diffsuite.differentiators.reverse.tape import Tape

    tape = Tape(NumpyBackend())
    x = tape.input(np.array([1.0, 2.0]))
    y = (x * x).sum()
    (g,), _ = tape.backward(y, [x])
    np.testing.assert_array_equal(g, [2.0, 4.0])
    with pytest.raises(RuntimeError, match="already been walked back.*fresh Tape"):
        tape.backward(y, [x])


# strong_to(g, d, like) is mul's VJP: the product summed to like's shape, with 0 where g == 0 even if d is not
# finite. Expected values by hand.
STRONG_TO_CASES = [
    # (g, d, like's shape, expected)
    (np.float64(0.5), np.float64(3.0), (), 1.5),                       # numpy scalars (0-d results)
    (np.float64(0.5), np.array(3.0), (), 1.5),                         # a 0-d array d
    (np.float64(0.0), np.float64(np.inf), (), 0.0),                    # a strong zero: 0 * inf -> 0
    (np.float64(0.0), np.array(np.nan), (), 0.0),                      # ... and 0 * nan -> 0
    (np.float64(2.0), np.float64(np.inf), (), np.inf),                 # a real infinity stays
    (np.array([[1.0, 2.0], [3.0, 4.0]]), np.float64(0.5), (2,), [2.0, 3.0]),   # summed over the batch
    (np.array([[1.0, 0.0], [3.0, 0.0]]), np.array([2.0, np.inf]), (2,), [8.0, 0.0]),  # per entry, then summed
    (np.array([1.0, 2.0]), np.float64(3.0), (), 9.0),                  # a scalar operand of an array product
    (np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([3.0, 0.5]), (2,), [12.0, 3.0]),  # a finite array d
    (np.full((2, 20), 0.5), np.arange(20.0), (20,), np.arange(20.0)),  # more than 16 entries (a ufunc sum tests them)
    (np.zeros((2, 20)), np.r_[np.arange(19.0), np.nan], (20,), np.zeros(20)),  # ... and a nan among them
]


@pytest.mark.parametrize("g, d, shape, expected", STRONG_TO_CASES)
def test_strong_to_is_the_strong_product_summed_to_the_operand_on_every_backend(g, d, shape, expected):
    for backend in installed_backends():
        B = load_backend(backend)
        like = B.asarray(np.zeros(shape))
        for like_arg in (like, tuple(np.shape(B.to_numpy(like)))):  # the VJP gets the operand or its shape
            out = B.strong_to(B.asarray(g) if backend == "torch" else g, B.asarray(d) if backend == "torch" else d,
                              like_arg)
            got = np.asarray(B.to_numpy(out) if backend == "torch" else out)
            assert got.shape == shape, backend
            np.testing.assert_array_equal(got, expected, err_msg=backend)


def test_a_numpy_scalar_cotangent_passes_sum_to_unchanged():
    g = np.float64(2.5)
    assert NumpyBackend.sum_to(g, ()) is g
    assert NumpyBackend.sum_to(g, np.float64(1.0)) is g


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_0d_parameter_is_held_as_a_numpy_scalar_of_the_backend_dtype(dtype):
    B = load_backend("numpy", dtype=dtype)
    leaf = B.leaf(np.array(0.3))
    assert type(leaf) is np.dtype(dtype).type and leaf == np.dtype(dtype).type(0.3)
    assert type(B.leaf(np.ones(3))) is np.ndarray and B.leaf(np.ones(3)).dtype == dtype  # arrays stay arrays


def test_erf_of_a_0d_float32_parameter_stays_float32():
    # erf'(w) = 2/sqrt(pi) exp(-w^2): the float32 engine's derivative is a float32 value within a few float32 ulp
    # (a numpy float32 scalar once took exp_neg_square's float64 path: a result no float32 holds)
    import math

    import diffsuite as ds

    w = 0.7
    r = ds.get_differentiator("reverse", dtype="float32").value_and_grad_fn(lambda xp, p: xp.erf(p["w"]))({"w": w})
    g = float(r.grad["w"])
    assert g == float(np.float32(g))
    exact = 2.0 / math.sqrt(math.pi) * math.exp(-float(np.float32(w)) ** 2)
    assert abs(g - exact) <= 4 * float(np.spacing(np.float32(exact)))


def test_0d_parameters_give_the_chain_rule_to_the_last_bit():
    # t_k = tanh(t_{k-1} * w): the value and both derivatives by the chain rule written out in Python floats.
    # Python's float arithmetic is numpy's scalar arithmetic (IEEE double); tanh and its derivative come from
    # numpy's own tanh and the engine's rule for tanh' (4 u / (1 + u)^2, u = exp(-2|z|)), so the comparison is exact.
    import diffsuite as ds

    x0, w0, L = 0.3, 0.9, 5
    ts, zs = [x0], []
    for _ in range(L):
        zs.append(ts[-1] * w0)
        ts.append(float(np.tanh(zs[-1])))
    dt, dw = 1.0, 0.0
    for k in range(L - 1, -1, -1):
        u = float(np.exp(-abs(2.0 * zs[k])))
        dz = dt * (4.0 * (u / ((1.0 + u) * (1.0 + u))))
        dw += dz * ts[k]
        dt = dz * w0

    def f(xp, p):
        t = p["x"]
        for _ in range(L):
            t = xp.tanh(t * p["w"])
        return t

    r = ds.get_differentiator("reverse").value_and_grad_fn(f)({"x": np.array(x0), "w": np.array(w0)})
    assert r.value == ts[-1]
    assert float(r.grad["x"]) == dt and float(r.grad["w"]) == dw
    assert np.shape(r.grad["x"]) == () and np.shape(r.grad["w"]) == ()
