"""Forward mode: pow's JVP at the edges of its domain, indexing with advanced indices, a function returning None.

Oracles: hand values written out per case (pow, following the conventions of docs/language.md, "power(x,
y)", which reverse mode's VJPs implement), and torch.autograd in float64 for indexing, where the function is
built from the flat positions that numpy's indexing selects (so torch's own indexing rules take no part).
Forward mode is never its own oracle.
"""
import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import diffsuite as ds  # noqa: E402

BACKENDS = ["numpy", "torch"]
SECOND_ORDER = ["forward_over_reverse", "forward_over_forward"]


def _fwd(backend="numpy", **kw):
    return ds.get_differentiator("forward", backend=backend, **kw)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():  # 0 ** -1 and log(0) in the local derivatives that strong zeros mask out
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


# ----- pow with a traced exponent, power with a constant one -----
LN2 = math.log(2.0)

# (name, f(xp, t), theta, gradient by hand)
POW_CASES = [
    ("0 ** 1", lambda xp, t: xp.power(t[0], t[1]), [0.0, 1.0], [1.0, 0.0]),        # d/dx = 1 * 0^0; d/dy = 0 at x = 0
    ("0 ** 2", lambda xp, t: xp.power(t[0], t[1]), [0.0, 2.0], [0.0, 0.0]),
    ("0 ** 0.5", lambda xp, t: xp.power(t[0], t[1]), [0.0, 0.5], [math.inf, 0.0]),
    ("0 ** 0", lambda xp, t: xp.power(t[0], t[1]), [0.0, 0.0], [0.0, 0.0]),        # x ** 0: 0 in x, also at 0
    ("3 ** 0", lambda xp, t: t[0] ** t[1], [3.0, 0.0], [0.0, math.log(3.0)]),
    ("2 ** 3", lambda xp, t: t[0] ** t[1], [2.0, 3.0], [12.0, 8.0 * LN2]),
    ("(-3) ** 2", lambda xp, t: t[0] ** t[1], [-3.0, 2.0], [-6.0, math.nan]),      # log(-3): nan in y only
    ("0.0 ** t (a number base)", lambda xp, t: xp.sum(0.0 ** t), [1.0, 2.0], [0.0, 0.0]),
    ("2.0 ** t", lambda xp, t: xp.sum(2.0 ** t), [0.0, 1.0], [LN2, 2.0 * LN2]),
    ("broadcast exponent", lambda xp, t: xp.sum(xp.power(t[:2], t[2])), [0.0, 2.0, 3.0], [0.0, 12.0, 8.0 * LN2]),
    ("t ** 0.5 at 0", lambda xp, t: xp.sum(t ** 0.5), [0.0, 4.0], [math.inf, 0.25]),  # no 0 * inf in t[1]'s direction
    ("t ** -1 at 0", lambda xp, t: xp.sum(t ** -1.0), [0.0, 2.0], [-math.inf, -0.25]),
    ("where(t > 0, t ** 0.5, 0)", lambda xp, t: xp.sum(xp.where(t > 0, t ** 0.5, 0.0)), [0.0, 4.0], [0.0, 0.25]),
    ("where(t > 0, t ** t, 1)", lambda xp, t: xp.sum(xp.where(t > 0, t ** t, 1.0)), [0.0, 1.0], [0.0, 1.0]),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, f, theta, expected", POW_CASES, ids=[c[0] for c in POW_CASES])
def test_pow_gradient_by_hand(backend, name, f, theta, expected):
    g = _fwd(backend).grad(f)(np.array(theta))
    np.testing.assert_allclose(g, expected, rtol=1e-14, atol=0)  # (nan == nan and inf == inf here)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pow_jacobian_keeps_each_direction_apart(backend):
    # x ** y elementwise at x = (0, -3), y = (1, 2): every direction its own column, a nan in d/dy[1] only
    J = _fwd(backend, directions_per_pass=3).jacobian(lambda xp, t: xp.power(t[:2], t[2:]))(
        np.array([0.0, -3.0, 1.0, 2.0]))
    expected = [[1.0, 0.0, 0.0, 0.0],
                [0.0, -6.0, 0.0, math.nan]]
    np.testing.assert_allclose(J, expected, rtol=1e-14, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pow_jvp_along_x_alone_is_finite_where_log_x_is_nan(backend):
    value, t = _fwd(backend).jvp(lambda xp, t: t[0] ** t[1])(np.array([-3.0, 2.0]), np.array([1.0, 0.0]))
    assert value == 9.0 and t == -6.0


# forward-over-reverse runs pow's VJPs on the lifted backend (reverse/lifted.py; its ``power`` records pow or power)
POW_SECOND_ORDER = ["forward_over_forward", "forward_over_reverse"]


@pytest.mark.parametrize("second_order", POW_SECOND_ORDER)
def test_pow_hessian_no_nan_from_another_direction(second_order):
    # f = x ** y at (-3, 2): d2f/dx2 = y (y - 1) x^(y-2) = 2; every entry with a y holds log(-3) = nan
    H = _fwd(second_order=second_order).hessian(lambda xp, t: t[0] ** t[1])(np.array([-3.0, 2.0]))
    assert H[0, 0] == 2.0
    assert np.isnan(H[0, 1]) and np.isnan(H[1, 0]) and np.isnan(H[1, 1])


@pytest.mark.parametrize("second_order", POW_SECOND_ORDER)
def test_pow_hessian_at_a_smooth_point(second_order):
    # f = x ** y at (2, 3): f_xx = y (y-1) x^(y-2) = 12, f_xy = x^(y-1) (1 + y ln x) = 4 (1 + 3 ln 2),
    # f_yy = x^y ln^2 x = 8 ln^2 2
    H = _fwd(second_order=second_order).hessian(lambda xp, t: t[0] ** t[1])(np.array([2.0, 3.0]))
    fxy = 4.0 * (1.0 + 3.0 * LN2)
    np.testing.assert_allclose(H, [[12.0, fxy], [fxy, 8.0 * LN2 ** 2]], rtol=1e-13)


# The strong zeros mask a zero tangent only where the local derivative is inf or nan: nested, the inner
# tangent of t * t at 0 is 0 but its own tangent is not, and the second derivative comes through it.
NESTED_CASES = [
    ("(t^2 + 1) ** 0.5", lambda xp, t: xp.sum((t * t + 1.0) ** 0.5), 1.0),                  # (1 + t^2)^-1/2 ...
    ("power(t^2 + 1, 0.5 traced)", lambda xp, t: xp.sum(xp.power(t * t + 1.0, 0.0 * t + 0.5)), 1.0),
    ("power(2, t^2)", lambda xp, t: xp.sum(xp.power(0.0 * t + 2.0, t * t)), 2.0 * LN2),          # 2^(t^2) 2t ln 2
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, f, expected", NESTED_CASES, ids=[c[0] for c in NESTED_CASES])
def test_pow_second_derivative_through_a_zero_inner_tangent(backend, name, f, expected):
    H = _fwd(backend, second_order="forward_over_forward").hessian(f)(np.array([0.0]))
    np.testing.assert_allclose(H, [[expected]], rtol=1e-15)


# ----- indexing: the tangent's direction axes must not move the indexed axes -----
_MASK3 = np.arange(24).reshape(2, 3, 4) % 3 == 0
_MASK2 = np.array([[True, False, True, False], [False, True, True, False], [True, True, False, False]])

# (id, index) into an array shaped (2, 3, 4)
INDICES = [
    ("adv-slice-adv", ([0, 1], slice(None), [2, 3])),
    ("int-slice-adv", (0, slice(None), [1, 2])),
    ("negative ints", (-1, slice(None), [-1, -3])),
    ("adv adjacent at front", ([1, 0], [2, 1])),
    ("adv adjacent in the middle", (slice(None), [0, 2], [1, 3])),
    ("one adv after a slice", (slice(None), [2, 0, 1])),
    ("a lone list", [1, 0, 1]),
    ("ellipsis then adv", (Ellipsis, [1, 3])),
    ("adv, ellipsis, adv", ([0, 1], Ellipsis, [2, 3])),
    ("ellipsis between int and adv", (1, Ellipsis, np.array([3, 0]))),
    ("None before int-slice-adv", (None, 0, slice(None), [1, 2])),
    ("None separating adv", (slice(None), [0, 2], None, 1)),
    ("ellipsis, None, adv", (Ellipsis, None, [0, -1])),
    ("broadcast 2-d index arrays", ([[0], [1]], slice(None), [[1, 2, 3]])),
    ("repeated indices", ([0, 0, 1], slice(None), [1, 1, 2])),
    ("reversed slice with adv", (slice(None, None, -1), slice(1, None), [0, 3])),
    ("full boolean mask", _MASK3),
    ("2-d mask after a slice", (slice(None), _MASK2)),
    ("1-d mask, slice, adv", (np.array([True, False]), slice(None), [1, 2])),
    ("ellipsis then 2-d mask", (Ellipsis, _MASK2)),
    ("basic: int and slices", (1, slice(None, 2), slice(None, None, 2))),
    ("basic: ellipsis and None", (Ellipsis, None, 2)),
]
_IDS = [name for name, _ in INDICES]
SHAPE = (2, 3, 4)
THETA = np.linspace(-1.3, 2.1, 24).reshape(SHAPE)


def _positions(index):
    """The flat positions of a (2, 3, 4) array that ``index`` selects, laid out as numpy lays out the result."""
    return np.arange(24).reshape(SHAPE)[index]


def _weights(index):
    pos = _positions(index)
    return 1.0 + np.arange(pos.size, dtype=np.float64).reshape(pos.shape) / 7.0  # a layout-dependent weighting


def _torch_f(index):
    pos, w = torch.as_tensor(_positions(index)), torch.as_tensor(_weights(index))
    return lambda t: torch.sum(w * t.reshape(-1)[pos] ** 3)


def _ours_f(index):
    w = _weights(index)
    return lambda xp, t: xp.sum(w * t[index] ** 3)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, index", INDICES, ids=_IDS)
def test_indexing_gradient_matches_torch(backend, name, index):
    t = torch.tensor(THETA, requires_grad=True)
    _torch_f(index)(t).backward()
    g = _fwd(backend, directions_per_pass=7).grad(_ours_f(index))(THETA)  # several passes of 7 directions
    np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, index", INDICES, ids=_IDS)
def test_indexing_jacobian_matches_torch(backend, name, index):
    pos = torch.as_tensor(_positions(index))
    expected = torch.autograd.functional.jacobian(lambda t: t.reshape(-1)[pos] * 1.0, torch.tensor(THETA))
    J = _fwd(backend).jacobian(lambda xp, t: t[index] * 1.0)(THETA)
    np.testing.assert_array_equal(J, expected.numpy())


@pytest.mark.parametrize("second_order", SECOND_ORDER)
@pytest.mark.parametrize("name, index", INDICES, ids=_IDS)
def test_indexing_hessian_matches_torch(second_order, name, index):
    # forward-over-reverse pushes the directions through getitem's VJP (scatter_add), forward-over-forward
    # through getitem twice
    expected = torch.autograd.functional.hessian(_torch_f(index), torch.tensor(THETA))
    H = _fwd(second_order=second_order, directions_per_pass=10).hessian(_ours_f(index))(THETA)
    np.testing.assert_allclose(H, expected.numpy(), rtol=1e-13, atol=1e-14)


# ----- a function that returns None -----
def _returns_none(xp, t):
    xp.sum(t * t)  # (the forgotten return)


@pytest.mark.parametrize("second_order", SECOND_ORDER)
def test_returning_none_raises(second_order):
    d = _fwd(second_order=second_order)
    theta, v = np.array([1.0, 2.0]), np.array([1.0, 0.0])
    calls = [lambda: d.grad(_returns_none)(theta), lambda: d.value_and_grad_fn(_returns_none)(theta),
             lambda: d.jacobian(_returns_none)(theta), lambda: d.jvp(_returns_none)(theta, v),
             lambda: d.vjp(_returns_none)(theta), lambda: d.hessian(_returns_none)(theta),
             lambda: d.hvp(_returns_none)(theta, v)]
    for call in calls:
        with pytest.raises(TypeError, match="_returns_none returned None"):
            call()
