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
    # SymEngine with its metrics on, as by default (their CSE of one derivative failed too); SymPy's cost seconds
    return ds.get_differentiator("symbolic", engine=engine, metrics=engine == "symengine")


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


def _sig(x):
    import mpmath
    return 1 / (1 + mpmath.exp(-x))


def _softplus(x):
    import mpmath
    return mpmath.log1p(mpmath.exp(x))


ELU_ALPHA = 0.7
_MAGNITUDES = [0.0, 1e-300, 1e-20, 1e-8, 0.01, 0.3, 1.0, 2.5, 5.0, 9.0, 15.0, 20.0, 30.0, 37.0, 45.0, 100.0, 300.0,
               700.0, 709.5, 720.0, 744.0, 800.0]
POINTS = np.array(sorted({s * m for m in _MAGNITUDES for s in (1.0, -1.0)}))


def _rules():
    """name -> (xp function, its exact derivative (mpmath), points). The ``log(...)`` rules differentiate log f, whose
    derivative f'/f needs f's value to full relative accuracy: SymEngine's naive log(1 + exp(x)), exp(x) - 1 and
    log(1 + x) gave 0 (or a cancelled value) where f is below 1e-16, so inf or nan there."""
    import mpmath
    elu = ds.nn.ELU(alpha=ELU_ALPHA)
    P = POINTS
    return {
        "softplus": (lambda xp, x: xp.softplus(x), _sig, P),
        "log_sigmoid": (lambda xp, x: xp.log_sigmoid(x), lambda x: _sig(-x), P),
        "tanh": (lambda xp, x: xp.tanh(x), lambda x: 1 / mpmath.cosh(x) ** 2, P),
        "expm1": (lambda xp, x: xp.expm1(x), mpmath.exp, P[P < 709]),
        "log1p": (lambda xp, x: xp.log1p(x), lambda x: 1 / (1 + x), P[P > -1]),
        "log2": (lambda xp, x: xp.log2(x), lambda x: 1 / (x * mpmath.log(2)), P[P > 0]),
        "log10": (lambda xp, x: xp.log10(x), lambda x: 1 / (x * mpmath.log(10)), P[P > 0]),
        "elu": (lambda xp, x: elu(xp, x), lambda x: 1 if x > 0 else ELU_ALPHA * mpmath.exp(x), P[P != 0]),
        "log(softplus)": (lambda xp, x: xp.log(xp.softplus(x)), lambda x: _sig(x) / _softplus(x), P[P >= -700]),
        "log(-log_sigmoid)": (lambda xp, x: xp.log(-xp.log_sigmoid(x)), lambda x: -_sig(-x) / _softplus(-x),
                              P[P <= 700]),
        "log(expm1)": (lambda xp, x: xp.log(xp.expm1(x)), lambda x: mpmath.exp(x) / mpmath.expm1(x),
                       P[(P > 0) & (P < 709)]),
        "log(log1p)": (lambda xp, x: xp.log(xp.log1p(x)), lambda x: 1 / ((1 + x) * mpmath.log1p(x)), P[P > 0]),
        "log(-elu)": (lambda xp, x: xp.log(-elu(xp, x)), lambda x: mpmath.exp(x) / mpmath.expm1(x),
                      P[(P < 0) & (P > -700)]),  # (elu(x) = 0.7 expm1(x) below 0; subnormal beyond -700)
        "log(tanh)": (lambda xp, x: xp.log(xp.tanh(x)), lambda x: 2 / mpmath.sinh(2 * x), P[(P > 0) & (P < 300)]),
    }


@pytest.mark.parametrize("engine", ENGINES)
def test_primitives_within_4_ulp_in_saturation(engine):
    """Every primitive the SymEngine bridge passes as an opaque function, its value and its derivative: the compiled
    gradient within 4 ulp of the exact one (mpmath, 60 digits) across the finite domain, saturation included.

    One compile per engine: f(t, x) = sum_k rule_k(t_k + x_k) with the points x as data (symbols), so d f / d t_k
    at t = 0 is rule_k'(x_k). Each call moves one rule to one of its points and keeps the others at a point near
    +-1 (a point where one rule overflows reruns the whole kernel in wide mpmath; the others must not ride along)."""
    import mpmath
    rules = list(_rules().items())
    grad = symbolic(engine).grad(lambda xp, t, x: sum(fn(xp, t[k] + x[k]) for k, (_, (fn, _, _)) in enumerate(rules)))
    calm = np.array([pts[np.argmin(np.abs(np.abs(pts) - 1.0))] for _, (_, _, pts) in rules])
    got = {}
    for k, (name, (_, _, pts)) in enumerate(rules):
        x = calm.copy()
        got[name] = []
        for p in pts:
            x[k] = p
            got[name].append(grad(np.zeros(len(rules)), x)[k])
    with mpmath.workdps(60):
        for name, (_, d, pts) in rules:
            want = np.array([float(d(mpmath.mpf(float(x)))) for x in pts])
            err = np.abs(np.array(got[name]) - want) / np.spacing(np.abs(want))
            worst = int(np.argmax(np.nan_to_num(err, nan=np.inf)))
            assert err[worst] <= 4, f"{name} ({engine}): {err[worst]:.3g} ulp at x = {pts[worst]!r}"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("seed", [
    97,   # softplus network, cross-entropy, weights ~47: SymEngine's log(1 + exp(u)) was 0 for exp(u) (1.9e-11)
    497,  # elu network, cross-entropy: logits below -745, logsumexp underflowed to log(0) (nan)
    750,  # elu network, hinge: SymEngine's condition holding a Piecewise was refused ("BooleanAtom ...")
])
def test_campaign_problems_within_1e_13_of_the_certified_reference(engine, seed):
    from diffsuite.reference import campaign, reference_gradient
    obj, theta, _ = campaign.random_problem(seed)
    ref = reference_gradient(obj, theta).grad  # certified (arb), independent of the symbolic pipeline
    got = symbolic(engine).value_and_grad(obj)(theta).grad
    assert np.all(np.isfinite(got)) and campaign.normwise(got, ref) <= campaign.TOLERANCE


def test_softmax_hidden_layer_without_cancellation():
    """Campaign seed 297 (softmax hidden layer, hinge, weights ~70): the quotient rule on exp(a_i) / sum exp(a_k)
    cancels where p_i is near 1 (SymEngine: 2.0e-13 normwise; 5.2e-13 on its second sample alone, used here);
    written 1 / (1 + sum exp(a_k - a_i)) it does not. (29 parameters: SymEngine only; the SymPy engine's setup
    takes several seconds here.)"""
    pytest.importorskip("symengine")
    from diffsuite.reference import campaign, reference_gradient
    full, theta, _ = campaign.random_problem(297)
    obj = ds.Objective(full.model, "hinge", full.inputs[1:], np.asarray(full.targets)[1:], l2=0.02)
    ref = reference_gradient(obj, theta).grad
    got = ds.get_differentiator("symbolic", engine="symengine", metrics=False).value_and_grad(obj)(theta).grad
    assert campaign.normwise(got, ref) <= campaign.TOLERANCE


def test_stable_forms_rewrites_softmax_and_logsumexp_and_keeps_the_value():
    import sympy as sp
    from diffsuite.differentiators.symbolic.namespace import LogSumExp
    from diffsuite.differentiators.symbolic.rewrite import stable_forms
    a, b, c, w = sp.symbols("a b c w", real=True)
    s = sp.exp(a) + sp.exp(b) + sp.exp(c)
    expr = w * sp.exp(a) / s + sp.log(s)  # a weighted softmax entry and a logsumexp
    out = stable_forms(expr)
    assert out == w / (1 + sp.exp(b - a) + sp.exp(c - a)) + LogSumExp(a, b, c)
    point = {a: 0.5, b: -1.25, c: 2.0, w: 3.0}
    assert abs(float(out.subs(point)) - float(expr.subs(point))) < 1e-14


@pytest.mark.parametrize("engine", ENGINES)
def test_logsumexp_in_the_subnormal_range(engine):
    """Logits between -745 and -708: exp is subnormal (few digits), so log(sum(exp)) lost 2.6e-4 at -740 and its
    gradient was 0 / 0; the max-shifted LogSumExp is exact to an ulp (60-digit mpmath)."""
    import mpmath
    rows = np.array([[-720.0, -721.0, -730.0], [-740.0, -741.0, -760.0], [0.0, -40.0, -50.0]])
    f = symbolic(engine).value_and_grad_fn(lambda xp, x: xp.sum(xp.logsumexp(x, axis=1) * np.array([1.0, 2.0, 1e20])))
    res = f(rows)
    with mpmath.workdps(60):
        lse = [mpmath.log(mpmath.fsum(mpmath.exp(mpmath.mpf(float(v))) for v in r)) for r in rows]
        want_value = float(lse[0] + 2 * lse[1] + mpmath.mpf(1e20) * lse[2])  # lse[2] = log1p(e^-40 + e^-50) ~ 4e-18
    want = np.array([_mp_logsumexp_grad(r) for r in rows]) * np.array([[1.0], [2.0], [1e20]])
    assert res.value == pytest.approx(want_value, rel=4 * 2.0 ** -52)
    np.testing.assert_allclose(res.grad, want, rtol=4 * 2.0 ** -52, atol=0)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("f, theta, want", [
    # d atan2(y, x) = (x, -y) / (x^2 + y^2); at the origin 0 by convention (docs/language.md, as reverse mode)
    (lambda xp, t: xp.arctan2(t[0], t[1]), [1.0, 2.0], [2.0 / 5.0, -1.0 / 5.0]),
    (lambda xp, t: xp.arctan2(t[0], t[1]), [0.0, 0.0], [0.0, 0.0]),
    # d x^y = (y x^(y-1), x^y log x); at x = 0 (y > 0) both 0: 0^y is flat from the right (autograd's value)
    (lambda xp, t: t[0] ** t[1], [0.0, 2.5], [0.0, 0.0]),
    (lambda xp, t: t[0] ** t[1], [4.0, 0.5], [0.5 * 4.0 ** -0.5, 2.0 * np.log(4.0)]),
])
def test_atan2_and_traced_power_keep_their_conventions(engine, f, theta, want):
    """SymEngine's own atan2 and pow gave nan at the origin and at 0^y; they cross as opaque functions now."""
    got = symbolic(engine).grad(f)(np.array(theta))
    np.testing.assert_allclose(got, want, rtol=2 ** -51, atol=0)


@pytest.mark.parametrize("engine", ENGINES)
def test_cross_entropy_value_of_a_confident_prediction(engine):
    """Cross-entropy is logsumexp of logits shifted by the target's, the target's entry the constant 0: as
    log(1 + e^-50 + e^-49) in floats it is 0; LogSumExp gives log1p of the sum (60-digit mpmath)."""
    import mpmath
    obj = ds.Objective(ds.MLP((1, 3), activation="identity", output_activation="identity"), "cross_entropy",
                       np.array([[1.0]]), np.array([0]))
    theta = np.array([50.0, 0.0, 1.0, 0.0, 0.0, 0.0])  # W (1x3) then b: logits [50, 0, 1]
    res = symbolic(engine).value_and_grad(obj)(theta)
    with mpmath.workdps(60):
        want = float(mpmath.log1p(mpmath.exp(-50) + mpmath.exp(-49)))
    assert res.value == pytest.approx(want, rel=4 * 2.0 ** -52, abs=0)
