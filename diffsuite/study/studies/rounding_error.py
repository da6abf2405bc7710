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

import re
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
#: the message of a step refusal (``failure_row``: ``Type: message``; a traceback location may follow), also in rows
#: stored before the ``refused`` status existed, which recorded the same refusals with status ``error``
_REFUSAL = re.compile(r"^\s*(?:[\w.]+\.)?StepUnderflowError\b")


def step_refusals(table: pd.DataFrame) -> pd.Series:
    """The rows that are step refusals (``StepUnderflowError``): status ``refused``, or status ``error`` with a
    ``StepUnderflowError`` message (rows measured before that status existed)."""
    status = table["status"].fillna("").astype(str)
    message = table["message"].fillna("").astype(str) if "message" in table else pd.Series("", index=table.index)
    return (status == "refused") | ((status == "error") & message.str.contains(_REFUSAL))


def shown_failures(table: pd.DataFrame) -> pd.Series:
    """The non-ok rows this report lists: the step refusals it counts in its table (``refused steps``), those of a
    (problem, method, dtype) with a row in that table; every other failure goes to the closing table of
    ``report.build``."""
    counted = step_refusals(table)
    if not counted.any():
        return counted
    best = best_table(table)
    keys = set(zip(best["problem"], best["method"], best["dtype"])) if len(best) else set()
    return counted & pd.Series([k in keys for k in zip(table["problem"], table["method"], table["dtype"])],
                               index=table.index)


def order(scheme: str, levels: int = 4) -> int:
    """The truncation order p of a scheme (Richardson: 2 * levels, as the differentiator uses it)."""
    from ...differentiators.finite_diff.steps import scheme_order
    return scheme_order(scheme, levels)


@lru_cache(maxsize=None)
def scalar_derivatives(n: int, dps: int = 50) -> tuple[float, ...]:
    """|f^(k)(x0)| for k = 0..n of the scalar problem, from sympy's exact derivatives evaluated at ``dps`` digits
    (independent of every differentiator under study)."""
    import sympy
    x = sympy.Symbol("x")
    f = sympy.tanh(x) * sympy.exp(x / 2)
    x0 = sympy.Float(X0, dps)
    out = []
    for _ in range(n + 1):
        out.append(abs(float(f.subs(x, x0).evalf(dps))))
        f = sympy.diff(f, x)
    return tuple(out)


#: the leading truncation error of each stencil, as a multiple k of |f^(p+1)| h^p (textbook Taylor expansions:
#: forward/backward f^(2) h/2, central f^(3) h^2/3! = /6, five-point f^(5) h^4/30): C = k |f^(p+1)|
TRUNCATION = {"forward": 1 / 2, "backward": 1 / 2, "central": 1 / 6, "five_point": 1 / 30}


def optimum(scheme: str, dtype: str, levels: int = 4, problem: str | None = None) -> tuple[float | None, str]:
    """(h*, how it was obtained). For the scalar problem, whose derivatives the study knows exactly, the minimum
    of the model E(h) = C h^p + eps |f| / h with C = k |f^(p+1)| (``TRUNCATION``: k = 1/(p+1)! for forward,
    backward and central, 1/30 for the five-point stencil): h* = (eps |f| / (p C))^(1/(p+1)).
    Otherwise (the MLP, Richardson's extrapolated error) only the scaling rule h ~ eps^(1/(p+1)) (|f| = C = 1),
    which is also how the automatic step is chosen at unit scale."""
    if scheme == "complex_step":
        return None, "none (no rounding floor)"
    p = order(scheme, levels)
    eps = EPS[dtype]
    if problem == "scalar" and scheme in TRUNCATION:
        d = scalar_derivatives(p + 1)
        c = TRUNCATION[scheme] * d[p + 1]
        if c > 0 and d[0] > 0:
            return (eps * d[0] / (p * c)) ** (1.0 / (p + 1)), "model"
    return eps ** (1.0 / (p + 1)), "scaling rule"


def best_table(table: pd.DataFrame, levels: int = 4) -> pd.DataFrame:
    """Per (problem, scheme, dtype): the best step of the sweep grid, the automatic step, the smallest error of
    the two (``smallest at``: the step, or ``auto``) and the steps refused (``step_refusals``: also those stored
    with status ``error`` before the ``refused`` status existed)."""
    ok = table[(table["status"] == "ok") & table["method"].astype(str).str.startswith("finite_diff")]
    refused = step_refusals(table)
    rows = []
    for (p, m, d), g in ok.groupby(["problem", "method", "dtype"], sort=False):
        sweep = g[g["step_kind"] == "sweep"].dropna(subset=["rel_error"])
        auto = g[g["step_kind"] == "auto"].dropna(subset=["rel_error"])
        if sweep.empty:
            continue
        best = sweep.loc[sweep["rel_error"].idxmin()]
        scheme = m[len("finite_diff["):-1]
        h_opt, rule = optimum(scheme, d, levels, p)
        auto_err = float(auto["rel_error"].iloc[0]) if len(auto) else None
        auto_wins = auto_err is not None and auto_err < float(best["rel_error"])
        rows.append({"problem": p, "method": m, "dtype": d, "order p": order(scheme, levels),
                     "best sweep error": float(best["rel_error"]), "best sweep h": float(best["h"]),
                     "h*": h_opt, "h* from": rule,
                     "auto h (median)": float(auto["h"].iloc[0]) if len(auto) else None,
                     "error at auto h": auto_err,
                     "smallest error": auto_err if auto_wins else float(best["rel_error"]),
                     "smallest at": "auto" if auto_wins else fmt(float(best["h"])),
                     "refused steps": int(refused[(table["problem"] == p) & (table["method"] == m)
                                                  & (table["dtype"] == d)].sum())})
    return pd.DataFrame(rows)


def line_table(table: pd.DataFrame) -> pd.DataFrame:
    ok = table[(table["status"] == "ok") & ~table["method"].astype(str).str.startswith("finite_diff")]
    return ok[["problem", "method", "dtype", "rel_error"]].reset_index(drop=True)


def report(table: pd.DataFrame, meta: dict, out_dir) -> Report:
    cfg = meta.get("config", {})
    problems = [p for p in PROBLEMS if p in set(table["problem"])]
    dtypes = [d for d in ("float64", "float32") if d in set(table["dtype"])]
    levels = int(cfg.get("richardson_levels", Config.richardson_levels))
    best, lines = best_table(table, levels), line_table(table)
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
                h_opt, _ = optimum(m[len("finite_diff["):-1], d, levels, p)
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

    findings = {"richardson_levels": levels, "richardson_order": order("richardson", levels)}
    bullets = []
    for _, r in best.iterrows():  # every number the text and table quote, one key per (problem, dtype, scheme)
        key = f"{r['problem']}_{r['dtype']}_{r['method'][len('finite_diff['):-1]}"
        findings.update({f"{key}_best_sweep_error": r["best sweep error"], f"{key}_best_sweep_h": r["best sweep h"],
                         f"{key}_h_star": r["h*"], f"{key}_h_star_from": r["h* from"],
                         f"{key}_auto_h": r["auto h (median)"], f"{key}_auto_error": r["error at auto h"],
                         f"{key}_smallest_error": r["smallest error"], f"{key}_smallest_at": r["smallest at"]})
    findings = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in findings.items()}
    for p in problems:
        for d in dtypes:
            b = best[(best["problem"] == p) & (best["dtype"] == d)].set_index("method")
            if "finite_diff[central]" in b.index:
                f = {k[len(f"{p}_{d}_central_"):]: v for k, v in findings.items()
                     if k.startswith(f"{p}_{d}_central_")}
                h_star = (f"model optimum h* = {fmt(f['h_star'])}, from f's exact derivatives"
                          if f["h_star_from"] == "model" else
                          f"scaling rule eps^(1/3) = {fmt(f['h_star'])}")
                auto = (f"at the automatic step (h = {fmt(f['auto_h'])}) the error is **{fmt(f['auto_error'])}**"
                        if f["auto_error"] is not None else "the automatic step gave no error")
                smallest = ("; the automatic step is the smallest error measured" if f["smallest_at"] == "auto"
                            else "")
                bullets.append(f"{PROBLEM_LABEL[p]}, {d}: over the swept steps, central differences reach their "
                               f"smallest error **{fmt(f['best_sweep_error'])}** at h = **{fmt(f['best_sweep_h'])}** "
                               f"({h_star}); {auto}{smallest}.")
            if len(b):
                top = b["smallest error"].idxmin()
                t = top[len("finite_diff["):-1]
                findings[f"{p}_{d}_best_scheme"] = top
                findings[f"{p}_{d}_best_scheme_error"] = float(b.loc[top, "smallest error"])
                where = ("at its automatic step" if b.loc[top, "smallest at"] == "auto"
                         else f"at h = {findings[f'{p}_{d}_{t}_smallest_at']}")
                bullets.append(f"{PROBLEM_LABEL[p]}, {d}: the most accurate scheme, over the swept and automatic "
                               f"steps, is `{top}` (**{fmt(findings[f'{p}_{d}_best_scheme_error'])}**, {where}).")
            r = lines[(lines["problem"] == p) & (lines["dtype"] == d) & (lines["method"] == "reverse[numpy]")]
            if len(r):
                findings[f"{p}_{d}_reverse_error"] = float(r["rel_error"].iloc[0])
                bullets.append(f"{PROBLEM_LABEL[p]}, {d}: reverse mode, with no step at all, has error "
                               f"**{fmt(findings[f'{p}_{d}_reverse_error'])}**.")
    same = best.dropna(subset=["h*", "auto h (median)"]) if len(best) else best
    if len(same):
        # equal in the dtype: the automatic step is made exact at the evaluated point ((theta + h) - theta in the
        # dtype), which moves it by up to about eps max(1, |theta_i|), relatively eps^(p/(p+1)) <= sqrt(eps)
        # (the float32 rows differ by ~1e-6, which a float64 tolerance counted as different)
        rtol = np.sqrt(same["dtype"].map(EPS).astype(float))
        same = same[(same["h* from"] == "scaling rule")
                    & (np.abs(same["auto h (median)"].astype(float) / same["h*"].astype(float) - 1) <= rtol)]
    findings["scaling_rule_rows_equal_to_auto_step"] = int(len(same))
    rule_note = ("Where no model optimum is known (h* from: scaling rule), the dotted line is the rule of thumb "
                 "h ~ eps^(1/(p+1)), the model's optimum with |f| = C = 1 and without the factor p: not a "
                 "theoretical optimum of this problem. ")
    if len(same):
        rule_note += (f"In {findings['scaling_rule_rows_equal_to_auto_step']} rows it equals the automatic step by "
                      "construction (the automatic step is eps^(1/(p+1)) max(1, |theta_i|), and |theta_i| <= 1 "
                      "there), so those rows do not test the rule against the automatic step.")
    refused = step_refusals(table)
    findings["refused_steps"] = int(refused.sum())
    findings["refused_steps_stored_as_error"] = int((refused & (table["status"] == "error")).sum())
    n_ref = findings["refused_steps"]
    refused_note = (f"{n_ref} step{' was' if n_ref == 1 else 's were'} refused (`StepUnderflowError`: the step "
                    "vanishes in the dtype, or the change of f it makes rounds to 0, so the quotient would be exactly "
                    "0): gaps in the curves, counted per scheme in the table (refused steps)."
                    if n_ref else "No step was refused.")
    if findings["refused_steps_stored_as_error"]:
        refused_note += (f" {findings['refused_steps_stored_as_error']} of them are stored with status error (measured "
                         "before the refused status existed); their messages show the refusal, and they are counted "
                         "as refused.")
    refs = sorted(set(table["reference"].dropna())) if "reference" in table else []
    blocks = [
        Heading("What the data show"),
        Para("Every real scheme traces a V (the x axis is inverted, h decreasing to the right): truncation error "
             "falls as h^p from the left, and rounding error grows as eps/h on the right, at the smallest steps. "
             "Complex step has no subtraction, so it has no rounding arm on the right."),
        Bullets(bullets),
        Figure("error_vs_step.png", "Max relative error against step h (h decreasing to the right). Dotted "
               "verticals: h* per scheme (the model optimum where f's derivatives are known, else the scaling "
               "rule eps^(1/(p+1))); large hollow markers: each "
               f"scheme at its automatic step (median over parameters); dashed horizontals: reverse mode and "
               f"symbolic, which have no step. Errors of exactly 0 are drawn at {FLOOR:g}."),
        Table(best, "Per scheme: best step of the sweep grid, h*, automatic step, and the smallest error of both"),
        Para(refused_note),
        Para("h*: for the scalar problem and the forward, backward, central and five-point stencils, the minimum of "
             "E(h) = C h^p + eps |f| / h with C the stencil's leading truncation constant times |f^(p+1)| (1/2, 1/2, "
             "1/6, 1/30), from f's derivatives computed exactly with sympy: h* = (eps |f| / (p C))^(1/(p+1)). "
             + rule_note),
        Table(lines, "Methods without a step"),
        Para("References: " + "; ".join(f"`{r}`" for r in refs) + "."),
        Para(f"Steps: 10^0 to 10^-{cfg.get('decades', 16)}, {cfg.get('per_decade', 4)} per decade. Richardson "
             f"uses {findings['richardson_levels']} levels (order {findings['richardson_order']}); its h is the "
             "coarsest."),
    ]
    return Report(TITLE, QUESTION, blocks, findings)
