"""diffsuite.testing after the CI user's review (M1, M2, M3, F2, F3, U1, docs). Oracles: gradients derived by
hand and written here, bugs injected into them whose size is known (a sign flip, a relative slip of 1e-6), and
problems whose scale is known in advance (a feature in other units, a leaf 1e-14 of the other)."""
import warnings
from pathlib import Path

import numpy as np
import pytest

from diffsuite.gradcheck.methods import resolve_method
from diffsuite.gradcheck.report import GradcheckReport, MethodResult
from diffsuite.gradcheck.tolerances import DEFAULT_RTOL, ROUNDING_FLOOR_EPS
from diffsuite.testing import METHOD_ALIASES, assert_gradients_close, check_gradients

EPS64 = float(np.finfo(np.float64).eps)


# ----- a user's model, its hand-written gradient, and a user's own differentiator -----
def tanh_loss(xp, theta, x, y):
    return xp.mean((xp.tanh(x @ theta["W"] + theta["b"]) - y) ** 2)


def tanh_grad(theta, x, y):
    """d/dW, d/db of mean((tanh(xW + b) - y)^2), by hand."""
    a = np.tanh(x @ theta["W"] + theta["b"])
    d = 2.0 * (a - y) / a.size * (1.0 - a ** 2)
    return {"W": x.T @ d, "b": d.sum(axis=0)}


def linear_loss(xp, theta, x, y):
    return xp.mean((x @ theta["W"] + theta["b"] - y) ** 2)


def linear_grad(theta, x, y):
    d = 2.0 * (x @ theta["W"] + theta["b"] - y) / y.size
    return {"W": x.T @ d, "b": d.sum(axis=0)}


def sigmoid_loss(xp, theta, x, y):
    p = 1.0 / (1.0 + xp.exp(-(x @ theta["W"] + theta["b"])))
    return xp.mean((p - y) ** 2)


def sigmoid_grad(theta, x, y):
    with np.errstate(over="ignore"):
        p = 1.0 / (1.0 + np.exp(-(x @ theta["W"] + theta["b"])))
    d = 2.0 * (p - y) / p.size * p * (1.0 - p)
    return {"W": x.T @ d, "b": d.sum(axis=0)}


def bce_loss(xp, theta, x, y):  # the logistic loss written naively: 1 - p cancels at large logits
    p = 1.0 / (1.0 + xp.exp(-(x @ theta["W"] + theta["b"])))
    return -xp.mean(y * xp.log(p) + (1.0 - y) * xp.log(1.0 - p))


def bce_grad(theta, x, y):
    p = 1.0 / (1.0 + np.exp(-(x @ theta["W"] + theta["b"])))
    d = (p - y) / p.size
    return {"W": x.T @ d, "b": d.sum(axis=0)}


class UserDifferentiator:
    """A user's own method: ``name`` and ``value_and_grad`` (for Objectives), ``grad`` for f(xp, theta, *args)."""

    def __init__(self, gradient, name="mygrad", dtype=None):
        self.gradient, self.name = gradient, name
        if dtype is not None:
            self.dtype = dtype

    def value_and_grad(self, objective):
        raise NotImplementedError

    def grad(self, f):
        return lambda theta, *args: self.gradient(theta, *args)


def data(seed=0):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    return {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}, x, y


def scaled(theta, s):
    return {k: v * s for k, v in theta.items()}


def with_entry(g, key, index, factor):
    out = {k: np.array(v, dtype=float, copy=True) for k, v in g.items()}
    out[key][index] *= factor
    return out


# ----- M1: a user's own differentiator of unknown kind gets the strict AD tolerance -----
@pytest.mark.parametrize("slip", [1e-6, 1e-7, 1e-8])
def test_a_users_method_is_held_to_the_strict_ad_tolerance(slip):
    theta, x, y = data()
    right = UserDifferentiator(tanh_grad)
    assert check_gradients(tanh_loss, theta, x, y, methods=[right]).passed
    wrong = UserDifferentiator(lambda t, x, y: with_entry(tanh_grad(t, x, y), "W", (0, 0), 1 + slip))
    report = check_gradients(tanh_loss, theta, x, y, methods=[wrong])
    assert not report.passed  # before: rtol 1e-4 (the forward difference's), and relative slips up to 1e-5 passed
    row = report.summary()[0]
    assert row["rtol"] == DEFAULT_RTOL["reverse", "float64"]
    assert "unknown kind 'mygrad'" in row["rtol_why"] and "strict AD tolerance" in row["rtol_why"]
    assert "tolerance mygrad: rtol 1.0e-09 (default for a method of unknown kind 'mygrad'" in str(report)
    assert report.to_frame().set_index("entry")["ok"].to_dict() == {
        "W[0, 0]": False, "W[0, 1]": True, "W[1, 0]": True, "W[1, 1]": True, "W[2, 0]": True, "W[2, 1]": True,
        "b[0]": True, "b[1]": True}


def test_a_float32_users_method_gets_the_float32_ad_tolerance_not_the_loosest():
    theta, x, y = data()
    g = tanh_grad(theta, x, y)
    assert abs(g["W"][2, 1]) < 0.05 * np.max(np.abs(g["W"]))  # a small entry, 2.8% of the largest
    wrong = UserDifferentiator(lambda t, x, y: with_entry(tanh_grad(t, x, y), "W", (2, 1), -1.0), dtype="float32")
    report = check_gradients(tanh_loss, theta, x, y, methods=[wrong])
    assert report.summary()[0]["rtol"] == DEFAULT_RTOL["reverse", "float32"]  # before: 1e-1, and this passed
    assert not report.passed and "W[2, 1]" in report.failure_message()
    rounded = UserDifferentiator(lambda t, x, y: {k: v.astype(np.float32) for k, v in tanh_grad(t, x, y).items()},
                                 dtype="float32")
    assert check_gradients(tanh_loss, theta, x, y, methods=[rounded]).passed  # float32 rounding is not a bug


def test_the_report_says_where_each_tolerance_came_from():
    theta, x, y = data()
    report = check_gradients(tanh_loss, theta, x, y, methods=("reverse", "central"), reference=tanh_grad(theta, x, y),
                             rtol={"central": 1e-5})
    rows = {r["method"]: r for r in report.summary()}
    assert rows["reverse"]["rtol_why"] == "default for reverse, float64"
    assert rows["central"]["rtol_why"] == "given" and rows["central"]["rtol"] == 1e-5
    assert "rounding" in rows["reverse"]["atol_why"] and "rtol * max|ref|" in rows["central"]["atol_why"]
    text = str(report)
    assert "tolerance reverse: rtol 1.0e-09 (default for reverse, float64)" in text
    assert "tolerance central: rtol 1.0e-05 (given)" in text


# ----- M2: the absolute floor follows rounding, per leaf, not rtol * max|ref| -----
def test_a_sign_flip_on_small_entries_is_caught_as_a_method_and_as_the_reference():
    theta, x, y = data()
    x = x.copy()
    x[:, 0] *= 1e-5  # feature 0 in other units: W's row 0 is ~1e-5 of the largest entry
    g = tanh_grad(theta, x, y)
    assert np.max(np.abs(g["W"][0])) < 1e-4 * np.max(np.abs(g["W"]))
    flipped = {"W": g["W"] * np.array([[-1.0], [1.0], [1.0]]), "b": g["b"]}  # the whole row 0 sign-flipped
    report = check_gradients(tanh_loss, theta, x, y, methods=[UserDifferentiator(lambda *a: flipped)])
    assert not report.passed  # before: passed with "max rel err 2.00e+00"
    assert [e for e, ok in report.to_frame().set_index("entry")["ok"].items() if not ok] == ["W[0, 0]", "W[0, 1]"]
    # (R): the user's gradient as the reference, row 0 at 1e-10 of the largest
    x2 = x.copy()
    x2[:, 0] *= 1e-5
    g2 = tanh_grad(theta, x2, y)
    flipped2 = {"W": g2["W"] * np.array([[-1.0], [1.0], [1.0]]), "b": g2["b"]}
    report = check_gradients(tanh_loss, theta, x2, y, reference=flipped2)
    assert {"reverse", "complex_step"} <= set(report.failed_methods)  # before: every method passed
    assert check_gradients(tanh_loss, theta, x2, y, reference=g2).passed  # the right gradient still passes


def test_a_flip_far_below_the_largest_entry_is_caught():
    def f(xp, t):  # by hand: the gradient is a * t = [1, 1e-5] at t = [1, 1]
        return xp.sum(np.array([1.0, 1e-5]) * t * t) / 2.0
    t, right = np.array([1.0, 1.0]), np.array([1.0, 1e-5])
    assert check_gradients(f, t, methods=("reverse",), reference=right).passed
    report = check_gradients(f, t, methods=("reverse",), reference=np.array([1.0, -1e-5]))
    assert report.failed_methods == ["reverse"]  # before: atol 1e-9 * 1 let any value of the second entry pass
    assert check_gradients(f, t, methods=[UserDifferentiator(lambda t: np.array([1.0, -1e-5]))]).failed_methods


def test_the_floor_is_rounding_of_the_gradients_scale():
    """512 eps of the largest entry, over the whole gradient: a leaf whose gradient cancels to nearly 0 (a least-squares
    fit at its solution) carries rounding of the terms it sums, and a per-leaf floor failed that correct gradient;
    a leaf 1e-10 of the largest with its sign flipped still fails. Oracles: hand derivatives (d/dv v.v = 2v; the
    fit's gradient is 0 up to rounding), and the exact reference."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X @ rng.normal(size=3) + 0.3 + rng.normal(size=200)
    sol = np.linalg.lstsq(np.c_[X, np.ones(200)], y, rcond=None)[0]

    def fit(xp, p):
        r = X @ p["w"] + p["b"] - y
        return xp.sum(r * r) + xp.sum(p["v"] * p["v"])
    theta = {"w": sol[:3], "b": np.array([sol[3]]), "v": np.array([1.0, 2.0])}
    report = check_gradients(fit, theta, methods=("reverse",), reference="exact")
    assert report.passed, report.failure_message()
    atol = report.to_frame().set_index("entry")["atol"]
    assert (atol == ROUNDING_FLOOR_EPS * EPS64 * 4.0).all()  # max|ref| = |2 v[1]| = 4

    def f(xp, p):  # by hand: d/da = a, d/db = 1e-10 * b
        return xp.sum(p["a"] ** 2) / 2.0 + 1e-10 * xp.sum(p["b"] ** 2) / 2.0
    two = {"a": np.array([1.0, 2.0]), "b": np.array([1.0, 2.0])}
    right = {"a": np.array([1.0, 2.0]), "b": np.array([1e-10, 2e-10])}
    assert check_gradients(f, two, methods=("reverse",), reference=right).passed
    wrong = {"a": right["a"], "b": -right["b"]}
    assert not check_gradients(f, two, methods=("reverse",), reference=wrong).passed


NO_FALSE_ALARMS = [  # the review's badly-scaled problems that must keep passing (seed 0)
    ("tanh*1e-8", tanh_loss, tanh_grad, 1e-8, "float64", None),
    ("tanh*1e8", tanh_loss, tanh_grad, 1e8, "float64", None),
    ("linear*1e-8", linear_loss, linear_grad, 1e-8, "float64", None),
    ("linear*1e8", linear_loss, linear_grad, 1e8, "float64", None),
    ("sigmoid*1e-8", sigmoid_loss, sigmoid_grad, 1e-8, "float64", None),
    ("tanh float32", tanh_loss, tanh_grad, 1.0, "float32", None),
    ("linear float32", linear_loss, linear_grad, 1.0, "float32", None),
    ("sigmoid float32", sigmoid_loss, sigmoid_grad, 1.0, "float32", None),
    *[(f"sigmoid logits*{s}", sigmoid_loss, sigmoid_grad, s, "float64", "binary") for s in (5, 20, 40)],
    *[(f"tanh logits*{s}", tanh_loss, tanh_grad, s, "float64", None) for s in (5, 20, 40)],
    *[(f"tanh logits*{s} float32", tanh_loss, tanh_grad, s, "float32", None) for s in (5, 20, 40)],
]


@pytest.mark.parametrize("name, f, grad, s, dtype, labels", NO_FALSE_ALARMS, ids=[c[0] for c in NO_FALSE_ALARMS])
def test_no_false_alarm_on_badly_scaled_problems(name, f, grad, s, dtype, labels):
    theta, x, y = data()
    if labels == "binary":
        y = (np.random.default_rng(3).random(size=(5, 2)) > 0.5) * 1.0
    theta = scaled(theta, s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # exp overflows at theta*1e8: f stays finite
        g = grad(theta, x, y)
        for options in ({}, {"reference": g}):
            report = check_gradients(f, theta, x, y, dtype=dtype, **options)
            assert report.passed, report.failure_message()
        if dtype == "float64":  # the user's gradient as a method, against the exact reference
            report = check_gradients(f, theta, x, y, methods=[UserDifferentiator(lambda *a: g)])
            assert report.passed, report.failure_message()


# ----- M3: shapes and keys -----
def test_a_gradient_of_the_wrong_shape_is_refused_and_named():
    rng = np.random.default_rng(0)
    theta = {"W": rng.normal(size=(3, 1)), "b": rng.normal(size=2)}
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))

    def loss(xp, t, x, y):
        return xp.mean((xp.tanh(x @ t["W"] + t["b"]) - y) ** 2)
    g = {"W": x.T @ np.ones((5, 1)), "b": np.ones(2)}  # any values: the shapes are what is checked
    with pytest.raises(ValueError, match=r"gradient\['W'\] must have the shape of theta\['W'\], \(3, 1\); got shape "
                                         r"\(1, 3\) \(transposed\?\)"):
        check_gradients(loss, theta, x, y, reference={"W": g["W"].T, "b": g["b"]})
    with pytest.raises(ValueError, match=r"gradient\['b'\] must have the shape of theta\['b'\], \(2,\); got shape "
                                         r"\(2, 1\)"):
        check_gradients(loss, theta, x, y, reference={"W": g["W"], "b": g["b"][:, None]})
    with pytest.raises(ValueError, match=r"exactly theta's keys \('W', 'b'\); extra \['bias'\]"):
        check_gradients(loss, theta, x, y, reference={**g, "bias": g["b"]})
    with pytest.raises(ValueError, match=r"missing \['b'\]"):
        check_gradients(loss, theta, x, y, reference={"W": g["W"]})
    with pytest.raises(ValueError, match=r"must be a dict with theta's keys \('W': \(3, 1\), 'b': \(2,\)\); got an "
                                         r"array of shape \(5,\)"):
        check_gradients(loss, theta, x, y, reference=np.concatenate([g["b"], g["W"].ravel()]))
    report = check_gradients(loss, theta, x, y, methods=[UserDifferentiator(lambda t, x, y: {"W": g["W"].T,
                                                                                            "b": g["b"]})])
    assert not report.passed and "mygrad['W'] must have the shape of theta['W'], (3, 1); got shape (1, 3)" in \
        report.summary()[0]["error"]


def test_an_array_theta_needs_its_own_shape():
    def f(xp, t):  # by hand: the gradient is 2 t
        return xp.sum(t * t)
    t = np.array([[1.0, 2.0, 3.0]])
    assert check_gradients(f, t, methods=("reverse",), reference=2 * t).passed
    with pytest.raises(ValueError, match=r"must have theta's shape \(1, 3\); got shape \(3, 1\)"):
        check_gradients(f, t, methods=("reverse",), reference=(2 * t).T)
    with pytest.raises(ValueError, match=r"must have theta's shape \(1, 3\); got shape \(3,\)"):
        check_gradients(f, t, methods=("reverse",), reference=(2 * t).ravel())


# ----- U1: unsupported theta -----
def test_a_list_or_nested_theta_fails_up_front_saying_what_is_supported():
    def f(xp, t, *args):
        return 0.0
    with pytest.raises(TypeError, match=r"theta must be an array, a dict of arrays \(or numbers\) or a scalar; got a "
                                        r"list"):
        check_gradients(f, [np.ones(2), np.ones(3)])
    with pytest.raises(TypeError, match=r"got a dict whose entry 'l1' is a dict with keys \['W', 'b'\]"):
        check_gradients(f, {"l1": {"W": np.ones(2), "b": np.ones(1)}})


# ----- F3: a method the check chose itself that overflows -----
def test_an_overflow_inside_a_default_method_is_not_blamed_on_the_users_gradient():
    theta, x, y = data()
    theta = scaled(theta, 1e8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        g = sigmoid_grad(theta, x, y)  # by hand: 0 everywhere (p is exactly 0 or 1)
        assert not np.any(g["W"]) and not np.any(g["b"])
        report = check_gradients(sigmoid_loss, theta, x, y, reference=g)
        assert report.passed, report.failure_message()  # before: complex_step's NaN failed the check
        assert any("complex_step cannot evaluate the gradient here" in n for n in report.notes)
        # named by the user, the same method's NaN still fails
        named = check_gradients(sigmoid_loss, theta, x, y, methods=("reverse", "complex_step"), reference=g)
        assert named.failed_methods == ["complex_step"]
        # and so does the user's own method returning NaN
        nan = UserDifferentiator(lambda *a: with_entry(g, "W", (0, 0), np.nan))
        assert not check_gradients(sigmoid_loss, theta, x, y, methods=[nan]).passed


def test_entries_no_method_could_evaluate_do_not_pass():
    auto = resolve_method("complex_step", auto=True)
    result = MethodResult(auto, np.array([np.nan, 1.0]), 1e-9, 0.0, unevaluable=frozenset({0}))
    report = GradcheckReport("f", ["t[0]", "t[1]"], np.array([1.0, 1.0]), "given", [result])
    assert report.failing(result).tolist() == [False, False]
    assert not report.passed and report.unchecked() == [0]
    assert "no method could evaluate the gradient at 1 entry (t[0])" in report.failure_message()
    other = MethodResult(resolve_method("central"), np.array([1.0, 1.0]), 1e-6, 1e-6)
    assert GradcheckReport("f", ["t[0]", "t[1]"], np.array([1.0, 1.0]), "given", [result, other]).passed


# ----- F2: a right reference, an ill-conditioned function -----
def test_a_reference_that_agrees_with_the_exact_gradient_is_not_blamed():
    theta, x, _ = data()
    y = (np.random.default_rng(3).random(size=(5, 2)) > 0.5) * 1.0
    theta = scaled(theta, 10)  # 1 - p cancels: every method loses digits, the hand-written gradient does not
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        report = check_gradients(bce_loss, theta, x, y, reference=bce_grad(theta, x, y))
        assert not report.passed
        msg = report.failure_message()
        assert "may itself be wrong" not in msg and "agrees with the exact gradient" in msg
        assert "conditioning" in msg and not report.reference_is_odd_one_out()
        wrong = {k: 1.5 * v for k, v in bce_grad(theta, x, y).items()}
        msg = check_gradients(bce_loss, theta, x, y, reference=wrong).failure_message()
        assert "disagrees with the exact gradient" in msg and "likely wrong" in msg


# ----- docs -----
def test_the_docstring_lists_every_alias():
    for alias in METHOD_ALIASES:
        assert f"``{alias}``" in check_gradients.__doc__, alias


def test_the_docs_match_the_code():
    doc = (Path(__file__).parents[1] / "docs" / "gradcheck.md").read_text()
    assert '"source"' not in doc  # baseline_document never writes it
    assert 'seed=0 float64"' not in doc and 'seed=0": {"value"' in doc  # problem ids have no dtype
    for text in ("130", "--fail-unmeasured", "central[float32]", "unknown kind", "ROUNDING_FLOOR_EPS",
                 '"grid"', "add --quick", "each leaf of its theta leaf's shape"):
        assert text in doc, text


# The gradient here is about 1e-10 on values of 1e-18, so central differences' step control cannot settle and says
# so (UnsettledStepWarning, a warning meant for the user); the test is about the tolerances, not that warning.
@pytest.mark.filterwarnings("ignore::diffsuite.differentiators.finite_diff.UnsettledStepWarning")
def test_a_function_that_cancels_in_float64_is_not_a_false_alarm_but_a_real_bug_still_fails():
    """Residuals of 1e-9 next to targets of size 1: tanh(z) - y loses 7 digits in float64, so every float64
    gradient is about 1e-7 (relative) off the exact one; the check measures f's own error against the exact value
    and raises the tolerances to 32x it, with a note. A gradient wrong by 1e-4 (relative) still fails.
    Oracle for the hand gradient: d/dW mean((tanh(xW + b) - y)^2) / 2 = x^T ((h - y) (1 - h^2)) / n."""
    rng = np.random.default_rng(0)
    x, W, b = rng.normal(size=(5, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)
    y = np.tanh(x @ W + b) + 1e-9

    def loss(xp, t, x, y):
        r = xp.tanh(x @ t["W"] + t["b"]) - y
        return xp.sum(r * r) / (2 * x.shape[0])

    report = check_gradients(loss, {"W": W, "b": b}, x, y)
    assert report.passed, report.failure_message()
    assert any("cancels here" in n for n in report.notes)
    raised = [r.rtol for r in report.results if r.method.label in ("reverse", "complex_step")]
    assert raised and all(1e-9 < r < 1e-5 for r in raised)  # raised, yet far below a 1e-4 bug
    h = np.tanh(x @ W + b)
    d = (h - y) * (1 - h * h) / x.shape[0]
    wrong = {"W": x.T @ d * (1 + 1e-4), "b": d.sum(axis=0)}  # a real bug: caught against every method
    assert not check_gradients(loss, {"W": W, "b": b}, x, y, reference=wrong, methods=["reverse"]).passed
