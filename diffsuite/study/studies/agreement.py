"""Agreement: do all the methods give the exact gradient on thousands of random problems?

Problem ``index`` of seed ``seed`` (``problem(seed, index)``, reproducible anywhere) is a small random
MLP loss: activation from every activation, loss from quadratic, binary cross-entropy, softmax
cross-entropy and hinge, regularisation none / L1 / L2 / both (strengths powers of two), 1-3 inputs,
0-2 hidden layers of 1-3 units (maxout: 2 pieces each), batch 1-3, parameters of scale 10^U(``log10_scale``). A share
``kink_share`` of the problems sits exactly on a kink where its definition has one: a sample with
all-zero inputs and zero first-layer biases puts the first hidden pre-activations at exactly 0 (relu, leaky relu,
elu, step, maxout ties), and with L1 a weight is exactly 0. Parameters and data are float32-exact.

Each cell is one problem: the reference gradient (``diffsuite.reference_gradient``: exact, rounded to
float64), then every method in float64, each error normwise (``max|g - r| / max|r|``). A method's
*accuracy class* (``TOLERANCE``) is the error it must stay under on a smooth problem; an error above it
is a *disagreement*, listed in the report with the problem's seed and index to reproduce it, and marked
*explained* when the method is a finite difference whose stencil straddled a kink (the step averages
both sides: no finite difference can honour the subgradient convention there). A method that raises is
a crash (its message kept); a problem whose reference fails is counted apart, measured by nobody.

Quick: 200 problems; full: 10,000 (on a Dask cluster: ``diffsuite run agreement --scheduler ...``).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ... import reference_gradient
from ...differentiators import get_differentiator
from ...nn import MLP
from ...objective import Objective
from ..common import REG_STRENGTH, make_method, make_targets, rel_error, to_f32_point
from ..figures import figure_legend, method_order, plot_kwargs, save, subplots
from ..report import Bullets, Figure, Heading, Para, Report, Table, fmt
from ..runner import cell
from ..status import failure_row

TITLE = "Agreement of every method on random problems"
QUESTION = ("On thousands of random small networks (every activation, loss and regulariser, some exactly on a "
            "kink), does every method agree with the exact gradient within its accuracy class, and which "
            "problems break one?")

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "step", "maxout", "identity")
KINKED = ("relu", "leaky_relu", "elu", "step", "maxout")  # a kink (or tie) at pre-activation 0
#: loss -> (output activation, number of outputs or None for 1-3, target kind of ``make_targets``)
LOSSES = {"quadratic": ("identity", None, "real"), "binary_cross_entropy": ("sigmoid", None, "binary"),
          "cross_entropy": ("identity", 3, "class"), "hinge": ("identity", 1, "sign")}
REGS = ("none", "l1", "l2", "l1+l2")

#: the accuracy class of each method: the normwise error it must stay under on a smooth float64 problem
TOLERANCE = {
    "reverse[numpy]": 1e-12, "reverse[torch-cpu]": 1e-12, "reverse[torch-cuda]": 1e-12, "forward": 1e-12,
    "symbolic[cse]": 1e-12, "symbolic[no-cse]": 1e-12, "finite_diff[complex_step]": 1e-12,
    "finite_diff[richardson]": 1e-7, "finite_diff[five_point]": 1e-7, "finite_diff[central]": 1e-5,
    "finite_diff[forward]": 1e-3, "finite_diff[backward]": 1e-3,
}
OPTIONS = {"finite_diff": {"warn": False}, "symbolic": {"metrics": False, "engine": "symengine"}}


@dataclass(frozen=True)
class Config:
    problems: int = 10_000
    seed: int = 0
    methods: tuple[str, ...] = ("reverse[numpy]", "reverse[torch-cpu]", "symbolic[cse]", "finite_diff[central]",
                                "finite_diff[richardson]", "finite_diff[complex_step]")
    activations: tuple[str, ...] = ACTIVATIONS
    losses: tuple[str, ...] = tuple(LOSSES)
    regs: tuple[str, ...] = REGS
    max_inputs: int = 3
    max_hidden_layers: int = 2
    max_width: int = 3
    max_batch: int = 3
    log10_scale: tuple[float, float] = (-1.0, 1.0)
    kink_share: float = 0.25
    reference_budget_s: float = 60.0
    devices: tuple[str, ...] = ("cpu",)

    def quick(self) -> "Config":
        return replace(self, problems=200, reference_budget_s=10.0)


def validate(config: Config) -> None:
    """The values a run can use (``study/config.py`` calls this before anything is created or measured)."""
    from .. import config as check
    check.ints("problems", config.problems, 1)
    check.ints("seed", config.seed, 0)
    check.names("methods", config.methods, TOLERANCE)
    check.names("activations", config.activations, ACTIVATIONS)
    check.names("losses", config.losses, LOSSES)
    check.names("regs", config.regs, REGS)
    check.ints("max_inputs", config.max_inputs, 1)
    check.ints("max_hidden_layers", config.max_hidden_layers, 0)
    check.ints("max_width", config.max_width, 1)
    check.ints("max_batch", config.max_batch, 1)
    check.interval("log10_scale", config.log10_scale, -300.0, 300.0)
    check.number("kink_share", config.kink_share, 0.0, 1.0)
    check.number("reference_budget_s", config.reference_budget_s, 0.0, open_low=True)


@dataclass(frozen=True)
class RandomProblem:
    objective: Objective
    theta: np.ndarray
    description: dict


def problem(seed: int, index: int, config: Config | None = None) -> RandomProblem:
    """Problem ``index`` of ``seed``: the same objective and parameters on every machine and in every run."""
    c = config or Config()
    rng = np.random.default_rng([seed, index])
    activation = str(rng.choice(c.activations))
    loss = str(rng.choice(c.losses))
    reg = str(rng.choice(c.regs))
    out_act, n_out, kind = LOSSES[loss]
    n_out = n_out or int(rng.integers(1, 4))
    n_in = int(rng.integers(1, c.max_inputs + 1))
    hidden = tuple(int(rng.integers(1, c.max_width + 1)) for _ in range(int(rng.integers(0, c.max_hidden_layers + 1))))
    batch = int(rng.integers(1, c.max_batch + 1))
    scale = float(10.0 ** rng.uniform(*c.log10_scale))
    on_kink = bool(rng.uniform() < c.kink_share)
    model = MLP(layers=(n_in, *hidden, n_out), activation=activation, output_activation=out_act)
    inputs = to_f32_point(rng.normal(size=(batch, n_in)))
    targets = make_targets(kind, n_out, batch, rng)
    theta = to_f32_point(rng.normal(size=model.n_params) * scale)
    kinks = []
    if on_kink and hidden and activation in KINKED:
        inputs[0] = 0.0  # sample 0 has all-zero inputs, so its first pre-activations are the biases ...
        a, b, _ = model.layout[_first_bias(model)]
        theta[a:b] = 0.0  # ... and the first biases are exactly 0: pre-activations exactly on the kink (maxout: a tie)
        kinks.append(f"{activation}(0)")
    if on_kink and "l1" in reg:
        weights = [j for name, (a, b, _) in model.layout.items() if name.startswith("W") for j in range(a, b)]
        theta[weights[int(rng.integers(0, len(weights)))]] = 0.0  # |0|: L1's kink (L1 applies to weights only)
        kinks.append("|0| in L1")
    l1 = REG_STRENGTH if "l1" in reg else 0.0
    l2 = REG_STRENGTH if "l2" in reg else 0.0
    obj = Objective(model, loss, inputs, targets, l1=l1, l2=l2)
    desc = {"activation": activation, "loss": loss, "reg": reg, "layers": "-".join(map(str, model.layers)),
            "batch": batch, "scale": scale, "n_params": int(theta.size), "on_kink": bool(kinks),
            "kinks": ", ".join(kinks)}
    return RandomProblem(obj, theta, desc)


def _first_bias(model: MLP) -> str:
    names = [n for n in model.layout if n.startswith("b")]
    if not names:
        raise ValueError(f"the model's parameter blocks {list(model.layout)} have no bias (a name starting with b)")
    return names[0]


def cells(config: Config):
    return [cell(problem=i) for i in range(config.problems)]


def _differentiator(label: str):
    if label == "forward":  # forward mode, where this diffsuite has it
        return get_differentiator("forward")
    return make_method(label, **OPTIONS.get(label.split("[")[0], {}))


def measure(config: Config, params: dict) -> list[dict]:
    index = params["problem"]
    p = problem(config.seed, index, config)
    base = {"seed": config.seed, **p.description}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = reference_gradient(p.objective, p.theta, time_budget_s=config.reference_budget_s)
    except Exception as e:  # noqa: BLE001 - no reference: nothing to compare with; counted in the report
        return [{**base, "method": "reference", **failure_row(e)}]  # budget, or error
    ref_grad = np.asarray(ref.grad, dtype=np.float64)
    base["reference"] = str(ref.stats.get("reference", "reference_gradient"))
    rows = []
    for label in config.methods:
        row = {**base, "method": label, "tolerance": TOLERANCE.get(label, 1e-12)}
        try:
            d = _differentiator(label)
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                res = d.value_and_grad(p.objective)(p.theta)
        except Exception as e:  # noqa: BLE001 - a crash is a result: counted, with its message
            rows.append({**row, **failure_row(e)})  # a missing package: "unavailable", not a crash
            continue
        kink_params = res.stats.get("kink_params")
        err = rel_error(res.grad, ref_grad)
        straddles = bool(kink_params is not None and len(kink_params) > 0)
        unsettled = len(res.stats.get("unsettled_params") or ())  # finite differences: steps that never settled
        rows.append({**row, "error": err, "straddles_kink": straddles, "unsettled_steps": unsettled,
                     "beyond": bool(not err <= row["tolerance"]),
                     "explained": bool(not err <= row["tolerance"] and straddles)})
    return rows


# ----- report -----
FLOOR = 1e-18


def summary_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per method: problems, crashes, non-finite gradients, error quantiles, disagreements (and how many a
    straddled kink explains)."""
    out = []
    for m in method_order(rows["method"].dropna().unique()):
        g = rows[rows["method"] == m]
        ok = g[g["status"] == "ok"]
        e = ok["error"].astype(float).fillna(np.inf)
        beyond = ok["beyond"].astype(bool)
        explained = ok["explained"].astype(bool)
        unexplained_e, explained_e = e[beyond & ~explained], e[explained]
        out.append({"method": m, "class (tolerance)": float(g["tolerance"].iloc[0]), "problems": len(g),
                    "crashed": int((g["status"] != "ok").sum()), "non-finite": int((~np.isfinite(e)).sum()),
                    "median error": float(e.median()) if len(e) else None,
                    "99th percentile": float(e.quantile(0.99)) if len(e) else None,
                    "max error": float(e.max()) if len(e) else None,
                    "disagreements": int((beyond & ~explained).sum()),
                    "worst disagreement": float(unexplained_e.max()) if len(unexplained_e) else None,
                    "explained by a kink": int(explained.sum()),
                    "worst explained": float(explained_e.max()) if len(explained_e) else None})
    return pd.DataFrame(out)


def disagreements(rows: pd.DataFrame) -> pd.DataFrame:
    """Every row beyond its accuracy class, with what reproduces it: ``problem(seed, index)``."""
    ok = rows[rows["status"] == "ok"]
    bad = ok[ok["beyond"].astype(bool)]
    cols = ["method", "seed", "problem", "error", "tolerance", "explained", "unsettled_steps", "activation", "loss",
            "reg", "layers", "batch", "scale", "kinks"]
    return bad[[c for c in cols if c in bad]].sort_values(["explained", "method", "error"],
                                                         ascending=[True, True, False], ignore_index=True)


def shown_failures(table: pd.DataFrame) -> pd.Series:
    """The non-ok rows this report lists or counts (crashes per method; problems without a reference): those with a
    method; ``report.build`` lists the others."""
    return (table["status"] != "ok") & table["method"].notna()


def report(table: pd.DataFrame, meta: dict, out_dir) -> Report:
    measured = table[table["method"].notna()] if "method" in table else table.iloc[0:0]
    no_ref = measured[measured["method"] == "reference"]
    rows = measured[measured["method"] != "reference"]
    summ = summary_table(rows) if len(rows) else pd.DataFrame()
    dis = disagreements(rows) if len(rows) else pd.DataFrame()
    seed = (meta.get("config") or {}).get("seed", 0)
    n_problems = int(measured["problem"].nunique()) if len(measured) else 0
    n_kink = int(measured.drop_duplicates("problem")["on_kink"].astype(bool).sum()) if len(measured) else 0

    methods = method_order(rows["method"].unique()) if len(rows) else []
    fig, axes = subplots(1, 1, width=7.5, height=4.4)
    ax = axes[0][0]
    for m in methods:
        g = rows[(rows["method"] == m) & (rows["status"] == "ok")]
        e = np.sort(g["error"].astype(float).fillna(np.inf).clip(lower=FLOOR).to_numpy())
        e = e[np.isfinite(e)]
        if len(e):
            kw = {k: v for k, v in plot_kwargs(m).items() if k not in ("marker", "markersize")}
            ax.step(e, np.arange(1, len(e) + 1) / len(g), where="post", label=m, **kw)
            ax.axvline(TOLERANCE.get(m, 1e-12), color=kw["color"], linestyle=":", linewidth=0.9)
    ax.set_xscale("log")
    ax.set_xlabel(f"normwise relative error against the reference (errors of 0 at {FLOOR:g}; dotted: class)")
    ax.set_ylabel("share of problems with error <= x")
    ax.set_title(f"{n_problems} random problems, seed {seed}")
    if methods:
        figure_legend(fig, ax, ncol=3)
    save(fig, out_dir / "error_distribution.png")

    findings = {"problems": n_problems, "problems_on_kink": n_kink, "problems_without_reference": int(len(no_ref))}
    bullets = []
    records = summ.to_dict("records") if len(summ) else []
    for r in records:
        key = r["method"].replace("[", "_").replace("]", "").replace("-", "_")
        findings.update({f"{key}_problems": r["problems"], f"{key}_tolerance": r["class (tolerance)"],
                         f"{key}_median": r["median error"], f"{key}_max": r["max error"],
                         f"{key}_disagreements": r["disagreements"],
                         f"{key}_worst_disagreement": r["worst disagreement"],
                         f"{key}_explained_by_kink": r["explained by a kink"],
                         f"{key}_worst_explained": r["worst explained"], f"{key}_crashed": r["crashed"]})
    findings = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in findings.items()}
    # the text below quotes findings' values only, so findings.json holds every number it prints
    # "within class on every problem" counts every miss, the ones a straddled kink explains too (the table's max
    # error column); methods whose only misses are explained ones get their own sentence
    no_unexplained = [r for r in records if r["disagreements"] == 0 and r["crashed"] == 0]
    clean = [r["method"] for r in no_unexplained if r["explained by a kink"] == 0]
    kink_only = [r["method"] for r in no_unexplained if r["explained by a kink"] > 0]
    if clean:
        bullets.append(f"Within their accuracy class on every problem: {', '.join(f'`{m}`' for m in clean)}.")
    if kink_only:
        bullets.append("Within their accuracy class on every problem except those where their stencil straddles a "
                       f"kink (counted below): {', '.join(f'`{m}`' for m in kink_only)}.")
    for r in records:
        m = r["method"]
        key = m.replace("[", "_").replace("]", "").replace("-", "_")
        f = {n: findings[f"{key}_{n}"] for n in ("problems", "tolerance", "disagreements", "worst_disagreement",
                                                  "explained_by_kink", "worst_explained", "crashed")}
        if f["disagreements"]:
            bullets.append(f"`{m}` disagrees beyond its class ({fmt(f['tolerance'])}) on "
                           f"**{f['disagreements']}** of {f['problems']} problems without a straddled kink (worst "
                           f"of those {fmt(f['worst_disagreement'])}); listed below with the problem.")
        if f["explained_by_kink"]:
            more = " more" if f["disagreements"] else ""
            bullets.append(f"`{m}`: **{f['explained_by_kink']}**{more} disagreements where its stencil "
                           f"straddles a kink (worst of those {fmt(f['worst_explained'])}; expected: a finite "
                           "difference averages both sides of it).")
        if f["crashed"]:
            bullets.append(f"`{m}` crashed on **{f['crashed']}** problems.")
    bullets.append(f"{findings['problems_on_kink']} of {findings['problems']} problems sit exactly on a kink (a zero "
                   "pre-activation of a kinked activation, or a zero weight under L1).")
    if findings["problems_without_reference"]:
        bullets.append(f"The reference failed on {findings['problems_without_reference']} problems (not compared; "
                       "reasons below).")
    blocks = [Heading("What the data show"), Bullets(bullets),
              Figure("error_distribution.png", "Cumulative distribution of each method's error over all problems "
                                               "(log scale); dotted lines: each method's accuracy class."),
              Table(summ, "Error per method (normwise, against the reference)")]
    if len(dis):
        dis.to_csv(out_dir / "disagreements.csv", index=False)
        shown = dis[~dis["explained"].astype(bool)]
        limit = 60
        blocks.append(Para(f"Reproduce any problem: `from diffsuite.study.studies.agreement import problem; "
                           f"p = problem(seed, index)` (then `p.objective`, `p.theta`). All {len(dis)} rows beyond "
                           "their class are in `disagreements.csv`" + (f"; the first {limit} unexplained ones below."
                                                                        if len(shown) > limit else ".")))
        if len(shown):
            blocks.append(Table(shown.head(limit).drop(columns=["explained"]),
                                "Disagreements beyond the accuracy class, not explained by a kink"))
    crashes = rows[rows["status"] != "ok"]
    if len(crashes):
        first = crashes.groupby("method").agg(count=("status", "size"), problem=("problem", "first"),
                                              message=("message", "first")).reset_index()
        blocks.append(Table(first, "Crashes per method (the first problem and message)"))
    if len(no_ref):
        blocks.append(Table(no_ref[["problem", "activation", "loss", "reg", "layers", "message"]].head(20),
                            "Problems without a reference"))
    refs = sorted(set(rows["reference"].dropna().astype(str))) if "reference" in rows else []
    blocks.append(Para("Reference: `diffsuite.reference_gradient` (" + ", ".join(refs) + "); error: "
                       "max |g - r| / max |r|. Classes: " +
                       "; ".join(f"`{m}` {fmt(TOLERANCE.get(m, 1e-12))}" for m in methods) + "."))
    return Report(TITLE, QUESTION, blocks, {k: (None if isinstance(v, float) and math.isnan(v) else v)
                                            for k, v in findings.items()})
