"""Activations and losses evaluated in numpy against formulas written out here."""
import math

import numpy as np
import pytest

import diffsuite as ds
from diffsuite.namespace import NUMPY

Z = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0, -700.0, 700.0]])


@pytest.mark.parametrize("name,expected", [
    ("identity", lambda z: z),
    ("step", lambda z: 1.0 if z > 0 else 0.0),  # the perceptron: 0 if w.x + b <= 0
    ("sigmoid", lambda z: 1 / (1 + math.exp(-z))),  # sigmoid(-700) = 9.9e-305, a normal float: no 0 here
    ("tanh", math.tanh),
    ("relu", lambda z: max(0.0, z)),
    ("leaky_relu", lambda z: max(0.1 * z, z)),  # the lecture's max(0.1x, x)
    ("elu", lambda z: z if z > 0 else math.exp(z) - 1),
])
def test_elementwise_activations(name, expected):
    got = ds.nn.get_activation(name)(NUMPY, Z)
    np.testing.assert_allclose(got[0], [expected(z) for z in Z[0]], rtol=1e-15, atol=0)


def test_sigmoid_does_not_overflow():
    with np.errstate(over="raise"):
        got = ds.nn.get_activation("sigmoid")(NUMPY, np.array([-1e4, 1e4]))
    np.testing.assert_array_equal(got, [0.0, 1.0])  # e^-10000 rounds to 0: sigmoid is 0 and 1 in float64


def test_softmax_is_stable_and_normalised():
    s = ds.nn.get_activation("softmax")(NUMPY, np.array([[1000.0, 1001.0, 1002.0]]))
    e = np.exp([-2.0, -1.0, 0.0])
    # exp(z - lse(z)): lse ~ 1002 is rounded to an ulp of 1002 (1.1e-13), so that is the error scale here
    np.testing.assert_allclose(s[0], e / e.sum(), rtol=4 * np.finfo(float).eps * 1002.4)
    assert np.isfinite(s).all() and s.sum() == pytest.approx(1.0, rel=1e-12)


def test_maxout_takes_the_max_over_pieces():
    z = np.array([[1.0, 5.0, 3.0, 2.0, 4.0, 0.0]])  # k = 2 pieces of width 3: (1, 5, 3) and (2, 4, 0)
    np.testing.assert_array_equal(ds.nn.Maxout(k=2)(NUMPY, z), [[2.0, 5.0, 3.0]])


def test_activation_options_are_checked():
    with pytest.raises(ValueError, match="slope"):
        ds.nn.LeakyReLU(slope=1.5)
    with pytest.raises(ValueError, match="k >= 2"):
        ds.nn.Maxout(k=1)
    with pytest.raises(TypeError, match="does not take options"):
        ds.nn.get_activation("relu", alpha=2)


def test_losses_by_hand():
    y = np.array([[0.8], [0.3]])
    t = np.array([[1.0], [0.0]])
    assert ds.nn.Quadratic()(NUMPY, y, t) == pytest.approx((0.5 * 0.04 + 0.5 * 0.09) / 2, rel=1e-15)
    bce = -(math.log(0.8) + math.log(0.7)) / 2
    assert ds.nn.BinaryCrossEntropy()(NUMPY, y, t) == pytest.approx(bce, rel=1e-15)
    z = np.array([[0.4], [-0.3]])  # logits: softplus(z) - t z
    expect = (math.log1p(math.exp(0.4)) - 0.4 + math.log1p(math.exp(-0.3))) / 2
    assert ds.nn.BinaryCrossEntropy(from_logits=True)(NUMPY, z, t) == pytest.approx(expect, rel=1e-15)
    tt = np.array([[1.0], [-1.0]])
    assert ds.nn.Hinge()(NUMPY, np.array([[0.25], [2.0]]), tt) == pytest.approx((0.75 + 3.0) / 2)
    logits = np.array([[2.0, 1.0, 0.1], [0.0, 0.0, 1000.0]])
    onehot = ds.nn.CrossEntropy().prepare([0, 2], 3)
    ce0 = -math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(1.0) + math.exp(0.1)))
    ce1 = math.log(2 * math.exp(-1000.0) + 1.0)  # = -log softmax(z)[2], stable at 1000
    assert ds.nn.CrossEntropy()(NUMPY, logits, onehot) == pytest.approx((ce0 + ce1) / 2, rel=1e-14)


@pytest.mark.parametrize("loss,targets,match", [
    ("cross_entropy", [0, 3], "class indices must lie in 0..2"),
    ("cross_entropy", [0.5, 1], r"integer class labels; targets\[0\] is 0.5"),
    ("hinge", [[0.0], [1.0]], "targets in \\{-1, \\+1\\}"),
    ("binary_cross_entropy", [[2.0], [0.0]], "targets in \\[0, 1\\]"),
    ("quadratic", [[1.0, 2.0], [3.0, 4.0]], "targets of shape \\(batch, 1\\)"),
])
def test_bad_targets_get_clear_errors(loss, targets, match):
    n_out = 3 if loss == "cross_entropy" else 1
    model = ds.MLP((2, n_out), output_activation="sigmoid" if loss == "binary_cross_entropy" else "identity")
    with pytest.raises(ValueError, match=match):
        ds.Objective(model, loss, np.zeros((2, 2)), targets)


def test_unknown_loss_lists_the_choices():
    with pytest.raises(ValueError, match="unknown loss 'mse'; choose one of quadratic, binary_cross_entropy, "
                                         "cross_entropy, hinge"):
        ds.Objective(ds.MLP((2, 1)), "mse", np.zeros((1, 2)), [[0.0]])
