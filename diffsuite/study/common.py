"""What the studies share: problems, method labels -> differentiators, errors and references.

Problems are built so that float32 and float64 runs see the *same binary point*: parameters and
inputs are rounded to float32 once (so casting them to float32 is exact), and L1/L2 strengths are
powers of two. Every method, in either dtype, then differentiates at exactly the point the
high-precision reference is evaluated at, and the errors measure the methods, not the casting.

The error of a gradient ``g`` against a reference ``r`` is normwise:
``max_i |g_i - r_i| / max_i |r_i|`` (a component-wise relative error explodes on tiny components).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..differentiators import get_differentiator
from ..nn import MLP
from ..objective import Objective

EPS = {"float64": float(np.finfo(np.float64).eps), "float32": float(np.finfo(np.float32).eps)}
REG_STRENGTH = 2.0 ** -7  # 0.0078125: exact in float32 and float64
FD_SCHEMES = ("forward", "backward", "central", "five_point", "richardson", "complex_step")
DTYPES = ("float64", "float32")
REGS = ("none", "l1", "l2", "l1+l2")  # mlp_problem's regularisers


def to_f32_point(a: np.ndarray) -> np.ndarray:
    """``a`` rounded to float32 and held in float64: a point both dtypes represent exactly."""
    return np.asarray(a, dtype=np.float64).astype(np.float32).astype(np.float64)


# ----- problems -----
#: loss -> (output activation, number of outputs, target kind)
LOSS_SETUP = {
    "quadratic": ("identity", 2, "real"),
    "binary_cross_entropy": ("sigmoid", 1, "binary"),
    "cross_entropy": ("identity", 3, "class"),
    "hinge": ("identity", 1, "sign"),
}


def make_targets(kind: str, n_out: int, batch: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "real":
        return to_f32_point(rng.normal(size=(batch, n_out)))
    if kind == "binary":
        return rng.integers(0, 2, size=(batch, n_out)).astype(np.float64)
    if kind == "class":
        return rng.integers(0, n_out, size=batch)
    if kind == "sign":
        return rng.choice([-1.0, 1.0], size=(batch, n_out))
    raise ValueError(f"unknown target kind {kind!r}; choose one of real, binary, class, sign")


@dataclass(frozen=True)
class Problem:
    objective: Objective
    theta: np.ndarray
    label: str


def mlp_problem(*, n_in: int = 3, hidden: tuple[int, ...] = (4,), activation: str = "tanh", loss: str = "quadratic",
                reg: str = "none", batch: int = 8, seed: int = 0, n_out: int | None = None) -> Problem:
    """An MLP loss with float32-exact data and parameters. ``reg``: ``none``, ``l1``, ``l2`` or ``l1+l2``."""
    out_act, default_out, kind = LOSS_SETUP[loss]
    n_out = n_out or default_out
    rng = np.random.default_rng(seed)
    model = MLP(layers=(n_in, *hidden, n_out), activation=activation, output_activation=out_act)
    inputs = to_f32_point(rng.normal(size=(batch, n_in)))
    targets = make_targets(kind, n_out, batch, rng)
    l1 = REG_STRENGTH if "l1" in reg else 0.0
    l2 = REG_STRENGTH if "l2" in reg else 0.0
    obj = Objective(model, loss, inputs, targets, l1=l1, l2=l2)
    return Problem(obj, to_f32_point(model.init(seed=seed)), obj.describe())


# ----- methods -----
def method_label(name: str, **opts) -> str:
    if name == "symbolic":
        return "symbolic[cse]" if opts.get("cse", True) else "symbolic[no-cse]"
    if name == "finite_diff":
        return f"finite_diff[{opts.get('scheme', 'central')}]"
    if name == "reverse":
        b = opts.get("backend", "numpy")
        return "reverse[numpy]" if b == "numpy" else f"reverse[{b}-{opts.get('device', 'cpu')}]"
    return name


def method_labels(torch_devices=("cpu",)) -> tuple[str, ...]:
    """Every label ``parse_method`` takes (reverse on torch for ``torch_devices``)."""
    return ("symbolic[cse]", "symbolic[no-cse]", *(f"finite_diff[{s}]" for s in FD_SCHEMES), "reverse[numpy]",
            *(f"reverse[torch-{d}]" for d in torch_devices))


def parse_method(label: str) -> tuple[str, dict]:
    """``finite_diff[central]`` -> ("finite_diff", {"scheme": "central"}), and so on for every label."""
    if label == "symbolic[cse]":
        return "symbolic", {"cse": True}
    if label == "symbolic[no-cse]":
        return "symbolic", {"cse": False}
    if label.startswith("finite_diff[") and label.endswith("]"):
        return "finite_diff", {"scheme": label[len("finite_diff["):-1]}
    if label == "reverse[numpy]":
        return "reverse", {"backend": "numpy"}
    if label.startswith("reverse[torch-") and label.endswith("]"):
        return "reverse", {"backend": "torch", "device": label[len("reverse[torch-"):-1]}
    raise ValueError(f"unknown method label {label!r}; use symbolic[cse], symbolic[no-cse], "
                     f"finite_diff[<scheme>] with a scheme from {', '.join(FD_SCHEMES)}, reverse[numpy], "
                     "reverse[torch-cpu] or reverse[torch-cuda]")


def make_method(label: str, *, dtype: str = "float64", **extra: Any):
    """The configured differentiator behind a label. Symbolic runs in float64 only (it has no dtype)."""
    name, opts = parse_method(label)
    if name in ("finite_diff", "reverse"):
        opts["dtype"] = dtype
    elif dtype != "float64":
        raise ValueError(f"{label} evaluates in float64 only; got dtype {dtype!r}")
    return get_differentiator(name, **opts, **extra)


def method_device(label: str) -> str:
    return "cuda" if label.endswith("-cuda]") else "cpu"


# ----- errors and references -----
def rel_error(g: Any, ref: Any) -> float:
    """``max|g - r| / max|r|`` in float64 (or in mpmath when ``ref`` holds mpmath numbers).

    A gradient with any NaN or infinite entry is infinitely wrong: ``inf``, never 0 or NaN (Python's
    ``max`` would drop a NaN that is not first, and a NaN is stored as a missing value)."""
    r = np.asarray(ref).ravel()
    g = np.asarray(g, dtype=np.float64).ravel()
    if g.size and not np.all(np.isfinite(g)):
        return math.inf
    if r.dtype == object:  # mpmath values: the error is computed without rounding the reference
        import mpmath
        num = max(abs(mpmath.mpf(float(gi)) - ri) for gi, ri in zip(g, r))
        den = max(abs(ri) for ri in r)
        return float(num / den) if den != 0 else float(num)
    den = float(np.max(np.abs(r))) if r.size else 0.0
    num = float(np.max(np.abs(g - r))) if r.size else 0.0
    return num / den if den > 0 else num


@dataclass(frozen=True)
class Reference:
    grad: Any          # float64 array, or an object array of mpmath numbers
    value: float
    name: str          # what the report says the errors are measured against
    bits: int | None = None  # the certified reference's working precision (None for the fallback)


def reference(obj: Any, theta: np.ndarray, *, dps: int = 50) -> Reference:
    """The certified reference gradient at ``theta`` (``diffsuite.reference``: arb ball arithmetic, every
    entry to ``dps`` significant digits, proven) when it is available and settles; otherwise reverse mode in
    float64 (named so). ``bits``: the precision the certificate needed.

    ``theta`` and the data are float32-exact (see ``mlp_problem``), so one reference serves both dtypes.
    """
    try:
        from .. import reference as refmod
    except ImportError as e:
        return _fallback_reference(obj, theta, f"diffsuite.reference unavailable ({e})")
    try:
        res = refmod.reference_gradient_mp(obj, theta, dps=dps)
    except Exception as e:  # noqa: BLE001 - a missing or failing reference must not stop a study
        return _fallback_reference(obj, theta, f"certified reference failed: {type(e).__name__}: {e}")
    cert = res.stats["certificate"]
    # reference_gradient_mp (docs/reference.md): arb proves every entry to ``dps`` significant digits (its ball's
    # relative radius is below 10^-dps), more than the float64 rounding reference_gradient certifies; the mpmath
    # fallback only finds two precisions agreeing to that many digits, which is evidence, not proof
    kind = (f"certified: arb ball arithmetic, every entry to {dps} proven digits" if cert.arithmetic == "arb"
            else f"not a proof: mpmath, two precisions agreeing to {dps} digits")
    return Reference(np.asarray(res.grad, dtype=object).ravel(), float(res.value), f"{REFERENCE_NAME} ({kind})",
                     cert.bits)


REFERENCE_NAME = "diffsuite.reference"


def _fallback_reference(obj, theta, why: str) -> Reference:
    """Reverse mode in float64, cross-checked by the complex step (the reference for problems too large for the exact
    one)."""
    res = get_differentiator("reverse").value_and_grad(obj)(theta)
    check = ""
    try:
        cs = get_differentiator("finite_diff", scheme="complex_step", warn=False).value_and_grad(obj)(theta)
        check = f", agreeing with the complex step to {rel_error(res.grad, cs.grad):.1e}"
    except Exception:  # noqa: BLE001 - the cross-check is informative only
        pass
    short = why if len(why) <= 90 else why[:87] + "..."
    return Reference(res.grad, res.value, f"{FALLBACK_NAME}{check} ({short})")


FALLBACK_NAME = "reverse[numpy] float64"


@lru_cache(maxsize=64)
def cached_reference(key: tuple, builder) -> Reference:
    problem = builder(*key)
    return reference(problem.objective, problem.theta)


def fit_loglog(x, y) -> float:
    """The slope of log10(y) against log10(x) by least squares (NaN with fewer than 2 points)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 2:
        return float("nan")
    return _line_slope([math.log10(v) for v in x[ok]], [math.log10(v) for v in y[ok]])


def fit_growth(depth, y) -> float:
    """The factor per layer of ``y ~ C * factor**depth`` (least squares on log y); NaN with < 2 points.

    Only a summary of a fit: where the successive per-layer factors fall with depth (an expression tree) the fitted
    factor depends on the depths fitted and overestimates the growth beyond them, and a linearly growing count (the
    tape) has no constant factor at all. Reports describe growth with ``describe_growth``."""
    d, y = np.asarray(depth, float), np.asarray(y, float)
    ok = np.isfinite(y) & (y > 0)
    if ok.sum() < 2:
        return float("nan")
    return 10 ** _line_slope([float(v) for v in d[ok]], [math.log10(v) for v in y[ok]])


def _line_slope(u: list[float], v: list[float]) -> float:
    """The least-squares slope of v against u, sum((u - mean u)(v - mean v)) / sum((u - mean u)^2), in correctly
    rounded sums (math.fsum) of libm's logs: the committed findings are rebuilt bit for bit whatever numpy,
    BLAS or LAPACK the machine has (np.polyfit's lstsq moved their last digits between numpy releases); only the
    platform's libm (math.log10) could still move a last digit."""
    mu, mv = math.fsum(u) / len(u), math.fsum(v) / len(v)
    spread = math.fsum((a - mu) ** 2 for a in u)
    return math.fsum((a - mu) * (b - mv) for a, b in zip(u, v)) / spread if spread > 0 else float("nan")


#: successive differences (or factors) within this fraction of their median count as constant: "or nearly"
GROWTH_TOL = 0.02


@dataclass(frozen=True)
class Growth:
    """How ``y`` grows with depth, read from successive measured depths (no fit).

    ``steps``: one ``(d0, d1, factor, increase)`` per pair of successive depths, the factor and the increase per
    layer (``(y1 / y0) ** (1 / (d1 - d0))`` and ``(y1 - y0) / (d1 - d0)``). ``shape``:

    - ``linear``: the increases per layer are constant (within ``GROWTH_TOL`` of their median): ``+k`` a layer;
    - ``geometric``: the factors are constant (within ``GROWTH_TOL``): ``x r`` a layer;
    - ``falling`` / ``rising``: neither, and the factor per layer falls (rises) from each step to the next;
    - ``mixed``: neither, and the factor goes up and down;
    - ``one step`` (two depths: one factor, one increase) or ``single`` (fewer than two depths).
    """
    shape: str
    steps: tuple = ()

    @property
    def first(self) -> tuple | None:
        return self.steps[0] if self.steps else None

    @property
    def last(self) -> tuple | None:
        return self.steps[-1] if self.steps else None

    @property
    def increase(self) -> float | None:
        """The (median) increase per layer of a linear growth, else None."""
        return float(np.median([s[3] for s in self.steps])) if self.shape == "linear" else None

    @property
    def factor(self) -> float | None:
        """The (median) factor per layer of a geometric growth, else None."""
        return float(np.median([s[2] for s in self.steps])) if self.shape == "geometric" else None

    def words(self, unit: str = "", bold: bool = True) -> str:
        """The growth in words: ``linearly, by +32 scalar operations per layer``, ``by a falling factor per layer:
        6.28 from depth 1 to 2, 2.59 from depth 7 to 8``."""
        from .report import fmt  # (report imports this module's siblings, not this module: no cycle at import)
        b = (lambda s: f"**{s}**") if bold else (lambda s: s)
        u = f" {unit}" if unit else ""

        def span(s) -> str:
            return f"from depth {int(s[0])} to {int(s[1])}"

        if self.shape == "single":
            return "measured at one depth only"
        if self.shape == "linear":
            return f"linearly, by {b('+' + fmt(self.increase))}{u} per layer"
        if self.shape == "geometric":
            return f"geometrically, by a factor of {b(fmt(self.factor))} per layer"
        if self.shape == "one step":
            s = self.first
            return f"by a factor of {b(fmt(s[2]))} per layer {span(s)} (+{fmt(s[3])}{u} per layer; two depths only)"
        s0, s1 = self.first, self.last
        if self.shape in ("falling", "rising"):
            more = f" (+{fmt(s0[3])} and +{fmt(s1[3])}{u} per layer there)" if unit else ""
            return f"by a {self.shape} factor per layer: {b(fmt(s0[2]))} {span(s0)}, {b(fmt(s1[2]))} {span(s1)}{more}"
        lo, hi = min(s[2] for s in self.steps), max(s[2] for s in self.steps)
        return (f"by a factor per layer that goes up and down between {fmt(lo)} and {fmt(hi)}: "
                f"{b(fmt(s1[2]))} {span(s1)}")


def describe_growth(depth, y) -> Growth:
    """How ``y`` grows with ``depth`` (``Growth``), from the successive measured depths with a finite, positive
    ``y``; repeated depths keep their first value."""
    d, v = np.asarray(depth, float), np.asarray(y, float)
    ok = np.isfinite(d) & np.isfinite(v) & (v > 0)
    d, v = d[ok], v[ok]
    order = np.argsort(d, kind="stable")
    d, v = d[order], v[order]
    keep = np.concatenate([[True], np.diff(d) > 0]) if len(d) else np.zeros(0, bool)
    d, v = d[keep], v[keep]
    if len(d) < 2:
        return Growth("single")
    gap = np.diff(d)
    factors = (v[1:] / v[:-1]) ** (1.0 / gap)
    increases = np.diff(v) / gap
    steps = tuple((float(a), float(c), float(f), float(i)) for a, c, f, i in zip(d[:-1], d[1:], factors, increases))
    if len(steps) == 1:
        return Growth("one step", steps)

    def constant(x) -> bool:
        m = float(np.median(x))
        return m != 0 and float(np.max(np.abs(x - m))) <= GROWTH_TOL * abs(m)

    if constant(increases):
        return Growth("linear", steps)
    if constant(factors):
        return Growth("geometric", steps)
    change = np.diff(factors)
    if (change <= 0).all():
        return Growth("falling", steps)
    if (change >= 0).all():
        return Growth("rising", steps)
    return Growth("mixed", steps)
