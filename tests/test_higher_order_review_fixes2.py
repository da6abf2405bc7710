"""Second-order and tangent-input faults found by the twelfth session's review; each test failed before its fix.
Expected values are written out by hand."""
import numpy as np
import pytest

import diffsuite as ds
from diffsuite.testing import check_hessian

# f = sum(w^3) + 2 sum(b^2): H = diag(6 w, 4) blockwise, so H v at w = [1, 2], v_w = [1, 0], v_b = 0 is [6, 0]
THETA = {"l1": {"w": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0])}}
V_OTHER_ORDER = {"l1": {"b": [0.0, 0.0], "w": [1.0, 0.0]}}


def f(xp, p):
    return xp.sum(p["l1"]["w"] ** 3) + 2 * xp.sum(p["l1"]["b"] ** 2)


@pytest.mark.parametrize("name", ["forward", "reverse"])
def test_nested_v_is_paired_by_key_not_position(name):
    hv = ds.get_differentiator(name).hvp(f)(THETA, V_OTHER_ORDER)
    np.testing.assert_array_equal(hv["l1"]["w"], [6.0, 0.0])
    np.testing.assert_array_equal(hv["l1"]["b"], [0.0, 0.0])


def test_nested_tangent_is_paired_by_key_not_position():
    # jvp = grad . t = 3 w_0^2 * 1 = 3
    _, jt = ds.get_differentiator("forward").jvp(f)(THETA, V_OTHER_ORDER)
    assert jt == 3.0


@pytest.mark.parametrize("v, words", [({"l1": {"x": [0, 0], "w": [1, 0]}}, "missing ['b']; unexpected ['x']"),
                                      ({"l1": [[0, 0], [1, 0]]}, "must be a dict")])
def test_a_v_of_another_structure_is_refused(v, words):
    with pytest.raises(ValueError) as e:
        ds.get_differentiator("reverse").hvp(f)(THETA, v)
    assert words in str(e.value)


@pytest.mark.parametrize("theta, t", [({"a": {"b": np.array([1.0, 2.0])}}, {"a": {"b": np.array([1.0, 0.0])}}),
                                      ((np.array([1.0, 2.0]),), (np.array([1.0, 0.0]),))])
def test_a_one_leaf_container_takes_a_tangent_of_its_own_structure(theta, t):
    def g(xp, p):
        leaf = p["a"]["b"] if isinstance(p, dict) else p[0]
        return xp.sum(leaf ** 2)
    _, jt = ds.get_differentiator("forward").jvp(g)(theta, t)
    assert jt == 2.0  # 2 * 1 * 1


def test_reverse_jvp_keeps_an_infinite_directional_derivative():
    # d/dt sqrt(t) at 0 along 1 is +inf; at 4 it is 1/(2*2) = 0.25
    with np.errstate(divide="ignore"):
        _, jt = ds.get_differentiator("reverse").jvp(lambda xp, t: xp.sqrt(t))(np.array([0.0, 4.0]), np.ones(2))
    assert jt[0] == np.inf and jt[1] == 0.25


@pytest.mark.parametrize("scheme", ["forward", "backward", "five_point"])
def test_every_real_difference_scheme_gets_the_second_difference_tolerance(scheme):
    # the same four-point second difference as central's: the same tolerance, and the check passes
    report = check_hessian(lambda xp, t: xp.sum(xp.sin(t) * t[0]), np.array([0.3, 0.5, 0.7]),
                           methods=[ds.get_differentiator("finite_diff", scheme=scheme)])
    assert report.results[0].rtol == 1e-4 and report.passed


def test_a_reference_hessian_of_the_wrong_size_is_named():
    with pytest.raises(ValueError, match=r"3x3 entries.*got shape \(2, 2\)"):
        check_hessian(lambda xp, t: xp.sum(t ** 3), np.array([0.3, 0.5, 0.7]), reference=np.eye(2))


@pytest.mark.parametrize("name, options", [("reverse", {}), ("forward", {}),
                                           ("forward", {"second_order": "forward_over_forward"}), ("symbolic", {}),
                                           ("finite_diff", {})])
def test_asarray_of_a_traced_value_is_the_value_in_every_method(name, options):
    # f(t) = sum(t^3): gradient 3 t^2 = [3, 12], Hessian diag(6 t) = diag(6, 12), whatever asarray does to an array
    d = ds.get_differentiator(name, **options)
    f3 = lambda xp, t: xp.sum(xp.asarray(t) ** 3)  # noqa: E731
    theta = np.array([1.0, 2.0])
    np.testing.assert_allclose(d.grad(f3)(theta), [3.0, 12.0], rtol=1e-7)
    np.testing.assert_allclose(d.hessian(f3)(theta), [[6.0, 0.0], [0.0, 12.0]], rtol=1e-5, atol=1e-6)
