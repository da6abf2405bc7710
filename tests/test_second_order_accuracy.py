"""Accuracy and agreement faults in forward mode and second derivatives, found in review; each test failed before
its fix. Expected values: mpmath at 50 digits (closed forms written here), torch.autograd in float64, or a formula
written out by hand; never diffsuite.

1. forward mode's logsumexp JVP used exp(x - lse), which carries lse's rounding (eps |lse|) into every entry;
2. tanh'', sigmoid'', arcsin'', arccos'' lost their relative accuracy near 0 (eps / |x|: 0 at x = 1e-17);
3. xp.power(x, y)'s Hessian at (0, 1) was asymmetric, and differed between the AD modes;
4. reverse mode's einsum refused numpy's broadcasting of size-1 axes ("cannot reshape array ...");
5. the complex step gave half of a softmax output's derivative where one logit dominates.
"""
import math
import warnings

import mpmath
import numpy as np
import pytest

import diffsuite as ds
from diffsuite.differentiators.finite_diff.namespaces import COMPLEX, KinkTracker
from diffsuite.namespace import NUMPY

MP = mpmath.MPContext()
MP.dps = 50

SECOND_ORDER = {
    "forward-over-reverse": ds.get_differentiator("forward"),
    "forward-over-forward": ds.get_differentiator("forward", second_order="forward_over_forward"),
    "reverse-over-reverse": ds.get_differentiator("reverse"),
}


def ulps(got: float, want) -> float:
    """|got - want| in units of the last place of float(want) (want: an mpmath number or a float)."""
    w = float(want)
    if got == w:
        return 0.0
    return float(abs(MP.mpf(got) - MP.mpf(want)) / MP.mpf(math.ulp(w) if w != 0 else math.ulp(0.0)))


# ----- 1. forward mode's logsumexp JVP -----
def _softmax_mp(x):
    m = max(MP.mpf(v) for v in x)
    e = [MP.exp(MP.mpf(v) - m) for v in x]
    s = sum(e)
    return [v / s for v in e]


def lse(xp, x):
    return xp.logsumexp(x)


@pytest.mark.parametrize("x", [[1000.0, 1001.5], [-3.0, 1000.0, 999.25], [1e16, 1e16], [1e16, 1e16 + 2.0]])
def test_forward_logsumexp_gradient_is_the_accurate_softmax(x):
    # before: [1000, 1001.5] gave 0.182425523806359 (exact 0.18242552380635635, ~95 ulp); [1e16, 1e16] gave [1, 1]
    want = _softmax_mp(x)
    for d in (ds.get_differentiator("forward"), ds.get_differentiator("reverse")):
        got = d.grad(lse)(np.array(x))
        assert max(ulps(g, w) for g, w in zip(got, want)) <= 2, (d.name, got, [float(w) for w in want])


@pytest.mark.parametrize("axis, keepdims", [(-1, False), (0, True), (None, False), ((0, 1), True)])
def test_forward_logsumexp_jvp_over_axes(axis, keepdims):
    x = np.array([[1000.0, 1001.5, 999.0], [-2.0, 0.5, 3.0]])
    t = np.array([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]])

    def f(xp, x):
        return xp.sum(xp.logsumexp(x, axis=axis, keepdims=keepdims) * np.array(2.0))

    _, got = ds.get_differentiator("forward").jvp(f)(x, t)
    rows = [x.reshape(-1)] if axis is None or axis == (0, 1) else (list(x.T) if axis == 0 else list(x))
    trows = [t.reshape(-1)] if axis is None or axis == (0, 1) else (list(t.T) if axis == 0 else list(t))
    want = 2 * sum(sum(p * MP.mpf(v) for p, v in zip(_softmax_mp(r), tr)) for r, tr in zip(rows, trows))
    assert ulps(float(got), want) <= 4


@pytest.mark.parametrize("name", ["forward-over-reverse", "forward-over-forward", "reverse-over-reverse"])
def test_logsumexp_hessian_at_large_logits(name):
    # H = diag(p) - p p^T
    x = [1000.0, 1001.5]
    p = _softmax_mp(x)
    H = SECOND_ORDER[name].hessian(lse)(np.array(x))
    for i in range(2):
        for j in range(2):
            want = (p[i] if i == j else 0) - p[i] * p[j]
            assert ulps(H[i, j], want) <= 8, (name, H)


# ----- 2. second derivatives near 0 -----
SECOND = {  # name -> (f'', f') at an mpmath x
    "tanh": (lambda x: -2 * MP.tanh(x) / MP.cosh(x) ** 2, lambda x: 1 / MP.cosh(x) ** 2),
    # (sigma'' = sigma' (1 - 2 sigma) would cancel even at 50 digits for x = 1e-300: 1 - 2 sigma = -tanh(x / 2))
    "sigmoid": (lambda x: -MP.tanh(x / 2) / (4 * MP.cosh(x / 2) ** 2), lambda x: 1 / (4 * MP.cosh(x / 2) ** 2)),
    "arcsin": (lambda x: x / (1 - x * x) ** MP.mpf(1.5), lambda x: 1 / MP.sqrt(1 - x * x)),
    "arccos": (lambda x: -x / (1 - x * x) ** MP.mpf(1.5), lambda x: -1 / MP.sqrt(1 - x * x)),
}
NEAR_ZERO = [1e-8, 1e-12, 1e-17, -1e-17, -3e-10, 1e-300, 0.3, -0.6]


def _unary(name):
    return lambda xp, t: xp.sum(getattr(xp, name)(t))


@pytest.mark.parametrize("method", list(SECOND_ORDER))
@pytest.mark.parametrize("name", list(SECOND))
def test_second_derivatives_near_zero_keep_their_relative_accuracy(name, method):
    # before (every method): tanh''(1e-8, 1e-12, 1e-17) = -1.99999998e-08, -2.00017780e-12, 0.0;
    # arcsin''(same) = 9.99999999e-09, 1.00003339e-12, 0.0
    d = SECOND_ORDER[method]
    for x in NEAR_ZERO:
        want = SECOND[name][0](MP.mpf(x))
        got = d.hessian(_unary(name))(np.array([x]))[0, 0]
        assert ulps(got, want) <= 4, f"{name}''({x}) by {method}: {got!r}, exact {float(want)!r}"


@pytest.mark.parametrize("name", list(SECOND))
def test_second_derivatives_on_vectors_and_hvp(name):
    # the same rules on a vector (batched tangents, the strong-zero masks on arrays), H v = f''(x) v elementwise
    x = np.array(NEAR_ZERO)
    v = np.linspace(-1.0, 1.0, x.size)
    want = [SECOND[name][0](MP.mpf(a)) * MP.mpf(b) for a, b in zip(x, v)]
    for method, d in SECOND_ORDER.items():
        got = d.hvp(_unary(name))(x, v)
        assert max(ulps(g, w) for g, w in zip(got, want)) <= 4, (method, got)


@pytest.mark.parametrize("name", list(SECOND))
def test_first_derivatives_stay_accurate(name):
    # the plain first-order rules are unchanged; the first derivatives that second-order passes carry now use the
    # same rule (the backend's u / (1 + u)^2, not s(x) s(-x)): all within 2 ulp of the truth
    x = np.array(NEAR_ZERO + [5.0, -30.0])
    if name in ("arcsin", "arccos"):
        x = np.array(NEAR_ZERO + [0.999, -0.9999])
    want = [SECOND[name][1](MP.mpf(a)) for a in x]
    for d in (ds.get_differentiator("reverse"), ds.get_differentiator("forward")):
        got = d.grad(_unary(name))(x)
        assert max(ulps(g, w) for g, w in zip(got, want)) <= 2, (d.name, got)
    # the gradient a nested pass computes on its way (forward-over-forward's inner tangents) agrees too
    rev = ds.get_differentiator("reverse").grad(_unary(name))(x)
    for j in (0, 2):
        _, jv = ds.get_differentiator("forward").jvp(_unary(name))(x, np.eye(x.size)[j])
        assert jv == rev[j]


@pytest.mark.parametrize("name", ["arcsin", "arccos"])
def test_arcsin_arccos_second_derivative_at_0_and_the_ends(name):
    sign = 1.0 if name == "arcsin" else -1.0
    for method, d in SECOND_ORDER.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            H = d.hessian(_unary(name))(np.array([0.0, 1.0, -1.0]))
        assert H[0, 0] == 0.0, method
        assert H[1, 1] == sign * np.inf and H[2, 2] == -sign * np.inf, (method, H)  # x / (1 - x^2)^1.5 at +-1


def test_the_torch_backend_too():
    # the same rules on the torch backend (its one_minus_square and dsigmoid; lifted over torch tensors)
    pytest.importorskip("torch")
    methods = {"reverse": ds.get_differentiator("reverse", backend="torch"),
               "forward": ds.get_differentiator("forward", backend="torch"),
               "forward-over-forward": ds.get_differentiator("forward", backend="torch",
                                                             second_order="forward_over_forward")}
    x = np.array([1e-8, 1e-12, 1e-17])
    for method, d in methods.items():
        for name in SECOND:
            got = np.diagonal(d.hessian(_unary(name))(x))
            want = [SECOND[name][0](MP.mpf(a)) for a in x]
            assert max(ulps(g, w) for g, w in zip(got, want)) <= 4, (method, name, got)
        np.testing.assert_array_equal(d.grad(lse)(np.array([1e16, 1e16])), [0.5, 0.5], err_msg=method)
        np.testing.assert_array_equal(d.hessian(pw)(np.array([0.0, 1.0])), [[0.0, 1.0], [1.0, 0.0]], err_msg=method)


# ----- 3. power at (0, y) -----
def pw(xp, t):
    return xp.power(t[0], t[1])


ALL_METHODS = dict(SECOND_ORDER, symbolic=ds.get_differentiator("symbolic"))


@pytest.mark.parametrize("y, want", [
    # the mixed entry at x = 0 is d/dy (y x^(y-1)) = 0^(y-1) (log x taken as 0 there): 1 at y = 1 (the mixed
    # partial does not exist there: d/dx (x log x) -> -inf), 0 for y > 1, inf for 0 < y < 1; f_xx = y (y-1) 0^(y-2)
    (1.0, [[0.0, 1.0], [1.0, 0.0]]),
    (2.0, [[2.0, 0.0], [0.0, 0.0]]),
    (3.0, [[0.0, 0.0], [0.0, 0.0]]),
    (1.5, [[np.inf, 0.0], [0.0, 0.0]]),
    (0.5, [[-np.inf, np.inf], [np.inf, 0.0]]),
    (0.0, [[0.0, 0.0], [0.0, 0.0]]),
])
def test_power_hessian_at_zero_base_is_symmetric_and_the_same_in_every_method(y, want):
    # before: forward [[0, 0], [1, 0]], reverse [[0, 1], [0, 0]], symbolic [[0, 1], [1, 0]] at (0, 1)
    for method, d in ALL_METHODS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            H = d.hessian(pw)(np.array([0.0, y]))
        np.testing.assert_array_equal(H, want, err_msg=method)


@pytest.mark.parametrize("y, want", [(1.0, [1.0, 0.0]), (2.0, [0.0, 0.0]), (0.5, [np.inf, 0.0]), (0.0, [0.0, 0.0])])
def test_power_gradient_at_zero_base(y, want):
    # d/dx = y 0^(y-1) (1 at y = 1, as x ** 1 = x); d/dy = 0 for y > 0 (the one-sided limit of x^y log x); x ** 0: 0
    for d in (ds.get_differentiator("reverse"), ds.get_differentiator("forward")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            np.testing.assert_array_equal(d.grad(pw)(np.array([0.0, y])), want, err_msg=d.name)


def test_power_hessian_away_from_zero_matches_torch():
    torch = pytest.importorskip("torch")
    theta = np.array([0.7, 1.3, 2.5, -0.4])

    def f(xp, t):
        return xp.sum(xp.power(t[:2], t[2:]) * np.array([1.0, -2.0]))

    def tf(t):
        return (t[:2] ** t[2:] * torch.tensor([1.0, -2.0], dtype=torch.float64)).sum()

    want = torch.autograd.functional.hessian(tf, torch.tensor(theta, dtype=torch.float64)).numpy()
    for method, d in SECOND_ORDER.items():
        np.testing.assert_allclose(d.hessian(f)(theta), want, rtol=1e-14, atol=1e-15, err_msg=method)


# ----- 4. einsum with numpy's broadcasting of size-1 axes -----
EINSUM_CASES = [  # (subscripts, operand shapes): some letter has size 1 in one operand and n in another
    ("ij,j->i", [(2, 2), (1,)]),
    ("ij,j->i", [(2, 1), (3,)]),
    ("ij,jk->ik", [(2, 1), (3, 4)]),
    ("ij,ij->ij", [(2, 1), (1, 3)]),
    ("ij,ij->", [(2, 3), (2, 1)]),
    ("i,ij,j->", [(2,), (1, 3), (3,)]),
    ("bi,bij->bj", [(1, 3), (4, 3, 2)]),
    ("...i,i->...", [(2, 3, 1), (4,)]),
]


def _einsum_case(subscripts, shapes):
    rng = np.random.default_rng(len(subscripts) + sum(map(len, shapes)))
    ops = [rng.standard_normal(s) for s in shapes]
    w = rng.standard_normal(np.einsum(subscripts, *ops).shape)

    def f(xp, *xs):
        y = xp.einsum(subscripts, *xs)
        return xp.sum(y * y * w) if np.ndim(w) else y * y * w
    return ops, w, f


def _torch_grads(subscripts, ops, w, torch):
    ts = [torch.tensor(o, dtype=torch.float64, requires_grad=True) for o in ops]
    y = torch.einsum(subscripts, *ts)
    (y * y * torch.tensor(w, dtype=torch.float64)).sum().backward()
    return [t.grad.numpy() for t in ts]


@pytest.mark.parametrize("subscripts, shapes", EINSUM_CASES, ids=[f"{s}{sh}" for s, sh in EINSUM_CASES])
def test_einsum_broadcasts_size_one_axes_like_numpy(subscripts, shapes):
    # before: reverse mode's "ij,j->i" with b of shape (1,) raised "cannot reshape array of size 2 into shape (2,2)"
    torch = pytest.importorskip("torch")
    ops, w, f = _einsum_case(subscripts, shapes)
    want = _torch_grads(subscripts, ops, w, torch)
    argnums = tuple(range(len(ops)))
    for d in (ds.get_differentiator("reverse"), ds.get_differentiator("reverse", backend="torch"),
              ds.get_differentiator("forward")):
        got = d.grad(f, argnums=argnums)(*ops)
        for g, t, o in zip(got, want, ops):
            assert g.shape == o.shape
            np.testing.assert_allclose(g, t, rtol=1e-13, atol=1e-14, err_msg=f"{d.name} {subscripts}")


@pytest.mark.parametrize("subscripts, shapes", EINSUM_CASES[:4], ids=[f"{s}{sh}" for s, sh in EINSUM_CASES[:4]])
def test_einsum_broadcast_hessian_matches_torch(subscripts, shapes):
    torch = pytest.importorskip("torch")
    ops, w, _ = _einsum_case(subscripts, shapes)
    sizes = [o.size for o in ops]
    cuts = np.cumsum(sizes)[:-1]

    def f(xp, theta):
        xs = [xp.reshape(p, s) for p, s in zip(xp.split(theta, cuts), shapes)]
        y = xp.einsum(subscripts, *xs)
        return xp.sum(y * y * w)

    def tf(theta):
        xs = [p.reshape(s) for p, s in zip(torch.split(theta, sizes), shapes)]
        return (torch.einsum(subscripts, *xs) ** 2 * torch.tensor(w, dtype=torch.float64)).sum()

    theta = np.concatenate([o.reshape(-1) for o in ops])
    want = torch.autograd.functional.hessian(tf, torch.tensor(theta, dtype=torch.float64)).numpy()
    for method, d in SECOND_ORDER.items():
        np.testing.assert_allclose(d.hessian(f)(theta), want, rtol=1e-13, atol=1e-13, err_msg=method)


# ----- 5. the complex step through a dominant softmax -----
def _softmax_objective():
    model = ds.MLP((1, 2), output_activation="softmax")
    obj = ds.Objective(model, "quadratic", np.array([[1.0]]), np.array([[0.3, 0.7]]))
    theta = model.pack({"W0": [[0.0, 40.0]], "b0": [0.0, 0.0]})
    return obj, theta


def _softmax_loss_grad_mp(theta):
    # J = 1/2 sum_k (p_k - t_k)^2, z = x W + b with x = 1, theta = (W00, W01, b0, b1): dJ/dW0j = dJ/dbj = dJ/dz_j
    # = sum_k (p_k - t_k) p_k (delta_kj - p_j), with 1 - p_j written as the other p (no cancellation)
    z = [MP.mpf(theta[0]) + MP.mpf(theta[2]), MP.mpf(theta[1]) + MP.mpf(theta[3])]
    p = _softmax_mp(z)
    t = [MP.mpf(0.3), MP.mpf(0.7)]  # (the float64 targets, as the objective holds them)
    dz = [sum((p[k] - t[k]) * p[k] * (p[1 - j] if k == j else -p[j]) for k in range(2)) for j in range(2)]
    return [dz[0], dz[1], dz[0], dz[1]]


def test_complex_step_through_a_dominant_softmax():
    # before: entries 1 and 3 (W0[0, 1], b0[1]) came out 1.2745e-18, half the truth +2.54901255317495348e-18
    obj, theta = _softmax_objective()
    want = _softmax_loss_grad_mp([float(v) for v in theta])
    assert MP.nstr(want[1], 18) == "2.54901255317495348e-18"
    for kink_check in (True, False):
        cs = ds.get_differentiator("finite_diff", scheme="complex_step", kink_check=kink_check)
        got = cs.value_and_grad(obj)(theta).grad
        assert max(ulps(g, w) for g, w in zip(got, want)) <= 4, (kink_check, got)


def test_complex_softmax_only_for_complex_input():
    z = np.array([[0.5, 40.0, -3.0], [1e3, 1e3 + 1.0, 999.0]])
    composite = np.exp(z - COMPLEX.logsumexp(z, axis=-1, keepdims=True))
    np.testing.assert_array_equal(COMPLEX._softmax(z, axis=-1), composite)  # real input: the composite, bit for bit
    # complex input: Im p_j = p_j (h_j - sum_i p_i h_i), here checked at 50 digits for h on each entry in turn
    for j in range(3):
        h = np.zeros(3)
        h[j] = 1e-20
        got = np.imag(COMPLEX._softmax(z + 1j * h, axis=-1))
        for r in range(2):
            p = _softmax_mp(z[r])
            for k in range(3):
                want = p[k] * ((MP.mpf(h[k])) - sum(pi * MP.mpf(hi) for pi, hi in zip(p, h)))
                assert ulps(got[r, k], want) <= 4 or abs(got[r, k] - float(want)) < 1e-300, (j, r, k)
    # the numpy namespace and a kink tracker on it have none (finite differences on the real axis: the composite)
    assert getattr(NUMPY, "_softmax", None) is None and getattr(KinkTracker(NUMPY), "_softmax", None) is None
    assert getattr(KinkTracker(COMPLEX), "_softmax", None) is not None


@pytest.mark.parametrize("name, options", [("reverse", {}), ("forward", {}),
                                           ("forward", {"second_order": "forward_over_forward"})])
def test_0d_tanh_and_sigmoid_hessians(name, options):
    # the numpy backend's 0-d sigmoid' is a Python float on its first-order path; recorded for a second
    # derivative it must still be a value with a shape (a 0-d theta is the commonest scalar case)
    with mpmath.workdps(50):
        truth = float(mpmath.diff(lambda u: mpmath.tanh(u) / (1 + mpmath.exp(-u)), mpmath.mpf("0.3"), 2))
    d = ds.get_differentiator(name, **options)
    f = lambda xp, t: xp.tanh(t) * xp.sigmoid(t)  # noqa: E731
    assert float(d.hessian(f)(np.array(0.3))) == pytest.approx(truth, rel=1e-14)
    assert float(d.hessian(f)(np.float64(0.3))) == pytest.approx(truth, rel=1e-14)
