"""Fixes of the higher-order review (symbolic caches, hvp of a vector f, the lifted backend's broadcast_to, einsum
and prod, the node budget while building, finite-difference kink warnings, stats keys).

Oracles: hand derivatives, torch.autograd.functional in float64 (torch.prod's double backward included).
"""
import warnings

import numpy as np
import pytest

import diffsuite as ds
from diffsuite.differentiators.finite_diff import KinkWarning
from diffsuite.reference_hessian import reference_hessian

torch = pytest.importorskip("torch")

AD = {
    "reverse": lambda: ds.get_differentiator("reverse"),
    "reverse_torch": lambda: ds.get_differentiator("reverse", backend="torch"),
    "forward": lambda: ds.get_differentiator("forward"),
    "forward_fof": lambda: ds.get_differentiator("forward", second_order="forward_over_forward"),
}


# ----- 1. symbolic kernels are keyed by the values of constant arguments, never by id() -----
def _weighted(xp, t, c):
    return xp.sum(t * t * xp.asarray(c))


@pytest.mark.parametrize("method", ["grad", "jacobian", "hessian", "hvp"])
def test_symbolic_list_argument_mutated_in_place_is_not_stale(method):
    d = ds.get_differentiator("symbolic")
    t, v = np.array([1.0, 2.0]), np.array([0.5, -1.5])
    fn = getattr(d, method)(_weighted)
    call = (lambda c: fn(t, v, c)) if method == "hvp" else (lambda c: fn(t, c))

    def hand(c):
        c = np.asarray(c, dtype=float)
        return {"grad": 2 * c * t, "jacobian": 2 * c * t, "hessian": np.diag(2 * c), "hvp": 2 * c * v}[method]

    c = [1.0, 1.0]
    np.testing.assert_array_equal(call(c), hand(c))
    c[0] = 10.0  # the same list object, new values: compiled in as constants, so a new kernel
    np.testing.assert_array_equal(call(c), hand([10.0, 1.0]))
    c[1] = -3.0
    np.testing.assert_array_equal(call(c), hand([10.0, -3.0]))


@pytest.mark.parametrize("method", ["grad", "jacobian", "hessian", "hvp"])
def test_symbolic_fresh_lists_in_a_loop_are_not_stale(method):
    """New lists at addresses CPython reuses (the review found stale kernels at k = 18..25)."""
    d = ds.get_differentiator("symbolic", engine="symengine" if method in ("hessian", "hvp") else "sympy")
    t, v = np.array([1.0, 2.0]), np.array([0.5, -1.5])
    fn = getattr(d, method)(_weighted)
    for k in range(1, 31):
        c = [float(k), 1.0]
        out = fn(t, v, c) if method == "hvp" else fn(t, c)
        expected = {"grad": [2.0 * k, 4.0], "jacobian": [2.0 * k, 4.0], "hessian": [[2.0 * k, 0], [0, 2.0]],
                    "hvp": [k * 1.0, -3.0]}[method]
        np.testing.assert_array_equal(out, expected, err_msg=f"k = {k}")


def test_symbolic_argument_without_a_value_key_is_rebuilt_not_stale():
    """A set has no value to key a kernel by: every call builds afresh (the hand value follows the set)."""
    f = lambda xp, t, s: xp.sum(t * t) * len(s)  # noqa: E731
    t = np.array([1.0, 2.0])
    h = ds.get_differentiator("symbolic").hessian(f)
    s = {1}
    np.testing.assert_array_equal(h(t, s), 2 * np.eye(2))
    s.add(2)
    np.testing.assert_array_equal(h(t, s), 4 * np.eye(2))
    assert h.stats["cached"] is False


def test_symbolic_nested_value_keys():
    from diffsuite.differentiators.symbolic import _arg_key
    assert _arg_key([1.0, 2.0]) == _arg_key([1.0, 2.0]) != _arg_key([1.0, 3.0])
    assert _arg_key([1, 2]) != _arg_key([1.0, 2.0])  # (the types are part of the value)
    assert _arg_key({"a": [1.0]}) != _arg_key({"a": [2.0]})
    assert _arg_key(np.array([1, 2])) != _arg_key(np.array([1, 3]))
    assert _arg_key(np.array([1.0, 2.0])) == _arg_key(np.array([5.0, 6.0]))  # float data: symbols, keyed by shape
    assert _arg_key({1, 2}) is None and _arg_key([{1}]) is None


# ----- 2. symbolic.hvp of a vector-valued f raises like hessian and the other differentiators -----
def test_symbolic_hvp_of_a_vector_function_raises():
    f = lambda xp, t: t * t  # noqa: E731
    d = ds.get_differentiator("symbolic")
    with pytest.raises(TypeError, match="scalar"):
        d.hessian(f)(np.ones(2))
    with pytest.raises(TypeError, match="scalar"):
        d.hvp(f)(np.ones(2), np.ones(2))
    with pytest.raises(TypeError):
        ds.get_differentiator("reverse").hvp(f)(np.ones(2), np.ones(2))


# ----- 3. broadcast_to and einsum with a summed-away index through every nested AD method -----
M = np.arange(6.0).reshape(2, 3) / 5
W = np.arange(12.0).reshape(3, 4) / 7

SCALAR_CASES = {
    "einsum_summed_away": (lambda xp, t: xp.sum(xp.einsum("ij,jk->k", xp.reshape(t, (2, 2)), M) ** 2),
                           lambda t: (torch.einsum("ij,jk->k", t.reshape(2, 2), torch.tensor(M)) ** 2).sum()),
    "broadcast_to": (lambda xp, t: xp.sum(xp.sin(xp.broadcast_to(t, (3, 4)) * xp.asarray(W)) ** 2),
                     lambda t: (torch.sin(torch.broadcast_to(t, (3, 4)) * torch.tensor(W)) ** 2).sum()),
}
VECTOR_CASES = {
    "einsum_summed_away": (lambda xp, t: xp.einsum("ij,jk->k", xp.reshape(t * t, (2, 2)), M),
                           lambda t: torch.einsum("ij,jk->k", (t * t).reshape(2, 2), torch.tensor(M))),
    "broadcast_to": (lambda xp, t: xp.sum(xp.exp(xp.broadcast_to(t, (3, 4)) * xp.asarray(W)), axis=1),
                     lambda t: torch.exp(torch.broadcast_to(t, (3, 4)) * torch.tensor(W)).sum(dim=1)),
}
X4 = np.array([0.3, -0.5, 0.9, 1.2])


@pytest.mark.parametrize("case", sorted(SCALAR_CASES))
@pytest.mark.parametrize("which", sorted(AD))
def test_hessian_and_hvp_through_broadcast_to_and_einsum_match_torch(case, which):
    f, ft = SCALAR_CASES[case]
    tx = torch.tensor(X4, dtype=torch.float64)
    H = torch.autograd.functional.hessian(ft, tx).numpy()
    v = np.linspace(-1.0, 1.0, X4.size)
    d = AD[which]()
    np.testing.assert_allclose(d.hessian(f)(X4), H, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(d.hvp(f)(X4, v), H @ v, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("case", sorted(VECTOR_CASES))
@pytest.mark.parametrize("which", sorted(AD))
def test_jvp_and_jacobian_through_broadcast_to_and_einsum_match_torch(case, which):
    f, ft = VECTOR_CASES[case]
    tx = torch.tensor(X4, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(ft, tx).numpy()
    t = np.linspace(-1.0, 1.0, X4.size)
    d = AD[which]()
    value, jt = d.jvp(f)(X4, t)  # (reverse: the transpose trick, its VJP recorded on the lifted backend)
    np.testing.assert_allclose(value, ft(tx).numpy(), rtol=1e-14)
    np.testing.assert_allclose(jt, J @ t, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(d.jacobian(f)(X4), J, rtol=1e-13, atol=1e-13)


def test_lifted_fallback_passes_static_parameters_by_keyword():
    """A backend method the lifted backend does not define goes to the op of that name with its static parameters as
    the op's keyword-only parameters (broadcast_to(x, shape) took ``shape`` positionally and crashed)."""
    from diffsuite.differentiators.reverse.lifted import LiftedBackend
    from diffsuite.differentiators.reverse.backends.numpy_backend import NumpyBackend
    calls = []

    def apply(op, *args, **params):
        calls.append((op.name, len(args), params))
        return op.forward(inner, *args, **params)

    inner = NumpyBackend()
    lb = LiftedBackend(inner, apply, owns=lambda x: False, primal=lambda x: x)
    out = LiftedBackend.__getattr__(lb, "broadcast_to")(np.array([1.0, 2.0]), (3, 2))
    assert out.shape == (3, 2) and calls == [("broadcast_to", 1, {"shape": (3, 2)})]
    with pytest.raises(TypeError, match="positional"):
        LiftedBackend.__getattr__(lb, "broadcast_to")(np.ones(2), (3, 2), "extra")


# ----- 4. prod's second order: exact with zeros -----
PROD_CASES = {
    "all": (lambda xp, t: xp.prod(t), lambda t: torch.prod(t)),
    "axis1": (lambda xp, t: xp.sum(xp.prod(xp.reshape(t, (2, 3)), axis=1) ** 2),
              lambda t: (torch.prod(t.reshape(2, 3), dim=1) ** 2).sum()),
    "axis0": (lambda xp, t: xp.sum(xp.exp(xp.prod(xp.reshape(t, (3, 2)), axis=0))),
              lambda t: torch.exp(torch.prod(t.reshape(3, 2), dim=0)).sum()),
}


@pytest.mark.parametrize("point", [[0.3, -0.5, 0.9, 1.2, 1.7, -0.8], [0.3, 0.0, 0.9, 1.2, 1.7, -0.8],
                                   [0.0, 0.0, 0.9, 1.2, 1.7, -0.8]])
@pytest.mark.parametrize("case", sorted(PROD_CASES))
@pytest.mark.parametrize("which", sorted(AD))
def test_prod_hessian_matches_torch_double_backward(which, case, point):
    f, ft = PROD_CASES[case]
    x = np.array(point)
    H = torch.autograd.functional.hessian(ft, torch.tensor(x, dtype=torch.float64)).numpy()
    v = np.linspace(-1.0, 1.0, x.size)
    d = AD[which]()
    np.testing.assert_allclose(d.hessian(f)(x), H, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(d.hvp(f)(x, v), H @ v, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("which", sorted(AD))
def test_prod_hessian_with_zero_entry_by_hand(which):
    a, c = 0.3, -1.7
    hand = np.array([[0.0, c, 0.0], [c, 0.0, a], [0.0, a, 0.0]])  # d2(a b c) at b = 0: the product of the two others
    H = AD[which]().hessian(lambda xp, t: xp.prod(t))(np.array([a, 0.0, c]))
    np.testing.assert_array_equal(H, hand)
    value, jt = AD[which]().jvp(lambda xp, t: xp.prod(t, axis=0, keepdims=True) * t)(np.array([a, 0.0, c]),
                                                                                  np.array([1.0, 0.0, 0.0]))
    np.testing.assert_array_equal(value, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(jt, [0.0, 0.0, 0.0])  # d/da (a b c) t = (b c) t + abc e_a = 0 at b = 0


# ----- 5. the node budget applies while the higher-order methods and the reference build f -----
def _deep(xp, t):  # a DAG of a few dozen nodes whose printed tree grows ~3x per layer
    h = t
    for _ in range(9):
        h = xp.sigmoid(h * h + h)
    return xp.sum(h)


@pytest.mark.parametrize("method", ["hessian", "hvp", "jacobian", "jvp"])
def test_symbolic_higher_order_refused_by_nodes_while_building(method):
    d = ds.get_differentiator("symbolic", node_budget=3000, time_budget_s=None)
    x = np.array([0.3, -0.2])
    fn = getattr(d, method)(_deep)
    with pytest.raises(ds.BudgetExceeded, match="printed trees") as info:
        fn(x, x) if method in ("hvp", "jvp") else fn(x)
    assert info.value.stage == "build"


@pytest.mark.parametrize("engine", ["sympy", "symengine"])
def test_reference_hessian_refused_by_nodes_while_building(engine):
    with pytest.raises(ds.BudgetExceeded, match="printed trees") as info:
        reference_hessian(_deep, np.array([0.3, -0.2]), engine=engine, node_budget=3000, time_budget_s=None)
    assert info.value.stage == "build"


def test_symbolic_objective_hessian_refused_by_nodes_while_building():
    rng = np.random.default_rng(0)
    model = ds.nn.MLP([2] + [3] * 6 + [1], activation="sigmoid", output_activation="identity")
    obj = ds.Objective(model, "quadratic", rng.normal(size=(2, 2)), rng.normal(size=(2, 1)))
    theta = rng.normal(size=model.n_params) * 0.3
    d = ds.get_differentiator("symbolic", node_budget=5000, time_budget_s=None)
    with pytest.raises(ds.BudgetExceeded, match="printed trees") as info:
        d.hessian(obj)(theta)
    assert info.value.stage == "build"


def test_budgeted_build_still_gives_the_exact_hessian():
    """Under a budget that fits, the budgeted build changes nothing: hand Hessian of sum(sigmoid(t))."""
    x = np.array([0.3, -0.2])
    s = 1 / (1 + np.exp(-x))
    hand = np.diag(s * (1 - s) * (1 - 2 * s))
    f = lambda xp, t: xp.sum(xp.sigmoid(t))  # noqa: E731
    np.testing.assert_allclose(ds.get_differentiator("symbolic", node_budget=200).hessian(f)(x), hand, rtol=1e-14)
    np.testing.assert_allclose(reference_hessian(f, x, node_budget=200), hand, rtol=1e-14)


# ----- 6. finite-difference jvp / jacobian / vjp warn where their stencil straddles a kink -----
def _kinked(xp, t):
    return xp.relu(t) * 3.0 + xp.abs(t)


def test_finite_diff_jacobian_vjp_jvp_warn_at_kinks():
    d = ds.get_differentiator("finite_diff")
    x = np.array([0.0, 1.0])
    one_sided_mean = (4.0 + -1.0) / 2  # right derivative 3 + 1, left 0 - 1: a straddling central difference
    with pytest.warns(KinkWarning, match=r"theta\[0\]"):
        jac = d.jacobian(_kinked)
        J = jac(x)
    np.testing.assert_allclose(J, np.diag([one_sided_mean, 4.0]), rtol=1e-9)
    assert jac.stats["kink_params"] == ["theta[0]"]
    with pytest.warns(KinkWarning, match=r"theta\[0\]"):
        vjp = d.vjp(_kinked)
        _, pullback = vjp(x)
    np.testing.assert_allclose(pullback(np.ones(2)), [one_sided_mean, 4.0], rtol=1e-9)
    assert vjp.stats["kink_params"] == ["theta[0]"]
    with pytest.warns(KinkWarning, match="tangent"):
        jvp = d.jvp(_kinked)
        _, jt = jvp(x, np.array([1.0, 0.0]))
    np.testing.assert_allclose(jt, [one_sided_mean, 0.0], rtol=1e-9)
    assert jvp.stats["kink_params"] == ["tangent"]


def test_finite_diff_first_differences_quiet_away_from_kinks_and_named_in_dicts():
    d = ds.get_differentiator("finite_diff")
    with warnings.catch_warnings():
        warnings.simplefilter("error", KinkWarning)
        jac = d.jacobian(_kinked)
        np.testing.assert_allclose(jac(np.array([0.5, 1.0])), np.diag([4.0, 4.0]), rtol=1e-9)
        assert jac.stats["kink_params"] == []
        _, jt = d.jvp(_kinked)(np.array([0.5, -1.0]), np.array([1.0, 1.0]))
        np.testing.assert_allclose(jt, [4.0, -1.0], rtol=1e-9)
        # the complex step takes the AD convention at a tie and does not warn (as its grad)
        J = ds.get_differentiator("finite_diff", scheme="complex_step").jacobian(_kinked)(np.array([0.0, 1.0]))
        np.testing.assert_array_equal(J, np.diag([0.0, 4.0]))
    f = lambda xp, th: xp.relu(th["b"]) * th["a"]  # noqa: E731
    with pytest.warns(KinkWarning, match=r"b\[1\]"):
        jac = d.jacobian(f)
        jac({"a": 2.0, "b": np.array([1.0, 0.0])})
    assert jac.stats["kink_params"] == ["b[1]"]
    quiet = ds.get_differentiator("finite_diff", warn=False).jacobian(_kinked)
    with warnings.catch_warnings():
        warnings.simplefilter("error", KinkWarning)
        quiet(np.array([0.0, 1.0]))
    assert quiet.stats["kink_params"] == ["theta[0]"]


# ----- 7/8. documented shapes and stats keys -----
def test_nested_theta_hessian_is_flat_and_jacobian_keeps_nesting():
    theta = {"l1": {"w": np.array([0.5, -1.0])}, "l2": [np.array([2.0]), 1.5]}
    f = lambda xp, th: th["l1"]["w"][0] * th["l2"][0][0] * th["l2"][1] + xp.sum(th["l1"]["w"] ** 2)  # noqa: E731
    hand = np.array([[2.0, 0.0, 1.5, 2.0],  # entries in the order w0, w1, l2[0][0], l2[1]
                     [0.0, 2.0, 0.0, 0.0],
                     [1.5, 0.0, 0.0, 0.5],
                     [2.0, 0.0, 0.5, 0.0]])
    for which in ("reverse", "symbolic"):
        d = ds.get_differentiator(which)
        np.testing.assert_allclose(d.hessian(f)(theta), hand, atol=1e-15)
        hv = d.hvp(f)(theta, {"l1": {"w": np.array([1.0, 0.0])}, "l2": [np.array([0.0]), 0.0]})
        np.testing.assert_allclose(hv["l1"]["w"], hand[:2, 0], atol=1e-15)
        np.testing.assert_allclose(hv["l2"][0], hand[2:3, 0], atol=1e-15)
        assert hv["l2"][1] == pytest.approx(hand[3, 0])


def test_documented_stats_keys():
    f = lambda xp, t: xp.sum(xp.exp(t) * t[::-1])  # noqa: E731
    fv = lambda xp, t: xp.exp(t) * t[::-1]  # noqa: E731
    x = np.array([0.1, 0.2, 0.3])
    sym = ds.get_differentiator("symbolic")
    h = sym.hessian(f)
    h(x)
    assert {"build_s", "diff_s", "diff2_s", "cse_s", "compile_s", "setup_s", "cached", "hessian_cse_nodes",
            "n_second"} <= set(h.stats) and h.stats["cached"] is False
    assert h.stats["setup_s"] == pytest.approx(sum(h.stats[k] for k in ("build_s", "diff_s", "diff2_s", "cse_s",
                                                                         "compile_s")))
    h(x + 1.0)
    assert h.stats["cached"] is True
    j = sym.jacobian(fv)
    j(x)
    assert {"setup_s", "cached", "jacobian_cse_nodes"} <= set(j.stats)
    fd = ds.get_differentiator("finite_diff")
    for method, args in (("jvp", (fv, x, x)), ("jacobian", (fv, x)), ("vjp", (fv, x))):
        w = getattr(fd, method)(args[0])
        w(*args[1:])
        assert {"evaluations", "scheme", "kink_params"} <= set(w.stats), method
    for method, args in (("hessian", (f, x)), ("hvp", (f, x, x))):
        w = getattr(fd, method)(args[0])
        w(*args[1:])
        assert {"evaluations", "method", "value"} <= set(w.stats), method
    rev = ds.get_differentiator("reverse")
    w = rev.hvp(f)
    w(x, x)
    assert {"inner_records", "outer_records", "outer_backward_ops"} <= set(w.stats)
    w = rev.hessian(f)
    w(x)
    assert {"inner_records", "outer_records", "outer_backward_passes"} <= set(w.stats)
    w = ds.get_differentiator("forward").hessian(f)
    w(x)
    assert "hvps" in w.stats


def test_stats_values_by_hand():
    """The counts and values behind the keys, by hand for n = 3 parameters: f = sum(exp(t) * reverse(t)); the cost
    model of finite_diff/higher.py's docstring (jvp 2, hvp 4n, hessian 2n(n+1) evaluations; plus one for the value);
    n(n+1)/2 distinct second derivatives; one HVP and one backward pass per parameter; ceil(n / k) forward passes of
    k directions."""
    import math
    f = lambda xp, t: xp.sum(xp.exp(t) * t[::-1])  # noqa: E731
    fv = lambda xp, t: xp.exp(t) * t[::-1]  # noqa: E731
    x = np.array([0.1, 0.2, 0.3])
    value = math.exp(0.1) * 0.3 + math.exp(0.2) * 0.2 + math.exp(0.3) * 0.1
    n = 3
    h = ds.get_differentiator("symbolic").hessian(f)
    h(x)
    assert h.stats["n_second"] == n * (n + 1) // 2
    fd = ds.get_differentiator("finite_diff")
    w = fd.jvp(fv)
    w(x, x)
    assert w.stats["evaluations"] == 2 + 1 and w.stats["scheme"] == "central"
    for method, args, cost in (("hessian", (x,), 2 * n * (n + 1)), ("hvp", (x, x), 4 * n)):
        w = getattr(fd, method)(f)
        w(*args)
        assert w.stats["evaluations"] == cost + 1, (method, w.stats["evaluations"])
        assert w.stats["value"] == pytest.approx(value, rel=1e-15), method
    rev = ds.get_differentiator("reverse")
    w = rev.hessian(f)
    w(x)
    assert w.stats["outer_backward_passes"] == n and w.stats["value"] == pytest.approx(value, rel=1e-15)
    w = rev.hvp(f)
    w(x, x)
    assert w.stats["value"] == pytest.approx(value, rel=1e-15)
    for k in (1, 2, 3):
        w = ds.get_differentiator("forward", directions_per_pass=k).hessian(f)
        w(x)
        assert (w.stats["hvps"], w.stats["passes"]) == (n, -(-n // k)), k
        assert w.stats["value"] == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize("scheme, stencil", [("central", 2), ("forward", 1), ("backward", 1), ("five_point", 4),
                                             ("complex_step", 1)])
def test_a_jacobian_evaluates_f_at_x_once(scheme, stencil):
    """jacobian and vjp by finite differences: f(x) once (the value, which the one-sided stencils share), then the
    stencil's own points per column: 1 + stencil * n evaluations (it was f(x) again for every column)."""
    fv = lambda xp, t: xp.exp(t) * t[::-1]  # noqa: E731
    x = np.array([0.1, 0.2, 0.3])
    fd = ds.get_differentiator("finite_diff", scheme=scheme)
    for method in ("jacobian", "vjp"):
        w = getattr(fd, method)(fv)
        w(x)
        assert w.stats["evaluations"] == 1 + stencil * 3, (method, w.stats["evaluations"])
