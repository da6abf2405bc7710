"""The symbolic differentiator's second review: nine faults, each pinned by an oracle outside diffsuite.

Oracles: mpmath at 50 digits (the sigmoid tails, the constants beyond float64's range), hand calculation
(masks, cache keys, infinite masks), numpy's own behaviour (axis errors, a fractional power of a negative
number) and the docs' promises (docs/symbolic.md: the last fallback only where the code is undefined; kernels
keyed by value, never stale; error messages that name the function and say what to do).
"""
import dataclasses
import functools
import math
import warnings

import mpmath
import numpy as np
import pytest
import sympy as sp

import diffsuite as ds
from diffsuite.differentiators.symbolic import _value_key
from diffsuite.differentiators.symbolic.codegen import Kernel, generate_source

SYM = ds.get_differentiator("symbolic")
ENGINES = ["sympy", "symengine"]


def engine(name):
    if name == "symengine":
        pytest.importorskip("symengine")
    return ds.get_differentiator("symbolic", engine=name)


def _sigmoid_derivs(x):
    """(sigmoid'(x), sigmoid''(x)) at 50 digits."""
    with mpmath.workdps(50):
        s = 1 / (1 + mpmath.exp(-mpmath.mpf(x)))
        return float(s * (1 - s)), float(s * (1 - s) * (1 - 2 * s))


# ----- 1. a where-guarded division cannot poison the overflow fallbacks -----
SINC = lambda xp, t: xp.sigmoid(t[0]) + xp.where(t[1] != 0, xp.sin(t[1]) / t[1], 1.0)  # noqa: E731


@pytest.mark.parametrize("name", ENGINES)
@pytest.mark.parametrize("x", [-400.0, -700.0, -800.0])
def test_guarded_division_beside_an_overflow(name, x):
    """CSE computes 1/t1 unconditionally; at t1 = 0 it is the untaken branch's and must be discarded. The truth
    (mpmath): 1.9151695967140057e-174 at -400, 9.8596765437597708e-305 at -700, below float64's range at -800."""
    d1, _ = _sigmoid_derivs(x)
    assert {-400.0: 1.9151695967140057e-174, -700.0: 9.8596765437597708e-305, -800.0: 0.0}[x] == d1
    g = engine(name).value_and_grad_fn(SINC)(np.array([x, 0.0])).grad
    assert g[1] == 0.0 and math.isclose(g[0], d1, rel_tol=1e-14, abs_tol=0.0)


def test_guarded_division_beside_an_overflow_hessian():
    x = -400.0
    _, d2 = _sigmoid_derivs(x)
    H = SYM.hessian(SINC)(np.array([x, 0.0]))
    assert math.isclose(H[0, 0], d2, rel_tol=1e-14)
    # d^2/dt1^2 of the selected branch (the constant 1) is 0; the cross terms are 0
    assert H[0, 1] == H[1, 0] == H[1, 1] == 0.0


def test_the_wide_kernel_follows_ieee_where_the_code_is_undefined():
    """The docs' promise: x / 0 is +-inf and 0 / 0 nan in the wide rerun too (numpy's values), not an exception."""
    x = sp.Symbol("x", real=True)
    kernel = Kernel(generate_source(["x"], [], [1 / x, -x ** -2, sp.sin(x) / x]))
    with pytest.raises(ZeroDivisionError):
        kernel.fast([0.0])
    value, grads = kernel.wide([0.0])
    assert value == math.inf and grads[0] == -math.inf and math.isnan(grads[1])


# ----- 2. an argument object mutated between calls -----
class Cfg:
    lam = 0.1


@dataclasses.dataclass
class DataCfg:
    lam: float


def test_mutated_argument_object_is_not_stale():
    """grad of sum(t^2) lam is 2 t lam (by hand): 0.2 t, then 1.0 t after lam = 0.5."""
    t = np.array([1.0, 2.0])
    cfg = Cfg()
    vg = SYM.value_and_grad_fn(lambda xp, t, c: xp.sum(t ** 2) * c.lam)
    np.testing.assert_allclose(vg(t, cfg).grad, [0.2, 0.4], rtol=1e-15)
    cfg.lam = 0.5
    np.testing.assert_array_equal(vg(t, cfg).grad, [1.0, 2.0])
    h = SYM.hessian(lambda xp, t, c: xp.sum(t ** 2) * c.lam)
    np.testing.assert_array_equal(h(t, cfg), np.eye(2))
    cfg.lam = 2.0
    np.testing.assert_array_equal(h(t, cfg), 4 * np.eye(2))
    assert h.stats["cached"] is False  # (a user's object has no value key: built afresh, docs/symbolic.md)


def test_dataclass_arguments_are_keyed_by_their_fields():
    """A dataclass is read field by field at every call: cached per value, never stale (hand: 2 t lam)."""
    t = np.array([1.0, 2.0])
    cfg = DataCfg(0.5)
    h = SYM.hessian(lambda xp, t, c: xp.sum(t ** 2) * c.lam)
    np.testing.assert_array_equal(h(t, cfg), np.eye(2))
    np.testing.assert_array_equal(h(t, DataCfg(0.5)), np.eye(2))
    assert h.stats["cached"] is True
    cfg.lam = 1.5
    np.testing.assert_array_equal(h(t, cfg), 3 * np.eye(2))
    assert h.stats["cached"] is False


def test_value_keys_only_for_plain_values():
    assert _value_key(Cfg()) is None and _value_key(lambda: 0) is None and _value_key([Cfg()]) is None
    assert _value_key((1, "a", None, np.int64(3), np.bool_(True))) is not None
    assert _value_key(1) != _value_key(True) != _value_key(1.0)
    assert _value_key(DataCfg(0.5)) == _value_key(DataCfg(0.5)) != _value_key(DataCfg(0.25))


# ----- 3. sum / mean with an axis out of range or repeated -----
@pytest.mark.parametrize("fn", ["sum", "mean"])
@pytest.mark.parametrize("axis", [2, -3, (0, 2)])
def test_reduction_axis_out_of_range_raises_as_numpy(fn, axis):
    with pytest.raises(ValueError):  # numpy's own behaviour: AxisError, a ValueError
        getattr(np, fn)(np.ones((2, 2)), axis=axis)
    f = lambda xp, t: xp.sum(getattr(xp, fn)(xp.reshape(t, (2, 2)), axis=axis))  # noqa: E731
    with pytest.raises(ValueError, match=f"xp.{fn}: axis"):
        SYM.grad(f)(np.arange(4.0))


@pytest.mark.parametrize("fn", ["sum", "mean"])
def test_reduction_repeated_axis_raises_as_numpy(fn):
    with pytest.raises(ValueError, match="duplicate"):
        getattr(np, fn)(np.ones((2, 2)), axis=(0, 0))
    f = lambda xp, t: xp.sum(getattr(xp, fn)(xp.reshape(t, (2, 2)), axis=(0, 0)))  # noqa: E731
    with pytest.raises(ValueError, match=f"xp.{fn}: duplicate"):
        SYM.grad(f)(np.arange(4.0))


def test_reduction_negative_axis_in_range():
    """sum over axis -1 of [[0, 1], [2, 3]] weighted by (1, 10): 1 + 50 = 51; gradient by hand."""
    f = lambda xp, t: xp.sum(xp.sum(xp.reshape(t, (2, 2)), axis=-1) * np.array([1.0, 10.0]))  # noqa: E731
    r = SYM.value_and_grad_fn(f)(np.arange(4.0))
    assert r.value == 51.0
    np.testing.assert_array_equal(r.grad, [1.0, 1.0, 10.0, 10.0])


# ----- 4. a fractional power of a negative number -----
@pytest.mark.parametrize("name", ENGINES)
def test_fractional_power_of_a_negative_number_is_nan(name):
    """numpy: (-8.0) ** (1/3) is nan; d/dt t^(1/3) at 8 is (1/3) 8^(-2/3) = 1/12 (by hand)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.isnan(np.float64(-8.0) ** (1 / 3))
    r = engine(name).value_and_grad_fn(lambda xp, t: xp.sum(t ** (1 / 3)))(np.array([-8.0, 8.0]))
    assert np.isnan(r.value) and np.isnan(r.grad[0])
    assert math.isclose(r.grad[1], 1 / 12, rel_tol=1e-15)


def test_fractional_power_beside_an_overflow():
    """The wide rerun gives nan for the negative base too (not a complex number, not an exception); sigmoid'(-800)
    underflows to 0 (mpmath: 3.7e-348)."""
    f = lambda xp, t: xp.sigmoid(t[0]) + t[1] ** 1.5  # noqa: E731
    r = SYM.value_and_grad_fn(f)(np.array([-800.0, -4.0]))
    assert r.grad[0] == 0.0 and np.isnan(r.grad[1]) and np.isnan(r.value)
    r = SYM.value_and_grad_fn(f)(np.array([-800.0, 4.0]))
    assert r.value == 8.0 and r.grad[1] == 3.0  # 4^1.5 = 8, 1.5 * 4^0.5 = 3


# ----- 5. constants folded outside float64's range -----
@pytest.mark.parametrize("name", ENGINES)
def test_constants_below_float64s_range(name):
    """1e-200 * 1e-200 * e^700 (the binary values of the literals; mpmath at 50 digits) = 1.0142320547350045e-96,
    the value and the derivative alike."""
    with mpmath.workdps(50):
        truth = float(mpmath.mpf(1e-200) ** 2 * mpmath.exp(700))
    assert truth == 1.0142320547350045e-96
    r = engine(name).value_and_grad_fn(lambda xp, t: xp.sum(1e-200 * (1e-200 * xp.exp(t))))(np.array([700.0]))
    assert math.isclose(r.value, truth, rel_tol=1e-15) and math.isclose(r.grad[0], truth, rel_tol=1e-15)


def test_constants_beyond_float64s_range():
    """1e200 * 1e200 * e^-700 (mpmath at 50 digits): an integer constant too large for a float."""
    with mpmath.workdps(50):
        truth = float(mpmath.mpf(1e200) ** 2 * mpmath.exp(-700))
    r = SYM.value_and_grad_fn(lambda xp, t: xp.sum(1e200 * (1e200 * xp.exp(-t))))(np.array([700.0]))
    assert math.isclose(r.value, truth, rel_tol=1e-15) and math.isclose(r.grad[0], -truth, rel_tol=1e-15)


# ----- 6. masks combined, and used as numbers -----
T6 = np.array([0.5, 2.0, -1.0])
MASK_CASES = {  # f, the gradient at T6 by hand
    "and": (lambda xp, t: xp.sum(xp.where((t > 0) & (t < 1), t ** 2, t)), [1.0, 1.0, 1.0]),
    "or": (lambda xp, t: xp.sum(xp.where((t < 0) | (t > 1), t ** 2, t)), [1.0, 4.0, -2.0]),
    "invert": (lambda xp, t: xp.sum(xp.where(~(t > 0), t ** 2, t)), [1.0, 1.0, -2.0]),
    "xor": (lambda xp, t: xp.sum(xp.where((t > 0) ^ (t > 1), 3 * t, t)), [3.0, 1.0, 1.0]),
    "logical_and": (lambda xp, t: xp.sum(xp.where(np.logical_and(t > 0, t < 1), t ** 2, t)), [1.0, 1.0, 1.0]),
    "logical_or": (lambda xp, t: xp.sum(xp.where(np.logical_or(t < 0, t > 1), t ** 2, t)), [1.0, 4.0, -2.0]),
    "logical_not": (lambda xp, t: xp.sum(xp.where(np.logical_not(t > 0), t ** 2, t)), [1.0, 1.0, -2.0]),
    "constant mask": (lambda xp, t: xp.sum(xp.where((t > 0) & np.array([True, False, True]), t ** 2, t)),
                      [1.0, 1.0, 1.0]),
    "times a mask": (lambda xp, t: xp.sum(t * (t > 0)), [1.0, 1.0, 0.0]),
    "sum of a mask": (lambda xp, t: xp.sum(t ** 2) + xp.sum(t > 0), [1.0, 4.0, -2.0]),
    "where between masks": (lambda xp, t: xp.sum(xp.where(xp.where(t > 1, t < 3, t < 0), t ** 2, t)),
                            [1.0, 4.0, -2.0]),
    "float condition": (lambda xp, t: xp.sum(xp.where(np.array([1.0, 0.0, 2.0]), t ** 2, t)), [1.0, 1.0, -2.0]),
    "mask as condition after arithmetic": (lambda xp, t: xp.sum(xp.where((t > 0) * 1.0, t ** 2, 0.0)),
                                           [1.0, 4.0, 0.0]),
    # sigmoid(-1600 t0) at t0 = 0.5 overflows the float kernel; its derivative, 1600 sigmoid'(-800) = 6e-345
    # (mpmath), is below float64's range: 0
    "beside an overflow": (lambda xp, t: xp.sigmoid(-1600.0 * t[0]) + xp.sum(xp.where((t > 0) & (t < 1), t ** 2, t)),
                           [1.0, 1.0, 1.0]),
}


@pytest.mark.parametrize("name", ENGINES)
@pytest.mark.parametrize("case", list(MASK_CASES))
def test_masks(name, case):
    f, want = MASK_CASES[case]
    np.testing.assert_array_equal(engine(name).grad(f)(T6), want)


def test_mask_values_and_hessian():
    assert SYM.value_and_grad_fn(MASK_CASES["times a mask"][0])(T6).value == 2.5  # 0.5 + 2
    assert SYM.value_and_grad_fn(MASK_CASES["sum of a mask"][0])(T6).value == 7.25  # 0.25 + 4 + 1 + 2
    # where((t > 0) & (t < 1), t^2, t): second derivative 2 on the first entry only
    np.testing.assert_array_equal(SYM.hessian(MASK_CASES["and"][0])(T6), np.diag([2.0, 0.0, 0.0]))


def test_and_or_not_in_every_kernel():
    """The float, wide (mpmath) and numpy kernels read And / Or / Not alike: [0 < x < 1 or x > 3] x^2."""
    x = sp.Symbol("x", real=True)
    cond = sp.Or(sp.And(x > 0, sp.Not(x >= 1)), x > 3)
    e = sp.Piecewise((x ** 2, cond), (0, True))
    kernel = Kernel(generate_source(["x"], [], [e, sp.diff(e, x)]))
    for point, want in [(0.5, (0.25, [1.0])), (2.0, (0.0, [0.0])), (4.0, (16.0, [8.0]))]:
        for run in (kernel.fast, kernel.wide, kernel.safe):
            value, grads = run([point])
            assert (float(value), [float(g) for g in grads]) == want


def test_bitwise_operators_refuse_numbers_clearly():
    with pytest.raises(TypeError, match="combine masks"):
        SYM.grad(lambda xp, t: xp.sum(xp.where(t & (t > 0), t, 0.0)))(T6)


# ----- 7. infinite constants: a mask's -inf, clip's bounds -----
def _softmax(z):
    with mpmath.workdps(50):
        e = [mpmath.exp(mpmath.mpf(v)) for v in z]
        return float(mpmath.log(sum(e))), [float(v / sum(e)) for v in e]


@pytest.mark.parametrize("name", ENGINES)
def test_minus_inf_mask_before_logsumexp(name):
    d = engine(name)
    f = lambda xp, t: xp.logsumexp(xp.where(t > 0, t, -np.inf))  # noqa: E731
    lse, p = _softmax([0.5, 1.0])  # the unmasked entries of (0.5, -2, 1)
    r = d.value_and_grad_fn(f)(np.array([0.5, -2.0, 1.0]))
    assert math.isclose(r.value, lse, rel_tol=1e-15)
    np.testing.assert_allclose(r.grad, [p[0], 0.0, p[1]], rtol=1e-15, atol=0)
    # two entries masked: logsumexp is the one left, 0.5, gradient (1, 0, 0) by hand (no -inf - -inf = nan)
    r = d.value_and_grad_fn(f)(np.array([0.5, -2.0, -1.0]))
    assert r.value == 0.5 and r.grad.tolist() == [1.0, 0.0, 0.0]


def test_minus_inf_mask_before_max_and_softmax():
    f = lambda xp, t: xp.max(xp.where(t > 0, t, -np.inf))  # noqa: E731
    r = SYM.value_and_grad_fn(f)(np.array([0.5, -2.0, -1.0]))
    assert r.value == 0.5 and r.grad.tolist() == [1.0, 0.0, 0.0]
    # attention with a constant causal mask: softmax over each row's unmasked logits, then weights (1, 2, 3)
    causal = np.array([[True, False, False], [True, True, False]])

    def attention(xp, t):
        z = xp.where(causal, xp.reshape(t, (2, 3)), -np.inf)
        p = xp.exp(z - xp.logsumexp(z, axis=-1, keepdims=True))
        return xp.sum(p @ np.array([1.0, 2.0, 3.0]))

    t = np.array([0.5, -2.0, 1.0, 0.3, 0.2, 0.1])
    _, (p0, p1) = _softmax([0.3, 0.2])
    # row 0 has one unmasked entry (weight 1, gradient 0); row 1: d/dz_k sum_j p_j v_j = p_k (v_k - p . v)
    pv = p0 * 1.0 + p1 * 2.0
    r = SYM.value_and_grad_fn(attention)(t)
    assert math.isclose(r.value, 1.0 + pv, rel_tol=1e-15)
    np.testing.assert_allclose(r.grad, [0, 0, 0, p0 * (1.0 - pv), p1 * (2.0 - pv), 0], rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("name", ENGINES)
def test_infinite_clip_bounds_are_no_bounds(name):
    """clip(t, -inf, 1)^2 at (0.5, -2, 3): 0.25 + 4 + 1, gradient (1, -4, 0) by hand; clip(t, 0, inf) likewise."""
    d = engine(name)
    r = d.value_and_grad_fn(lambda xp, t: xp.sum(xp.clip(t, -np.inf, 1.0) ** 2))(np.array([0.5, -2.0, 3.0]))
    assert r.value == 5.25 and r.grad.tolist() == [1.0, -4.0, 0.0]
    r = d.value_and_grad_fn(lambda xp, t: xp.sum(xp.clip(t, 0.0, np.inf) ** 2))(np.array([0.5, -2.0, 3.0]))
    assert r.value == 9.25 and r.grad.tolist() == [1.0, 0.0, 6.0]


def test_infinite_constant_in_arithmetic_is_refused_with_the_workaround():
    with pytest.raises(ValueError, match="xp.where"):
        SYM.grad(lambda xp, t: xp.sum(t - np.inf))(T6)
    with pytest.raises(ValueError, match="nan"):
        SYM.grad(lambda xp, t: xp.sum(t * np.nan))(T6)


# ----- 8. cache keys: container types and key types -----
def test_list_and_tuple_theta_do_not_share_a_kernel():
    f = lambda xp, t: t[0] * (2.0 if isinstance(t, list) else 3.0) + t[1]  # noqa: E731
    g = SYM.grad(f)
    assert g([1.0, 2.0]) == [2.0, 1.0] and g((1.0, 2.0)) == (3.0, 1.0)
    h = SYM.hessian(lambda xp, t: f(xp, t) ** 2)  # (2 c t0 + ..)^2: d2/dt0^2 = 2 c^2
    assert h([1.0, 2.0])[0][0] == 8.0 and h((1.0, 2.0))[0][0] == 18.0


def test_dict_keys_1_and_str_1_do_not_share_a_kernel():
    f = lambda xp, t: (2.0 if 1 in t else 5.0) * next(iter(t.values())) ** 2  # noqa: E731
    g = SYM.grad(f)
    assert g({1: 1.0}) == {1: 4.0} and g({"1": 1.0}) == {"1": 10.0}
    h = SYM.hessian(f)
    assert h({1: 1.0}) == {1: {1: 4.0}} and h({"1": 1.0}) == {"1": {"1": 10.0}}


# ----- 9. messages -----
def test_cumsum_axis_message_names_the_function():
    with pytest.raises(ValueError, match="xp.cumsum: axis 3"):
        SYM.grad(lambda xp, t: xp.sum(xp.cumsum(t, axis=3)))(T6)


def test_keyword_arguments_are_refused_clearly():
    f = lambda xp, t, c=1.0: xp.sum(t) * c  # noqa: E731
    for fn in (SYM.value_and_grad_fn(f), SYM.grad(f), SYM.value_and_grad(f)):
        with pytest.raises(TypeError, match="by position.*got keyword.s. c"):
            fn(T6, c=2.0)
    assert SYM.grad(f)(T6, 2.0).tolist() == [2.0, 2.0, 2.0]


def test_float_hyperparameter_in_an_if_says_how_to_keep_it_constant():
    def f(xp, t, lam):
        return xp.sum(t) * lam if lam > 0 else xp.sum(t)

    with pytest.raises(TypeError, match="float argument 1 after theta.*functools.partial"):
        SYM.grad(f)(T6, 0.5)
    # the ways the message names (by hand: the gradient is lam everywhere)
    assert SYM.grad(functools.partial(f, lam=0.5))(T6).tolist() == [0.5] * 3
    g = SYM.grad(lambda xp, t, c: f(xp, t, c[0]))
    assert g(T6, (0.5,)).tolist() == [0.5] * 3 and g(T6, (2.0,)).tolist() == [2.0] * 3
