"""Witness rows (reverse/plan.py): a replay proves theta finite from row 0 of each layer's ``x @ W + b``.

What must hold, and the oracles:
- every inf or nan parameter is still refused by name, including the ones a theta-blind check could miss: a -inf
  bias or weight under relu leaves the loss and the gradient finite (shown here first, by torch in float64, so the
  case is a real one); expected names come from the layout written out by hand (row-major W, then b);
- a finite theta whose forward pass overflows is run through, and gives the tape path's bits;
- a matrix product that skips zero factors (as some BLAS do) is no witness: the probe refuses it, and the plan then
  leaves the check to the caller's sum over theta;
- warnings as errors (numpy's warning for ``0 * inf`` in the forward pass) still end in the ValueError.
"""
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch

import diffsuite as ds
from diffsuite import get_differentiator
from diffsuite.differentiators.reverse import SLOTS_FROM
from diffsuite.differentiators.reverse.ops import OPS
from diffsuite.differentiators.reverse.plan import _multiplies_every_entry

LAYERS = (100, 100, 10)  # 11,110 parameters: above SLOTS_FROM, where the witness replaces the sum over theta


def objective(batch=4, seed=0, positive=True, loss="cross_entropy", l2=0.0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.5, 1.5, size=(batch, LAYERS[0])) if positive else rng.normal(size=(batch, LAYERS[0]))
    y = rng.integers(0, LAYERS[-1], size=batch)
    return ds.Objective(ds.MLP(LAYERS, activation="relu"), loss, X, y, l2=l2)


def plan_of(vg):
    cells = dict(zip(vg.__code__.co_freevars, vg.__closure__))
    return cells["plan"].cell_contents[0]


def replaying(obj, **options):
    vg = get_differentiator("reverse", **options).value_and_grad(obj)
    theta = obj.model.init(0)
    vg(theta)  # records
    vg(theta)  # replays
    return vg, theta


def test_the_witness_is_what_checks_theta_here():
    obj = objective()
    assert obj.n_params >= SLOTS_FROM
    vg, _ = replaying(obj)
    plan = plan_of(vg)
    assert plan.witnessed
    assert plan.source.count("_row0_sum(") == 2 * 2  # one row per layer, in run and run_into


def test_a_minus_inf_under_relu_leaves_loss_and_gradient_finite():
    """The case a check on the loss or the gradient would miss (torch float64 as the oracle): b0[3] = -inf with
    every hidden pre-activation otherwise finite makes unit 3 of layer 0 output 0 for every sample."""
    obj = objective()
    theta = obj.model.init(0)
    a, b, _ = obj.model.layout["b0"]
    theta[a + 3] = -np.inf
    X = torch.tensor(obj.inputs)
    t = torch.tensor(theta, requires_grad=True)
    W0, b0 = t[:10_000].reshape(100, 100), t[10_000:10_100]
    W1, b1 = t[10_100:11_100].reshape(100, 10), t[11_100:]
    logits = torch.relu(X @ W0 + b0) @ W1 + b1
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(obj.targets))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(t.grad).all()


# flat index -> name, by hand: W0 is (100, 100) row-major at 0, b0 at 10,000, W1 (100, 10) at 10,100, b1 at 11,100
ENTRIES = [(0, "W0[0, 0]"), (5_050, "W0[50, 50]"), (9_999, "W0[99, 99]"), (10_003, "b0[3]"), (10_100, "W1[0, 0]"),
           (10_537, "W1[43, 7]"), (11_099, "W1[99, 9]"), (11_100, "b1[0]"), (11_109, "b1[9]")]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("index,name", ENTRIES, ids=[name for _, name in ENTRIES])
@pytest.mark.parametrize("positive", [True, False], ids=["x>0", "x~N(0,1)"])
def test_a_replay_names_every_nonfinite_entry(index, name, bad, positive):
    vg, theta = replaying(objective(positive=positive))
    theta = theta.copy()
    theta[index] = bad
    expected = re.escape(f"theta must be finite; {name} (flat index {index}) is {bad}")
    with np.errstate(all="ignore"), pytest.raises(ValueError, match=expected):
        vg(theta)


def test_a_zero_input_column_still_witnesses_its_weights():
    """x[:, 7] = 0 for every sample: W0[7, :] meets only zeros, and 0 * inf is nan (IEEE), so row 0 still shows it."""
    obj = objective()
    X = obj.inputs.copy()
    X[:, 7] = 0.0
    vg, theta = replaying(ds.Objective(obj.model, "cross_entropy", X, obj.targets))
    theta = theta.copy()
    theta[7 * 100 + 30] = -np.inf  # W0[7, 30]
    with np.errstate(all="ignore"), pytest.raises(ValueError, match=r"W0\[7, 30\] \(flat index 730\) is -inf"):
        vg(theta)


@pytest.mark.parametrize("scale", [1e200, 1e300])
def test_a_finite_theta_that_overflows_gives_the_tape_paths_bits(scale):
    obj = objective(positive=False, l2=0.01)
    vg, theta = replaying(obj)
    tape = get_differentiator("reverse", replay=False).value_and_grad(obj)
    with np.errstate(all="ignore"):
        got, want = vg(scale * theta), tape(scale * theta)
    assert not np.isfinite(got.value) or not np.isfinite(got.grad).all()  # the overflow is real
    assert (got.value == want.value) or (np.isnan(got.value) and np.isnan(want.value))
    np.testing.assert_array_equal(got.grad, want.grad)


def test_the_replay_writes_nothing_of_a_refused_call_into_a_later_result():
    vg, theta = replaying(objective())
    before = vg(theta)
    bad = theta.copy()
    bad[10] = np.nan
    with pytest.raises(ValueError):
        vg(bad)
    after = vg(theta)
    assert after.value == before.value
    np.testing.assert_array_equal(after.grad, before.grad)


def skipping_matmul(B, x, y):
    """A matrix product as a BLAS that skips zero factors computes it (reference BLAS's ``IF (B(L,J).NE.ZERO)``)."""
    out = np.zeros((x.shape[0], y.shape[1]))
    for i in range(x.shape[1]):
        nonzero = x[:, i] != 0
        out[nonzero] += np.outer(x[nonzero, i], y[i])
    return out


def test_the_probe_refuses_a_product_that_skips_zero_factors():
    x, y = np.ones((3, 4)), np.ones((4, 2))
    assert _multiplies_every_entry(OPS["matmul"], x, y)

    class Skipping:
        forward = staticmethod(skipping_matmul)

    assert not _multiplies_every_entry(Skipping, x, y)


@pytest.mark.parametrize("why", ["a BLAS that skips zeros", "torch backend"])
def test_without_a_witness_the_sum_over_theta_still_refuses(why, monkeypatch):
    if why == "a BLAS that skips zeros":
        import diffsuite.differentiators.reverse.plan as plan_module
        monkeypatch.setattr(plan_module, "_multiplies_every_entry", lambda op, x, y: False)
    vg, theta = replaying(objective(), **({"backend": "torch"} if why == "torch backend" else {}))
    assert not plan_of(vg).witnessed
    theta = theta.copy()
    theta[10_003] = -np.inf
    with pytest.raises(ValueError, match=r"b0\[3\] \(flat index 10003\) is -inf"):
        vg(theta)


def test_warnings_as_errors_still_end_in_the_named_error():
    """In a process with ``-W error`` (a user's CI): numpy's RuntimeWarning for inf - inf in the first layer's
    product is raised inside the replay; the caller must still get the ValueError naming the entry."""
    code = textwrap.dedent("""
        import numpy as np, diffsuite as ds
        rng = np.random.default_rng(0)
        obj = ds.Objective(ds.MLP((100, 100, 10), activation="relu"), "cross_entropy",
                           rng.normal(size=(4, 100)), rng.integers(0, 10, size=4))
        vg = ds.get_differentiator("reverse").value_and_grad(obj)
        theta = obj.model.init(0)
        vg(theta); vg(theta)
        theta[5050] = np.inf
        try:
            vg(theta)
        except ValueError as e:
            print("ValueError:", e)
    """)
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=300)
    assert "ValueError: theta must be finite; W0[50, 50] (flat index 5050) is inf" in out.stdout, out.stderr


def test_seterr_raise_still_ends_in_the_named_error():
    """``np.seterr(all="raise")``: numpy raises FloatingPointError for inf - inf in the first layer's product."""
    vg, theta = replaying(objective(positive=False))
    theta = theta.copy()
    theta[5_050] = np.inf
    theta[5_051] = -np.inf
    with np.errstate(all="raise"), pytest.raises(ValueError, match=re.escape("W0[50, 50] (flat index 5050) is inf")):
        vg(theta)


def test_small_nets_keep_the_sum_and_their_plans_carry_no_rows():
    """Below SLOTS_FROM parameters the sum over theta costs less than the rows; a plan there must not compute rows
    that no call reads."""
    rng = np.random.default_rng(1)
    obj = ds.Objective(ds.MLP((3, 4, 2), activation="relu"), "cross_entropy", rng.normal(size=(5, 3)),
                       rng.integers(0, 2, size=5))
    vg, theta = replaying(obj)
    plan = plan_of(vg)
    assert not plan.witnessed and "_row0_sum" not in plan.source
    theta = theta.copy()
    theta[12] = -np.inf  # W0 is (3, 4): 12 entries, then b0; b0[0] by hand
    with pytest.raises(ValueError, match=re.escape("b0[0] (flat index 12) is -inf")):
        vg(theta)


@pytest.mark.parametrize("dtype,scale", [("float64", 1e306), ("float32", 1e35)])
@pytest.mark.parametrize("mode", ["warn", "-W error", "seterr raise"])
def test_row_sums_that_overflow_on_a_finite_theta_raise_nothing_the_tape_does_not(dtype, scale, mode):
    """Row 0 of x @ W0 + b0 ~ 1e308 (float32: 1e37) in each of 100 columns, finite, but its sum overflows; theta's
    own sum stays small (signs alternate). The tape path (``replay=False``) computes it without a warning; so must a
    witnessed replay, in every warnings mode (found by a review: add.reduce warned, and raised under -W error)."""
    sign = np.where(np.arange(100) % 2 == 0, 1.0, -1.0)
    obj = ds.Objective(ds.MLP((100, 100, 1), activation="step"), "quadratic", np.stack([sign, sign]),
                       np.array([[0.5], [0.2]]))
    theta = obj.model.init(0)
    theta[:10_000] = np.repeat(scale * sign, 100)
    fast, _ = replaying(obj, dtype=dtype)
    assert plan_of(fast).witnessed
    want = get_differentiator("reverse", replay=False, dtype=dtype).value_and_grad(obj)(theta)
    with warnings.catch_warnings(record=True) as seen, np.errstate(all="raise" if mode == "seterr raise" else "warn"):
        warnings.simplefilter("error" if mode == "-W error" else "always")
        got = fast(theta)
    assert not [w for w in seen if "reduce" in str(w.message) or "scalar" in str(w.message)]
    assert got.value == want.value
    np.testing.assert_array_equal(got.grad, want.grad)


def test_a_bad_entry_draws_no_warning_from_the_rows_themselves():
    """W0[0, 3] = +inf and b0[5] = -inf in one row: its sum meets inf - inf. The ValueError comes with at most the
    matmul's own warning, none from the witness's sum."""
    vg, theta = replaying(objective())
    theta = theta.copy()
    theta[3] = np.inf
    theta[10_005] = -np.inf
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match=re.escape("W0[0, 3] (flat index 3) is inf")):
            vg(theta)
    assert not [w for w in seen if "reduce" in str(w.message)]


def test_a_float32_cast_that_overflows_does_not_hide_a_nan():
    """float32: theta's 1e39 overflows the cast, which seterr raise turns into FloatingPointError; the nan next to it
    must still be named first, as replay=False (which sums theta before casting) names it (a review's case)."""
    vg, theta = replaying(objective(), dtype="float32")
    assert plan_of(vg).witnessed
    theta = theta.copy()
    theta[0], theta[5] = 1e39, np.nan
    for d in (vg, get_differentiator("reverse", dtype="float32", replay=False).value_and_grad(objective())):
        with np.errstate(all="raise"), pytest.raises(ValueError, match=re.escape("W0[0, 5] (flat index 5) is nan")):
            d(theta)
