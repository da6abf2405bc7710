"""Symbolic, finite-difference and exact-reference second derivatives, the Hessian check, and kinks.

Oracles: torch.autograd.functional (float64) at random points; at kinks, where torch's conventions
differ from ours (it splits max's gradient on ties), the exact reference and hand calculations.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import diffsuite as ds  # noqa: E402
import torch_oracle as oracle  # noqa: E402
from cases import make_case  # noqa: E402
from diffsuite.reference_hessian import reference_hessian, reference_hvp  # noqa: E402
from diffsuite.testing import assert_hessians_close, check_hessian  # noqa: E402

SYMBOLIC = lambda: ds.get_differentiator("symbolic", engine="symengine")  # noqa: E731  (SymPy: same maths, slower)
CENTRAL = lambda: ds.get_differentiator("finite_diff")  # noqa: E731
COMPLEX = lambda: ds.get_differentiator("finite_diff", scheme="complex_step")  # noqa: E731
TINY = [("tanh", "quadratic"), ("sigmoid", "binary_cross_entropy"), ("elu", "cross_entropy"), ("relu", "hinge")]


def tiny(act, loss, seed, layers=(2, 2, 2)):
    return make_case(act, loss, "l2", seed=seed, layers=layers, batch=2)


@pytest.mark.parametrize("act,loss", [("tanh", "quadratic"), ("relu", "hinge")])  # (BCE, CE: seconds of SymEngine each)
def test_symbolic_and_reference_hessians_match_torch(act, loss):
    obj, theta = tiny(act, loss, TINY.index((act, loss)), layers=(2, 1, 2))  # 7 parameters: 28 second derivatives
    expected = oracle.hessian(oracle.torch_objective(obj), theta)
    v = np.linspace(-1.0, 1.0, theta.size)
    scale = max(1.0, np.abs(expected).max())
    h = SYMBOLIC().hessian(obj)
    np.testing.assert_allclose(h(theta), expected, rtol=0, atol=1e-13 * scale)
    assert h.stats["n_second"] == theta.size * (theta.size + 1) // 2 and h.stats["hessian_dag_nodes"] > 0
    np.testing.assert_allclose(SYMBOLIC().hvp(obj)(theta, v), expected @ v, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(reference_hessian(obj, theta), expected, rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(reference_hvp(obj, theta, v), expected @ v, rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("act,loss", TINY[:3])
def test_finite_difference_hessians_within_their_error_models(act, loss):
    """Central second differences: error ~ sqrt(eps) (1e-8) times the scale; complex step over a central
    difference: ~ eps^(2/3) (4e-11). Bounds with two orders of headroom; a wrong formula is off by O(1)."""
    obj, theta = tiny(act, loss, 7)
    expected = oracle.hessian(oracle.torch_objective(obj), theta)
    v = np.linspace(1.0, -0.5, theta.size)
    scale = np.abs(expected).max()
    evaluations = {}
    for d, bound in ((CENTRAL(), 1e-6), (COMPLEX(), 1e-9)):
        h = d.hessian(obj)
        np.testing.assert_allclose(h(theta), expected, rtol=0, atol=bound * scale, err_msg=d.label)
        np.testing.assert_allclose(d.hvp(obj)(theta, v), expected @ v, rtol=0, atol=2 * bound * np.abs(expected @ v).max(),
                                   err_msg=d.label)
        evaluations[d.scheme] = h.stats["evaluations"]
    n = theta.size
    # by hand (+ 1 for f(x)): central, 4 evaluations per entry of the lower triangle (symmetry): 2n(n+1);
    # complex step, 2 per entry of the full matrix: 2n^2
    assert evaluations == {"central": 2 * n * (n + 1) + 1, "complex_step": 2 * n * n + 1}


def _vector_function(xp, theta, x):
    return xp.tanh(x @ theta["W"] + theta["b"]) * xp.sigmoid(theta["s"])


@pytest.mark.parametrize("make,rtol", [(SYMBOLIC, 1e-13), (CENTRAL, 1e-8), (COMPLEX, 1e-13)])
def test_jvp_vjp_jacobian_of_a_vector_function(make, rtol):
    d = make()
    rng = np.random.default_rng(5)
    theta = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2), "s": 0.3}
    x = rng.normal(size=(4, 3))
    tangent = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2), "s": -1.2}
    u = rng.normal(size=(4, 2))
    tx = torch.as_tensor(x)
    fn = lambda W, b, s: torch.tanh(tx @ W + b) * torch.sigmoid(s)  # noqa: E731
    t_args = tuple(torch.as_tensor(np.asarray(theta[k], dtype=np.float64)) for k in ("W", "b", "s"))
    t_tan = tuple(torch.as_tensor(np.asarray(tangent[k], dtype=np.float64)) for k in ("W", "b", "s"))
    _, t_jv = torch.autograd.functional.jvp(fn, t_args, t_tan)
    value, jv = d.jvp(_vector_function)(theta, tangent, x)
    np.testing.assert_allclose(jv, t_jv.numpy(), rtol=rtol, atol=rtol)
    _, pullback = d.vjp(_vector_function)(theta, x)
    _, t_vjp = torch.autograd.functional.vjp(fn, t_args, torch.as_tensor(u))
    got = pullback(u)
    for k, t in zip(("W", "b", "s"), t_vjp):
        np.testing.assert_allclose(got[k], t.numpy(), rtol=rtol, atol=rtol, err_msg=k)
    J = d.jacobian(_vector_function)(theta, x)
    for k, t in zip(("W", "b", "s"), torch.autograd.functional.jacobian(fn, t_args)):
        np.testing.assert_allclose(J[k], t.numpy(), rtol=rtol, atol=rtol, err_msg=k)


# ----- kinks: the conventions hold for second derivatives too -----
def kinky(xp, x):
    """relu(x0) x1 + |x0| x1^2 + max(x0, x1) x1: kinks where x0 = 0 and where x0 = x1."""
    return xp.maximum(0.0, x[0]) * x[1] + xp.abs(x[0]) * x[1] ** 2 + xp.maximum(x[0], x[1]) * x[1]


KINKY_CASES = [  # (point, Hessian by hand with relu'(0) = 0, |.|'(0) = 0, max routing ties to its first argument)
    # x0 = 0: d/dx0 = step(x0) x1 + sign(x0) x1^2 + [x0 >= x1] x1 = 0 (x1 > 0); d/dx1 = relu(x0) + 2|x0| x1 + max + x1
    (np.array([0.0, 0.7]), np.array([[0.0, 0.0], [0.0, 2.0]])),
    # x0 = x1 = 0.5: the tie routes to x0: d/dx0 = 1 * x1 + x1^2 + x1, d/dx1 = x0 + 2 x0 x1 + x0 + 0 (x1 loses)
    (np.array([0.5, 0.5]), np.array([[0.0, 1.0 + 2 * 0.5 + 1.0], [1.0 + 2 * 0.5 + 1.0, 2 * 0.5]])),
    # no kink: x0 = 0.5 < x1 = 0.9: d/dx0 = x1 + x1^2, d/dx1 = x0 + 2 x0 x1 + x1 + x1
    (np.array([0.5, 0.9]), np.array([[0.0, 1.0 + 2 * 0.9], [1.0 + 2 * 0.9, 2 * 0.5 + 2.0]])),
]


@pytest.mark.parametrize("point,expected", KINKY_CASES)
def test_hessians_at_kinks_follow_the_conventions(point, expected):
    for d in (ds.get_differentiator("forward"), ds.get_differentiator("forward", second_order="forward_over_forward"),
              ds.get_differentiator("reverse"), SYMBOLIC()):
        np.testing.assert_array_equal(d.hessian(kinky)(point), expected, err_msg=getattr(d, "label", d.name))
    np.testing.assert_array_equal(reference_hessian(kinky, point), expected)


def test_mlp_hessians_at_kinks_match_the_exact_reference():
    """A relu MLP whose pre-activations sit exactly on relu's kink (dyadic data: every sum is exact in float64,
    so the kink is there in the exact arithmetic too), with a hinge loss exactly at its hinge."""
    model = ds.MLP((2, 2, 1), activation="relu", output_activation="identity")
    x = np.array([[0.5, -0.25], [1.0, 0.5]])
    theta = model.init(seed=3)
    W0 = np.array([[0.5, 1.0], [1.0, -0.5]])
    layout = model.layout
    a, b, _ = layout["W0"]
    theta[a:b] = W0.ravel()
    a, b, _ = layout["b0"]
    theta[a:b] = -(x[0] @ W0)  # sample 0's pre-activations are exactly 0: relu's kink
    obj = ds.Objective(model, "quadratic", x, np.array([[0.25], [-0.5]]), l2=0.5)
    expected = reference_hessian(obj, theta)
    for d in (ds.get_differentiator("forward"), ds.get_differentiator("reverse"), SYMBOLIC()):
        np.testing.assert_allclose(d.hessian(obj)(theta), expected, rtol=1e-14, atol=1e-15, err_msg=d.name)


# ----- the Hessian check -----
def rosen(xp, x):
    return (1.0 - x[0]) ** 2 + 105.0 * (x[1] - x[0] ** 2) ** 2


def test_check_hessian_passes_and_names_the_worst_entries_when_wrong():
    report = assert_hessians_close(rosen, np.array([1.0, 1.0]))
    assert report.passed and report.reference_label.startswith("exact Hessian")
    assert {r.label for r in report.results} == {"reverse", "forward_mode", "central", "complex_step"}
    wrong = np.array([[842.0, -420.0], [-420.0, 211.0]])  # one entry off by 1 (the true value is 210)
    with pytest.raises(AssertionError, match=r"(?s)Hessian check failed.*H\[theta\[1\]; theta\[1\]\]"):
        assert_hessians_close(rosen, np.array([1.0, 1.0]), reference=wrong, methods=("reverse",))


def test_check_hessian_on_an_objective_and_a_dict():
    obj, theta = tiny("tanh", "quadratic", 0)
    report = check_hessian(obj, theta, methods=("forward_mode", "reverse"))
    assert report.passed and len(report.names) == theta.size ** 2 and report.names[1] == "H[W0[0, 0]; W0[0, 1]]"
    report = check_hessian(lambda xp, p: xp.sum(p["a"] ** 3) * p["c"], {"a": np.array([1.0, 2.0]), "c": 0.5},
                           methods=("forward_mode",), reference="reverse")
    assert report.passed and report.reference_label == "reverse (float64)"


def test_a_method_that_cannot_says_what_why_and_which_can():
    d = ds.get_differentiator("finite_diff", scheme="richardson")
    with pytest.raises(NotImplementedError, match=r"does not offer jvp: .*richardson.*Use .*central"):
        d.jvp(rosen)(np.array([1.0, 1.0]), np.array([1.0, 0.0]))
    with pytest.raises(TypeError, match="scalar"):
        ds.get_differentiator("forward").hessian(lambda xp, x: x * 2.0)(np.ones(2))
    with pytest.raises(ValueError, match="v must be shaped like theta"):
        ds.get_differentiator("reverse").hvp(rosen)(np.ones(2), np.ones(3))
