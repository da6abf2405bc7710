"""The fused softmax cross-entropy rule against 60-digit arithmetic, and the engine's use of it."""
import mpmath
import numpy as np
import pytest

import diffsuite as ds
from diffsuite.differentiators.reverse import Reverse
from diffsuite.differentiators.reverse.backends import NumpyBackend
from diffsuite.differentiators.reverse.fused import SOFTMAX_CROSS_ENTROPY
from diffsuite.differentiators.reverse.tape import Tape

EPS = np.finfo(np.float64).eps


def exact(z, labels):
    """(mean cross-entropy, its gradient) of logits z at the labels, in 60-digit arithmetic."""
    with mpmath.workdps(60):
        n = len(z)
        value, grad = mpmath.mpf(0), np.zeros(z.shape)
        for b, (row, y) in enumerate(zip(z, labels)):
            e = [mpmath.exp(mpmath.mpf(float(v))) for v in row]
            s = mpmath.fsum(e)
            value += (mpmath.log(s) - mpmath.mpf(float(row[y]))) / n
            for j in range(len(row)):
                grad[b, j] = float((e[j] / s - (1 if j == y else 0)) / n)
        return float(value), grad


def fused(z, labels):
    onehot = np.eye(z.shape[1])[labels]
    tape = Tape(NumpyBackend())
    zv = tape.input(z)
    out = tape.apply(SOFTMAX_CROSS_ENTROPY, zv, onehot)
    (g,), n_vjps = tape.backward(out, [zv])
    return float(out.value), g


@pytest.mark.parametrize("scale", [1.0, 40.0])
def test_value_and_gradient_to_a_few_ulp_also_in_saturation(scale):
    # scale 40: the target's probability is 1 - 1e-17 in some rows, where p_y - 1 would lose every digit
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 5)) * scale
    labels = np.argmax(z + rng.normal(size=z.shape) * scale * 0.3, axis=1)
    value, grad = fused(z, labels)
    want_value, want_grad = exact(z, labels)
    assert abs(value - want_value) <= 16 * EPS * abs(want_value)
    # d_j = z_j - z_y is rounded (relative error eps/2), and exp turns that into a relative error of about
    # |d_j| eps / 2 in p_j: the conditioning of the softmax in its logits, which no formula computed from z
    # avoids. p_y - 1 in saturation would be off by ~1e13 ulp (the true value is 1e-17, p_y - 1 gives 0 or eps).
    bound = 8 * EPS * (1 + np.max(np.abs(z), axis=1, keepdims=True)) * np.abs(want_grad)
    assert np.all(np.abs(grad - want_grad) <= bound), (grad, want_grad)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_engine_records_the_loss_as_one_primitive_with_the_generic_paths_bits(backend, dtype):
    # the objective's own evaluate on the tape (its loss as seven primitives) gives the same value and gradient
    # bit for bit
    if backend == "torch":
        pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    for scale, l2 in ((1.0, 0.0), (30.0, 0.01)):  # (30: rows in saturation)
        model = ds.MLP(layers=(4, 5, 3), activation="tanh", output_activation="identity")
        obj = ds.Objective(model, loss="cross_entropy", inputs=rng.normal(size=(7, 4)),
                           targets=rng.integers(0, 3, 7), l2=l2)
        theta = model.init(0) * scale
        fast = Reverse(backend=backend, dtype=dtype).value_and_grad(obj)(theta)
        generic = Reverse(backend=backend, dtype=dtype).value_and_grad_fn(lambda xp, p: obj.evaluate(xp, p))(model.unpack(theta))
        assert fast.stats["tape_forward_ops"] == generic.stats["tape_forward_ops"] - 6
        assert fast.value == generic.value
        assert np.array_equal(fast.grad, model.pack(generic.grad))
