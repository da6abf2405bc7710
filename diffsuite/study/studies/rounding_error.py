"""Rounding error: the error of every finite-difference scheme against its step h, in float32 and float64.

Two problems: a scalar function f(x) = tanh(x) exp(x/2) at x = 0.7 (float32-rounded), whose exact
derivative is written in closed form and evaluated in mpmath at 50 digits, and the lecture's
[3, 2, 1] sigmoid network with the quadratic loss (parameters rounded to float32), against the
high-precision reference (``common.reference``; the report names it). Steps h = 10^0 ... 10^-16 in
quarter decades, the same absolute step for every parameter; plus each scheme at its automatic
step. Reverse mode (numpy, both dtypes) and symbolic (float64) are single points: horizontal lines.

Error: ``max_i |g_i - r_i| / max_i |r_i|``. A float32 step so small that theta + h == theta (or that
the difference of f rounds to 0) makes the differentiator refuse (``StepUnderflowError``): that step
is a row with status ``refused`` (by design, not a failure) and no error value, a gap in the curve.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import pandas as pd

from ..common import EPS, FD_SCHEMES, Reference, make_method, reference, rel_error, to_f32_point
from ..figures import figure_legend, plot_kwargs, save, style, subplots
from ..report import Bullets, Figure, Heading, Para, Report, Table, fmt
from ..runner import cell
from ..status import failure_row

TITLE = "Rounding error against step size"
QUESTION = ("How does the error of each finite-difference scheme depend on the step h, in float32 and float64, "
            "and how close do the automatic step and the theoretical optimum come to the best step?")
PROBLEMS = ("scalar", "mlp")
PROBLEM_LABEL = {"scalar": "f(x) = tanh(x) exp(x/2) at x = 0.7",
                 "mlp": "lecture [3, 2, 1] sigmoid MLP, quadratic loss"}
LINE_METHODS = ("reverse[numpy]", "symbolic[cse]")
ORDER = {"forward": 1, "backward": 1, "central": 2, "five_point": 4, "richardson": 8, "complex_step": 2}
FLOOR = 1e-18  # an error of exactly 0 is drawn here (a log axis has no 0)


@dataclass(frozen=True)
class Config:
    problems: tuple[str, ...] = PROBLEMS
    schemes: tuple[str, ...] = FD_SCHEMES
    dtypes: tuple[str, ...] = ("float64", "float32")
    decades: int = 16
    per_decade: int = 4
    richardson_levels: int = 4
    devices: tuple[str, ...] = ("cpu",)

    def quick(self) -> "Config":
        return replace(self, per_decade=1)

    def steps(self) -> np.ndarray:
        return 10.0 ** (-np.arange(self.decades * self.per_decade + 1) / self.per_decade)


def validate(config: Config) -> None:
    """The values a run can use (``study/config.py`` calls this before anything is created or measured)."""
    from ...differentiators.finite_diff import MAX_LEVELS
    from ..common import DTYPES
    from .. import config as check
    check.names("problems", config.problems, PROBLEMS)
    check.names("schemes", config.schemes, FD_SCHEMES)
    check.names("dtypes", config.dtypes, DTYPES)
    check.ints("decades", config.decades, 1, 300)
    check.ints("per_decade", config.per_decade, 1, 1000)
    check.ints("richardson_levels", config.richardson_levels, 1, MAX_LEVELS)


def cells(config: Config):
    out = [cell(problem=p, method=f"finite_diff[{s}]", dtype=d)
           for p in config.problems for s in config.schemes for d in config.dtypes]
    out += [cell(problem=p, method=m, dtype=d) for p in config.problems for m in LINE_METHODS for d in config.dtypes
            if not (m.startswith("symbolic") and d != "float64")]
    return out


# ----- problems -----
X0 = float(to_f32_point(0.7))


def scalar_f(xp, theta):
    x = theta[0]
    return xp.tanh(x) * xp.exp(x * 0.5)


def scalar_reference(dps: int = 50) -> Reference:
    import mpmath
    with mpmath.workdps(dps):
        x = mpmath.mpf(X0)
        d = mpmath.sech(x) ** 2 * mpmath.exp(x / 2) + mpmath.tanh(x) * mpmath.exp(x / 2) / 2
        v = mpmath.tanh(x) * mpmath.exp(x / 2)
    return Reference(np.array([d], dtype=object), float(v), f"closed-form derivative in mpmath, {dps} digits")


def lecture_problem():
    from ...lecture import LECTURE_INPUT, LECTURE_PARAMS
    from ...nn import MLP
    from ...objective import Objective
    model = MLP((3, 2, 1), activation="sigmoid", output_activation="sigmoid")
    theta = to_f32_point(model.pack(LECTURE_PARAMS))
    obj = Objective(model, "quadratic", to_f32_point(LECTURE_INPUT), np.array([[1.0]]))
    return obj, theta


@lru_cache(maxsize=None)
def problem(name: str):
    """(objective or f, theta, reference) of a problem, built once per process."""
    if name == "scalar":
        return scalar_f, np.array([X0]), scalar_reference()
    obj, theta = lecture_problem()
    return obj, theta, reference(obj, theta)


# ----- measuring -----
def _grad(d, target, theta):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return d.value_and_grad(target)(theta)


def measure(config: Config, params: dict) -> list[dict]:
    target, theta, ref = problem(params["problem"])
    method, dtype = params["method"], params["dtype"]
    base = {"reference": ref.name, "n_params": int(theta.size)}
    if not method.startswith("finite_diff"):
        res = _grad(make_method(method, dtype=dtype), target, theta)
        return [{**base, "h": None, "step_kind": "none", "rel_error": rel_error(res.grad, ref.grad)}]
    scheme = method[len("finite_diff["):-1]
    extra = {"levels": config.richardson_levels} if scheme == "richardson" else {}
    rows = []
    for h in [*config.steps(), "auto"]:
        row = {**base, "h": None if h == "auto" else float(h), "step_kind": "auto" if h == "auto" else "sweep"}
        try:
            d = make_method(method, dtype=dtype, step=h, kink_check=False, **extra)
            res = _grad(d, target, theta)
        except Exception as e:  # noqa: BLE001 - e.g. StepUnderflowError (status "refused"): a gap, not the end
            rows.append({**row, **failure_row(e)})
            continue
        steps = np.asarray(res.stats.get("steps", [np.nan]), dtype=float)
        if h == "auto":
            row["h"] = float(np.median(steps))
        rows.append({**row, "rel_error": rel_error(res.grad, ref.grad), "n_evals": res.stats.get("n_evals")})
    return rows


# ----- report -----
def optimum(scheme: str, dtype: str) -> float | None:
    """The textbook step balancing truncation C h^p against rounding eps/h: h* ~ eps^(1/(p+1)) (unit scale)."""
    if scheme == "complex_step":
        return None  # no subtraction, no rounding floor: any h below about sqrt(eps) works
    return EPS[dtype] ** (1.0 / (ORDER[scheme] + 1))


def best_table(table: pd.DataFrame) -> pd.DataFrame:
    ok = table[(table["status"] == "ok") & table["method"].str.startswith("finite_diff")]
    rows = []
    for (p, m, d), g in ok.groupby(["problem", "method", "dtype"], sort=False):
        sweep = g[g["step_kind"] == "sweep"].dropna(subset=["rel_error"])
        auto = g[g["step_kind"] == "auto"]
        if sweep.empty:
            continue
        best = sweep.loc[sweep["rel_error"].idxmin()]
        scheme = m[len("finite_diff["):-1]
        rows.append({"problem": p, "method": m, "dtype": d, "best error": float(best["rel_error"]),
                     "best h": float(best["h"]), "optimum h*": optimum(scheme, d),
                     "auto h (median)": float(auto["h"].iloc[0]) if len(auto) else None,
                     "error at auto h": float(auto["rel_error"].iloc[0]) if len(auto) else None,
                     "refused steps": int((table[(table["problem"] == p) & (table["method"] == m)
                                                 & (table["dtype"] == d)]["status"] == "refused").sum())})
    return pd.DataFrame(rows)


def line_table(table: pd.DataFrame) -> pd.DataFrame:
    ok = table[(table["status"] == "ok") & ~table["method"].str.startswith("finite_diff")]
    return ok[["problem", "method", "dtype", "rel_error"]].reset_index(drop=True)


def report(table: pd.DataFrame, meta: dict, out_dir) -> Report:
    cfg = meta.get("config", {})
    problems = [p for p in PROBLEMS if p in set(table["problem"])]
    dtypes = [d for d in ("float64", "float32") if d in set(table["dtype"])]
    best, lines = best_table(table), line_table(table)
    fig, axes = subplots(len(problems), len(dtypes), width=5.6, height=4.2)
    for i, p in enumerate(problems):
        for j, d in enumerate(dtypes):
            ax = axes[i][j]
            sub = table[(table["problem"] == p) & (table["dtype"] == d) & (table["status"] == "ok")]
            for m in [f"finite_diff[{s}]" for s in FD_SCHEMES]:
                g = sub[(sub["method"] == m) & (sub["step_kind"] == "sweep")].sort_values("h")
                if g.empty:
                    continue
                ax.plot(g["h"], g["rel_error"].clip(lower=FLOOR), label=m, markersize=3.5,
                        **{k: v for k, v in plot_kwargs(m).items() if k != "markersize"})
                a = sub[(sub["method"] == m) & (sub["step_kind"] == "auto")]
                if len(a):
                    ax.plot(a["h"], a["rel_error"].clip(lower=FLOOR), linestyle="none", markersize=11,
                            markeredgewidth=1.6, **{k: v for k, v in plot_kwargs(m, hollow=True).items()
                                                    if k not in ("markersize", "linewidth")})
                h_opt = optimum(m[len("finite_diff["):-1], d)
                if h_opt:
                    ax.axvline(h_opt, color=style(m)[0], linestyle=":", linewidth=0.9)
            for m in LINE_METHODS:
                r = lines[(lines["problem"] == p) & (lines["dtype"] == d) & (lines["method"] == m)]
                if len(r):
                    ax.axhline(max(float(r["rel_error"].iloc[0]), FLOOR), color=style(m)[0], linestyle="--",
                               linewidth=1.3, label=f"{m} (no step, {'float64' if 'symbolic' in m else 'dtype of the panel'})")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.invert_xaxis()
            ax.set_xlabel("step h (absolute, same for every parameter)")
            ax.set_ylabel("max relative error (normwise)")
            ax.set_title(f"{PROBLEM_LABEL[p]}, {d}", fontsize=8.5)
    figure_legend(fig, axes[0][0], ncol=4)
    save(fig, out_dir / "error_vs_step.png")

    findings = {}
    bullets = []
    for p in problems:
        for d in dtypes:
            b = best[(best["problem"] == p) & (best["dtype"] == d)].set_index("method")
            if "finite_diff[central]" in b.index:
                c = b.loc["finite_diff[central]"]
                key = f"{p}_{d}_central"
                findings.update({f"{key}_best_error": c["best error"], f"{key}_best_h": c["best h"],
                                 f"{key}_optimum_h": c["optimum h*"], f"{key}_auto_error": c["error at auto h"]})
                bullets.append(f"{PROBLEM_LABEL[p]}, {d}: central differences reach their smallest error "
                               f"**{fmt(c['best error'])}** at h = **{fmt(c['best h'])}** (theory: h* = eps^(1/3) = "
                               f"{fmt(c['optimum h*'])}); at the automatic step the error is "
                               f"**{fmt(c['error at auto h'])}**.")
            if len(b):
                top = b["best error"].idxmin()
                findings[f"{p}_{d}_best_scheme_error"] = float(b.loc[top, "best error"])
                bullets.append(f"{PROBLEM_LABEL[p]}, {d}: the most accurate scheme at its best step is `{top}` "
                               f"(**{fmt(b.loc[top, 'best error'])}**).")
            r = lines[(lines["problem"] == p) & (lines["dtype"] == d) & (lines["method"] == "reverse[numpy]")]
            if len(r):
                findings[f"{p}_{d}_reverse_error"] = float(r["rel_error"].iloc[0])
                bullets.append(f"{PROBLEM_LABEL[p]}, {d}: reverse mode, with no step at all, has error "
                               f"**{fmt(r['rel_error'].iloc[0])}**.")
    refs = sorted(set(table["reference"].dropna())) if "reference" in table else []
    blocks = [
        Heading("What the data show"),
        Para("Every real scheme traces a V: truncation error falls as h^p to the right, rounding error grows as "
             "eps/h to the left. Complex step has no subtraction, so it has no left arm."),
        Bullets(bullets),
        Figure("error_vs_step.png", "Max relative error against step h (h decreasing to the right). Dotted "
               "verticals: the theoretical optimum h* = eps^(1/(p+1)) per scheme; large hollow markers: each "
               f"scheme at its automatic step (median over parameters); dashed horizontals: reverse mode and "
               f"symbolic, which have no step. Errors of exactly 0 are drawn at {FLOOR:g}."),
        Table(best, "Per scheme: best step, theoretical optimum, automatic step"),
        Table(lines, "Methods without a step"),
        Para("References: " + "; ".join(f"`{r}`" for r in refs) + "."),
        Para(f"Steps: 10^0 to 10^-{cfg.get('decades', 16)}, {cfg.get('per_decade', 4)} per decade. Richardson "
             f"uses {cfg.get('richardson_levels', 4)} levels (order {ORDER['richardson']}); its h is the coarsest."),
    ]
    return Report(TITLE, QUESTION, blocks, findings)
