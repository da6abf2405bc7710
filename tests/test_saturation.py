"""Derivative rules accurate in saturation: every smooth activation's and loss's VJP within 4 ulp of a
60-digit reference across its finite domain, saturation and subnormal results included.

The reference is each derivative's closed form evaluated by mpmath at 60 digits (written out below, independent
of the package), rounded to float64. Errors are counted in units of the float64 spacing at that rounded value.
Reverse mode on numpy and torch and the complex step are held to 4 ulp; the symbolic kernels too (one compile
per rule). Run as a script, it prints the worst error per rule beside torch.autograd's on the same points
(docs/language.md, "Accuracy in saturation").
"""
import math
import sys

import mpmath
import numpy as np
import pytest

import diffsuite as ds

mp = mpmath.mp.clone() if hasattr(mpmath.mp, "clone") else mpmath.mp
mpmath.mp.dps = 60
E = mpmath.e

_MAGNITUDES = [0.0, 1e-300, 1e-20, 1e-8, 0.01, 0.3, 1.0, 2.5, 5.0, 9.0, 15.0, 20.0, 30.0, 37.0, 45.0, 100.0, 300.0,
               700.0, 709.5, 720.0, 744.0, 800.0, 1e4]
POINTS = np.array(sorted({s * m for m in _MAGNITUDES for s in (1.0, -1.0)}))
Y_ONE = 1.0  # BCE targets: 0 and 1 (a soft target y cancels against sigmoid(z) near z = logit(y): see the docs)


def _sig(x):  # mpmath sigmoid
    return 1 / (1 + mpmath.exp(-x))


ELU_ALPHA = 0.7
# rule -> (xp function of one array argument, exact derivative of the summed output at x (mpmath), points)
RULES = {
    "tanh": (lambda xp, x: xp.tanh(x), lambda x: 1 / mpmath.cosh(x) ** 2, POINTS),
    "sigmoid": (lambda xp, x: xp.sigmoid(x), lambda x: _sig(x) * _sig(-x), POINTS),
    "softplus": (lambda xp, x: xp.softplus(x), _sig, POINTS),
    "log_sigmoid": (lambda xp, x: xp.log_sigmoid(x), lambda x: _sig(-x), POINTS),
    "elu": (lambda xp, x: ds.nn.ELU(alpha=ELU_ALPHA)(xp, x),
            lambda x: 1 if x > 0 else ELU_ALPHA * mpmath.exp(x), POINTS[POINTS != 0]),
    "bce_logits(y=1)": (lambda xp, z: ds.nn.BinaryCrossEntropy(from_logits=True)(xp, z[:, None], np.ones((len(z), 1))),
                        lambda z: -_sig(-z), POINTS),  # (the loss averages: the scale 1/n is applied below)
    "bce_logits(y=0)": (lambda xp, z: ds.nn.BinaryCrossEntropy(from_logits=True)(xp, z[:, None], np.zeros((len(z), 1))),
                        _sig, POINTS),
    "erf": (lambda xp, x: xp.erf(x), lambda x: 2 / mpmath.sqrt(mpmath.pi) * mpmath.exp(-x * x), POINTS),
    "expm1": (lambda xp, x: xp.expm1(x), mpmath.exp, POINTS[POINTS < 709]),
    "log1p": (lambda xp, x: xp.log1p(x), lambda x: 1 / (1 + x), POINTS[POINTS > -1]),
    "arcsin": (lambda xp, x: xp.arcsin(x), lambda x: 1 / mpmath.sqrt(1 - x * x),
               np.array([0.0, 1e-8, 0.5, 0.9, 0.999, 1 - 2 ** -40, -0.999999])),
}
SOFTMAX_ROWS = np.array([[0.0, 1.0, -2.0], [1000.0, 999.0, 990.0], [-800.0, -800.5, -1500.0], [30.0, 0.0, -30.0],
                         [700.25, -700.0, 1.0e-3]])


def reference(rule):
    _, d, pts = RULES[rule]
    scale = 1.0 / len(pts) if rule.startswith("bce") else 1.0
    return np.array([float(mpmath.mpf(d(mpmath.mpf(float(x)))) * scale) for x in pts])


def softmax_reference():
    out = []
    for row in SOFTMAX_ROWS:
        e = [mpmath.exp(mpmath.mpf(float(v))) for v in row]
        total = mpmath.fsum(e)
        out.append([float(v / total) for v in e])
    return np.array(out)


def ulps(got, want):
    """|got - want| in units of the float64 spacing at want (the smallest subnormal where want is 0)."""
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    return np.abs(got - want) / np.spacing(np.abs(want))


def objective(rule):
    fn, _, pts = RULES[rule]
    return (lambda xp, x: xp.sum(fn(xp, x))), pts


METHODS = {
    "reverse[numpy]": lambda: ds.get_differentiator("reverse"),
    "reverse[torch]": lambda: ds.get_differentiator("reverse", backend="torch"),
    "complex_step": lambda: ds.get_differentiator("finite_diff", scheme="complex_step", kink_check=False),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("rule", RULES)
def test_vjp_within_4_ulp_across_the_domain(rule, method):
    if method == "reverse[torch]":
        pytest.importorskip("torch")
    f, pts = objective(rule)
    got, want = METHODS[method]().grad(f)(pts), reference(rule)
    err = ulps(got, want)
    if method == "complex_step":  # h f'(x) with h = 1e-20 underflows once f'(x) < 1e-288: not a rule's error
        err = np.where(np.abs(want) > 1e-280, err, 0.0)
    worst = int(np.argmax(err))
    assert err[worst] <= 4, f"{rule} by {method}: {err[worst]:.3g} ulp at x = {pts[worst]!r}"


@pytest.mark.parametrize("method", METHODS)
def test_softmax_of_logsumexp_within_4_ulp(method):
    if method == "reverse[torch]":
        pytest.importorskip("torch")
    rows = SOFTMAX_ROWS
    got, want = METHODS[method]().grad(lambda xp, x: xp.sum(xp.logsumexp(x, axis=1)))(rows), softmax_reference()
    err = ulps(got, want)
    if method == "complex_step":  # (h f' underflows, as above)
        err = np.where(np.abs(want) > 1e-280, err, 0.0)
    assert err.max() <= 4, f"softmax by {method}: {err.max():.3g} ulp"


SYMBOLIC_RULES = ["tanh", "sigmoid", "softplus", "log_sigmoid", "elu", "bce_logits(y=1)", "erf"]
SYMBOLIC_POINTS = np.array([0.0, 1e-8, -1e-8, 1.0, -1.0, 15.0, -15.0, 37.0, -37.0, 100.0, -100.0, 745.0, -745.0])


@pytest.mark.parametrize("rule", SYMBOLIC_RULES)
def test_symbolic_kernels_within_4_ulp(rule):
    """The compiled symbolic gradient on a coarser sweep (floats that overflow rerun the kernel in mpmath)."""
    fn, d, pts = RULES[rule]
    pts = SYMBOLIC_POINTS[np.isin(SYMBOLIC_POINTS, pts)]
    got = ds.get_differentiator("symbolic", metrics=False).grad(lambda xp, x: xp.sum(fn(xp, x)))(pts)
    scale = 1.0 / len(pts) if rule.startswith("bce") else 1.0
    want = np.array([float(mpmath.mpf(d(mpmath.mpf(float(x)))) * scale) for x in pts])
    err = ulps(got, want)
    assert err.max() <= 4, f"{rule} symbolic: {err.max():.3g} ulp at x = {pts[int(np.argmax(err))]}"


def torch_autograd_errors():
    """rule -> worst error (ulp) of torch.autograd float64 on the same points (for the docs' table)."""
    import torch
    F = torch.nn.functional
    fns = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "softplus": F.softplus,  # (default threshold 20)
           "log_sigmoid": F.logsigmoid, "elu": lambda x: F.elu(x, alpha=ELU_ALPHA),
           "bce_logits(y=1)": lambda z: F.binary_cross_entropy_with_logits(z, torch.ones_like(z)) * len(z) / len(z),
           "bce_logits(y=0)": lambda z: F.binary_cross_entropy_with_logits(z, torch.zeros_like(z)),
           "erf": torch.erf, "expm1": torch.expm1, "log1p": torch.log1p, "arcsin": torch.asin}
    out = {}
    for rule, fn in fns.items():
        pts = RULES[rule][2]
        x = torch.tensor(pts, dtype=torch.float64, requires_grad=True)
        fn(x).sum().backward()
        out[rule] = float(ulps(x.grad.numpy(), reference(rule)).max())
    x = torch.tensor(SOFTMAX_ROWS, dtype=torch.float64, requires_grad=True)
    torch.logsumexp(x, dim=1).sum().backward()
    out["softmax (logsumexp')"] = float(ulps(x.grad.numpy(), softmax_reference()).max())
    return out


if __name__ == "__main__":  # the side-by-side table of docs/language.md
    torch_err = torch_autograd_errors()
    ours = {}
    for rule in RULES:
        f, pts = objective(rule)
        ours[rule] = float(ulps(ds.get_differentiator("reverse").grad(f)(pts), reference(rule)).max())
    ours["softmax (logsumexp')"] = float(ulps(ds.get_differentiator("reverse").grad(
        lambda xp, x: xp.sum(xp.logsumexp(x, axis=1)))(SOFTMAX_ROWS), softmax_reference()).max())
    print("| rule | diffsuite reverse (ulp) | torch.autograd (ulp) |\n|---|---|---|")
    for rule in ours:
        print(f"| {rule} | {ours[rule]:.3g} | {torch_err[rule]:.3g} |")
    sys.exit(0)


def test_symengine_tanh_within_4_ulp():
    """engine='symengine' differentiates tanh as 1 - tanh^2 (0 at x = 37 where the exact value is 2.4e-32); the
    builder writes it cosh^-2, so the SymEngine kernel is as accurate as the SymPy one."""
    pytest.importorskip("symengine")
    fn, d, _ = RULES["tanh"]
    pts = SYMBOLIC_POINTS
    got = ds.get_differentiator("symbolic", engine="symengine", metrics=False).grad(lambda xp, x: xp.sum(fn(xp, x)))(pts)
    want = np.array([float(mpmath.mpf(d(mpmath.mpf(float(x))))) for x in pts])
    err = ulps(got, want)
    assert err.max() <= 4, f"tanh symengine: {err.max():.3g} ulp at x = {pts[int(np.argmax(err))]}"
