"""Fixes from the eleventh session's review of the language and the engines (each test failed before its fix).

Oracles: torch float64 autograd (norms), hand calculations written out here (comparisons, powers, shapes).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import diffsuite as ds

ALL = ["reverse", "forward", "symbolic", "finite_diff"]
TRACED = ["reverse", "forward"]


# ----- numpy's operators and functions with a traced value on the right -----
@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("expr, mask", [
    ("np.float64(0) < x", [True, False]),
    ("np.zeros(2) > x", [False, True]),
    ("np.zeros(2) >= x", [False, True]),
    ("np.zeros(2) <= x", [True, False]),
    ("np.zeros(2) == x", [False, False]),
    ("np.zeros(2) != x", [True, True]),
    ("np.greater(0, x)", [False, True]),
    ("np.greater(x, 0)", [True, False]),
])
def test_a_comparison_with_a_numpy_value_on_the_left_is_a_mask(name, expr, mask):
    # sum(where(mask, x, 0)) has gradient 1 where the mask holds, 0 elsewhere
    f = eval("lambda xp, x: xp.sum(xp.where(" + expr + ", x, 0.0))")
    g = ds.get_differentiator(name).grad(f)(np.array([0.5, -1.0]))
    np.testing.assert_allclose(g, np.array(mask, dtype=float), rtol=1e-9 if name == "finite_diff" else 0)


@pytest.mark.parametrize("f, expected", [
    (lambda xp, x: np.sum(np.exp(x)), lambda x: np.exp(x)),
    (lambda xp, x: np.sum(x), lambda x: np.ones_like(x)),
    (lambda xp, x: xp.sum(np.tanh(x)), lambda x: 1.0 - np.tanh(x) ** 2),
    (lambda xp, x: xp.sum(np.maximum(x, 0.0)), lambda x: (x > 0).astype(float)),
])
def test_forward_mode_runs_numpy_functions_on_duals(f, expected):
    x = np.array([0.5, -1.0])
    np.testing.assert_allclose(ds.get_differentiator("forward").grad(f)(x), expected(x), rtol=1e-15)


# ----- gradients the user owns -----
@pytest.mark.parametrize("name", ALL)
def test_gradient_leaves_never_share_memory(name):
    D = ds.get_differentiator(name)
    g = D.grad(lambda xp, p: xp.sum(p["a"] + p["b"]))({"a": np.ones(2), "b": np.ones(2)})
    before = g["b"].copy()
    g["a"] *= 0.1  # an optimizer step on one leaf
    np.testing.assert_array_equal(g["b"], before)
    g = D.grad(lambda xp, a, b, c: xp.sum(a + b + c), argnums=(0, 1, 2))(np.ones(2), np.ones(2), np.ones(2))
    before = [g[1].copy(), g[2].copy()]
    g[0][0] = 7.0
    np.testing.assert_array_equal(g[1], before[0])
    np.testing.assert_array_equal(g[2], before[1])
    g = D.grad(lambda xp, p: xp.sum(xp.reshape(p[0], (4,)) + p[1]))([np.ones((2, 2)), np.ones(4)])
    before = g[0].copy()
    g[1][0] = 7.0
    np.testing.assert_array_equal(g[0], before)


def test_grad_leaves_copies_only_overlapping_arrays():
    from diffsuite.differentiators.base import grad_leaves
    flat = np.arange(6.0)
    a, b = flat[:3], flat[3:]  # disjoint views of one buffer: kept as they are
    out = grad_leaves([a, b, a.reshape(3, 1)])
    assert out[0] is a and out[1] is b
    assert not np.shares_memory(out[2], a)
    np.testing.assert_array_equal(out[2], a.reshape(3, 1))


# ----- norms as numpy computes them -----
NORM_CASES = ([((4,), None, o) for o in (None, 2, 1, math.inf, -math.inf)]
              + [((3, 4), None, o) for o in (None, "fro", 1, -1, math.inf, -math.inf)]
              + [((3, 4), 0, o) for o in (None, 2, 1, math.inf, -math.inf)]
              + [((2, 3, 4), (2, 0), o) for o in (None, "fro", 1, -1, math.inf, -math.inf)]
              + [((2, 3, 4), None, None), ((2, 3, 4), -1, 1)])


def _torch_norm_grad(x, ord, axis, keepdims, w):
    torch = pytest.importorskip("torch")
    t = torch.tensor(x, requires_grad=True)
    if axis is None and ord is not None and x.ndim == 1:
        n = torch.linalg.vector_norm(t, 2 if ord is None else ord)
    else:
        n = torch.linalg.norm(t, ord, axis, keepdims)
    (n * torch.tensor(w)).sum().backward()
    return float((n.detach() * torch.tensor(w)).sum()), t.grad.numpy()


@pytest.mark.parametrize("shape, axis, ord", NORM_CASES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_norm_matches_numpy_and_torch(shape, axis, ord, keepdims):
    x = np.random.default_rng(len(shape) + (0 if axis is None else 7)).normal(size=shape)
    ref = np.linalg.norm(x, ord, axis, keepdims)
    w = np.arange(1.0, np.size(ref) + 1.0).reshape(np.shape(ref))  # weights: every output entry counts
    value, grad = _torch_norm_grad(x, ord, axis, keepdims, w)
    assert value == pytest.approx(float(np.sum(ref * w)), rel=1e-14)
    for name in ALL:
        D = ds.get_differentiator(name)
        for f in (lambda xp, x: xp.sum(xp.norm(x, axis=axis, keepdims=keepdims, ord=ord) * w),
                  lambda xp, x: xp.sum(np.linalg.norm(x, ord, axis, keepdims) * w)):  # numpy's positional order
            r = D.value_and_grad_fn(f)(x)
            assert r.value == pytest.approx(value, rel=1e-13), name
            np.testing.assert_allclose(r.grad, grad, rtol=1e-6 if name == "finite_diff" else 1e-13,
                                       atol=1e-8 if name == "finite_diff" else 1e-15, err_msg=name)


@pytest.mark.parametrize("ord", [2, -2, "nuc", 3, 0])
def test_matrix_norms_without_a_rule_are_refused_not_replaced(ord):
    with pytest.raises(NotImplementedError, match="matrix norms"):
        ds.get_differentiator("reverse").grad(lambda xp, x: xp.norm(x, ord=ord))(np.ones((2, 2)))


def test_vector_norms_without_a_rule_are_refused():
    with pytest.raises(NotImplementedError, match="vector norms"):
        ds.get_differentiator("reverse").grad(lambda xp, x: xp.norm(x, ord=3))(np.ones(3))


def test_complex_step_norms_see_their_kinks():
    # ord=inf is a max of |x|: the complex step through it is exact away from ties
    x = np.array([0.5, -2.0, 1.0])
    D = ds.get_differentiator("finite_diff", scheme="complex_step")
    np.testing.assert_allclose(D.grad(lambda xp, x: xp.norm(x, ord=math.inf))(x), [0.0, -1.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(D.grad(lambda xp, x: xp.norm(x, ord=1))(x), [1.0, -1.0, 1.0], atol=1e-15)


@pytest.mark.parametrize("name", ALL)
def test_np_linalg_trace_takes_the_last_two_axes(name):
    x = np.arange(18.0).reshape(2, 3, 3)
    r = ds.get_differentiator(name).value_and_grad_fn(lambda xp, x: xp.sum(np.linalg.trace(x) * np.array([1.0, 2.0])))(x)
    assert r.value == pytest.approx(float(np.linalg.trace(x) @ [1.0, 2.0]))  # 12 + 2 * 39
    expected = np.stack([np.eye(3), 2.0 * np.eye(3)])
    np.testing.assert_allclose(r.grad, expected, atol=1e-8 if name == "finite_diff" else 0)


# ----- powers with a constant array exponent, to second order -----
@pytest.mark.parametrize("name", ALL)
def test_hessian_of_a_power_with_an_array_exponent(name):
    # d2/dx2 x^2 = 2, d2/dx2 x^3 = 6x = 12 at x = 2
    D = ds.get_differentiator(name)
    H = D.hessian(lambda xp, x: xp.sum(x ** np.array([2.0, 3.0])))(np.array([1.0, 2.0]))
    np.testing.assert_allclose(H, [[2.0, 0.0], [0.0, 12.0]], rtol=1e-6 if name == "finite_diff" else 1e-15)


@pytest.mark.parametrize("name", TRACED)
def test_power_with_a_zero_exponent_at_zero_warns_nothing(name):
    D = ds.get_differentiator(name)
    with np.errstate(divide="raise", invalid="raise"):
        g = D.grad(lambda xp, x: xp.sum(x ** np.array([0.0, 1.0])))(np.array([0.0, 2.0]))
        gx, gy = D.grad(lambda xp, x, y: xp.sum(x ** y), argnums=(0, 1))(np.array([0.0, 2.0]), np.array([0.0, 3.0]))
    np.testing.assert_array_equal(g, [0.0, 1.0])  # d/dx x^0 = 0 (also at 0), d/dx x = 1
    np.testing.assert_array_equal(gx, [0.0, 12.0])  # 3 x^2 at 2
    np.testing.assert_allclose(gy, [0.0, 8.0 * math.log(2.0)], rtol=1e-15)  # x^y log x; 0 at x = 0


# ----- zero-size arrays -----
@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("f, shape, value", [
    (lambda xp, x: xp.sum(xp.mean(x, axis=1)), (0, 3), 0.0),  # a sum of no means
    (lambda xp, x: xp.sum(xp.var(x, axis=1)), (0, 3), 0.0),
    (lambda xp, x: xp.prod(x), (0,), 1.0),  # the empty product
    (lambda xp, x: xp.sum(xp.prod(x, axis=0)), (0, 3), 3.0),  # three empty products
    (lambda xp, x: xp.sum(xp.prod(x, axis=1)), (0, 3), 0.0),
])
def test_zero_size_parameters_get_empty_gradients(name, f, shape, value):
    r = ds.get_differentiator(name).value_and_grad_fn(f)(np.zeros(shape))
    assert r.grad.shape == shape
    assert r.value == value


@pytest.mark.parametrize("name", ALL)
def test_hessian_of_a_function_of_no_parameters(name):
    assert ds.get_differentiator(name).hessian(lambda xp, x: xp.prod(x))(np.zeros(0)).shape == (0, 0)


def test_forward_over_forward_hessian_of_no_parameters():
    D = ds.get_differentiator("forward", second_order="forward_over_forward")
    assert D.hessian(lambda xp, x: xp.prod(x))(np.zeros(0)).shape == (0, 0)


# ----- a traced value kept from an earlier call -----
@pytest.mark.parametrize("method", ["grad", "hessian"])
def test_reverse_refuses_a_value_kept_from_an_earlier_call(method):
    R = ds.get_differentiator("reverse")
    cache = {}

    def f(xp, x):
        if "y" not in cache:
            cache["y"] = xp.sum(x * x)
        xp.sum(xp.sin(x))  # records something at the kept value's index on the new tape
        return cache["y"]

    getattr(R, method)(f)(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="another tape"):
        getattr(R, method)(f)(np.array([3.0, 4.0]))



# ----- second order: the reviewer's cases, against hand-derived Hessians -----
SECOND = [("reverse", {}), ("forward", {}), ("forward", {"directions_per_pass": 1}),
          ("forward", {"directions_per_pass": 2}), ("forward", {"second_order": "forward_over_forward"}),
          ("forward", {"second_order": "forward_over_forward", "directions_per_pass": 1}), ("symbolic", {})]


@pytest.mark.parametrize("name, options", SECOND)
def test_hessian_through_a_broadcast_where_branch(name, options):
    # f = sum(where(x > 0, 0, x0) * x) = x0 * (x1 + x3) at x = (0.5, -1, 2, -0.3): H01 = H03 = 1, all else 0
    H = ds.get_differentiator(name, **options).hessian(
        lambda xp, x: xp.sum(xp.where(x > 0, 0.0, x[0]) * x))(np.array([0.5, -1.0, 2.0, -0.3]))
    expected = np.zeros((4, 4))
    expected[0, 1] = expected[1, 0] = expected[0, 3] = expected[3, 0] = 1.0
    np.testing.assert_array_equal(H, expected)


@pytest.mark.parametrize("name, options", SECOND)
def test_hessian_of_x_log_x_behind_a_where(name, options):
    # sum(where(x > 0, x log x, 0)): d2/dx2 x log x = 1/x where x > 0, and 0 in the unselected branch at 0
    f = lambda xp, x: xp.sum(xp.where(x > 0, x * xp.log(x), 0.0))  # noqa: E731
    with np.errstate(divide="ignore", invalid="ignore"):
        H = ds.get_differentiator(name, **options).hessian(f)(np.array([0.0, 1.0, 2.0]))
    np.testing.assert_allclose(H, np.diag([0.0, 1.0, 0.5]), rtol=1e-15)


@pytest.mark.parametrize("name, options", SECOND)
def test_hessian_where_the_unselected_branch_has_an_infinite_derivative(name, options):
    # sum(where(x > 0, x^1.5, x^2)) at (0, 1): the x^2 branch at 0 (H = 2), x^1.5'' = 0.75 x^-0.5 = 0.75 at 1
    f = lambda xp, x: xp.sum(xp.where(x > 0, xp.sqrt(x) * x, x ** 2))  # noqa: E731
    with np.errstate(divide="ignore", invalid="ignore"):
        H = ds.get_differentiator(name, **options).hessian(f)(np.array([0.0, 1.0]))
    np.testing.assert_allclose(H, np.diag([2.0, 0.75]), rtol=1e-15)


@pytest.mark.parametrize("name, options", SECOND + [("reverse", {"backend": "torch"})])
def test_second_derivatives_of_norm_and_std_at_zero_keep_the_convention(name, options):
    # norm(x[:2]) * x[2] at (0, 0, 3): the norm's gradient is 0 at 0 by convention, and so is everything after it
    D = ds.get_differentiator(name, **options)
    if options.get("backend") == "torch":
        pytest.importorskip("torch")
    np.testing.assert_array_equal(D.hessian(lambda xp, x: xp.norm(x[:2]) * x[2])(np.array([0.0, 0.0, 3.0])),
                                  np.zeros((3, 3)))
    np.testing.assert_array_equal(D.hvp(lambda xp, x: xp.norm(x[:2]) * x[2])(np.array([0.0, 0.0, 3.0]), np.ones(3)),
                                  np.zeros(3))


@pytest.mark.parametrize("name, options", SECOND)
def test_power_cross_derivative_at_a_zero_exponent(name, options):
    # x^y at (2, 0): d2/dxdy = x^(y-1) (1 + y ln x) = 1/2, d2/dy2 = x^y ln(x)^2 = ln(2)^2, d2/dx2 = y(y-1)x^(y-2) = 0
    H = ds.get_differentiator(name, **options).hessian(lambda xp, p: xp.sum(xp.power(p["x"], p["y"])))(
        {"x": np.array([2.0]), "y": np.array([0.0])})
    assert H["x"]["y"][0, 0] == pytest.approx(0.5, rel=1e-15)
    assert H["y"]["x"][0, 0] == pytest.approx(0.5, rel=1e-15)
    assert H["y"]["y"][0, 0] == pytest.approx(math.log(2.0) ** 2, rel=1e-15)
    assert H["x"]["x"][0, 0] == 0.0


@pytest.mark.parametrize("name, options", SECOND)
def test_logsumexp_over_several_axes_to_second_order(name, options):
    # f = sum_j lse_j^2 with lse_j = logsumexp over axes (0, 2) of x[:, j, :]; softmax p over each slice:
    # H = 2 (p p^T + lse (diag(p) - p p^T)) within a slice, 0 across slices
    x = np.random.default_rng(3).normal(size=(2, 3, 2))
    H = ds.get_differentiator(name, **options).hessian(lambda xp, x: xp.sum(xp.logsumexp(x, axis=(0, 2)) ** 2))(x)
    expected = np.zeros((12, 12))
    for j in range(3):
        idx = [np.ravel_multi_index((a, j, c), x.shape) for a in range(2) for c in range(2)]
        z = x[:, j, :].ravel()
        lse = math.log(sum(math.exp(v) for v in z))
        p = np.exp(z - lse)
        expected[np.ix_(idx, idx)] = 2.0 * (np.outer(p, p) + lse * (np.diag(p) - np.outer(p, p)))
    np.testing.assert_allclose(H.reshape(12, 12), expected, rtol=1e-12, atol=1e-15)


# ----- constants that are numbers, inside structural operations -----
@pytest.mark.parametrize("name", ALL)
def test_stacking_scalars_computed_from_data(name):
    c = np.array([1.0, 2.0])
    D = ds.get_differentiator(name)
    # sum(stack([sum c, sum c]) * w) = 3 (w0 + w1)
    np.testing.assert_allclose(D.grad(lambda xp, w: xp.sum(xp.stack([xp.sum(c), xp.sum(c)]) * w))(np.ones(2)),
                               [3.0, 3.0], rtol=1e-9 if name == "finite_diff" else 0)
    # jvp of (sum w^2, w0) at (1, 2) along (1, 0): (2 w0, 1) = (2, 1)
    value, jt = D.jvp(lambda xp, w: xp.stack([xp.sum(w ** 2), w[0]]))(np.array([1.0, 2.0]), np.array([1.0, 0.0]))
    np.testing.assert_allclose(value, [5.0, 1.0])
    np.testing.assert_allclose(jt, [2.0, 1.0], rtol=1e-9 if name == "finite_diff" else 0)


@pytest.mark.parametrize("name", ALL)
def test_reshape_to_a_numpy_integer(name):
    g = ds.get_differentiator(name).grad(lambda xp, x: xp.sum(xp.reshape(x, np.prod(x.shape)) * np.arange(4.0)))(
        np.ones((2, 2)))
    np.testing.assert_allclose(g, [[0.0, 1.0], [2.0, 3.0]], atol=1e-9 if name == "finite_diff" else 0)


# ----- an Objective's higher-order methods and their arguments -----
@pytest.mark.parametrize("name", ALL)
def test_objective_higher_order_methods_refuse_arguments_they_would_drop(name):
    model = ds.MLP((2, 2, 1))
    obj = ds.Objective(model, "quadratic", np.ones((3, 2)), np.ones((3, 1)))
    theta = model.init(0)
    D = ds.get_differentiator(name)
    with pytest.raises(TypeError, match="minibatch"):
        D.hvp(obj)(theta, np.ones_like(theta), (np.ones((2, 2)), np.ones((2, 1))))
    with pytest.raises(TypeError, match="by position"):
        D.hvp(obj)(theta, np.ones_like(theta), batch=(np.ones((2, 2)), np.ones((2, 1))))


@pytest.mark.parametrize("second_order", ["forward_over_reverse", "forward_over_forward"])
@pytest.mark.parametrize("method", ["grad", "hessian", "hvp", "jvp", "jacobian"])
def test_forward_refuses_a_value_kept_from_an_earlier_call(second_order, method):
    D = ds.get_differentiator("forward", second_order=second_order)
    cache = {}

    def f(xp, x):
        if "y" not in cache:
            cache["y"] = xp.sum(x * x)
        xp.sum(xp.sin(x))
        return cache["y"]

    args = (np.array([1.0, 2.0]),) + ((np.ones(2),) if method in ("hvp", "jvp") else ())
    getattr(D, method)(f)(*args)
    with pytest.raises(ValueError, match="another"):
        getattr(D, method)(f)(*args)


# ----- one value, and the messages of bad input -----
@pytest.mark.parametrize("name", ALL)
def test_logsumexp_of_one_value_is_that_value(name):
    D = ds.get_differentiator(name)
    r = D.value_and_grad_fn(lambda xp, x: xp.logsumexp(x) * x)(2.0)  # x^2: 4, gradient 4
    assert r.value == 4.0
    assert isinstance(r.grad, float) and r.grad == pytest.approx(4.0, rel=1e-9 if name == "finite_diff" else 0)
    assert D.hessian(lambda xp, x: xp.logsumexp(x) ** 2)(2.0) == pytest.approx(2.0, rel=1e-6)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("method", ["grad", "hessian", "jvp", "jacobian", "hvp", "vjp"])
def test_a_function_without_a_return_is_named(name, method):
    def no_return(xp, x):
        xp.sum(x)

    args = (np.ones(2),) + ((np.ones(2),) if method in ("jvp", "hvp") else ())
    with pytest.raises(TypeError, match="no_return returned None.*return statement"):
        getattr(ds.get_differentiator(name), method)(no_return)(*args)


@pytest.mark.parametrize("name", ALL)
def test_complex_parameters_are_refused_not_truncated(name):
    with pytest.raises(ValueError, match="must be real"):
        ds.get_differentiator(name).grad(lambda xp, x: xp.sum(x))(np.array([1.0 + 1.0j, 2.0]))


@pytest.mark.parametrize("name", TRACED)
def test_traced_scalars_are_not_iterable_or_concatenable(name):
    D = ds.get_differentiator(name)
    with pytest.raises(TypeError, match="iteration over a 0-d array"):
        D.grad(lambda xp, x: sum(r for r in xp.sum(x)))(np.ones(2))
    with pytest.raises(ValueError, match="zero-dimensional arrays cannot be concatenated"):
        D.grad(lambda xp, x: xp.sum(xp.concatenate([xp.sum(x), xp.sum(x)])))(np.ones(2))
    # iterating over rows still works: sum_i x_i^2 has gradient 2x
    np.testing.assert_array_equal(D.grad(lambda xp, x: sum(r * r for r in x))(np.array([1.0, 2.0])), [2.0, 4.0])


def test_a_bad_direction_is_named_as_the_direction():
    D = ds.get_differentiator("forward")
    with pytest.raises(ValueError, match=r"v\['a'\] entry \[1\] is inf"):
        D.hvp(lambda xp, p: xp.sum(p["a"]))({"a": np.ones(2), "b": 1.0}, {"a": np.array([1.0, np.inf]), "b": 1.0})


def test_complex_step_through_sign_without_the_kink_check():
    # sign(t0) t1 t0 = |t0| t1 away from 0: gradient (sign(t0) t1, |t0|); sign alone has gradient 0
    D = ds.get_differentiator("finite_diff", scheme="complex_step", kink_check=False)
    np.testing.assert_array_equal(D.grad(lambda xp, t: xp.sign(t[0]))(np.array([0.0, 2.0])), [0.0, 0.0])
    np.testing.assert_allclose(D.grad(lambda xp, t: xp.sign(t[0]) * t[1] * t[0])(np.array([-1.5, 2.0])),
                               [-2.0, 1.5], rtol=1e-15)
