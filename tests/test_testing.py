"""diffsuite.testing: gradient checks for users' code. Oracles: hand-derived gradients written here,
complex step (independent of the reverse engine), and a rule deliberately broken in the test."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest

import diffsuite as ds
from diffsuite.differentiators.reverse import ops, tape
from diffsuite.gradcheck.tolerances import DEFAULT_RTOL, ROUNDING_FLOOR_EPS, tolerance_table_markdown
from diffsuite.testing import assert_gradients_close, check_gradients


def tanh_loss(xp, theta, x, y):
    return xp.mean((xp.tanh(x @ theta["W"] + theta["b"]) - y) ** 2)


def hand_grad(theta, x, y):
    """d/dW, d/db of mean((tanh(xW + b) - y)^2), by hand."""
    h = np.tanh(x @ theta["W"] + theta["b"])
    dz = 2 * (h - y) / y.size * (1 - h ** 2)
    return {"W": x.T @ dz, "b": dz.sum(axis=0)}


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    return {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}, x, y


@pytest.fixture
def tanh_mlp():
    rng = np.random.default_rng(1)
    model = ds.MLP((2, 3, 1), activation="tanh")
    return ds.Objective(model, "quadratic", rng.normal(size=(4, 2)), rng.normal(size=(4, 1))), model.init(seed=1)


@pytest.fixture
def broken_tanh(monkeypatch):
    """A sign slip in tanh's VJP, in the rule table and where the tape looks it up."""
    bad = dataclasses.replace(ops.OPS["tanh"], vjps=(lambda B, g, out, x: -g * (4.0 * B.dsigmoid(2.0 * x)),))
    monkeypatch.setitem(ops.OPS, "tanh", bad)
    monkeypatch.setattr(tape, "TANH", bad)


def test_correct_gradients_pass_and_the_report_is_a_table(data):
    theta, x, y = data
    report = assert_gradients_close(tanh_loss, theta, x, y, reference=hand_grad(theta, x, y))
    frame = report.to_frame()
    assert set(frame["method"]) == {"reverse", "central", "complex_step"}  # tanh is analytic: complex step joins
    assert len(frame) == 3 * 8 and frame["ok"].all()
    assert list(frame.loc[frame["method"] == "reverse", "entry"]) == [
        "W[0, 0]", "W[0, 1]", "W[1, 0]", "W[1, 1]", "W[2, 0]", "W[2, 1]", "b[0]", "b[1]"]
    assert "gradient check passed" in str(report)


def test_a_wrong_vjp_is_caught_and_named(broken_tanh, tanh_mlp):
    obj, theta = tanh_mlp
    with pytest.raises(AssertionError) as info:
        assert_gradients_close(obj, theta, methods=("reverse", "central"), reference="complex_step")
    msg = str(info.value)
    assert "reverse disagrees with the reference" in msg and "agree with the reference: central" in msg
    # the broken rule sits in the hidden layer: only W0 and b0 flow through it; W1, b1 stay right
    worst = [line.split(":")[0].strip() for line in msg.splitlines() if line.startswith("  ") and ": reference" in line]
    assert worst and all(name.startswith(("W0[", "b0[")) for name in worst)
    frame = check_gradients(obj, theta, methods=("reverse",), reference="complex_step").to_frame()
    upper = frame[frame["param"].isin(["W1", "b1"])]
    lower = frame[frame["param"].isin(["W0", "b0"])]
    assert upper["ok"].all() and not lower["ok"].any()
    np.testing.assert_allclose(lower["value"], -lower["reference"], rtol=1e-9)  # a sign slip negates them


def test_a_wrong_vjp_is_caught_in_a_users_function(broken_tanh, data):
    theta, x, y = data
    with pytest.raises(AssertionError, match=r"reverse disagrees with the reference, exact") as info:
        assert_gradients_close(tanh_loss, theta, x, y)  # every default: the exact reference, complex step joins
    msg = str(info.value)
    assert "agree with the reference: central, complex_step" in msg
    for part in ("W[", "abs err", "rel err", "tol", "step straddles kink", "FAIL"):
        assert part in msg


def test_tolerances_are_per_method(data):
    theta, x, y = data
    g = hand_grad(theta, x, y)
    off = {k: v * (1 + 1e-6) for k, v in g.items()}  # a reference off by 1e-6, relative
    report = check_gradients(tanh_loss, theta, x, y, methods=("reverse", "central"), reference=off)
    assert report.failed_methods == ["reverse"]  # rtol 1e-9 catches it; central's 1e-5 does not
    assert_gradients_close(tanh_loss, theta, x, y, methods=("reverse", "central"), reference=off,
                           rtol={"reverse": 1e-5})
    with pytest.raises(ValueError, match="unknown method"):
        check_gradients(tanh_loss, theta, x, y, methods=("reverse",), reference=off, rtol={"centre": 1e-3})


def test_float32_tolerances_are_looser_and_applied(data):
    for (kind, dtype), rtol in DEFAULT_RTOL.items():
        if dtype == "float32":
            assert rtol > DEFAULT_RTOL[kind, "float64"]
    theta, x, y = data
    report = assert_gradients_close(tanh_loss, theta, x, y, dtype="float32", methods=("reverse", "central"),
                                    reference=hand_grad(theta, x, y))
    rows = {r["method"]: r for r in report.summary()}
    assert rows["reverse[float32]"]["rtol"] == DEFAULT_RTOL["reverse", "float32"]
    assert rows["central[float32]"]["rtol"] == DEFAULT_RTOL["central", "float32"]


@pytest.mark.filterwarnings("error")  # the report names kinks; no KinkWarning on top
def test_kink_straddled_by_the_step_is_reported():
    def relu_sum(xp, t):
        return xp.sum(xp.maximum(0.0, t))
    # by hand: both entries sit where relu' = 1. (5e-10, not 1e-9: at 1e-9 central's shortest kink test happens to
    # see both sides agree, and its one-sided result from theta's own side is then the true 1, not a kink)
    theta, exact = np.array([5e-10, 1.0]), np.array([1.0, 1.0])
    report = check_gradients(relu_sum, theta, methods=("central",), reference=exact)
    assert report.passed and report.to_frame()["kink"].tolist() == [True, False]
    with pytest.raises(AssertionError) as info:
        report = check_gradients(relu_sum, theta, methods=("central",), reference=exact, on_kink="fail")
        report.raise_if_failed()
    msg = str(info.value)
    assert "theta[0]" in msg and "step straddles kink: yes" in msg


def test_complex_step_only_joins_for_analytic_functions(data):
    theta, x, y = data

    def relu_loss(xp, theta, x, y):
        return xp.mean((xp.maximum(0.0, x @ theta["W"] + theta["b"]) - y) ** 2)

    fast = {"reference": hand_grad(theta, x, y)}  # the default methods, without the exact reference's build
    assert "complex_step" in check_gradients(tanh_loss, theta, x, y, **fast).to_frame()["method"].values
    assert "complex_step" not in check_gradients(relu_loss, theta, x, y, **fast).to_frame()["method"].values


def test_objective_entries_carry_the_models_names(tanh_mlp):
    obj, theta = tanh_mlp
    report = assert_gradients_close(obj, theta)
    assert report.names == obj.param_names()
    assert report.reference_label.startswith("exact")  # 13 entries: small enough for the mpmath reference
    assert any(line.startswith("central") for line in str(report).splitlines())


def test_scalar_and_flat_theta():
    def cube(xp, t):
        return t ** 3
    report = assert_gradients_close(cube, 2.0, reference=12.0)  # d/dt t^3 = 3 t^2 = 12
    assert report.names == ["theta"]

    def quad(xp, t, a):
        return xp.sum(a * t * t)
    t, a = np.array([1.0, -2.0, 0.5]), np.array([3.0, 1.0, 2.0])
    assert_gradients_close(quad, t, a, reference=2 * a * t)


def test_bad_requests_get_clear_errors(data, tanh_mlp):
    theta, x, y = data
    with pytest.raises(ValueError, match="unknown gradient-check method 'centre'"):
        check_gradients(tanh_loss, theta, x, y, methods=("centre",))
    with pytest.raises(TypeError, match="an Objective carries its own data"):
        check_gradients(tanh_mlp[0], tanh_mlp[1], x)
    with pytest.raises(ValueError, match="nothing to check"):
        check_gradients(tanh_loss, theta, x, y, methods=("reverse",), reference="reverse")
    with pytest.raises(ValueError, match="on_kink"):
        check_gradients(tanh_loss, theta, x, y, on_kink="ignore")
    with pytest.raises(ValueError, match="rtol for .* must be a finite number"):
        check_gradients(tanh_loss, theta, x, y, rtol=-1.0)


@pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning")
def test_a_method_that_cannot_run_fails_the_check(data):
    theta, x, y = data

    def not_analytic_for_complex(xp, theta, x, y):
        return float(np.sum(tanh_loss(xp, theta, x, y)))  # float() cuts the complex part

    report = check_gradients(not_analytic_for_complex, theta, x, y, methods=("complex_step",),
                             reference=hand_grad(theta, x, y))
    assert not report.passed and "complex_step" in report.failure_message()
    assert "raised" in report.failure_message()


def test_docs_list_the_default_tolerances():
    doc = (Path(__file__).parents[1] / "docs" / "gradcheck.md").read_text()
    assert tolerance_table_markdown() in doc


def test_the_torch_backend_and_symbolic_are_methods_too(data):
    pytest.importorskip("torch")
    theta, x, y = data
    report = assert_gradients_close(tanh_loss, theta, x, y, methods=("reverse_torch", "symbolic"),
                                    reference=hand_grad(theta, x, y))
    assert [r["method"] for r in report.summary()] == ["reverse_torch", "symbolic"]


def test_auto_reference_falls_back_to_reverse_with_a_note(data, monkeypatch):
    import diffsuite.reference

    def too_big(*args, **kwargs):
        raise ds.BudgetExceeded("differentiate", "5 s", "3 of 8 entries")

    monkeypatch.setattr(diffsuite.reference, "reference_gradient", too_big)
    theta, x, y = data
    report = assert_gradients_close(tanh_loss, theta, x, y)
    assert report.reference_label == "reverse (float64)"
    assert any("exact reference was not available (BudgetExceeded" in n for n in report.notes)
    with pytest.raises(ds.BudgetExceeded):
        check_gradients(tanh_loss, theta, x, y, reference="exact")


# ----- non-finite values -----
@pytest.mark.parametrize("f, theta, what", [
    (lambda xp, t: xp.sum(xp.log(t)), np.array([-1.0, 2.0]), "= nan"),  # outside log's domain
    (lambda xp, t: xp.sum(xp.exp(t)), np.array([1000.0, 1.0]), "= inf"),  # overflow
])
@pytest.mark.parametrize("reference", ["auto", "central", np.array([1.0, 0.5])])
def test_a_non_finite_function_value_is_a_clear_error(f, theta, what, reference):
    # before: "auto" fell back to reverse mode silently, and the methods were blamed for the NaN
    with pytest.raises(ValueError, match=rf"needs a finite function value at theta; <lambda>\(theta\) {what} at "
                                         r"theta = \[.*\].*Move theta into the function's domain"):
        check_gradients(f, theta, reference=reference)


def test_an_infinite_reference_entry_neither_widens_the_tolerance_nor_passes():
    def square_sum(xp, t):
        return xp.sum(t ** 2)
    theta = np.array([1.0, 2.0])  # by hand: the gradient is 2 theta = [2, 4]
    report = check_gradients(square_sum, theta, methods=("reverse", "central"), reference=np.array([np.inf, 4.0]))
    assert not report.passed  # before: max|ref| = inf made atol inf, and everything passed
    rows = {row["method"]: row for row in report.summary()}
    # the scale of the finite entries: 4 (theta is one leaf); reverse: the rounding floor, central: rtol * 4
    assert rows["reverse"]["atol"] == ROUNDING_FLOOR_EPS * np.finfo(np.float64).eps * 4.0
    assert rows["central"]["atol"] == DEFAULT_RTOL["central", "float64"] * 4.0
    assert report.to_frame().set_index(["method", "entry"])["ok"].to_dict() == {
        ("reverse", "theta[0]"): False, ("reverse", "theta[1]"): True,
        ("central", "theta[0]"): False, ("central", "theta[1]"): True}
    assert any("not finite at 1 entry (theta[0])" in note for note in report.notes)
    nan_ref = check_gradients(square_sum, theta, methods=("reverse",), reference=np.array([2.0, np.nan]))
    assert nan_ref.failed_methods == ["reverse"] and nan_ref.summary()[0]["n_failed"] == 1


def test_a_non_finite_method_entry_fails_even_at_a_kink_and_against_a_non_finite_reference():
    from diffsuite.gradcheck.methods import resolve_method
    from diffsuite.gradcheck.report import GradcheckReport, MethodResult
    central = resolve_method("central")
    for grad, ref, kinks in [([np.nan, 1.0], [1.0, 1.0], {0}), ([np.inf, 1.0], [np.inf, 1.0], set()),
                             ([-np.inf, 1.0], [1.0, 1.0], {0})]:
        result = MethodResult(central, np.array(grad), 1e-6, 1e-6, frozenset(kinks))
        report = GradcheckReport("f", ["t[0]", "t[1]"], np.array(ref), "given", [result], on_kink="skip")
        assert report.failing(result).tolist() == [True, False] and not report.passed


def test_a_wrong_hand_written_reference_is_blamed_not_the_methods(data):
    """Three independent methods agree with each other and all disagree with the user's reference: the
    headline names the reference as the odd one out (it used to say the methods disagree)."""
    theta, x, y = data
    wrong = {k: 1.5 * v for k, v in hand_grad(theta, x, y).items()}  # a typical slip in a hand-written gradient
    with pytest.raises(AssertionError) as info:
        assert_gradients_close(tanh_loss, theta, x, y, methods=("reverse", "central", "complex_step"), reference=wrong)
    headline = str(info.value).splitlines()[0]
    assert "the reference, " in headline and "is the odd one out" in headline
    assert "reverse, central, complex_step agree with each other" in headline
    # one method wrong among right ones: the methods are blamed as before
    right = hand_grad(theta, x, y)
    report = check_gradients(tanh_loss, theta, x, y, methods=("reverse", "central"), reference=right)
    assert report.passed and not report.reference_is_odd_one_out()
