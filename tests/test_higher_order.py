"""jvp / vjp / jacobian / hessian / hvp of every differentiator against torch.autograd.functional (float64)
and against peers' published second-derivative cases (numdifftools' and JAX's tests).

torch differentiates the same model and loss definitions through plain torch functions (tests/torch_oracle.py),
never through our rule tables, so it is an independent oracle at points away from kinks. Kinks are
compared with the exact reference in test_reference_hessian.py.
"""
import functools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import diffsuite as ds  # noqa: E402
import torch_oracle as oracle  # noqa: E402
from cases import make_case  # noqa: E402

#: label -> differentiator; every AD nesting (forward-over-reverse, forward-over-forward, reverse-over-reverse)
AD = {
    "forward": lambda: ds.get_differentiator("forward", directions_per_pass=8),
    "forward_fwd_fwd": lambda: ds.get_differentiator("forward", second_order="forward_over_forward"),
    "forward_torch": lambda: ds.get_differentiator("forward", backend="torch"),
    "reverse": lambda: ds.get_differentiator("reverse"),
    "reverse_torch": lambda: ds.get_differentiator("reverse", backend="torch"),
}
ACTS = ["step", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "maxout", "identity"]
LOSSES = ["quadratic", "binary_cross_entropy", "cross_entropy", "hinge"]


#: every activation once, every loss twice (a full cross product would cost seconds of torch Hessians)
CASES = [(act, LOSSES[k % len(LOSSES)]) for k, act in enumerate(ACTS)]


def small_case(act, loss, seed):
    return make_case(act, loss, "l1+l2", seed=seed, layers=(2, 3, 2), batch=4)


@functools.lru_cache(maxsize=None)
def torch_case(act, loss):
    """(objective, theta, torch's Hessian) of one case: computed once, shared by every method's test."""
    obj, theta = small_case(act, loss, seed=ACTS.index(act))
    return obj, theta, oracle.hessian(oracle.torch_objective(obj), theta)


@pytest.mark.parametrize("method", list(AD))
@pytest.mark.parametrize("act,loss", CASES)
def test_hessian_and_hvp_match_torch_on_every_activation_and_loss(method, act, loss):
    d = AD[method]()
    obj, theta, expected = torch_case(act, loss)
    scale = max(1.0, np.abs(expected).max())
    np.testing.assert_allclose(d.hessian(obj)(theta), expected, rtol=0, atol=1e-12 * scale)
    v = np.random.default_rng(1).normal(size=theta.size)
    np.testing.assert_allclose(d.hvp(obj)(theta, v), expected @ v, rtol=0, atol=1e-11 * scale)


def _vector_function(xp, theta, x):
    """A vector-valued function of a dict of parameters (a layer's outputs): (4, 2)."""
    return xp.tanh(x @ theta["W"] + theta["b"]) * xp.sigmoid(theta["s"])


def _torch_vector(W, b, s, x):
    return torch.tanh(x @ W + b) * torch.sigmoid(s)


@pytest.mark.parametrize("method", ["forward", "forward_torch", "reverse", "reverse_torch"])
def test_jvp_vjp_jacobian_match_torch_on_a_vector_function(method):
    d = AD[method]()
    rng = np.random.default_rng(5)
    theta = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2), "s": 0.3}
    x = rng.normal(size=(4, 3))
    tangent = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2), "s": -1.2}
    u = rng.normal(size=(4, 2))
    t_args = tuple(torch.as_tensor(np.asarray(theta[k], dtype=np.float64)) for k in ("W", "b", "s"))
    tx = torch.as_tensor(x)
    fn = lambda W, b, s: _torch_vector(W, b, s, tx)  # noqa: E731

    value, jv = d.jvp(_vector_function)(theta, tangent, x)
    t_value, t_jv = torch.autograd.functional.jvp(fn, t_args, tuple(torch.as_tensor(np.asarray(tangent[k], dtype=float))
                                                                      for k in ("W", "b", "s")))
    np.testing.assert_allclose(value, t_value.numpy(), rtol=1e-14)
    np.testing.assert_allclose(jv, t_jv.numpy(), rtol=1e-12, atol=1e-14)

    value, pullback = d.vjp(_vector_function)(theta, x)
    got = pullback(u)
    _, t_vjp = torch.autograd.functional.vjp(fn, t_args, torch.as_tensor(u))
    for k, t in zip(("W", "b", "s"), t_vjp):
        np.testing.assert_allclose(got[k], t.numpy(), rtol=1e-12, atol=1e-14, err_msg=f"vjp {k}")
    assert isinstance(got["s"], float)

    J = d.jacobian(_vector_function)(theta, x)
    t_J = torch.autograd.functional.jacobian(fn, t_args)
    for k, t in zip(("W", "b", "s"), t_J):
        assert J[k].shape == (4, 2) + np.shape(theta[k])
        np.testing.assert_allclose(J[k], t.numpy(), rtol=1e-12, atol=1e-14, err_msg=f"jacobian {k}")


@pytest.mark.parametrize("method", list(AD))
def test_hessian_of_a_dict_theta_is_nested_by_blocks(method):
    rng = np.random.default_rng(2)
    theta = {"W": rng.normal(size=(3, 2)), "c": 0.4}
    x = rng.normal(size=(5, 3))

    def f(xp, p, x):
        return xp.sum(xp.log(1.0 + xp.exp(x @ p["W"]))) * p["c"] ** 2

    H = AD[method]().hessian(f)(theta, x)
    flat = np.concatenate([theta["W"].ravel(), [theta["c"]]])
    tx = torch.as_tensor(x)
    t_H = oracle.hessian(lambda t: torch.log(1 + torch.exp(tx @ t[:6].reshape(3, 2))).sum() * t[6] ** 2, flat)
    assert H["W"]["W"].shape == (3, 2, 3, 2) and H["W"]["c"].shape == (3, 2) and isinstance(H["c"]["c"], float)
    np.testing.assert_allclose(H["W"]["W"].reshape(6, 6), t_H[:6, :6], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(H["W"]["c"].reshape(6), t_H[:6, 6], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(H["c"]["W"].reshape(6), t_H[6, :6], rtol=1e-12, atol=1e-13)
    assert H["c"]["c"] == pytest.approx(t_H[6, 6], rel=1e-12)


# ----- peers' second-derivative cases -----
def rosen(xp, x):
    """numdifftools.testing.rosen (pbrod/numdifftools): (1 - x0)^2 + 105 (x1 - x0^2)^2."""
    return (1.0 - x[0]) ** 2 + 105.0 * (x[1] - x[0] ** 2) ** 2


@pytest.mark.parametrize("method", list(AD))
def test_numdifftools_cases(method):
    d = AD[method]()
    # numdifftools' Hessian of rosen at [1, 1] (its documentation and MATLAB-DERIVEST test: [[842, -420], [-420, 210]])
    np.testing.assert_allclose(d.hessian(rosen)(np.array([1.0, 1.0])), [[842.0, -420.0], [-420.0, 210.0]], rtol=1e-15)
    # numdifftools' TestHessdiag: x0 + x1^2 + x2^3 at [1, 2, 3] has diagonal [0, 2, 18] (and no off-diagonal)
    H = d.hessian(lambda xp, x: x[0] + x[1] ** 2 + x[2] ** 3)(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(H, np.diag([0.0, 2.0, 18.0]), rtol=1e-15, atol=0)
    # numdifftools' TestGradient.test_directional_diff: grad(rosen)([2, 3]) . (1, -1)/sqrt(2) = 743.87633380824832
    v = np.array([1.0, -1.0]) / np.sqrt(2.0)
    _, dd = d.jvp(rosen)(np.array([2.0, 3.0]), v)
    assert dd == pytest.approx(743.87633380824832, rel=1e-15)
    # numdifftools' TestJacobian: (c0 + c1 exp(c2 x) - y)^2 with y = 1 + 2 exp(0.75 x) has J = 0 at c = [1, 2, 0.75]
    xdata = np.arange(0, 1, 0.1).reshape(-1, 1)
    ydata = 1 + 2 * np.exp(0.75 * xdata)
    J = d.jacobian(lambda xp, c: (c[0] + c[1] * xp.exp(c[2] * xdata) - ydata) ** 2)(np.array([1.0, 2.0, 0.75]))
    assert J.shape == (10, 1, 3)
    np.testing.assert_allclose(J, 0.0, atol=1e-15)


@pytest.mark.parametrize("method", list(AD))
def test_jax_api_test_cases(method):
    """jax-ml/jax tests/api_test.py: test_jacobian (A x: J = A; tanh(A x): jacfwd == jacrev) and test_hessian
    (x . (A x): H = A + A^T); and an order-2 check in the spirit of check_grads(order=2): H v against a central
    difference of gradients (JAX checks its second derivatives numerically the same way)."""
    d = AD[method]()
    rng = np.random.RandomState(0)
    A, x = rng.randn(4, 3), rng.randn(3)
    np.testing.assert_allclose(d.jacobian(lambda xp, x: A @ x)(x), A, rtol=1e-15)
    J = d.jacobian(lambda xp, x: xp.tanh(A @ x))(x)
    np.testing.assert_allclose(J, (1 - np.tanh(A @ x) ** 2)[:, None] * A, rtol=1e-14)  # by hand
    A4, x4 = rng.randn(4, 4), rng.randn(4)
    np.testing.assert_allclose(d.hessian(lambda xp, x: x @ (A4 @ x))(x4), A4 + A4.T, rtol=1e-14)
    f = lambda xp, x: xp.sum(xp.tanh(A4 @ x) * xp.exp(-x * x))  # noqa: E731
    v = rng.randn(4)
    g = ds.get_differentiator("reverse").grad(f)
    h = 1e-5
    fd = (g(x4 + h * v) - g(x4 - h * v)) / (2 * h)
    np.testing.assert_allclose(d.hvp(f)(x4, v), fd, rtol=1e-7, atol=1e-8)


def test_stats_say_what_was_paid():
    obj, theta = small_case("tanh", "quadratic", 0)
    n = theta.size
    fwd = ds.get_differentiator("forward", directions_per_pass=8)
    h = fwd.hessian(obj)
    h(theta)
    assert h.stats["method"] == "forward-over-reverse" and h.stats["passes"] == -(-n // 8) and h.stats["hvps"] == n
    rev = ds.get_differentiator("reverse").hessian(obj)
    rev(theta)
    assert rev.stats["outer_backward_passes"] == n and rev.stats["outer_records"] > rev.stats["inner_records"]
    hv = fwd.hvp(obj)
    hv(theta, np.ones(n))
    assert hv.stats["passes"] == 1 and hv.stats["tape_records"] > 0 and hv.stats["jvp_rules"] > 0


def test_value_and_grad_records_no_backward_pass():
    """Recording the backward pass is a mode of the higher-order methods: a plain gradient's tape holds the
    forward records only (its size would double if the backward pass were recorded too)."""
    obj, theta = small_case("tanh", "quadratic", 0)
    stats = ds.get_differentiator("reverse").value_and_grad(obj)(theta).stats
    assert stats["tape_records"] == stats["tape_forward_ops"] + stats["tape_leaves"]
    assert stats["tape_backward_ops"] <= 2 * stats["tape_forward_ops"]


def test_hessians_through_strong_zero_rules_keep_their_second_order_terms():
    """The strong zeros of the VJPs (log, exp, mul, ...) mask only where the local derivative is inf or nan: a
    cotangent that is 0 at the point but not in its neighbourhood keeps its derivative. Oracle by hand:
    f(x, y) = (1 - x)^2 + 100 (y - x^2)^2 (Rosenbrock) at (1, 1): H = [[802, -400], [-400, 200]];
    g(t) = sin(t^2): g''(0) = 2 cos(0) = 2; h(x, y) = x ** y at (2, 3): d2/dx2 = y (y - 1) x^(y - 2) = 12,
    d2/dxdy = x^(y-1) (1 + y log x) = 4 (1 + 3 log 2), d2/dy2 = x^y log(x)^2 = 8 log(2)^2."""
    import math
    rosen = lambda xp, t: (1.0 - t[0]) ** 2 + 100.0 * (t[1] - t[0] ** 2) ** 2  # noqa: E731
    sin_sq = lambda xp, t: xp.sum(xp.sin(t * t))  # noqa: E731
    pw = lambda xp, t: xp.power(t[0], t[1])  # noqa: E731
    want_pw = [[12.0, 4 * (1 + 3 * math.log(2))], [4 * (1 + 3 * math.log(2)), 8 * math.log(2) ** 2]]
    for name in ("reverse", "forward"):
        d = ds.get_differentiator(name)
        np.testing.assert_allclose(d.hessian(rosen)(np.array([1.0, 1.0])), [[802.0, -400.0], [-400.0, 200.0]],
                                   rtol=1e-14, err_msg=name)
        np.testing.assert_allclose(d.hessian(sin_sq)(np.array([0.0])), [[2.0]], rtol=1e-14, err_msg=name)
        np.testing.assert_allclose(d.hessian(pw)(np.array([2.0, 3.0])), want_pw, rtol=1e-13, err_msg=name)
