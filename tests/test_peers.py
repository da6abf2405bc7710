"""Test cases ported from peers' public test suites, run through every differentiator.

Each case names the file it came from. Sources (paths in their repositories):
- HIPS/autograd ``tests/test_scalar_ops.py`` (elementwise functions, power, division) and ``tests/test_numpy.py``
  (reductions, indexing, structure, dot/outer/trace; autograd sums outputs as ``to_scalar(x) = sum(sin(x))``,
  kept here; arrays are smaller than autograd's 10 x 11 so that the symbolic build stays quick);
- karpathy/micrograd ``test/test_engine.py`` (``test_sanity_check``, ``test_more_ops``, ``test_unary_tensor_fns``);
- pbrod/numdifftools ``numdifftools/example_functions.py`` (functions with their known derivatives);
- jax-ml/jax ``tests/lax_autodiff_test.py`` (``LAX_GRAD_SPECIAL_VALUE_TESTS``: special points) and ``tests/nn_test.py``
  (``testSoftplusGrad``, ``testSoftplusGradZero``, ``testReluGrad``);
- pytorch/pytorch ``torch/testing/_internal/common_nn.py`` (criterion and activation modules: MSELoss, L1Loss,
  SmoothL1Loss, HuberLoss, BCEWithLogitsLoss, SoftMarginLoss, CrossEntropyLoss, GaussianNLLLoss, ELU, Softplus,
  LogSigmoid, Hardtanh).

Oracles: the derivative the source states (numdifftools' formulas, closed forms written here for the scalar ops
and JAX's special values) or torch.autograd in float64 (the peers' own oracle for micrograd and torch cases, and
for autograd's array cases, which autograd checks only numerically). Every case runs through reverse mode,
finite differences (central, richardson, complex step) and symbolic differentiation (one compile per source).
"""
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest

import diffsuite as ds

torch = pytest.importorskip("torch")
F = torch.nn.functional


@dataclass
class Case:
    source: str
    name: str
    fn: Callable            # fn(xp, theta) -> scalar
    theta: Any
    expected: Any = None    # the gradient, or None: torch.autograd of ``torch_fn``
    torch_fn: Callable = None
    kink: bool = False      # at a kink: finite differences cannot honour the convention, they are skipped
    richardson: bool = True  # False: richardson's default coarse step straddles a kink here (issue 12, fdtruth)


def s(xp, x):  # autograd's to_scalar
    return xp.sum(xp.sin(x))


def torch_grad(fn, theta):
    leaves = [torch.tensor(t, dtype=torch.float64, requires_grad=True) for t in (theta if isinstance(theta, tuple)
                                                                                  else (theta,))]
    fn(*leaves).backward()
    grads = [leaf.grad.numpy() for leaf in leaves]
    return tuple(grads) if isinstance(theta, tuple) else grads[0]


rng = np.random.default_rng(20)
r = lambda *shape: rng.normal(size=shape)  # noqa: E731
u = lambda: float(rng.uniform())  # noqa: E731

AG_SCALAR, AG_NUMPY = "HIPS/autograd tests/test_scalar_ops.py", "HIPS/autograd tests/test_numpy.py"
MICROGRAD, NDT = "karpathy/micrograd test/test_engine.py", "pbrod/numdifftools numdifftools/example_functions.py"
JAX_LAX, JAX_NN = "jax-ml/jax tests/lax_autodiff_test.py", "jax-ml/jax tests/nn_test.py"
TORCH_NN = "pytorch/pytorch torch/testing/_internal/common_nn.py"

CASES = [
    # ----- autograd: scalar ops (3 * f(x) at autograd's points; the derivative written out) -----
    Case(AG_SCALAR, "abs(1.1)", lambda xp, x: 3.0 * xp.abs(x), 1.1, 3.0),
    Case(AG_SCALAR, "abs(-1.1)", lambda xp, x: 3.0 * xp.abs(x), -1.1, -3.0),
    Case(AG_SCALAR, "abs(0)", lambda xp, x: 3.0 * xp.abs(x), 0.0, 0.0, kink=True),
    Case(AG_SCALAR, "sign(1.1)", lambda xp, x: 3.0 * xp.sign(x), 1.1, 0.0),
    Case(AG_SCALAR, "sin", lambda xp, x: 3.0 * xp.sin(x), 0.7, 3.0 * math.cos(0.7)),
    Case(AG_SCALAR, "cos", lambda xp, x: 3.0 * xp.cos(x), -0.4, -3.0 * math.sin(-0.4)),
    Case(AG_SCALAR, "tan", lambda xp, x: 3.0 * xp.tan(x), 0.9, 3.0 / math.cos(0.9) ** 2),
    Case(AG_SCALAR, "exp", lambda xp, x: 3.0 * xp.exp(x), -1.3, 3.0 * math.exp(-1.3)),
    Case(AG_SCALAR, "log", lambda xp, x: 3.0 * xp.log(x), 0.8, 3.0 / 0.8),
    Case(AG_SCALAR, "log2", lambda xp, x: 3.0 * xp.log2(x), 0.8, 3.0 / (0.8 * math.log(2))),
    Case(AG_SCALAR, "log10", lambda xp, x: 3.0 * xp.log10(x), 0.8, 3.0 / (0.8 * math.log(10))),
    Case(AG_SCALAR, "log1p", lambda xp, x: 3.0 * xp.log1p(x), 0.8, 3.0 / 1.8),
    Case(AG_SCALAR, "expm1", lambda xp, x: 3.0 * xp.expm1(x), 0.8, 3.0 * math.exp(0.8)),
    Case(AG_SCALAR, "neg", lambda xp, x: 3.0 * -x, 0.5, -3.0),
    Case(AG_SCALAR, "cosh", lambda xp, x: 3.0 * xp.cosh(x), 1.2, 3.0 * math.sinh(1.2)),
    Case(AG_SCALAR, "sinh", lambda xp, x: 3.0 * xp.sinh(x), 1.2, 3.0 * math.cosh(1.2)),
    Case(AG_SCALAR, "tanh", lambda xp, x: 3.0 * xp.tanh(x), 1.2, 3.0 / math.cosh(1.2) ** 2),
    Case(AG_SCALAR, "arccos(0.1)", lambda xp, x: 3.0 * xp.arccos(x), 0.1, -3.0 / math.sqrt(1 - 0.01)),
    Case(AG_SCALAR, "arcsin(0.1)", lambda xp, x: 3.0 * xp.arcsin(x), 0.1, 3.0 / math.sqrt(1 - 0.01)),
    Case(AG_SCALAR, "arctan(0.2)", lambda xp, x: 3.0 * xp.arctan(x), 0.2, 3.0 / 1.04),
    Case(AG_SCALAR, "sqrt", lambda xp, x: 3.0 * xp.sqrt(x), 6.3, 1.5 / math.sqrt(6.3)),
    Case(AG_SCALAR, "power_arg0", lambda xp, x: xp.power(x, 2.3), 1.4, 2.3 * 1.4 ** 1.3),
    Case(AG_SCALAR, "power_arg0 y == 0 at 0 (#116)", lambda xp, x: xp.power(x, 0.0), 0.0, 0.0, kink=True),
    Case(AG_SCALAR, "power_arg1", lambda xp, y: xp.power(1.7, y), 0.6, 1.7 ** 0.6 * math.log(1.7)),
    Case(AG_SCALAR, "power_arg1_zero", lambda xp, y: xp.power(0.0, y), 0.6, 0.0, kink=True),
    Case(AG_SCALAR, "divide", lambda xp, t: t[0] / t[1], np.array([0.3, 0.7]), np.array([1 / 0.7, -0.3 / 0.49])),
    Case(AG_SCALAR, "multiply", lambda xp, t: t[0] * t[1], np.array([0.3, 0.7]), np.array([0.7, 0.3])),
    Case(AG_SCALAR, "reciprocal", lambda xp, x: 1.0 / x, 0.4, -1.0 / 0.16),
    Case(AG_SCALAR, "rad2deg", lambda xp, x: 3.0 * (x * (180.0 / math.pi)), 5.0, 3.0 * 180.0 / math.pi),
    # ----- autograd: numpy functions (sum(sin(f(x)))) -----
    Case(AG_NUMPY, "dot mat-vec", lambda xp, t: s(xp, xp.dot(t[0], t[1])), (r(2, 4), r(4)),
         torch_fn=lambda a, b: torch.sin(a @ b).sum()),
    Case(AG_NUMPY, "dot vec-vec", lambda xp, t: s(xp, xp.dot(t[0], t[1])), (r(4), r(4)),
         torch_fn=lambda a, b: torch.sin(torch.dot(a, b)).sum()),
    Case(AG_NUMPY, "dot with float", lambda xp, t: s(xp, xp.dot(t[0], t[1])), (r(2, 3), 0.7),
         torch_fn=lambda a, b: torch.sin(a * b).sum()),
    Case(AG_NUMPY, "outer", lambda xp, t: s(xp, xp.outer(t[0], t[1])), (r(4), r(3)),
         torch_fn=lambda a, b: torch.sin(torch.outer(a, b)).sum()),
    Case(AG_NUMPY, "max", lambda xp, x: s(xp, xp.max(x)), r(2, 3), torch_fn=lambda x: torch.sin(x.max()).sum(),
         richardson=False),
    Case(AG_NUMPY, "max_axis_keepdims", lambda xp, x: s(xp, xp.max(x, axis=1, keepdims=True)), r(2, 3, 2),
         torch_fn=lambda x: torch.sin(torch.amax(x, dim=1, keepdim=True)).sum()),
    Case(AG_NUMPY, "min_axis", lambda xp, x: s(xp, xp.min(x, axis=1)), r(2, 3, 2),
         torch_fn=lambda x: torch.sin(torch.amin(x, dim=1)).sum()),
    Case(AG_NUMPY, "sum_3 (keepdims)", lambda xp, x: s(xp, xp.sum(x, axis=0, keepdims=True)), r(2, 3),
         torch_fn=lambda x: torch.sin(x.sum(0, keepdim=True)).sum()),
    Case(AG_NUMPY, "sum_with_axis_tuple", lambda xp, x: s(xp, xp.sum(x, axis=(1, 2))), r(3, 2, 2),
         torch_fn=lambda x: torch.sin(x.sum((1, 2))).sum()),
    Case(AG_NUMPY, "cumsum_no_axis", lambda xp, x: s(xp, xp.cumsum(x)), r(2, 3),
         torch_fn=lambda x: torch.sin(torch.cumsum(x.reshape(-1), 0)).sum()),
    Case(AG_NUMPY, "mean_3", lambda xp, x: s(xp, xp.mean(x, axis=0, keepdims=True)), r(2, 3),
         torch_fn=lambda x: torch.sin(x.mean(0, keepdim=True)).sum()),
    Case(AG_NUMPY, "index_slice", lambda xp, x: s(xp, x[::-1, 2:4, :]), r(3, 5, 2),
         torch_fn=lambda x: torch.sin(x.flip(0)[:, 2:4, :]).sum()),
    Case(AG_NUMPY, "index_lists", lambda xp, x: s(xp, x[[0, 1, 2], :, :]), r(4, 2, 2),
         torch_fn=lambda x: torch.sin(x[[0, 1, 2]]).sum()),
    Case(AG_NUMPY, "index_slice_fanout", lambda xp, x: s(xp, x[::-1, 2:4, :] + x[::-1, 3:5, :]), r(3, 5, 2),
         torch_fn=lambda x: torch.sin(x.flip(0)[:, 2:4, :] + x.flip(0)[:, 3:5, :]).sum()),
    Case(AG_NUMPY, "reshape_method_nolist", lambda xp, x: s(xp, x.reshape(4, 3)), r(2, 3, 2),
         torch_fn=lambda x: torch.sin(x.reshape(4, 3)).sum()),
    Case(AG_NUMPY, "concatenate_axis_1", lambda xp, x: s(xp, xp.concatenate((B3, x, B3), axis=1)), r(2, 3, 2),
         torch_fn=lambda x: torch.sin(torch.cat((torch.tensor(B3), x, torch.tensor(B3)), 1)).sum()),
    Case(AG_NUMPY, "trace with offset", lambda xp, x: xp.trace(x, offset=1), r(2, 3),
         torch_fn=lambda x: torch.diagonal(x, offset=1).sum()),
    Case(AG_NUMPY, "transpose (.T)", lambda xp, x: s(xp, x.T * xp.asarray(np.arange(9.0).reshape(3, 3))), r(3, 3),
         torch_fn=lambda x: torch.sin(x.T * torch.arange(9.0, dtype=torch.float64).reshape(3, 3)).sum()),
    Case(AG_NUMPY, "clip", lambda xp, x: s(xp, xp.clip(x, 0.1, 1.1)), np.array([[-0.5, 0.4], [0.9, 1.6]]),
         torch_fn=lambda x: torch.sin(torch.clamp(x, 0.1, 1.1)).sum()),
    Case(AG_NUMPY, "prod_3", lambda xp, x: s(xp, xp.prod(x, axis=0, keepdims=True)), r(2, 3) ** 2 + 0.1,
         torch_fn=lambda x: torch.sin(x.prod(0, keepdim=True)).sum()),
    Case(AG_NUMPY, "prod_4", lambda xp, x: s(xp, xp.prod(x)), r(5) ** 2 + 0.1, torch_fn=lambda x: torch.sin(x.prod())),
    # ----- micrograd: torch float64 is its oracle -----
    Case(MICROGRAD, "sanity_check", lambda xp, x: _sanity(xp, x), -4.0, torch_fn=lambda x: _sanity(_TorchXP, x)),
    Case(MICROGRAD, "more_ops", lambda xp, t: _more_ops(xp, t[0], t[1]), (-4.0, 2.0),
         torch_fn=lambda a, b: _more_ops(_TorchXP, a, b), richardson=False),
    Case(MICROGRAD, "unary tanh", lambda xp, x: xp.tanh(x), 0.123, torch_fn=torch.tanh),
    Case(MICROGRAD, "unary exp", lambda xp, x: xp.exp(x), 2.0, torch_fn=torch.exp),
    # ----- numdifftools: function_names with their derivatives -----
    *[Case(NDT, name, (lambda f: lambda xp, x: xp.sum(getattr(xp, f)(x)))(name), x, d(x)) for name, x, d in [
        ("cos", np.array([0.3, 1.1]), lambda x: -np.sin(x)),
        ("sin", np.array([0.3, 1.1]), np.cos),
        ("tan", np.array([0.3, 1.1]), lambda x: 1.0 / np.cos(x) ** 2),
        ("cosh", np.array([0.3, 1.1]), np.sinh),
        ("sinh", np.array([0.3, 1.1]), np.cosh),
        ("tanh", np.array([0.3, 1.1]), lambda x: 1.0 / np.cosh(x) ** 2),
        ("exp", np.array([0.3, 1.1]), np.exp),
        ("expm1", np.array([0.3, 1.1]), np.exp),
        ("square", np.array([0.3, 1.1]), lambda x: 2 * x),
        ("sqrt", np.array([0.3, 1.1]), lambda x: 0.5 / np.sqrt(x)),
        ("log", np.array([0.3, 1.1]), lambda x: 1.0 / x),
        ("log1p", np.array([0.3, 1.1]), lambda x: 1.0 / (1 + x)),
        ("log10", np.array([0.3, 1.1]), lambda x: 1.0 / x / np.log(10)),
        ("log2", np.array([0.3, 1.1]), lambda x: 1.0 / x / np.log(2)),
        ("arccos", np.array([0.3, 0.6]), lambda x: -1.0 / np.sqrt(1 - x ** 2)),
        ("arcsin", np.array([0.3, 0.6]), lambda x: 1.0 / np.sqrt(1 - x ** 2)),
        ("arctan", np.array([0.3, 1.1]), lambda x: 1.0 / (1 + x ** 2)),
    ]],
    # ----- JAX: special values of LAX_GRAD_SPECIAL_VALUE_TESTS, nn_test's softplus and relu -----
    *[Case(JAX_LAX, f"{name}({x:g})", (lambda f: lambda xp, t: getattr(xp, f)(t))(name), x, d) for name, x, d in [
        ("sinh", 0.0, 1.0), ("cosh", 0.0, 0.0), ("tanh", 0.0, 1.0), ("tanh", 1000.0, 0.0),
        ("sin", 0.0, 1.0), ("sin", math.pi, math.cos(math.pi)), ("sin", math.pi / 2, math.cos(math.pi / 2)),
        ("sin", math.pi / 4, math.cos(math.pi / 4)), ("cos", math.pi / 2, -math.sin(math.pi / 2)),
        ("cos", math.pi / 4, -math.sin(math.pi / 4)), ("tan", 0.0, 1.0), ("arcsin", 0.0, 1.0), ("arccos", 0.0, -1.0),
        ("arctan", 0.0, 1.0), ("arctan", 1000.0, 1.0 / (1.0 + 1e6)), ("erf", 0.0, 2 / math.sqrt(math.pi)),
        ("erf", 10.0, 2 / math.sqrt(math.pi) * math.exp(-100.0)),
    ]],
    Case(JAX_NN, "testSoftplusGrad (1e-8)", lambda xp, x: xp.softplus(x), 1e-8, 1 / (1 + math.exp(-1e-8))),
    Case(JAX_NN, "testSoftplusGradZero", lambda xp, x: xp.softplus(x), 0.0, 0.5),
    Case(JAX_NN, "testReluGrad (1.)", lambda xp, x: xp.relu(x), 1.0, 1.0),
    # ----- PyTorch nn: criterion and activation modules, torch.autograd the oracle -----
    Case(TORCH_NN, "MSELoss", lambda xp, x: xp.mean((x - Y) ** 2), r(2, 3), torch_fn=lambda x: F.mse_loss(x, _t(Y))),
    Case(TORCH_NN, "L1Loss", lambda xp, x: xp.mean(xp.abs(x - Y)), r(2, 3), torch_fn=lambda x: F.l1_loss(x, _t(Y))),
    Case(TORCH_NN, "SmoothL1Loss", lambda xp, x: xp.mean(_huber(xp, x - Y, 1.0)), r(2, 3),
         torch_fn=lambda x: F.smooth_l1_loss(x, _t(Y))),
    Case(TORCH_NN, "HuberLoss(delta=0.5)", lambda xp, x: xp.mean(_huber(xp, x - Y, 0.5) * 0.5), r(2, 3),
         torch_fn=lambda x: F.huber_loss(x, _t(Y), delta=0.5)),
    Case(TORCH_NN, "BCEWithLogitsLoss", lambda xp, x: xp.mean(xp.softplus(x) - P * x), r(2, 3) * 3,
         torch_fn=lambda x: F.binary_cross_entropy_with_logits(x, _t(P))),
    Case(TORCH_NN, "BCEWithLogitsLoss at 0", lambda xp, x: xp.mean(xp.softplus(x) - P * x), np.zeros((2, 3)),
         torch_fn=lambda x: F.binary_cross_entropy_with_logits(x, _t(P))),
    Case(TORCH_NN, "SoftMarginLoss", lambda xp, x: xp.mean(xp.softplus(-SIGNS * x)), r(2, 3),
         torch_fn=lambda x: F.soft_margin_loss(x, _t(SIGNS))),
    Case(TORCH_NN, "CrossEntropyLoss", lambda xp, x: xp.mean(xp.logsumexp(x, axis=1) - xp.sum(x * ONEHOT, axis=1)),
         r(2, 3), torch_fn=lambda x: F.cross_entropy(x, torch.tensor(CLASSES))),
    Case(TORCH_NN, "GaussianNLLLoss", lambda xp, t: xp.mean(0.5 * (xp.log(t[1]) + (t[0] - Y) ** 2 / t[1])),
         (r(2, 3), r(2, 3) ** 2 + 0.5), torch_fn=lambda m, v: F.gaussian_nll_loss(m, _t(Y), v)),
    Case(TORCH_NN, "ELU", lambda xp, x: xp.sum(ds.nn.ELU(alpha=0.7)(xp, x) * W), r(2, 3),
         torch_fn=lambda x: (F.elu(x, alpha=0.7) * _t(W)).sum()),
    Case(TORCH_NN, "Softplus", lambda xp, x: xp.sum(xp.softplus(x) * W), r(2, 3) * 5,
         torch_fn=lambda x: (F.softplus(x, threshold=1e6) * _t(W)).sum()),
    Case(TORCH_NN, "LogSigmoid", lambda xp, x: xp.sum(xp.log_sigmoid(x) * W), r(2, 3) * 5,
         torch_fn=lambda x: (F.logsigmoid(x) * _t(W)).sum()),
    Case(TORCH_NN, "Hardtanh", lambda xp, x: xp.sum(xp.clip(x, -1.0, 1.0) * W), r(2, 3) * 2,
         torch_fn=lambda x: (F.hardtanh(x) * _t(W)).sum()),
]

B3 = r(2, 3, 2)
Y, P, W = r(2, 3), rng.uniform(size=(2, 3)), r(2, 3)
SIGNS = np.sign(r(2, 3))
CLASSES = np.array([2, 0])
ONEHOT = np.eye(3)[CLASSES]


def _t(a):
    return torch.tensor(a, dtype=torch.float64)


def _huber(xp, d, delta):  # torch's smooth_l1 (beta = delta) written with where: |d| < delta quadratic, else linear
    a = xp.abs(d)
    return xp.where(a < delta, 0.5 * d * d / delta, a - 0.5 * delta)


class _TorchXP:
    relu = staticmethod(torch.relu)


def _sanity(xp, x):
    z = 2 * x + 2 + x
    q = xp.relu(z) + z * x
    h = xp.relu(z * z)
    return h + q + q * x


def _more_ops(xp, a, b):
    c = a + b
    d = a * b + b ** 3
    c = c + c + 1
    c = c + 1 + c + (-a)
    d = d + d * 2 + xp.relu(b + a)
    d = d + 3 * d + xp.relu(b - a)
    e = c - d
    f = e ** 2
    g = f / 2.0
    return g + 10.0 / f


def expected(case):
    if case.expected is not None:
        return case.expected
    return torch_grad(case.torch_fn, case.theta)


def close(got, want, rtol, atol, what):
    got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g, dtype=float), np.asarray(w, dtype=float), rtol=rtol, atol=atol,
                                   err_msg=what)


IDS = [f"{c.source.split()[0].split('/')[1]}:{c.name}" for c in CASES]


def test_at_least_sixty_cases_from_five_peers():
    assert len(CASES) >= 60
    assert {c.source.split()[0] for c in CASES} >= {"HIPS/autograd", "karpathy/micrograd", "pbrod/numdifftools",
                                                   "jax-ml/jax", "pytorch/pytorch"}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_reverse_and_finite_differences(case):
    want = expected(case)
    close(ds.get_differentiator("reverse").grad(case.fn)(case.theta), want, 1e-12, 1e-14, "reverse")
    close(ds.get_differentiator("finite_diff", scheme="complex_step").grad(case.fn)(case.theta), want, 1e-12, 1e-14,
          "complex_step")
    if case.kink:  # a step straddles the kink: the conventions are not a difference quotient's to honour
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        close(ds.get_differentiator("finite_diff", scheme="central").grad(case.fn)(case.theta), want, 1e-6, 1e-7,
              "central")
        if case.richardson:
            close(ds.get_differentiator("finite_diff", scheme="richardson").grad(case.fn)(case.theta), want, 1e-6,
                  1e-7, "richardson")


CHUNKS = [CASES[i:i + 4] for i in range(0, len(CASES), 4)]  # (the cost of one build grows as its parameters squared)


@pytest.mark.parametrize("cases", CHUNKS, ids=[f"{IDS[CASES.index(c[0])]}+{len(c) - 1}" for c in CHUNKS])
def test_symbolic(cases):
    """One symbolic compile per four cases: their sum, each on its own parameters."""
    def f(xp, thetas):
        return sum(c.fn(xp, t) for c, t in zip(cases, thetas))
    got = ds.get_differentiator("symbolic", metrics=False).grad(f)(tuple(c.theta for c in cases))
    for c, g in zip(cases, got):
        close(g, expected(c), 1e-12, 1e-14, f"symbolic: {c.name}")
