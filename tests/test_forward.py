"""Forward mode: every primitive's JVP against torch.autograd.functional.jvp, the differentiator against torch.autograd.

The oracle is torch's own differentiation (float64) of each primitive's forward run on torch tensors:
independent of our JVP (and VJP) rules. Batched tangents (k directions at once) must equal k single
JVPs; a new op without a JVP fails ``test_every_op_has_a_jvp``.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import diffsuite as ds  # noqa: E402
from cases import make_case  # noqa: E402
from differentiators.reverse.test_ops import EXTRA_SPECS, OP_SPECS, draw  # noqa: E402  (shapes, params, domains)
from diffsuite.differentiators.forward import JVPS, DualNamespace, ForwardTrace  # noqa: E402
from diffsuite.differentiators.forward.jvps import jvp_rule  # noqa: E402
from diffsuite.differentiators.reverse.backends import NumpyBackend  # noqa: E402
from diffsuite.differentiators.reverse.backends.torch_backend import TorchBackend  # noqa: E402
from diffsuite.differentiators.reverse.lifted import LIFTED_OPS  # noqa: E402
from diffsuite.differentiators.reverse.ops import OPS  # noqa: E402
from diffsuite.namespace import NAMESPACE_FUNCTIONS  # noqa: E402
import torch_oracle  # noqa: E402

NP, TB = NumpyBackend(), TorchBackend()
SPECS = [(name, *spec) for name, spec in OP_SPECS.items()] + EXTRA_SPECS


def test_every_op_has_a_jvp():
    missing = sorted(set(OPS) - set(JVPS)) + sorted(set(LIFTED_OPS) - set(JVPS))
    assert not missing, f"ops without a JVP rule in forward/jvps.py: {missing}"
    assert set(OPS) <= {name for name, *_ in SPECS}, "every op needs a spec in tests/differentiators/reverse/test_ops.py"


def test_dual_namespace_has_every_namespace_function():
    missing = [f for f in NAMESPACE_FUNCTIONS if not callable(getattr(DualNamespace, f, None))]
    assert not missing


def _ours(name, xs, ts, params, traced):
    trace = ForwardTrace(NP)
    args = [trace.dual(x, t) if i in traced else x for i, (x, t) in enumerate(zip(xs, ts))]
    out = trace.apply(OPS[name], *args, **params)
    if hasattr(out, "tangent"):
        return out.tangent
    lead = np.ndim(ts[traced[0]]) - np.ndim(xs[traced[0]])  # a constant result: its tangent is zero
    return np.zeros(np.shape(ts[traced[0]])[:lead] + np.shape(out))


def _torch(name, xs, ts, params, traced):
    xs_t = [torch.as_tensor(x) for x in xs]

    def f(*moving):
        args = list(xs_t)
        for i, m in zip(traced, moving):
            args[i] = m
        return OPS[name].forward(TB, *args, **params)

    _, t = torch.autograd.functional.jvp(f, tuple(xs_t[i] for i in traced), tuple(torch.as_tensor(ts[i]) for i in traced))
    return t.numpy()


@pytest.mark.parametrize("name,shapes,params,domain", SPECS, ids=[f"{s[0]}-{i}" for i, s in enumerate(SPECS)])
def test_jvp_matches_torch(name, shapes, params, domain):
    rng = np.random.default_rng(len(name))
    xs = [draw(s, domain, rng) for s in shapes]
    ts = [rng.normal(size=s) for s in shapes]
    subsets = [tuple(range(len(xs)))] + ([(i,) for i in range(len(xs))] if len(xs) > 1 else [])
    for traced in subsets:
        expected = _torch(name, xs, ts, params, traced)
        got = _ours(name, xs, ts, params, traced)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, err_msg=f"{name}, traced inputs {traced}")
        # three directions at once (a leading axis on every tangent) equal three single JVPs
        tk = [np.stack([rng.normal(size=s) for _ in range(3)]) for s in shapes]
        batched = _ours(name, xs, tk, params, traced)
        singles = [_ours(name, xs, [t[j] for t in tk], params, traced) for j in range(3)]
        np.testing.assert_allclose(batched, np.stack(singles), rtol=1e-13, atol=1e-13,
                                   err_msg=f"{name}: batched tangents, traced inputs {traced}")


def test_op_without_jvp_names_it():
    with pytest.raises(NotImplementedError, match="op 'no_such_op'.*defjvp"):
        jvp_rule("no_such_op")


ACTS = ["step", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "maxout", "identity"]
LOSSES = ["quadratic", "binary_cross_entropy", "cross_entropy", "hinge"]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("loss", LOSSES)
def test_forward_grad_matches_torch_autograd(loss, backend):
    for act in ACTS:  # every activation, one loss per test
        obj, theta = make_case(act, loss, "l1+l2", seed=ACTS.index(act))
        res = ds.get_differentiator("forward", backend=backend, directions_per_pass=13).value_and_grad(obj)(theta)
        t = torch.as_tensor(theta).requires_grad_()
        value = torch_oracle.torch_objective(obj)(t)
        (expected,) = torch.autograd.grad(value, t)
        np.testing.assert_allclose(res.grad, expected.numpy(), rtol=1e-11, atol=1e-13, err_msg=f"{act}/{loss}")
        assert res.value == pytest.approx(value.item(), rel=1e-14)
        assert res.stats["jvps"] == theta.size and res.stats["passes"] == -(-theta.size // 13)


def test_grad_of_a_users_function_keeps_theta_structure():
    def f(xp, theta, x):
        return xp.sum(xp.tanh(x @ theta["W"] + theta["b"]) ** 2) + theta["s"] ** 3

    rng = np.random.default_rng(3)
    theta = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2), "s": 0.7}
    x = rng.normal(size=(4, 3))
    g = ds.get_differentiator("forward").grad(f)(theta, x)
    assert isinstance(g["s"], float) and g["s"] == pytest.approx(3 * 0.7 ** 2, rel=1e-15)
    W, b = (torch.as_tensor(theta[k]).requires_grad_() for k in ("W", "b"))
    loss = (torch.tanh(torch.as_tensor(x) @ W + b) ** 2).sum()
    gW, gb = torch.autograd.grad(loss, (W, b))
    np.testing.assert_allclose(g["W"], gW.numpy(), rtol=1e-13)
    np.testing.assert_allclose(g["b"], gb.numpy(), rtol=1e-13)


def test_bad_options_and_inputs_get_clear_errors():
    with pytest.raises(ValueError, match="directions_per_pass"):
        ds.get_differentiator("forward", directions_per_pass=0)
    with pytest.raises(ValueError, match="second_order"):
        ds.get_differentiator("forward", second_order="sideways")
    fwd = ds.get_differentiator("forward")
    with pytest.raises(ValueError, match="tangent must be shaped like theta"):
        fwd.jvp(lambda xp, t: xp.sum(t))(np.ones(3), np.ones(2))
    with pytest.raises(TypeError, match="scalar"):
        fwd.grad(lambda xp, t: t * 2.0)(np.ones(3))
    with pytest.raises(TypeError, match="truth value"):
        fwd.grad(lambda xp, t: t[0] if t[0] > 0 and t[0] else t[1])(np.ones(2))


def test_dual_methods_follow_numpy_like_reverse_mode_vars():
    """``.T`` of a 3-D dual reverses all axes (numpy), as a Var's does; the methods Var has exist on Dual too.

    Hand derivative: f = sum_jk t.T[0][j, k] * C[j, k] = sum_jk t[k, j, 0] * C[j, k], so df/dt[k, j, 0] = C[j, k]
    and every other entry is 0; plus sum(t.transpose(1, 0, 2)[0]) = sum_ik t[i, 0, k]: 1 on row j = 0."""
    import diffsuite as ds
    t = np.arange(24.0).reshape(2, 3, 4) * 0.1
    C = np.arange(6.0).reshape(3, 2)
    expected = np.zeros_like(t)
    for j in range(3):
        for k in range(2):
            expected[k, j, 0] += C[j, k]
    expected[:, 0, :] += 1.0

    def f(xp, x):
        return xp.sum(x.T[0] * C) + xp.sum(x.transpose(1, 0, 2)[0]) + 0.0 * x.ravel().prod()

    for backend in ("numpy", "torch"):
        np.testing.assert_array_equal(ds.get_differentiator("forward", backend=backend).grad(f)(t), expected)


def test_forward_objective_takes_a_minibatch_like_reverse():
    """README: batch=(X, y) works with every differentiator. Oracle: reverse mode on the same minibatch (itself
    checked against torch elsewhere), and the objective rebuilt on that minibatch."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(6, 3)), rng.integers(0, 2, size=6)
    obj = ds.Objective(ds.MLP((3, 4, 2), "tanh", "identity"), "cross_entropy", X, y)
    theta = obj.model.init(0)
    got = ds.get_differentiator("forward").value_and_grad(obj)(theta, batch=(X[:3], y[:3]))
    small = ds.Objective(ds.MLP((3, 4, 2), "tanh", "identity"), "cross_entropy", X[:3], y[:3])
    want = ds.get_differentiator("reverse").value_and_grad(small)(theta)
    assert got.value == pytest.approx(want.value, rel=1e-15)
    np.testing.assert_allclose(got.grad, want.grad, rtol=1e-13, atol=1e-16)
