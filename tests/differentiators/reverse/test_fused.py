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


def _cases(rng):
    """Logit matrices that reach every branch of the numpy rule: plain, saturated, tied maxima (two entries equal to
    the row's maximum, and the target among them), -inf entries (no rounding correction there) and a NaN row."""
    z = rng.normal(size=(9, 5))
    yield "plain", z
    yield "saturated", z * 60.0
    tied = z.copy()
    tied[:, 1] = tied[:, 3] = tied.max(axis=1) + 1.0
    yield "tied", tied
    neg_inf = z.copy()
    neg_inf[2, 4] = neg_inf[5, 0] = -np.inf
    yield "-inf", neg_inf
    nan = z.copy()
    nan[4, 2] = np.nan
    yield "nan", nan


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_backend_rule_has_the_generic_rules_bits(backend, dtype):
    # oracle: the generic rule, the loss's own operations (checked against 60-digit arithmetic above and against the
    # objective's seven-primitive path in the engine test); each backend's own rule (numpy's, and torch's on the CPU)
    # must reproduce it bit for bit, through every branch: ties, -inf entries and NaN rows (the fallback)
    from diffsuite.differentiators.reverse.backends import load_backend
    from diffsuite.differentiators.reverse.fused import (_generic_softmax_cross_entropy, _softmax_cross_entropy,
                                                         _torch_softmax_cross_entropy, target_index)

    if backend == "torch":
        pytest.importorskip("torch")
    B = load_backend(backend, device="cpu", dtype=dtype)
    host = (lambda a: a) if backend == "numpy" else (lambda a: a.numpy())
    rng = np.random.default_rng(3)
    for name, z in _cases(rng):
        z = B.asarray(z.astype(dtype))
        for labels in (rng.integers(0, 5, size=9), np.full(9, 1), np.full(9, 3)):  # 1, 3: a tied maximum
            onehot = B.asarray(np.eye(5, dtype=dtype)[labels])
            hot = target_index(onehot)
            # numpy: each row's flat index; torch: each row's column, as gather's (batch, 1) index
            want_hot = np.arange(9) * 5 + labels if backend == "numpy" else labels.reshape(9, 1)
            np.testing.assert_array_equal(host(hot), want_hot)
            with np.errstate(all="ignore"):
                want = _generic_softmax_cross_entropy(B, z, onehot)
                got = _softmax_cross_entropy(B, z, onehot, hot=hot)
            assert host(got[0]).tobytes() == host(want[0]).tobytes(), (name, got[0], want[0])
            assert host(got[1]).dtype == host(want[1]).dtype and host(got[1]).tobytes() == host(want[1]).tobytes(), name
            if backend == "torch":  # the fast rule really ran (it returns None and falls back only on a non-finite row)
                ran = _torch_softmax_cross_entropy(z, hot)
                assert (ran is None) == (name in ("-inf", "nan")), name


def test_target_index_refuses_what_is_not_one_hot():
    from diffsuite.differentiators.reverse.fused import target_index

    assert target_index(np.array([[0.0, 1.0], [1.0, 0.0]])).tolist() == [1, 2]
    for bad in (np.array([[0.0, 1.0], [0.0, 0.0]]),  # a row without its 1
                np.array([[1.0, 1.0], [1.0, 0.0]]),  # a row with two
                np.array([[0.3, 0.7], [1.0, 0.0]]),  # soft labels
                np.array([[0.0, 2.0], [1.0, 0.0]]),  # not a 1
                np.array([0.0, 1.0])):               # not a matrix
        assert target_index(bad) is None


def test_target_index_on_torch_cpu_only():
    torch = pytest.importorskip("torch")
    from diffsuite.differentiators.reverse.fused import target_index

    assert target_index(torch.tensor([[0.0, 1.0], [1.0, 0.0]])).tolist() == [[1], [0]]
    assert target_index(torch.tensor([[0.0, 1.0], [0.0, 0.0]])) is None  # a row without its 1
    assert target_index(torch.tensor([[0, 1], [1, 0]])) is None  # integer rows: the generic rule
