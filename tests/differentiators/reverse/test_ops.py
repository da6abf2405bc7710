"""Every primitive's VJPs against central differences, driven by a table of specs.

The dot-product test: for a random direction v of input i and a random cotangent u of the output,
<u, J v> from central differences must equal <VJP_i(u), v>. A new op without a spec fails
``test_every_op_has_a_spec``.
"""
import numpy as np
import pytest

from diffsuite.differentiators.reverse.backends import NumpyBackend
from diffsuite.differentiators.reverse.ops import OPS

# name -> (input shapes, static params, how to draw inputs). Shapes exercise broadcasting.
POSITIVE = "positive"
OP_SPECS = {
    "add": ([(3, 4), (4,)], {}, None),
    "sub": ([(3, 1), (1, 4)], {}, None),
    "mul": ([(2, 3, 4), (3, 1)], {}, None),
    "div": ([(3, 4), (3, 4)], {}, POSITIVE),
    "neg": ([(3, 4)], {}, None),
    "power": ([(3, 4)], {"p": 3}, None),
    "pow": ([(3, 4), (4,)], {}, POSITIVE),
    "exp": ([(3, 4)], {}, None),
    "log": ([(3, 4)], {}, POSITIVE),
    "tanh": ([(3, 4)], {}, None),
    "sigmoid": ([(3, 4)], {}, None),
    "abs": ([(3, 4)], {}, None),
    "step": ([(3, 4)], {}, None),
    "maximum": ([(3, 4), (4,)], {}, None),
    "minimum": ([(3, 4), (3, 1)], {}, None),
    "sum": ([(3, 4, 2)], {"axis": 1}, None),
    "mean": ([(3, 4)], {"axis": 0, "keepdims": True}, None),
    "logsumexp": ([(3, 4)], {"axis": -1}, None),
    "matmul": ([(3, 4), (4, 2)], {}, None),
    "reshape": ([(3, 4)], {"shape": (2, 6)}, None),
    "transpose": ([(3, 4)], {}, None),
    "getitem": ([(5, 4)], {"index": (slice(1, 4), slice(None, None, 2))}, None),
}
EXTRA_SPECS = [  # shapes the table's single entry does not cover
    ("matmul", [(4,), (4, 2)], {}, None),
    ("matmul", [(3, 4), (4,)], {}, None),
    ("matmul", [(4,), (4,)], {}, None),
    ("sum", [(3, 4)], {}, None),
    ("mean", [(3, 4)], {}, None),
    ("logsumexp", [(2, 3, 4)], {"axis": 1, "keepdims": True}, None),
    ("power", [(3,)], {"p": 2}, None),
    ("power", [(3,)], {"p": -1.5}, POSITIVE),
    ("power", [(3,)], {"p": 1}, None),
    ("logsumexp", [(3, 4)], {"axis": None}, None),
    ("getitem", [(5,)], {"index": np.array([0, 2, 2])}, None),  # a repeated index: contributions add
]
B = NumpyBackend()


def draw(shape, domain, rng):
    x = rng.normal(size=shape)
    # kinks (abs, max, step at 0; ties) are kept away from, so central differences are valid
    return 0.5 + np.abs(x) if domain == POSITIVE else x + np.sign(x) * 0.1


def check_vjps(name, shapes, params, domain, seed=0, eps=1e-6):
    op = OPS[name]
    rng = np.random.default_rng(seed)
    xs = [draw(s, domain, rng) for s in shapes]
    out = op.forward(B, *xs, **params)
    u = rng.normal(size=np.shape(out))
    for i, vjp in enumerate(op.vjps):
        v = rng.normal(size=shapes[i])

        def shifted(sign):
            moved = list(xs)
            moved[i] = xs[i] + sign * eps * v
            return op.forward(B, *moved, **params)

        numeric = np.sum(u * (shifted(+1) - shifted(-1))) / (2 * eps)
        analytic = 0.0 if vjp is None else np.sum(vjp(B, u, out, *xs, **params) * v)
        if vjp is not None:
            assert np.shape(vjp(B, u, out, *xs, **params)) == shapes[i], f"{name}: VJP {i} has the wrong shape"
        assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-7), f"{name}: VJP of input {i}"


def test_every_op_has_a_spec():
    missing = sorted(set(OPS) - set(OP_SPECS))
    assert not missing, f"ops without an entry in OP_SPECS (add one): {missing}"


@pytest.mark.parametrize("name", sorted(OP_SPECS))
def test_vjp_matches_central_differences(name):
    check_vjps(name, *OP_SPECS[name])


@pytest.mark.parametrize("name,shapes,params,domain", EXTRA_SPECS, ids=lambda p: str(p)[:20])
def test_vjp_matches_central_differences_more_shapes(name, shapes, params, domain):
    check_vjps(name, shapes, params, domain, seed=1)


def test_step_has_no_gradient_and_abs_has_zero_subgradient_at_zero():
    assert OPS["step"].vjps == (None,)
    g = OPS["abs"].vjps[0](B, np.ones(3), None, np.array([-2.0, 0.0, 3.0]))
    np.testing.assert_array_equal(g, [-1.0, 0.0, 1.0])


def test_logsumexp_over_every_axis_and_power_zero_at_zero():
    """Review findings: logsumexp(axis=None) crashed in the VJP; x ** 0 gave 0 * inf = nan at x = 0."""
    import diffsuite as ds
    grad = ds.get_differentiator("reverse").grad
    x = np.array([[1.0, 2.0], [0.5, -1.0]])
    softmax = np.exp(x) / np.exp(x).sum()  # d/dx log(sum(exp(x))) over all entries
    np.testing.assert_allclose(grad(lambda xp, t: xp.logsumexp(t, axis=None))(x), softmax, rtol=1e-14)
    np.testing.assert_array_equal(grad(lambda xp, t: xp.sum(t ** 0))(np.array([0.0, 2.0])), [0.0, 0.0])
    np.testing.assert_array_equal(grad(lambda xp, t: xp.sum(t ** 1))(np.array([0.0, 2.0])), [1.0, 1.0])
