"""Speed: time per gradient, setup and per call apart, against the number of parameters, per differentiator.

Grid: MLP (8, w, w, 2), tanh, quadratic loss, batch 16, hidden width w = 2 ... 512 (30 to
268 000 parameters), float64, for symbolic (CSE, compiled), central differences, reverse mode on
numpy, on torch's CPU, and on CUDA with ``--device all|cuda``. Symbolic uses the SymEngine engine
(``symbolic_engine``): with SymPy its setup takes about 40 s already at w = 2. Per cell: setup (``value_and_grad``
once: building/compiling, loading a backend, moving data) timed once; the gradient call and the
forward pass timed by the harness (warm-up, repeats until ``min_time_s``, median and quartiles,
CUDA synchronised). Every timed gradient is checked against reverse mode on numpy in float64.

Forward pass per method: for reverse rows, the same network on the same backend and device (the
tape's namespace with untraced parameters: no records, just the backend's arithmetic); for symbolic
and finite differences, ``objective.value(theta)``, the numpy forward pass their cost is made of.

Threads: cells run in a spawned worker with one BLAS/OpenMP thread (``threads``) and
``torch.set_num_threads(1)``: on a small shared machine, multithreaded kernels made the timings depend
on the load (a 16 x 256 matmul took 100x longer in one run). ``meta.json`` records the setting.

Memory, per cell, after timing: the peak bytes one gradient call allocates above the level before it
(``tracemalloc`` for numpy and plain-Python methods, torch's allocator totals via its profiler plus the
tracemalloc peak for torch backends: ``study/memory.py``) and its minor page faults (``getrusage``, per call over 5 calls, 1 when a call
takes over 0.5 s).

Budgets: a cell whose estimated gradient time (finite differences: evaluations x forward time) or
whose symbolic setup exceeds ``budget_s`` is a ``budget`` row; larger sizes of that method are then
not attempted.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ...errors import MissingDependency
from ..common import fit_loglog, make_method, method_device, mlp_problem, rel_error
from ..figures import figure_legend, method_order, plot_kwargs, save, subplots
from ..report import Bullets, Figure, Heading, Para, Report, Table, fmt, word_list
from ..runner import cell
from ..memory import how_for, minor_faults_per_call, peak_bytes
from ..timing import cuda_sync, measure as time_calls, time_once

SERIAL = True  # timings must not share the CPU with other cells: --jobs does not apply
TITLE = "Speed against network size"
QUESTION = ("How does the time of one gradient grow with the number of parameters for each differentiator, how "
            "much is one-time setup, and how many forward passes does a gradient cost?")


@dataclass(frozen=True)
class Config:
    widths: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128, 256, 512)
    n_in: int = 8
    n_out: int = 2
    batch: int = 16
    activation: str = "tanh"
    loss: str = "quadratic"
    methods: tuple[str, ...] = ("symbolic[cse]", "finite_diff[central]", "reverse[numpy]", "reverse[torch-cpu]")
    symbolic_engine: str = "symengine"  # SymPy needs 40 s of setup already at w = 2 with this batch
    min_time_s: float = 0.2
    budget_s: float = 20.0
    seed: int = 0
    threads: int = 1  # BLAS and torch CPU threads: one, so that timings do not depend on the machine's load
    devices: tuple[str, ...] = ("cpu",)

    def quick(self) -> "Config":
        return replace(self, widths=(2, 4, 16), batch=4, min_time_s=0.01, budget_s=2.0)

    def all_methods(self) -> list[str]:
        out = list(self.methods)
        if "cuda" in self.devices:
            out.append("reverse[torch-cuda]")
        if "cpu" not in self.devices:
            out = [m for m in out if method_device(m) != "cpu" or m == "reverse[numpy]"]
        return out


def validate(config: Config) -> None:
    """The values a run can use (``study/config.py`` calls this before anything is created or measured)."""
    from ...nn import ACTIVATIONS
    from ..common import LOSS_SETUP, method_labels
    from .. import config as check
    check.ints("widths", config.widths, 1)
    check.ints("n_in", config.n_in, 1)
    check.ints("n_out", config.n_out, 1)
    check.ints("batch", config.batch, 1)
    check.names("activation", config.activation, ACTIVATIONS)
    check.names("loss", config.loss, LOSS_SETUP)
    check.names("methods", config.methods, method_labels(), hint=" (--device all or cuda adds reverse[torch-cuda])")
    check.names("symbolic_engine", config.symbolic_engine, ("symengine", "sympy"))
    check.number("min_time_s", config.min_time_s, 0.0, open_low=True)
    check.number("budget_s", config.budget_s, 0.0, open_low=True)
    check.ints("seed", config.seed, 0)
    check.ints("threads", config.threads, 1)


def worker_env(config: Config) -> dict:
    """Cells run in a spawned worker whose BLAS and OpenMP pools have ``config.threads`` threads."""
    n = str(config.threads)
    return {"OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n}


def cells(config: Config):
    return [cell(method=m, width=w) for m in config.all_methods() for w in config.widths]


def prune(config: Config, params: dict, done: dict) -> str | None:
    for rows in done.values():
        for r in rows:
            if (r.get("method") == params["method"] and r.get("status") == "budget"
                    and r.get("width", 0) < params["width"]):
                return f"not attempted: width {r['width']} already exceeded the {config.budget_s:g} s budget"
    return None


def _forward(method: str, obj, theta):
    """A zero-argument forward pass on the method's own backend (see the module docstring)."""
    if not method.startswith("reverse"):
        return lambda: obj.value(theta)
    from ...differentiators.reverse.tape import Tape, TapeNamespace
    d = make_method(method)
    B = d.load()
    inputs, targets = (B.asarray(a) for a in obj.data(np.float64))
    flat = B.asarray(theta)
    params = {name: B.reshape(flat[a:b], shape) for name, (a, b, shape) in obj.model.layout.items()}

    def fwd():
        return obj.evaluate(TapeNamespace(Tape(B)), params, inputs, targets)
    return fwd


def measure(config: Config, params: dict) -> list[dict]:
    method, width = params["method"], params["width"]
    p = mlp_problem(n_in=config.n_in, hidden=(width, width), activation=config.activation, loss=config.loss,
                    batch=config.batch, seed=config.seed, n_out=config.n_out)
    obj, theta = p.objective, p.theta
    device = method_device(method)
    if "torch" in method:
        try:
            import torch
        except ImportError as e:
            raise MissingDependency(method, "torch") from e
        torch.set_num_threads(config.threads)
    sync = cuda_sync(device)
    row = {"n_params": int(theta.size), "device": device, "dtype": "float64",
           "engine": config.symbolic_engine if method.startswith("symbolic") else None}
    fwd = _forward(method, obj, theta)
    t_fwd = time_calls(fwd, min_total_s=config.min_time_s, sync=sync)
    row.update(t_fwd.as_row("forward"))
    extra = {}
    if method.startswith("finite_diff"):
        extra = {"kink_check": False, "warn": False}
        n_evals = 2 * theta.size + 1
        estimate = n_evals * t_fwd.median
        row["estimated_grad_s"] = estimate
        if estimate > config.budget_s:
            return [{**row, "status": "budget",
                     "message": f"estimated {estimate:.3g} s per gradient ({n_evals} forward passes) exceeds the "
                                f"{config.budget_s:g} s budget"}]
    if method.startswith("symbolic"):
        from ...differentiators import differentiator_class
        fields = set(getattr(differentiator_class("symbolic"), "__dataclass_fields__", {}))
        if "time_budget_s" in fields:
            extra["time_budget_s"] = config.budget_s
        if "metrics" in fields:
            extra["metrics"] = False  # setup = build + differentiate + CSE + compile, no measuring
        if "engine" in fields:
            extra["engine"] = config.symbolic_engine
    d = make_method(method, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vg, setup_s = time_once(lambda: d.value_and_grad(obj), sync=sync)
        row["setup_s"] = setup_s
        if method.startswith("symbolic") and setup_s > config.budget_s:
            return [{**row, "status": "budget", "message": f"setup took {setup_s:.3g} s, over the "
                                                           f"{config.budget_s:g} s budget"}]
        res = vg(theta)
        t = time_calls(lambda: vg(theta), min_total_s=config.min_time_s, max_total_s=config.budget_s, sync=sync)
    row.update(t.as_row("grad"))
    row["grad_over_forward"] = t.median / t_fwd.median
    # memory next to time, after timing (the measurement slows the call down): see study/memory.py
    row["memory_method"] = how_for(method)
    row["grad_peak_bytes"] = peak_bytes(lambda: vg(theta), row["memory_method"])
    row["grad_minor_faults"] = minor_faults_per_call(lambda: vg(theta), calls=1 if t.median > 0.5 else 5)
    ref = make_method("reverse[numpy]").value_and_grad(obj)(theta)
    row["rel_error_vs_reverse_numpy"] = rel_error(res.grad, ref.grad)
    for k in ("n_evals", "tape_records", "compile_s", "build_s", "diff_s", "cse_s"):
        if k in res.stats and np.isscalar(res.stats[k]):
            row[k] = res.stats[k]
    return [row]


# ----- report -----
def slope_sentence(slope: float, sizes: int, fitted: int) -> str:
    """What a fitted log-log slope says, worded for how many sizes it rests on."""
    if sizes < 2 or slope is None or not np.isfinite(slope):
        return f"no growth rate ({sizes} size{'s' if sizes != 1 else ''} measured)"
    over = (f"fitted over the upper {fitted} of its {sizes} sizes" if fitted < sizes else
            "a line through its 2 sizes, not a fit" if sizes == 2 else
            f"fitted over all {sizes} of its sizes, too few to drop the small ones")
    if slope <= 0:
        return f"time does not grow with n over the measured sizes (log-log slope **{fmt(slope)}**, {over})"
    return f"time grows as n^**{fmt(slope)}** ({over})"


def slope_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per method: log-log slope of gradient time against parameters over the upper half of its sizes
    (small sizes measure fixed overhead, not growth; with fewer than 4 sizes, over all of them: ``fitted sizes``
    says how many), and its grad/forward ratio at its largest size."""
    ok = table[table["status"] == "ok"]
    rows = []
    for m in method_order(ok["method"].unique()):
        g = ok[ok["method"] == m].sort_values("n_params")
        if g.empty:
            continue
        upper = g.iloc[len(g) // 2:] if len(g) >= 4 else g
        last = g.iloc[-1]
        rows.append({"method": m, "sizes": len(g), "fitted sizes": len(upper),
                     "slope (fitted)": fit_loglog(upper["n_params"], upper["grad_s"]),
                     "slope (all)": fit_loglog(g["n_params"], g["grad_s"]), "largest n": int(last["n_params"]),
                     "grad s there": float(last["grad_s"]), "setup s there": float(last.get("setup_s", np.nan)),
                     "grad / forward there": float(last["grad_over_forward"]),
                     "grad / forward (median)": float(g["grad_over_forward"].median())})
    return pd.DataFrame(rows)


MEMORY_COLUMNS = ("grad_peak_bytes", "grad_minor_faults")
NOT_ATTEMPTED = "not attempted"  # how ``prune``'s message begins


def memory_sentence(ok: pd.DataFrame, findings: dict) -> str:
    """What the rows say about memory: how it was measured when they carry it, and plainly that they do not when
    they were measured before memory was recorded (no column, no figure then)."""
    have = pd.Series(False, index=ok.index)
    for c in MEMORY_COLUMNS:
        if c in ok:
            have |= ok[c].notna()
    n, k = len(ok), int(have.sum())
    findings["rows_with_memory"] = k
    how = ("the peak bytes one gradient call allocates above the level before it (`tracemalloc` for numpy and "
           "plain-Python methods; torch's allocator totals via its profiler, plus tracemalloc's for numpy memory "
           "behind CPU tensors, for torch backends) and its minor page faults per call (`getrusage`)")
    if k == 0:
        return (f"Memory: none of these {n} measured rows records it (no `grad_peak_bytes` or `grad_minor_faults`: "
                "they were measured before the study recorded memory), so this report has no memory column or "
                "figure; a run of the study into an empty folder measures it.")
    if k < n:
        return (f"Memory, measured after timing, for {k} of the {n} measured rows (the other {n - k} were measured "
                f"before the study recorded memory and are blank): {how}.")
    return f"Memory, measured after timing: {how}."


def ratio_caption(ok: pd.DataFrame, methods: list, findings: dict) -> str:
    """The caption of the gradient/forward figure: what is plotted, and per method the range of the plotted
    ratios with their values at the smallest and the largest size (numbers from the rows, no trend assumed)."""
    parts = []
    for m in methods:
        g = ok[ok["method"] == m].dropna(subset=["grad_over_forward"]).sort_values("n_params")
        if not len(g):
            continue
        r = g["grad_over_forward"].astype(float)
        findings[f"{m}_grad_over_forward_min"], findings[f"{m}_grad_over_forward_max"] = float(r.min()), float(r.max())
        findings[f"{m}_grad_over_forward_smallest_n"] = float(r.iloc[0])
        findings[f"{m}_smallest_n"] = int(g["n_params"].iloc[0])
        if len(g) == 1:
            parts.append(f"`{m}` {fmt(r.iloc[0])} (one size)")
        else:
            parts.append(f"`{m}` {fmt(r.min())} to {fmt(r.max())} "
                         f"({fmt(r.iloc[0])} at n = {int(g['n_params'].iloc[0])}, "
                         f"{fmt(r.iloc[-1])} at n = {int(g['n_params'].iloc[-1])})")
    text = ("Median gradient time divided by median forward time on the same backend, per method, against the number "
            "of parameters (log-log).")
    return text + (" Over the measured sizes: " + "; ".join(parts) + "." if parts else "")


def _widths(ws) -> str:
    ws = [int(w) for w in ws]
    return f"width{'s' if len(ws) > 1 else ''} {word_list(ws)}"


def budget_sentences(table: pd.DataFrame, budget_s, findings: dict) -> list[str]:
    """One sentence per method with ``budget`` rows, telling apart what the rows tell apart: a cell that ran and
    went over the budget (measured), one whose estimated time was over it and that was therefore not run, and
    larger sizes not attempted after either."""
    budget = table[table["status"] == "budget"]
    b = f"{fmt(float(budget_s))} s" if budget_s is not None else "time"
    out = []
    for m, g in budget.groupby("method"):
        g = g.sort_values("width")
        message = g["message"].fillna("").astype(str) if "message" in g else pd.Series("", index=g.index)
        skipped = message.str.startswith(NOT_ATTEMPTED)
        estimate = (g["estimated_grad_s"].notna() if "estimated_grad_s" in g else pd.Series(False, index=g.index)) \
            & ~skipped
        ran = ~skipped & ~estimate
        findings[f"{m}_budget_width"] = int(g["width"].min())
        parts = []
        if estimate.any():
            e = g[estimate]
            findings[f"{m}_estimated_over_budget_widths"] = [int(w) for w in e["width"]]
            findings[f"{m}_estimated_grad_s"] = float(e["estimated_grad_s"].iloc[0])
            at = f" at width {int(e['width'].iloc[0])}" if len(e) > 1 else ""
            parts.append(f"was estimated to exceed the {b} budget at {_widths(e['width'])} "
                         f"(**{fmt(findings[f'{m}_estimated_grad_s'])} s** per gradient{at}, from its measured "
                         "forward time) and was not run there")
        if ran.any():
            r = g[ran]
            findings[f"{m}_measured_over_budget_widths"] = [int(w) for w in r["width"]]
            why = message[ran].iloc[0].split(";")[0].strip()
            parts.append(f"ran and went over the {b} budget at {_widths(r['width'])}"
                         + (f' ("{why}")' if why else ""))
        if skipped.any():
            findings[f"{m}_not_attempted_widths"] = [int(w) for w in g.loc[skipped, "width"]]
            parts.append(f"{_widths(g.loc[skipped, 'width'])} {'was' if skipped.sum() == 1 else 'were'} "
                         "not attempted after that")
        if parts:
            out.append(f"`{m}` " + "; ".join(parts) + ".")
    return out


def _time_ratio(ok: pd.DataFrame, method: str, base: str, *, largest: bool) -> tuple[int, float] | None:
    """(n, grad_s of ``method`` / grad_s of ``base``) at the largest (or smallest) n both measured, or None."""
    pair = ok[ok["method"].isin([method, base])].pivot_table(index="n_params", columns="method",
                                                                values="grad_s").dropna()
    if not len(pair) or pair.shape[1] != 2:
        return None
    n = int(pair.index.max() if largest else pair.index.min())
    return n, float(pair.loc[n, method] / pair.loc[n, base])


def _loglog_per_method(ok: pd.DataFrame, methods: list, column: str, ylabel: str, title: str, path) -> None:
    """One line per method: ``column`` against the number of parameters, log-log, saved to ``path``."""
    fig, axes = subplots(width=5.8)
    ax = axes[0][0]
    for m in methods:
        g = ok[ok["method"] == m].dropna(subset=[column]).sort_values("n_params")
        if len(g):
            ax.plot(g["n_params"], g[column], label=m, **plot_kwargs(m))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("number of parameters")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    save(fig, path)


def shown_failures(table: pd.DataFrame) -> pd.Series:
    """The non-ok rows this report tells (budget sentences; "Methods that failed" with the message): budget and
    error rows of a method; ``report.build`` lists the others with their messages."""
    return table["status"].isin(("budget", "error")) & table["method"].notna()


def report(table: pd.DataFrame, meta: dict, out_dir) -> Report:
    ok = table[table["status"] == "ok"]
    methods = method_order(table["method"].unique())
    fig, axes = subplots(1, 2, width=5.4, height=4.2)
    ax, ax2 = axes[0]
    for m in methods:
        g = ok[ok["method"] == m].sort_values("n_params")
        if g.empty:
            continue
        ax.errorbar(g["n_params"], g["grad_s"], yerr=[g["grad_s"] - g["grad_q1_s"], g["grad_q3_s"] - g["grad_s"]],
                    label=m, capsize=2, **plot_kwargs(m))
        if "setup_s" in g:
            ax2.plot(g["n_params"], g["setup_s"], label=m, **plot_kwargs(m))
    for a, title, ylabel in ((ax, "time per gradient call (median, IQR bars)", "seconds per gradient"),
                             (ax2, "one-time setup (value_and_grad)", "setup time (s)")):
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("number of parameters")
        a.set_ylabel(ylabel)
        a.set_title(title)
    figure_legend(fig, ax, ncol=4)
    save(fig, out_dir / "time_vs_params.png")

    _loglog_per_method(ok, methods, "grad_over_forward", "gradient time / forward time (ratio)",
                       "How many forward passes is one gradient?", out_dir / "grad_over_forward.png")
    memory = "grad_peak_bytes" in ok and ok["grad_peak_bytes"].notna().any()
    if memory:
        _loglog_per_method(ok, methods, "grad_peak_bytes", "peak bytes of one gradient call", "Memory per gradient",
                           out_dir / "memory_vs_params.png")

    slopes = slope_table(table)
    findings, bullets = {}, []
    for _, r in slopes.iterrows():
        key = r["method"]
        findings[f"{key}_slope"] = r["slope (fitted)"]
        findings[f"{key}_sizes"], findings[f"{key}_fitted_sizes"] = int(r["sizes"]), int(r["fitted sizes"])
        findings[f"{key}_ratio_largest"] = r["grad / forward there"]
        findings[f"{key}_largest_n"] = r["largest n"]
        findings[f"{key}_grad_s_largest"] = r["grad s there"]
        bullets.append(f"`{key}`: {slope_sentence(findings[f'{key}_slope'], findings[f'{key}_sizes'], findings[f'{key}_fitted_sizes'])}; "
                       f"at n = {findings[f'{key}_largest_n']} one gradient takes "
                       f"**{fmt(findings[f'{key}_grad_s_largest'])} s**, the time of "
                       f"**{fmt(findings[f'{key}_ratio_largest'])}** forward passes.")
    fd = _time_ratio(ok, "finite_diff[central]", "reverse[numpy]", largest=True)
    if fd:
        n, sp = fd
        findings["fd_over_reverse_at_largest_common_n"], findings["largest_common_n"] = sp, n
        bullets.append(f"At n = {n}, central differences take **{fmt(sp)}** times as long as reverse mode on numpy.")
    sym = _time_ratio(ok, "symbolic[cse]", "reverse[numpy]", largest=False)
    if sym:
        n0, r0 = sym
        findings["symbolic_over_reverse_smallest_n"], findings["smallest_n"] = r0, n0
        bullets.append(f"On the smallest network (n = {n0}) the compiled symbolic gradient takes **{fmt(r0)}** times "
                       "the time of reverse mode on numpy per call (setup apart).")
    for other in ("reverse[torch-cpu]", "reverse[torch-cuda]"):
        pair = _time_ratio(ok, other, "reverse[numpy]", largest=True)
        if pair:
            n, r = pair
            findings[f"{other}_over_numpy_at_largest_n"] = r
            bullets.append(f"At n = {n}, `{other}` takes **{fmt(r)}** times the time of `reverse[numpy]` per gradient "
                           "(the same tape and rules; only the array library differs).")
    bullets += budget_sentences(table, meta.get("config", {}).get("budget_s"), findings)
    cols = [c for c in ("method", "width", "n_params", "device", "setup_s", "grad_s", "grad_q1_s", "grad_q3_s",
                        "grad_repeats", "forward_s", "grad_over_forward", "grad_peak_bytes", "grad_minor_faults",
                        "rel_error_vs_reverse_numpy", "status")
            if c in table]
    cfg = meta.get("config", {})
    conditions = Para(
        f"Conditions: every cell runs in a spawned worker process with {cfg.get('threads', '?')} BLAS/torch thread(s), "
        "the system's default memory allocator, times from the wall clock (`time.perf_counter`; median and "
        "quartiles over repeats after a warm-up call), setup timed once apart. " + memory_sentence(ok, findings))
    blocks = [Heading("What the data show"), Bullets(bullets),
              Figure("time_vs_params.png", "Left: median seconds per gradient call against the number of parameters "
                                           "(log-log; bars: interquartile range). Right: one-time setup."),
              Figure("grad_over_forward.png", ratio_caption(ok, methods, findings)),
              *([Figure("memory_vs_params.png", "Peak bytes allocated during one gradient call against the number "
                                                 "of parameters (log-log), per method.")] if memory else []),
              Table(slopes, "Fitted slopes and ratios"),
              Table(table[cols].sort_values(["method", "n_params"]), "All measurements"),
              conditions,
              Para(f"Machine: {meta.get('cpu', '?')}; GPU: {meta.get('gpu') or 'none'}. Absolute times hold for this "
                   "machine only; slopes and ratios travel better.")]
    failed = table[(table["status"] == "error") & table["method"].notna()]
    if len(failed) and "message" in failed:
        msg = failed.groupby("method")["message"].first().reset_index()
        msg["count"] = failed.groupby("method").size().values
        blocks.append(Table(msg, "Methods that failed (first message per method)"))
    if meta.get("skipped"):
        blocks.append(Para("Skipped: " + "; ".join(f"{k}: {v}" for k, v in meta["skipped"].items())))
    return Report(TITLE, QUESTION, blocks, findings)
