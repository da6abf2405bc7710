"""The lecture's worked examples, with expected values worked out here in exact/high-precision arithmetic.

Where the lecture's own arithmetic slips, the tests assert the correct value and say what slipped.
"""
import mpmath as mp
import numpy as np
import pytest

import diffsuite as ds
from diffsuite.lecture import LECTURE_INPUT, lecture_network

mp.mp.dps = 40
sig = lambda a: 1 / (1 + mp.exp(-a))


def test_add_mul_example_by_hand():
    """f = (x + y) z at (-2, 5, -4): q = x + y = 3, f = q z = -12; df/dx = df/dy = z = -4, df/dz = q = 3."""
    res = ds.get_differentiator("reverse").value_and_grad_fn(lambda xp, p: (p["x"] + p["y"]) * p["z"])(
        {"x": -2.0, "y": 5.0, "z": -4.0})
    assert (res.value, res.grad) == (-12.0, {"x": -4.0, "y": -4.0, "z": 3.0})


def test_sigmoid_neuron_example():
    """f(w, x) = 1 / (1 + e^-(w0 x0 + w1 x1 + w2)) at w = (2, -3, -3), x = (-1, -2) (CS231n's numbers).

    w.x + w2 = -2 + 6 - 3 = 1, f = sigma(1) = 0.7310585786..., sigma'(1) = sigma(1)(1 - sigma(1)) = 0.19661193...
    (the lecture's "[1.00] x [(1 - 0.73)(0.73)] = 0.2"); df/dw = sigma'(1) * (x0, x1, 1), df/dx = sigma'(1) * (w0, w1).
    """
    s = sig(mp.mpf(1))
    ds1 = s * (1 - s)
    assert float(ds1) == pytest.approx(0.19661193324148185, rel=1e-15)

    def neuron(xp, p):
        w, x = p["w"], p["x"]
        return 1.0 / (1.0 + xp.exp(-(w[0] * x[0] + w[1] * x[1] + w[2])))

    res = ds.get_differentiator("reverse").value_and_grad_fn(neuron)(
        {"w": np.array([2.0, -3.0, -3.0]), "x": np.array([-1.0, -2.0])})
    assert res.value == pytest.approx(float(s), rel=1e-15)
    np.testing.assert_allclose(res.grad["w"], [float(-ds1), float(-2 * ds1), float(ds1)], rtol=1e-14)
    np.testing.assert_allclose(res.grad["x"], [float(2 * ds1), float(-3 * ds1)], rtol=1e-14)


def lecture_by_hand():
    """The lecture's [3, 2, 1] sigmoid network, forward and backward written out in 40-digit arithmetic."""
    x = [mp.mpf("0.4"), mp.mpf("0.2"), mp.mpf("0.2")]
    w = [[mp.mpf("1.0"), mp.mpf("0.5")], [mp.mpf("0.2"), mp.mpf("1.2")], [mp.mpf("1.2"), mp.mpf("0.1")]]
    b = [mp.mpf("0.1"), mp.mpf("0.2")]
    v, c = [mp.mpf("0.3"), mp.mpf("0.9")], mp.mpf("0.3")
    a = [sum(x[i] * w[i][j] for i in range(3)) + b[j] for j in range(2)]
    o = [sig(aj) for aj in a]
    a_out = v[0] * o[0] + v[1] * o[1] + c
    y = sig(a_out)
    # quadratic loss J = 1/2 (y - 1)^2: dJ/dy = y - 1, then through the output sigmoid and the hidden layer
    d_out = (y - 1) * y * (1 - y)
    d_hidden = [d_out * v[j] * o[j] * (1 - o[j]) for j in range(2)]
    grad = {"W0": [[x[i] * d_hidden[j] for j in range(2)] for i in range(3)], "b0": d_hidden,
            "W1": [[o[0] * d_out], [o[1] * d_out]], "b1": [d_out]}
    return a, o, a_out, y, (y - 1) ** 2 / 2, grad


def test_lecture_network_forward_values_and_the_lecture_slips():
    a, o, a_out, y, _, _ = lecture_by_hand()
    assert abs(a[0] - mp.mpf("0.78")) < 1e-35  # 0.4 + 0.04 + 0.24 + 0.1, as the lecture says...
    # ...but then it writes g(0.78) = 1/(1 + exp(0.78)) = 0.314: the sign of the exponent slipped.
    assert float(o[0]) == pytest.approx(0.68568, abs=5e-6)     # sigma(0.78), the lecture's "0.68"
    # The lecture writes 0.1 * 0.2 = 0.03 and then sums to 0.49: the right pre-activation is
    # 0.5*0.4 + 1.2*0.2 + 0.1*0.2 + 0.2 = 0.2 + 0.24 + 0.02 + 0.2 = 0.66, so o2 = sigma(0.66) = 0.6593, not 0.62.
    assert abs(a[1] - mp.mpf("0.66")) < 1e-35
    assert float(o[1]) == pytest.approx(0.659260, abs=5e-7)
    # With the right hidden values the output pre-activation is 1.0990, not the lecture's 1.062; y = 0.75008 (not 0.74).
    assert float(a_out) == pytest.approx(1.099038, abs=5e-7)
    assert float(y) == pytest.approx(0.750080, abs=5e-7)

    model, theta = lecture_network()
    h = model.unpack(theta)
    hidden = ds.NUMPY.sigmoid(LECTURE_INPUT @ h["W0"] + h["b0"])
    np.testing.assert_allclose(hidden[0], [float(o[0]), float(o[1])], rtol=1e-15)
    assert model.forward(theta, LECTURE_INPUT)[0, 0] == pytest.approx(float(y), rel=1e-15)


def test_lecture_network_gradient_against_the_hand_chain_rule():
    *_, loss, grad = lecture_by_hand()
    model, theta = lecture_network()
    obj = ds.Objective(model, "quadratic", LECTURE_INPUT, [[1.0]])
    res = ds.get_differentiator("reverse").value_and_grad(obj)(theta)
    expected = model.pack({k: np.array([[float(e) for e in row] if isinstance(row, list) else float(row)
                                        for row in v]) for k, v in grad.items()})
    assert res.value == pytest.approx(float(loss), rel=1e-14)
    np.testing.assert_allclose(res.grad, expected, rtol=1e-13)
