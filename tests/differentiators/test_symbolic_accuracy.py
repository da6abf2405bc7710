"""The symbolic differentiator (both engines) on the cases the random campaign found: conditions that hold a
Piecewise (hinge on elu/relu networks through SymEngine), and exact kinks there, checked against hand derivatives."""
import importlib.util

import numpy as np
import pytest

import diffsuite as ds

HAS_SYMENGINE = importlib.util.find_spec("symengine") is not None
ENGINES = ["sympy", pytest.param("symengine", marks=pytest.mark.skipif(not HAS_SYMENGINE,
                                                                      reason="symengine not installed"))]


def symbolic(engine):
    return ds.get_differentiator("symbolic", engine=engine)  # metrics on, as by default: their CSE failed too


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("activation, b2, want", [
    # out = w2 act(w1 x + b1) + b2 with w1 x + b1 = 0 exactly (act(0) = 0), hinge max(0, 1 - y out), y = 1, x = 2,
    # w2 = -4. Margin 1 - b2 > 0: dL/dout = -1, so dL/dw1 = -w2 act'(0) x, dL/db1 = -w2 act'(0), dL/dw2 = -act(0)
    # = 0, dL/db2 = -1; elu'(0) = alpha = 0.7, relu'(0) = 0 (docs: kink conventions).
    ("elu", 0.5, [-(-4.0) * 0.7 * 2.0, -(-4.0) * 0.7, 0.0, -1.0]),
    ("relu", 0.5, [0.0, 0.0, 0.0, -1.0]),
    # margin exactly 0 (b2 = 1): max(0, 0) routes to its first argument, the constant 0: gradient 0
    ("elu", 1.0, [0.0, 0.0, 0.0, 0.0]),
])
def test_hinge_on_a_kinked_network_at_its_kinks(engine, activation, b2, want):
    """SymEngine's hinge condition [1 - y out > 0] holds the network's Piecewise; SymPy's Piecewise constructor
    folded it and failed ("BooleanAtom not allowed in this context"): 15 of the 1,000 campaign problems."""
    act = ds.nn.ELU(alpha=0.7) if activation == "elu" else activation
    obj = ds.Objective(ds.MLP((1, 1, 1), activation=act, output_activation="identity"), "hinge",
                       np.array([[2.0]]), np.array([[1.0]]))
    theta = np.array([1.5, -3.0, -4.0, b2])  # W1, b1, W2, b2: w1 x + b1 = 1.5 * 2 - 3 = 0
    res = symbolic(engine).value_and_grad(obj)(theta)
    assert res.value == max(0.0, 1.0 - b2)
    np.testing.assert_array_equal(res.grad, np.array(want))


def _mp_logsumexp_grad(row):
    """softmax(row) at 60 digits: the exact gradient of logsumexp, rounded to float64."""
    import mpmath
    with mpmath.workdps(60):
        e = [mpmath.exp(mpmath.mpf(float(v))) for v in row]
        total = mpmath.fsum(e)
        return [float(v / total) for v in e]


@pytest.mark.parametrize("engine", ENGINES)
def test_logsumexp_of_logits_far_below_zero(engine):
    """exp underflows to 0 for every entry below -745, so the float kernel's log(0 + 0) or 0 / 0 raises; it reran
    on numpy and returned nan (campaign seed 497, elu + cross-entropy). The wide kernel gives the exact answer."""
    rows = np.array([[-800.0, -800.5, -1500.0], [-1000.0, -999.0, -990.0], [0.0, 1.0, -2.0]])
    res = symbolic(engine).value_and_grad_fn(lambda xp, x: xp.sum(xp.logsumexp(x, axis=1)))(rows)
    want = np.array([_mp_logsumexp_grad(r) for r in rows])
    np.testing.assert_allclose(res.grad, want, rtol=4 * 2.0 ** -52, atol=0)
