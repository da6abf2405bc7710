"""Accuracy: the error of every differentiator against the high-precision reference, across activations,
losses, regularisation, dtypes and seeds, with points near kinks flagged.

Grid: MLP (3, 3, k) with activation in sigmoid, tanh, relu, elu, leaky_relu; loss in quadratic
(k = 2), binary cross-entropy (k = 1, sigmoid output), softmax cross-entropy (k = 3), hinge (k = 1);
no regularisation or L1 + L2 (both 2^-7); seeds 0 and 1; batch 4. One cell per problem; within it
every method in float64 and float32: each finite-difference scheme at its automatic step, symbolic
(float64 only), reverse mode on numpy, on torch's CPU, and on CUDA when measured (``--device all``).

Parameters and data are float32-exact, so every method in either dtype differentiates at the same
binary point as the reference (``diffsuite.study.common.reference``; the report names it). A finite-difference row
is flagged ``near_kink`` when its stencil straddles a kink (the differentiator's kink detection);
every row of a problem gets ``problem_near_kink`` when any scheme saw one.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..common import DTYPES, FALLBACK_NAME, FD_SCHEMES, make_method, method_device, mlp_problem, reference, rel_error
from ..figures import figure_legend, method_order, plot_kwargs, save, subplots
from ..report import Bullets, Figure, Heading, Para, Report, Table, fmt
from ..runner import cell
from ..status import failure_row

TITLE = "Accuracy of every differentiator"
QUESTION = ("How far from the exact gradient is each differentiator, across activations, losses, regularisation, "
            "float32 and float64, and what happens near kinks?")
FLOOR = 1e-18
OPTIONS = {"finite_diff": {"warn": False}, "symbolic": {"metrics": False}}  # quiet, and no size measuring


@dataclass(frozen=True)
class Config:
    activations: tuple[str, ...] = ("sigmoid", "tanh", "relu", "elu", "leaky_relu")
    losses: tuple[str, ...] = ("quadratic", "binary_cross_entropy", "cross_entropy", "hinge")
    regs: tuple[str, ...] = ("none", "l1+l2")
    seeds: tuple[int, ...] = (0, 1)
    dtypes: tuple[str, ...] = ("float64", "float32")
    hidden: tuple[int, ...] = (3,)
    batch: int = 4
    schemes: tuple[str, ...] = FD_SCHEMES
    symbolic: bool = True
    torch: bool = True
    devices: tuple[str, ...] = ("cpu",)

    def quick(self) -> "Config":
        return replace(self, activations=("tanh", "relu"), losses=("quadratic", "cross_entropy"), regs=("none",),
                       seeds=(0,), hidden=(2,), batch=2)

    def methods(self) -> list[str]:
        out = [f"finite_diff[{s}]" for s in self.schemes]
        out += ["symbolic[cse]"] if self.symbolic else []
        out += ["reverse[numpy]"]
        if self.torch:
            out += [f"reverse[torch-{d}]" for d in self.devices]
        return out


def validate(config: Config) -> None:
    """The values a run can use (``study/config.py`` calls this before anything is created or measured)."""
    from ...nn import ACTIVATIONS
    from ..common import LOSS_SETUP, REGS
    from .. import config as check
    check.names("activations", config.activations, ACTIVATIONS)
    check.names("losses", config.losses, LOSS_SETUP)
    check.names("regs", config.regs, REGS)
    check.ints("seeds", config.seeds, 0)
    check.names("dtypes", config.dtypes, DTYPES)
    check.ints("hidden", config.hidden, 1, empty=True, repeats=True)  # (the hidden widths of one network)
    check.ints("batch", config.batch, 1)
    check.names("schemes", config.schemes, FD_SCHEMES, empty=True)


def problem(*, activation: str, loss: str, reg: str, seed: int, hidden: tuple[int, ...] = (3,), batch: int = 4):
    """One problem of the grid: ``.objective`` (an MLP loss) and ``.theta`` (float32-exact parameters).

    Public: ``diffsuite.gradcheck.baseline`` builds its cases through it, so the baseline and the study
    differentiate the same problems."""
    return mlp_problem(hidden=hidden, activation=activation, loss=loss, reg=reg, batch=batch, seed=seed)


def method(label: str, *, dtype: str = "float64", **options):
    """The differentiator a method label names (``"finite_diff[central]"``, ``"reverse[torch-cpu]"``, ...)."""
    return make_method(label, dtype=dtype, **options)


def device(label: str) -> str:
    """The device a method label runs on (``"cpu"`` or ``"cuda"``)."""
    return method_device(label)


def cells(config: Config):
    return [cell(activation=a, loss=lo, reg=r, seed=s) for a in config.activations for lo in config.losses
            for r in config.regs for s in config.seeds]


def measure(config: Config, params: dict) -> list[dict]:
    p = problem(hidden=config.hidden, activation=params["activation"], loss=params["loss"], reg=params["reg"],
                batch=config.batch, seed=params["seed"])
    ref = reference(p.objective, p.theta)
    base = {"n_params": int(p.theta.size), "reference": ref.name, "reference_bits": ref.bits,
            "has_kink": bool(p.objective.has_kink()),
            "exact_reference": not ref.name.startswith(FALLBACK_NAME)}
    rows = []
    for method in config.methods():
        for dtype in config.dtypes:
            if method.startswith("symbolic") and dtype != "float64":
                continue
            row = {**base, "method": method, "dtype": dtype, "device": method_device(method)}
            try:
                d = make_method(method, dtype=dtype, **OPTIONS.get(method.split("[")[0], {}))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    res = d.value_and_grad(p.objective)(p.theta)
            except Exception as e:  # noqa: BLE001 - one method failing is a row, not the end of the cell
                rows.append({**row, **failure_row(e)})  # a missing package: "unavailable", not an error
                continue
            kinks = res.stats.get("kink_params")
            row.update(rel_error=rel_error(res.grad, ref.grad),
                       value_error=abs(res.value - ref.value) / max(abs(ref.value), 1e-300),
                       near_kink=bool(kinks is not None and len(kinks) > 0),
                       n_kink_params=int(len(kinks)) if kinks is not None else 0,
                       step_median=float(np.median(res.stats["steps"])) if "steps" in res.stats else None)
            rows.append(row)
    flagged = any(r.get("near_kink") for r in rows)
    for r in rows:
        r["problem_near_kink"] = flagged
    return rows


# ----- report -----
def summary_table(table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    methods = method_order(table["method"].dropna().unique())
    for m in methods:
        for d in ("float64", "float32"):
            g = table[(table["method"] == m) & (table["dtype"] == d)]
            if g.empty:
                continue
            ok = g[g["status"] == "ok"]
            # a non-finite gradient has error inf (``rel_error``); a missing error on an ok row (older stores
            # wrote NaN as null) counts as inf too, so neither is skipped by the median and the max
            e = ok["rel_error"].astype(float).fillna(np.inf)
            smooth = ok[~ok["problem_near_kink"].astype(bool)]["rel_error"].astype(float).fillna(np.inf)
            rows.append({"method": m, "dtype": d, "problems": len(g), "median error": float(e.median()) if len(e) else None,
                         "max error": float(e.max()) if len(e) else None,
                         "median, no kink nearby": float(smooth.median()) if len(smooth) else None,
                         "near a kink": int(ok["near_kink"].astype(bool).sum()),
                         "non-finite": int((~np.isfinite(e)).sum()), "failed": int((g["status"] != "ok").sum())})
    return pd.DataFrame(rows)


def shown_failures(table: pd.DataFrame) -> pd.Series:
    """The non-ok rows this report lists (its "Methods that refused or failed" table, per method and dtype): those
    with a method and a dtype, measured against the exact reference; ``report.build`` lists the others."""
    exact = ~table["reference"].fillna("").astype(str).str.startswith(FALLBACK_NAME) if "reference" in table \
        else pd.Series(True, index=table.index)
    return (table["status"] != "ok") & table["method"].notna() & table["dtype"].notna() & exact


def report(table: pd.DataFrame, meta: dict, out_dir) -> Report:
    measured = table[table["method"].notna()] if "method" in table else table.iloc[0:0]
    # problems without the high-precision reference are measured against reverse mode itself: left out of
    # the statistics (reverse would score 0 against itself) and counted below
    exact = ~measured["reference"].fillna("").astype(str).str.startswith(FALLBACK_NAME)
    rows, fallback = measured[exact], measured[~exact]
    summ = summary_table(rows) if len(rows) else pd.DataFrame()
    dtypes = [d for d in ("float64", "float32") if len(rows) and d in set(rows["dtype"])]
    fig, axes = subplots(1, max(1, len(dtypes)), width=6.2, height=4.4)
    methods = method_order(rows["method"].unique()) if len(rows) else []
    rng = np.random.default_rng(0)  # jitter only: fixed, so the figure is reproducible
    ok_rows = rows[rows["status"] == "ok"] if len(rows) else rows
    hollow = bool(len(ok_rows) and ok_rows["near_kink"].fillna(False).astype(bool).any())  # any marker drawn hollow
    for ax, d in zip(axes[0], dtypes):
        ok_d = rows[(rows["dtype"] == d) & (rows["status"] == "ok")]
        panel = [m for m in methods if (ok_d["method"] == m).any()]  # no empty slot for a method without rows here
        for i, m in enumerate(panel):
            g = ok_d[ok_d["method"] == m]
            e = g["rel_error"].astype(float).fillna(np.inf).clip(lower=FLOOR).to_numpy()
            x = i + rng.uniform(-0.25, 0.25, size=len(e))
            kink = g["near_kink"].astype(bool).to_numpy()
            med = np.median(e)
            fin = np.isfinite(e)  # non-finite errors cannot be drawn on a log axis: counted in the table instead
            e, x, kink = e[fin], x[fin], kink[fin]
            if not len(e):
                continue
            kw = {k: v for k, v in plot_kwargs(m).items() if k != "linewidth"}
            ax.plot(x[~kink], e[~kink], linestyle="none", alpha=0.75, label=m, **kw)
            if kink.any():
                ax.plot(x[kink], e[kink], linestyle="none", alpha=0.9,
                        **{k: v for k, v in plot_kwargs(m, hollow=True).items() if k != "linewidth"})
            if np.isfinite(med):
                ax.hlines(med, i - 0.35, i + 0.35, color="black", linewidth=1.5)
        ax.set_yscale("log")
        ax.set_xticks(range(len(panel)))
        ax.set_xticklabels([m.replace("finite_diff", "fd") for m in panel], rotation=40, ha="right", fontsize=7.5)
        ax.set_ylabel("max relative error (normwise)")
        ax.set_xlabel("method (black bar: median" + ("; hollow: stencil straddles a kink)" if hollow else ")"))
        ax.set_title(f"{d}: every activation x loss x regularisation x seed")
    if dtypes:
        figure_legend(fig, axes[0][0], ncol=5)
    save(fig, out_dir / "error_by_method.png")

    findings, bullets = {}, []
    s = summ.set_index(["method", "dtype"]) if len(summ) else None

    def get(m, d, col):
        try:
            v = s.loc[(m, d), col]
            return None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)
        except (KeyError, AttributeError):
            return None

    for d in dtypes:
        rev = get("reverse[numpy]", d, "median error")
        cen = get("finite_diff[central]", d, "median error")
        if rev is not None:
            findings[f"reverse_numpy_{d}_median"] = rev
            findings[f"reverse_numpy_{d}_max"] = get("reverse[numpy]", d, "max error")
        if cen is not None:
            findings[f"central_{d}_median"] = cen
        if rev is not None and cen is not None:
            bullets.append(f"{d}: `reverse[numpy]`'s median error is **{fmt(rev)}** (worst **{fmt(findings[f'reverse_numpy_{d}_max'])}**); "
                           f"central differences at the automatic step: **{fmt(cen)}**.")
        cs = get("finite_diff[complex_step]", d, "median error")
        if cs is not None:
            findings[f"complex_step_{d}_median"] = cs
            bullets.append(f"{d}: `finite_diff[complex_step]`'s median error is **{fmt(cs)}** (its formula subtracts "
                           "nothing).")
        fd = summ[(summ["dtype"] == d) & summ["method"].str.startswith("finite_diff")].dropna(subset=["median error"])
        if len(fd):
            worst = fd.loc[fd["median error"].idxmax()]
            findings[f"worst_fd_{d}_median"] = float(worst["median error"])
            bullets.append(f"{d}: the least accurate scheme is `{worst['method']}` (median **{fmt(worst['median error'])}**).")
    if len(summ) and summ["non-finite"].sum():
        bad = summ[summ["non-finite"] > 0]
        findings["nonfinite_results"] = int(bad["non-finite"].sum())
        bullets.append("Non-finite gradients (NaN or inf; error counted as inf): " + ", ".join(
            f"`{r['method']}` ({r['dtype']}) on **{int(r['non-finite'])}** of {int(r['problems'])} problems"
            for _, r in bad.iterrows()) + ".")
    sym = get("symbolic[cse]", "float64", "median error")
    if sym is not None:
        findings["symbolic_float64_median"] = sym
        bullets.append(f"Symbolic (float64, compiled after CSE): median error **{fmt(sym)}**.")
    for d in dtypes:
        c = rows[(rows["method"] == "finite_diff[central]") & (rows["dtype"] == d) & (rows["status"] == "ok")]
        if len(c) and c["near_kink"].astype(bool).any() and (~c["near_kink"].astype(bool)).any():
            k = float(c[c["near_kink"].astype(bool)]["rel_error"].median())
            n = float(c[~c["near_kink"].astype(bool)]["rel_error"].median())
            findings[f"central_{d}_kink_median"], findings[f"central_{d}_nokink_median"] = k, n
            findings[f"central_{d}_kink_problems"] = int(c["near_kink"].astype(bool).sum())
            findings[f"central_{d}_problems"] = int(len(c))
            bullets.append(f"{d}: where the central stencil straddles a kink its median error is **{fmt(k)}**, "
                           f"against **{fmt(n)}** elsewhere ({findings[f'central_{d}_kink_problems']} of "
                           f"{findings[f'central_{d}_problems']} problems).")
    kink_rows = []
    for m in [x for x in methods if x.startswith("finite_diff")]:
        for d in dtypes:
            c = rows[(rows["method"] == m) & (rows["dtype"] == d) & (rows["status"] == "ok")]
            near = c["near_kink"].astype(bool) if len(c) else c
            if len(c) and near.any() and (~near).any():
                kink_rows.append({"method": m, "dtype": d, "straddling a kink": int(near.sum()),
                                  "median error there": float(c[near]["rel_error"].median()),
                                  "median error elsewhere": float(c[~near]["rel_error"].median()),
                                  "ratio": float(c[near]["rel_error"].median() / c[~near]["rel_error"].median())})
    kinks = pd.DataFrame(kink_rows)
    if len(kinks):
        worst = kinks.loc[kinks["ratio"].idxmax()]
        findings["worst_kink_ratio"] = float(worst["ratio"])
        findings["worst_kink_method"], findings["worst_kink_dtype"] = str(worst["method"]), str(worst["dtype"])
        if worst["ratio"] > 1:  # which scheme suffers most is read from the rows, not assumed
            bullets.append(f"Kinks hurt `{findings['worst_kink_method']}` ({findings['worst_kink_dtype']}) most: its "
                           f"median error is **{fmt(findings['worst_kink_ratio'])}** times larger where its stencil "
                           "straddles a kink than elsewhere.")
        else:
            bullets.append("No scheme is less accurate where its stencil straddles a kink (largest ratio of median "
                           f"errors there to elsewhere: **{fmt(findings['worst_kink_ratio'])}**, "
                           f"`{findings['worst_kink_method']}`, {findings['worst_kink_dtype']}).")
    fd_rows = ok_rows[ok_rows["method"].astype(str).str.startswith("finite_diff")] if len(ok_rows) else ok_rows
    if len(fd_rows) and not hollow:
        findings["fd_rows_near_kink"], findings["fd_rows"] = 0, len(fd_rows)
        with_kink = ""
        if "has_kink" in rows:
            problems = rows.drop_duplicates(["activation", "loss", "reg", "seed"])
            findings["problems_with_kink"] = int(problems["has_kink"].fillna(False).astype(bool).sum())
            findings["exact_reference_problems"] = len(problems)
            with_kink = (f", although {findings['problems_with_kink']} of the {len(problems)} problems contain a kink "
                         "(`has_kink`)")
        bullets.append(f"No finite-difference stencil straddled a kink in these rows: kink detection flagged none of "
                       f"the {len(fd_rows)} finite-difference rows (`near_kink` is false in all){with_kink}. These "
                       "rows hold no measurement of the error where a stencil straddles a kink.")
    failed = rows[shown_failures(rows)] if len(rows) else rows
    refs = sorted(set(rows["reference"].dropna())) if "reference" in rows else []
    n_fallback = len(fallback.drop_duplicates(["activation", "loss", "reg", "seed"])) if len(fallback) else 0
    n_problems = len(measured.drop_duplicates(["activation", "loss", "reg", "seed"])) if len(measured) else 0
    findings["problems"], findings["problems_without_exact_reference"] = n_problems, n_fallback
    blocks = [Heading("What the data show"), Bullets(bullets),
              Figure("error_by_method.png", "Error of each method on every problem of the grid (log scale; errors of "
                                            f"exactly 0 drawn at {FLOOR:g})." +
                     (" Hollow markers: a finite-difference stencil straddled a kink." if hollow else "")),
              Table(summ, "Error per method and dtype")]
    if len(kinks):
        blocks.append(Table(kinks, "Finite differences near kinks (relu, leaky relu, hinge, L1): median error "
                                   "where the stencil straddles a kink, and elsewhere"))
    if len(failed):
        msg = failed.groupby(["method", "dtype"])["message"].first().reset_index()
        msg["count"] = failed.groupby(["method", "dtype"]).size().values
        blocks.append(Table(msg, "Methods that refused or failed (first message per method)"))
    bits = measured["reference_bits"].dropna() if "reference_bits" in measured else []
    lo, hi = (int(min(bits)), int(max(bits))) if len(bits) else (0, 0)
    span = f"{lo}" if lo == hi else f"{lo} to {hi}"
    precision = (f" Its certificates needed {span} bits of working precision (each entry's enclosure proven to the "
                 "digits named)." if len(bits) else "")
    blocks.append(Para("Reference: " + "; ".join(f"`{r}`" for r in refs) + "." + precision +
                       " Error: normwise relative, max_i |g_i - r_i| / max_i |r_i|."))
    if n_fallback:
        kinds = fallback.drop_duplicates(["activation", "loss", "reg", "seed"])
        blocks.append(Para(f"{n_fallback} of {n_problems} problems have no high-precision reference (the reference "
                           "module failed on them; the reason is in `results.csv`, column `reference`): they are "
                           "measured against reverse mode in float64, cross-checked by the complex step, and left out "
                           "of the figure and the table above. Those problems: " +
                           ", ".join(f"{r.activation}/{r.loss}/{r.reg}/seed {r.seed}" for r in kinds.itertuples()) + "."))
    if meta.get("skipped"):
        blocks.append(Para("Skipped: " + "; ".join(f"{k}: {v}" for k, v in meta["skipped"].items())))
    return Report(TITLE, QUESTION, blocks, findings)
