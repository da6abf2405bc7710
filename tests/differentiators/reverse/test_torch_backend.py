"""The torch backend: the same tape and rules with torch tensors as the arrays, against the numpy backend
and against torch.autograd (an independent oracle: the network written directly in torch), for every
activation x loss x regulariser, in float64 and float32, on the CPU and (where there is one) a CUDA GPU."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import diffsuite as ds  # noqa: E402
from cases import ACT_OPTIONS  # noqa: E402
from cases import make_case as shared_make_case  # noqa: E402

HAVE_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAVE_CUDA, reason="no CUDA GPU (torch.cuda.is_available() is False)")

LAYERS = (3, 4, 3)  # two weight layers
OUTPUT_FOR_LOSS = {"quadratic": "tanh", "binary_cross_entropy": "sigmoid", "cross_entropy": "identity",
                   "hinge": "identity"}  # cross_entropy takes logits: a softmax output is refused by Objective
CASES = [(a, l, r) for a in ds.ACTIVATIONS for l in ds.LOSSES for r in ("none", "l1", "l2")]

# float32: every value the engine sees is rounded to float32 first, so the oracle is evaluated (in float64) at
# those rounded points and the difference is float32 arithmetic alone. A dot product of length n has a
# relative rounding error of at most about n * eps (eps = 2**-23 ~ 1.2e-7); the error passes through every
# stage of the chain, forward and back: 2 * depth layers plus the loss. Transcendentals add an ulp or two and
# cancellation in sums can amplify relative errors, hence a safety factor of 10 on that a-priori estimate:
# 10 * (2 * 2 + 1) * 5 * 1.2e-7 = 3e-5 for these nets (depth 2, widest fan-in 5 incl. batch-sums of 5).
EPS32 = float(np.finfo(np.float32).eps)
DEPTH, FAN = len(LAYERS) - 1, max(max(LAYERS), 5)
TOL32 = 10 * (2 * DEPTH + 1) * FAN * EPS32


def make_case(activation, loss, reg, seed=0, round_to=None):
    return shared_make_case(activation, loss, reg, seed=seed, layers=LAYERS, batch=5,
                            output_activation=OUTPUT_FOR_LOSS[loss], round_to=round_to)


def autograd_oracle(obj, theta):
    """value and gradient by torch.autograd in float64, the MLP and loss written directly in torch."""
    t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    p = {name: t[a:b].reshape(shape) for name, (a, b, shape) in obj.model.layout.items()}

    def act(a, z):
        o = ACT_OPTIONS.get(a.name, {})
        return {"identity": lambda: z, "step": lambda: (z > 0).double(), "sigmoid": lambda: torch.sigmoid(z),
                "tanh": lambda: torch.tanh(z), "relu": lambda: torch.relu(z),
                "leaky_relu": lambda: F.leaky_relu(z, o["slope"]), "elu": lambda: F.elu(z, alpha=o["alpha"]),
                "softplus": lambda: F.softplus(z, threshold=1e6),
                "maxout": lambda: z.reshape(z.shape[0], o["k"], -1).max(dim=1).values,
                "softmax": lambda: torch.softmax(z, dim=1)}[a.name]()

    h = torch.tensor(obj.inputs)
    for k in range(obj.model.depth):
        h = act(obj.model.layer_activation(k), h @ p[f"W{k}"] + p[f"b{k}"])
    y = torch.tensor(obj.prepared_targets)
    n = y.shape[0]
    value = {"quadratic": lambda: 0.5 * ((h - y) ** 2).sum() / n,
             "binary_cross_entropy": lambda: F.binary_cross_entropy(h, y, reduction="sum") / n,
             "cross_entropy": lambda: F.cross_entropy(h, y.argmax(dim=1)),
             "hinge": lambda: torch.clamp(1 - y * h, min=0).sum() / n}[obj.loss.name]()
    for k in range(obj.model.depth):
        value = value + obj.l1 * p[f"W{k}"].abs().sum() + obj.l2 * (p[f"W{k}"] ** 2).sum()
    value.backward()
    return float(value.detach()), t.grad.numpy()


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def engine(obj, theta, **options):
    res = ds.get_differentiator("reverse", **options).value_and_grad(obj)(theta)
    assert isinstance(res.grad, np.ndarray) and res.grad.dtype == np.float64 and res.grad.shape == theta.shape
    assert isinstance(res.value, float)
    return res


@pytest.mark.parametrize("activation,loss,reg", CASES)
def test_torch_cpu_float64_matches_numpy_backend_and_torch_autograd(activation, loss, reg):
    obj, theta = make_case(activation, loss, reg, seed=1)
    on_torch, on_numpy = engine(obj, theta, backend="torch"), engine(obj, theta)
    value, grad = autograd_oracle(obj, theta)
    assert on_torch.value == pytest.approx(value, rel=1e-12)
    assert rel_err(on_torch.grad, grad) < 1e-10
    assert rel_err(on_torch.grad, on_numpy.grad) < 1e-10
    assert on_torch.stats == on_numpy.stats  # the same tape, record for record


@pytest.mark.parametrize("activation,loss,reg", CASES)
def test_torch_cpu_float32_within_the_float32_rounding_bound(activation, loss, reg):
    obj, theta = make_case(activation, loss, reg, seed=2, round_to=np.float32)
    value, grad = autograd_oracle(obj, theta)
    for backend in ("torch", "numpy"):
        res = engine(obj, theta, backend=backend, dtype="float32")
        assert res.value == pytest.approx(value, rel=TOL32, abs=TOL32), backend
        assert rel_err(res.grad, grad) < TOL32, backend


def test_engine_does_not_use_torch_autograd():
    # under inference_mode torch.autograd cannot record anything: the engine must not need it
    obj, theta = make_case("tanh", "quadratic", "l2")
    with torch.inference_mode():
        res = engine(obj, theta, backend="torch")
    assert rel_err(res.grad, autograd_oracle(obj, theta)[1]) < 1e-10


def test_users_functions_get_their_structure_back_as_numpy():
    f = lambda xp, p, x: xp.sum(xp.tanh(x @ p["W"] + p["b"]) ** 2) + p["s"] * p["s"]
    rng = np.random.default_rng(0)
    theta = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2), "s": 1.5}
    x = rng.normal(size=(4, 3))
    g_torch = ds.get_differentiator("reverse", backend="torch").grad(f)(theta, x)
    g_numpy = ds.get_differentiator("reverse").grad(f)(theta, x)
    assert set(g_torch) == {"W", "b", "s"} and g_torch["s"] == 3.0
    for k in ("W", "b"):
        assert isinstance(g_torch[k], np.ndarray) and g_torch[k].dtype == np.float64
        np.testing.assert_allclose(g_torch[k], g_numpy[k], rtol=1e-12)


def test_a_tensor_on_the_left_of_an_operator_is_recorded():
    """``tensor <op> var`` goes through torch's function protocol to our reflected methods (the first layer's
    data @ W on torch). Oracle: the derivatives written out by hand, d/dt of sum(c op t) elementwise."""
    c = torch.tensor([1.5, 2.0, 4.0], dtype=torch.float64)
    t = np.array([0.5, 2.0, 3.0])
    cn = c.numpy()
    cases = {
        "add": (lambda xp, t: xp.sum(c + t), np.ones(3)),
        "sub": (lambda xp, t: xp.sum(c - t), -np.ones(3)),
        "mul": (lambda xp, t: xp.sum(c * t), cn),
        "div": (lambda xp, t: xp.sum(c / t), -cn / t ** 2),
        "pow": (lambda xp, t: xp.sum(c ** t), cn ** t * np.log(cn)),
        "matmul": (lambda xp, t: c @ t, cn),
        "torch.sub": (lambda xp, t: xp.sum(torch.sub(c, t)), -np.ones(3)),
    }
    for name, (f, expected) in cases.items():
        g = ds.get_differentiator("reverse", backend="torch").grad(f)(t)
        np.testing.assert_allclose(g, expected, rtol=1e-15, err_msg=name)
    # comparisons still give plain boolean masks (no gradient)
    mask = ds.get_differentiator("reverse", backend="torch").value_and_grad_fn(
        lambda xp, t: xp.sum(t * xp.asarray((c > t).to(torch.float64))))(t)
    np.testing.assert_array_equal(mask.grad, [1.0, 0.0, 1.0])


def test_torch_hands_tensor_operators_to_the_traced_value_at_once():
    """The fast path itself: torch sees our function protocol, and the handler records the operator (without it,
    torch would try the op, raise a TypeError and catch it before Python's reflected fallback)."""
    from diffsuite.differentiators.reverse.backends import load_backend
    from diffsuite.differentiators.reverse.tape import Tape, Var

    tape = Tape(load_backend("torch"))
    v = tape.input(torch.tensor([[1.0], [2.0]], dtype=torch.float64))
    c = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    assert torch.overrides.has_torch_function((v,))
    out = Var.__torch_function__(torch.Tensor.matmul, (Var,), (c, v))
    assert type(out) is Var and out.tape is tape and len(tape.records) == 2
    assert torch.equal(out.value, c @ v.value)
    other = type("OtherTensorLike", (), {})  # another type with its own protocol: it gets its turn
    assert Var.__torch_function__(torch.exp, (Var, other), (v,)) is NotImplemented
    with pytest.raises(TypeError, match="torch function 'exp' got a traced value"):
        Var.__torch_function__(torch.exp, (Var,), (v,))


def test_a_torch_function_called_on_a_traced_value_says_to_use_xp():
    f = lambda xp, t: xp.sum(torch.exp(t))
    with pytest.raises(TypeError, match=r"torch function 'exp' got a traced value.*use the xp namespace"):
        ds.get_differentiator("reverse", backend="torch").grad(f)(np.ones(2))


def test_numpy_indexing_works_on_torch_values():
    # a negative step and a repeated index: torch's own indexing has neither; the backend gives numpy's
    f = lambda xp, t: xp.sum(t[::-1][np.array([0, 2, 2])] ** 2) + t[1] * t[0]
    theta = np.arange(1.0, 6.0)
    g = ds.get_differentiator("reverse", backend="torch").grad(f)(theta)
    np.testing.assert_array_equal(g, [2.0 + 0.0, 1.0, 2 * 3.0 * 2, 0.0, 2 * 5.0])


@pytest.mark.skipif(HAVE_CUDA, reason="this machine has a GPU; the missing-GPU error cannot happen here")
def test_cuda_without_a_gpu_says_what_is_missing():
    with pytest.raises(RuntimeError, match=r"device='cuda' needs a CUDA GPU.*is_available\(\) is False.*device='cpu'"):
        ds.get_differentiator("reverse", backend="torch", device="cuda").value_and_grad(lambda xp, t: xp.sum(t))


def test_unknown_device_is_refused():
    with pytest.raises(ValueError, match="device 'cpu', 'cuda' or 'cuda:N'; got device='tpu'"):
        ds.get_differentiator("reverse", backend="torch", device="tpu").load()


# ----- CUDA: the same checks on the GPU (skipped cleanly where there is none) -----
@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("activation,loss,reg", CASES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cuda_matches_torch_autograd(activation, loss, reg, dtype):
    round_to = np.float32 if dtype == "float32" else None
    obj, theta = make_case(activation, loss, reg, seed=3, round_to=round_to)
    value, grad = autograd_oracle(obj, theta)
    res = engine(obj, theta, backend="torch", device="cuda", dtype=dtype)
    tol = 1e-10 if dtype == "float64" else TOL32
    assert res.value == pytest.approx(value, rel=tol, abs=0 if dtype == "float64" else tol)
    assert rel_err(res.grad, grad) < tol


@pytest.mark.cuda
@needs_cuda
def test_cuda_data_lives_on_the_gpu_and_results_come_back_as_numpy():
    obj, theta = make_case("relu", "cross_entropy", "l2")
    d = ds.get_differentiator("reverse", backend="torch", device="cuda")
    assert d.load().device.type == "cuda"
    res = d.value_and_grad(obj)(theta)
    assert isinstance(res.grad, np.ndarray) and res.grad.dtype == np.float64


@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_a_repeated_axis_is_numpys_value_error_on_torch_too(reduce):
    """torch raised a RuntimeError ("dim 0 appears multiple times in the list of dims"); the numpy backend, forward
    mode and finite differences say numpy's "duplicate value in 'axis'", a ValueError."""
    def f(xp, t):
        return xp.sum(getattr(xp, reduce)(t * t, axis=(0, -2)))

    for backend in ("numpy", "torch"):
        with pytest.raises(ValueError, match="duplicate value in 'axis'"):
            ds.get_differentiator("reverse", backend=backend).value_and_grad_fn(f)(np.ones((2, 2)))
