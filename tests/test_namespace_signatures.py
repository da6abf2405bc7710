"""xp functions take numpy's arguments in numpy's order, in every differentiator: ``xp.norm(x, 1)`` is
``np.linalg.norm(x, 1)`` (ord second, not axis), and ``xp.clip`` takes None for a missing bound.

Oracles: numpy's own values for the functions, and gradients written out by hand.
"""
import numpy as np
import pytest

import diffsuite as ds

METHODS = [("reverse", {}), ("forward", {}), ("symbolic", {}), ("finite_diff", {"scheme": "central"}),
           ("finite_diff", {"scheme": "complex_step"})]
IDS = ["reverse", "forward", "symbolic", "central", "complex_step"]
M = np.array([[1.0, -2.0, 3.0], [4.0, 5.0, -6.5]])


@pytest.mark.parametrize("name,options", METHODS, ids=IDS)
def test_norm_takes_ord_second_like_numpy(name, options):
    D = ds.get_differentiator(name, **options)
    # the matrix 1-norm: the largest column sum of |entries| (column 2: 3 + 6.5), gradient sign(M) in that column
    res = D.value_and_grad_fn(lambda xp, t: xp.norm(t, 1))(M)
    assert res.value == pytest.approx(np.linalg.norm(M, 1), rel=1e-15)
    expected = np.zeros_like(M)
    expected[:, 2] = np.sign(M[:, 2])
    np.testing.assert_allclose(res.grad, expected, atol=1e-8 if options.get("scheme") == "central" else 1e-15)
    # a vector's inf-norm, ord positional; and axis third, as numpy: row 1-norms
    v = np.array([0.5, -3.0, 2.0])
    assert D.value_and_grad_fn(lambda xp, t: xp.norm(t, np.inf))(v).value == pytest.approx(3.0, rel=1e-15)
    rows = D.value_and_grad_fn(lambda xp, t: xp.sum(xp.norm(t, 1, 1)))(M)
    assert rows.value == pytest.approx(np.linalg.norm(M, 1, 1).sum(), rel=1e-15)
    np.testing.assert_allclose(rows.grad, np.sign(M), atol=1e-8 if options.get("scheme") == "central" else 1e-15)


@pytest.mark.parametrize("name,options", METHODS, ids=IDS)
@pytest.mark.parametrize("lo,hi", [(0.0, None), (None, 0.5), (None, None)])
def test_clip_takes_none_for_a_missing_bound(name, options, lo, hi):
    D = ds.get_differentiator(name, **options)
    t = np.array([-1.5, 0.2, 0.9])
    res = D.value_and_grad_fn(lambda xp, x: xp.sum(xp.clip(x, lo, hi) ** 2))(t)
    clipped = np.clip(t, -np.inf if lo is None else lo, np.inf if hi is None else hi)
    assert res.value == pytest.approx(float(np.sum(clipped ** 2)), rel=1e-15)
    # d/dx clip(x)^2 = 2 clip(x) where x is inside the bounds, 0 where a bound holds it (no entry sits on a bound)
    inside = (clipped == t)
    np.testing.assert_allclose(res.grad, np.where(inside, 2.0 * t, 0.0),
                               atol=1e-8 if options.get("scheme") == "central" else 1e-15)


W = np.array([[0.5, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, 1.0], [-2.0, 0.75, 1.0, 0.5]])
SUBLIST_FORMS = [
    ("explicit output", lambda xp, t: xp.einsum(t, [0, 1], W, [1, 2], [0, 2])),
    ("implicit output", lambda xp, t: xp.einsum(t, [0, 1], W, [1, 2])),
    ("ellipsis", lambda xp, t: xp.einsum(t, [Ellipsis, 1], W, [1, 2], [Ellipsis, 2])),
]


@pytest.mark.parametrize("name,options", METHODS, ids=IDS)
@pytest.mark.parametrize("form,product", SUBLIST_FORMS, ids=[f for f, _ in SUBLIST_FORMS])
def test_einsum_takes_numpys_sublist_form(name, options, form, product):
    """sum((t W)^2): value by numpy, gradient 2 (t W) W^T by hand."""
    t = np.array([[1.0, -0.5, 2.0], [0.25, 1.5, -1.0]])
    res = ds.get_differentiator(name, **options).value_and_grad_fn(lambda xp, t: xp.sum(product(xp, t) ** 2))(t)
    assert res.value == pytest.approx(float(np.sum((t @ W) ** 2)), rel=1e-14)
    np.testing.assert_allclose(res.grad, 2.0 * (t @ W) @ W.T, rtol=1e-6 if options.get("scheme") == "central" else 1e-13)


@pytest.mark.parametrize("call,error", [
    (lambda xp, t: xp.einsum([0, 1], t, [1, 2], W), TypeError),  # operands and sublists swapped
    (lambda xp, t: xp.einsum(t, [0, 1.5]), ValueError),  # a label that is no int
    (lambda xp, t: xp.einsum(t, [0, 60]), ValueError),  # beyond the 52 letters
])
def test_a_bad_sublist_is_named(call, error):
    with pytest.raises(error, match="einsum"):
        ds.get_differentiator("reverse").grad(lambda xp, t: xp.sum(call(xp, t)))(np.ones((2, 3)))


@pytest.mark.parametrize("name,options", METHODS, ids=IDS)
def test_var_with_no_degree_of_freedom_is_refused_in_every_differentiator(name, options):
    """numpy itself returns inf or nan with a RuntimeWarning (finite differences evaluated f that way)."""
    t = np.array([[2.0, 1.0], [1.0, 2.0]])
    D = ds.get_differentiator(name, **options)
    for fn in (lambda xp, t: xp.sum(xp.std(t, axis=0, ddof=2)), lambda xp, t: xp.var(t, ddof=4)):
        with pytest.raises(ValueError, match="leave 0 degrees of freedom"):
            D.value_and_grad_fn(fn)(t)
    # one degree of freedom is fine: var over axis 0 with ddof=1, d/dx = 2 (x - mean) / (n - 1), by hand
    res = D.value_and_grad_fn(lambda xp, t: xp.sum(xp.var(t, axis=0, ddof=1)))(t)
    assert res.value == pytest.approx(1.0, rel=1e-15)
    np.testing.assert_allclose(res.grad, [[1.0, -1.0], [-1.0, 1.0]], atol=1e-8 if options.get("scheme") == "central" else 1e-15)


@pytest.mark.parametrize("name,options", [("reverse", {}), ("forward", {}), ("reverse", {"backend": "torch"})],
                         ids=["reverse", "forward", "reverse-torch"])
@pytest.mark.parametrize("fn", [lambda xp, t: xp.sum(np.tanh(np.asarray(t))),
                                lambda xp, t: xp.sum(np.array([t[0], t[1]])),
                                lambda xp, t: np.asarray(t).sum()], ids=["asarray", "array of entries", "asarray sum"])
def test_numpy_arrays_of_traced_values_are_refused_with_the_xp_spelling(name, options, fn):
    """Before: np.asarray(t) made an object array of traced entries (np.tanh then failed with 'no callable tanh
    method'; np.sum quietly recorded one primitive per entry); on torch a bare conversion error."""
    if options.get("backend") == "torch":
        pytest.importorskip("torch")
    with pytest.raises(TypeError, match="numpy cannot make an array of a traced value.*xp.stack.*xp.asarray only on one value"):
        ds.get_differentiator(name, **options).grad(fn)(np.array([0.5, -1.0]))


def test_the_xp_spellings_work_where_numpys_are_refused():
    """xp.asarray passes a traced value through; xp.stack combines entries: d/dt sum(tanh t) = 1 - tanh^2 t."""
    t = np.array([0.5, -1.0])
    for fn in (lambda xp, t: xp.sum(xp.tanh(xp.asarray(t))), lambda xp, t: xp.sum(xp.tanh(xp.stack([t[0], t[1]])))):
        np.testing.assert_allclose(ds.get_differentiator("reverse").grad(fn)(t), 1 - np.tanh(t) ** 2, rtol=1e-15)


@pytest.mark.parametrize("name,options", METHODS, ids=IDS)
def test_logsumexp_reduces_every_axis_by_default_as_scipy(name, options):
    """scipy.special.logsumexp(t) sums over all entries; the gradient is the softmax of all entries, by hand."""
    from scipy.special import logsumexp
    t = np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]])
    res = ds.get_differentiator(name, **options).value_and_grad_fn(lambda xp, t: xp.logsumexp(t))(t)
    assert res.value == pytest.approx(float(logsumexp(t)), rel=1e-15)
    np.testing.assert_allclose(res.grad, np.exp(t - logsumexp(t)), rtol=1e-7 if options.get("scheme") == "central"
                               else 1e-14)
    rows = ds.get_differentiator(name, **options).value_and_grad_fn(
        lambda xp, t: xp.sum(xp.logsumexp(t, axis=-1)))(t)  # one row at a time, as the losses ask for it
    assert rows.value == pytest.approx(float(np.sum(logsumexp(t, axis=-1))), rel=1e-15)


@pytest.mark.parametrize("name,options", METHODS[:3], ids=IDS[:3])
def test_sublist_labels_name_axes_as_numpy_does(name, options):
    """numpy reads label 0 as 'A' and 26 as 'a': with an implicit output the axes come out in that order (labels
    30 and 0 give shape (3, 2) for a (2, 3) operand: a transpose). Oracle: numpy's own einsum."""
    M = np.array([[1.0, -2.0, 0.5], [3.0, 0.25, -1.0]])
    want = np.einsum(M, [30, 0])
    assert want.shape == (3, 2)
    D = ds.get_differentiator(name, **options)
    weights = np.arange(6.0).reshape(3, 2)
    res = D.value_and_grad_fn(lambda xp, t: xp.sum(xp.einsum(t, [30, 0]) * weights))(M)
    assert res.value == pytest.approx(float(np.sum(want * weights)), rel=1e-15)
    np.testing.assert_array_equal(res.grad, weights.T)  # d/dM sum(M^T * w) = w^T
