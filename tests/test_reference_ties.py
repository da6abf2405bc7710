"""The reference at exact ties: a smooth function built from kinked pieces gets its true derivative there, and a
true kink is named, not passed off as a derivative (docs/reference.md, "Exact ties").

Oracle: the derivative of the function each case simplifies to, written out by hand (relu(x) - relu(-x) = x,
max + min = x + y, |x| sign(x) = x, ...); for true kinks, that the one-sided derivatives differ (relu at 0:
1 and 0), so that no derivative exists and the entry must be listed in the certificate's ``kinks``.
"""
import numpy as np
import pytest

import diffsuite as ds

# (name, f(xp, t), theta, the true gradient; None where the entry is on a true kink)
CASES = [
    ("relu(x) - relu(-x) = x", lambda xp, t: xp.sum(xp.relu(t) - xp.relu(-t)), [0.0, 1.0], [1.0, 1.0]),
    ("max + min = x + y", lambda xp, t: xp.maximum(t[0], t[1]) + xp.minimum(t[0], t[1]), [0.5, 0.5], [1.0, 1.0]),
    ("max(x, 0) + min(x, 0) = x", lambda xp, t: xp.sum(xp.maximum(t, 0.0) + xp.minimum(t, 0.0)), [0.0], [1.0]),
    ("max(.1x, x) + min(.1x, x) = 1.1x", lambda xp, t: xp.sum(xp.maximum(0.1 * t, t) + xp.minimum(0.1 * t, t)),
     [0.0], [1.1]),
    ("|x| sign(x) = x", lambda xp, t: xp.sum(xp.abs(t) * xp.sign(t)), [0.0], [1.0]),
    ("step(x) x + step(-x) x = x", lambda xp, t: xp.sum(xp.step(t) * t + xp.step(-t) * t), [0.0], [1.0]),
    ("clip(x, 0, 0) = 0", lambda xp, t: xp.sum(xp.clip(t, 0.0, 0.0)), [0.0], [0.0]),
    ("max(t) + min(t) over a tie", lambda xp, t: xp.max(t) + xp.min(t), [0.5, 0.5], [1.0, 1.0]),
    ("relu at 0: a kink", lambda xp, t: xp.sum(xp.relu(t)), [0.0, 2.0], [None, 1.0]),
    ("|x| at 0: a kink", lambda xp, t: xp.sum(xp.abs(t)), [0.0], [None]),
    ("maximum at a tie: a kink", lambda xp, t: xp.maximum(t[0], t[1]), [1.0, 1.0], [None, None]),
    ("sqrt on one side only", lambda xp, t: xp.sum(xp.where(t > 0, xp.sqrt(xp.abs(t)), 0.0)), [0.0, 4.0],
     [None, 0.25]),
]


@pytest.mark.parametrize("arithmetic", ["arb", "mpmath"])
@pytest.mark.parametrize("name,f,theta,want", CASES, ids=[c[0] for c in CASES])
def test_ties_give_the_true_derivative_or_name_the_kink(name, f, theta, want, arithmetic):
    res = ds.reference_gradient(f, np.array(theta), arithmetic=arithmetic)
    cert = res.stats["certificate"]
    assert cert.ties > 0 and cert.tie_check == "sides", name
    kinks = {f"theta[{k}]" for k, w in enumerate(want) if w is None}
    assert set(cert.kinks) == kinks, name
    smooth = [k for k, w in enumerate(want) if w is not None]
    np.testing.assert_array_equal(res.grad[smooth], np.array(want, dtype=object)[smooth].astype(float), err_msg=name)
    if kinks:
        assert "not a derivative" in cert.describe()


def test_a_step_is_a_jump_in_the_value():
    cert = ds.reference_gradient(lambda xp, t: xp.sum(xp.step(t)), np.array([0.0])).stats["certificate"]
    assert cert.kinks == ("the loss value", "theta[0]")


def test_a_relu_unit_exactly_at_zero_names_its_input_weights_only():
    """An MLP whose first hidden unit has pre-activation exactly 0: the loss has a true kink in that unit's input
    weights and bias (one-sided derivatives differ); its output weight multiplies relu(0) = 0 on both sides."""
    model = ds.MLP(layers=(2, 2, 1), activation="relu", output_activation="identity")
    p = model.unpack(model.init(seed=0))
    p["W0"][:, 0], p["b0"][0] = [1.0, -1.0], 0.0  # x = (1, 1): 1 - 1 + 0 = 0
    obj = ds.Objective(model, loss="quadratic", inputs=np.array([[1.0, 1.0]]), targets=np.array([[0.3]]))
    res = ds.reference_gradient(obj, model.pack(p))
    assert set(res.stats["certificate"].kinks) == {"W0[0, 0]", "W0[1, 0]", "b0[0]"}
    assert res.grad[model.param_names().index("W1[0, 0]")] == 0.0


def test_no_tie_no_extra_work():
    cert = ds.reference_gradient(lambda xp, t: xp.sum(xp.relu(t)), np.array([0.5, -2.0])).stats["certificate"]
    assert cert.ties == 0 and cert.tie_check == "" and cert.kinks == () and cert.resolved == ()
