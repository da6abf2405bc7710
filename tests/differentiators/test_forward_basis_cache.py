"""Forward mode keeps the basis tangents of a returned function between calls (built once per theta shape)."""
import math

import numpy as np
import pytest

import diffsuite as ds
from diffsuite.differentiators import forward as forward_module
from diffsuite.differentiators.forward import Forward
from diffsuite.differentiators.forward.second_order import basis
from diffsuite.structure import Structure


def f(xp, p):
    return xp.tanh(p["x"] * p["w"]).sum()


def hand_grad(p):
    """d/dx sum tanh(x w) = (1 - tanh^2(x w)) w, written out (x and w of one shape)."""
    s = 1.0 - np.tanh(p["x"] * p["w"]) ** 2
    return {"x": s * p["w"], "w": s * p["x"]}


@pytest.fixture
def builds(monkeypatch):
    """The number of basis builds (Forward._basis_passes calls)."""
    count = [0]
    original = Forward._basis_passes

    def counting(self, B, structure):
        count[0] += 1
        return original(self, B, structure)

    monkeypatch.setattr(Forward, "_basis_passes", counting)
    return count


@pytest.mark.parametrize("method", ["value_and_grad_fn", "jacobian", "vjp"])
def test_a_basis_is_built_once_per_shape(builds, method):
    fw = ds.get_differentiator("forward")
    fn = getattr(fw, method)(f)
    rng = np.random.default_rng(0)
    for shape, expected_builds in [((3,), 1), ((3,), 1), ((2, 2), 2), ((3,), 2), ((2, 2), 2)]:
        p = {"x": rng.normal(size=shape), "w": rng.normal(size=shape)}
        result = fn(p)
        if method == "value_and_grad_fn":
            grad = result.grad
        elif method == "jacobian":
            grad = result
        else:
            grad = result[1](1.0)
        for k, want in hand_grad(p).items():
            np.testing.assert_allclose(grad[k], want, rtol=1e-14, atol=1e-15)
        assert builds[0] == expected_builds


def test_each_returned_function_has_its_own_cache(builds):
    fw = ds.get_differentiator("forward")
    p = {"x": np.ones(2), "w": np.ones(2)}
    fw.value_and_grad_fn(f)(p)
    fw.value_and_grad_fn(f)(p)
    assert builds[0] == 2


def test_a_large_theta_builds_its_basis_per_call(builds, monkeypatch):
    monkeypatch.setattr(forward_module, "CACHED_BASIS_ENTRIES", 3)  # n = 2: n^2 = 4 entries, above the limit
    vg = ds.get_differentiator("forward").value_and_grad_fn(lambda xp, t: (t * t).sum())
    for _ in range(3):
        np.testing.assert_array_equal(vg(np.array([1.5, -2.0])).grad, [3.0, -4.0])  # d/dt t^2 = 2t, exactly
    assert builds[0] == 3


def test_the_cache_holds_a_bounded_number_of_shapes(builds):
    vg = ds.get_differentiator("forward").value_and_grad_fn(lambda xp, t: (t * t).sum())
    n_shapes = forward_module.CACHED_BASIS_SHAPES + 3
    for n in range(1, n_shapes + 1):
        vg(np.ones(n))
    assert builds[0] == n_shapes
    vg(np.ones(n_shapes))  # the newest shape is still kept
    assert builds[0] == n_shapes
    bases = next(c.cell_contents for c in vg.__closure__ if isinstance(c.cell_contents, dict))
    assert len(bases) <= forward_module.CACHED_BASIS_SHAPES


def test_the_kept_basis_is_read_only_on_numpy():
    """A JVP rule writing into a tangent it was given would corrupt every later call: on numpy it raises."""
    B = Forward().load()
    structure = Structure.of({"a": np.zeros(2), "b": np.zeros((2, 2))})
    for tangent in basis(B, structure, 0, structure.n):
        assert not tangent.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            tangent[...] = 0.0


def test_repeated_calls_agree_with_a_hand_derivative_on_every_call():
    """The same cached tangents, pushed again: sin(a) * b at two points, against cos(a) b and sin(a)."""
    vg = ds.get_differentiator("forward").value_and_grad_fn(lambda xp, p: (xp.sin(p[0]) * p[1]).sum())
    for a, b in [(0.3, 2.0), (1.1, -0.5), (0.3, 2.0)]:
        g = vg([np.array([a]), np.array([b])]).grad
        assert g[0][0] == pytest.approx(math.cos(a) * b, rel=1e-15)
        assert g[1][0] == pytest.approx(math.sin(a), rel=1e-15)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_result_never_reaches_the_kept_basis(backend, dtype):
    """f(t) = t[0]: the output tangent is the input's, the kept basis itself; the result must be a writable copy
    (before: on torch, g[0] = 7 made the next call return [7.]; on numpy the result was read-only)."""
    if backend == "torch":
        pytest.importorskip("torch")
    fw = ds.get_differentiator("forward", backend=backend, dtype=dtype)
    vg, jac = fw.value_and_grad_fn(lambda xp, t: t[0]), fw.jacobian(lambda xp, t: t)
    for _ in range(2):
        g = vg(np.array([3.0])).grad
        np.testing.assert_array_equal(g, [1.0])  # d t0 / d t0, exactly
        g[0] = 7.0  # a caller's in-place update
        J = jac(np.array([1.0, 2.0]))
        np.testing.assert_array_equal(J, np.eye(2))
        J *= 5.0


def test_the_kept_bases_hold_at_most_their_entries_in_all(builds, monkeypatch):
    """Two shapes of 2 entries (4 each) fit in 8; a third (9 entries) clears them first."""
    monkeypatch.setattr(forward_module, "CACHED_BASIS_ENTRIES", 9)
    vg = ds.get_differentiator("forward").value_and_grad_fn(lambda xp, t: (t * t).sum())
    vg(np.ones(2)), vg(np.ones((1, 2))), vg(np.ones(2))
    assert builds[0] == 2  # both kept
    vg(np.ones(3))  # 9 more entries: the others go
    vg(np.ones(2))
    assert builds[0] == 4
