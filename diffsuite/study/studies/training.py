"""Training: does the choice of differentiator change minibatch SGD on real data?

The same MLP, trained from the same initialisation on the same minibatches in the same order, with
each differentiator: reverse mode (numpy, torch, float32), symbolic (where its setup fits the budget),
central and forward differences (float64, and central in float32). Two problems:

- ``digits``: scikit-learn's 8x8 digits (1347 train / 450 test), MLP (64, 16, 10), cross-entropy,
  batch 32, SGD with momentum 0.9. Finite differences cost 2n + 1 forward passes per step for n = 1210
  parameters (central; forward too, with its automatic step's check point at h/2: the committed report's forward
  rows predate that check and cost n + 1): they train for ``fd_steps`` steps only (say so in the report), without
  L1/L2; symbolic is not run (its setup does not fit the budget at this size).
- ``moons``: two interleaved half circles (300 train / 100 test), MLP (2, 8, 1) with a sigmoid output,
  binary cross-entropy, batch 16 (every batch the same size: the symbolic kernel takes the data as
  arguments of a fixed shape). Every method trains for the whole run.

Each cell trains one (problem, activation, regulariser, method, dtype) and, in the same process, the
reference run (reverse mode, numpy, float64). Rows: one per evaluation (every ``eval_every`` steps):
train/test loss and accuracy, wall time of the gradient + update steps so far, the distance of theta
from the reference run's theta at the same step (``||theta - theta_ref|| / ||theta_ref||``), the
first step's gradient error against reverse mode's (normwise, ``max|g - r| / max|r|``), and the
weights' sparsity (fraction of weights with |w| below 1e-3 and 1e-2; biases are never penalised).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import pandas as pd

from ..common import make_method, rel_error
from ..figures import figure_legend, method_order, plot_kwargs, save, subplots
from ..report import Bullets, Figure, Heading, Para, Report, Table, fmt, word_list
from ..runner import cell

TITLE = "Training with each differentiator"
QUESTION = ("Does the choice of differentiator change minibatch training (loss, test accuracy, trajectory, time "
            "to a target accuracy), and how do L1 and L2 change the weights?")
SERIAL = True  # wall times: one cell at a time

#: problem -> data set, layers, output activation, loss, batch, learning rate
PROBLEMS = {
    "digits": dict(data="digits", layers=(64, 16, 10), out="identity", loss="cross_entropy", batch=32, lr=0.1),
    "moons": dict(data="moons", layers=(2, 8, 1), out="sigmoid", loss="binary_cross_entropy", batch=16, lr=0.5),
}
REFERENCE = ("reverse[numpy]", "float64")
SMALL = (1e-3, 1e-2)  # |w| below these counts as near zero


@dataclass(frozen=True)
class Config:
    problems: tuple[str, ...] = ("digits", "moons")
    activations: tuple[str, ...] = ("tanh", "relu")
    regs: tuple[str, ...] = ("none", "l1", "l2")
    #: (method label, dtype)
    methods: tuple[tuple[str, str], ...] = (
        ("reverse[numpy]", "float64"), ("reverse[torch-cpu]", "float64"), ("reverse[numpy]", "float32"),
        ("symbolic[cse]", "float64"), ("finite_diff[central]", "float64"), ("finite_diff[forward]", "float64"),
        ("finite_diff[central]", "float32"))
    epochs: int = 6
    fd_steps: int = 60          # digits: finite differences train this many steps only
    eval_every: int = 5
    l1: float = 2e-3
    l2: float = 2e-3
    momentum: float = 0.9
    target_acc: float = 0.9
    seed: int = 0
    threads: int = 1            # BLAS/OpenMP/torch threads of the worker (wall times on a shared machine)
    devices: tuple[str, ...] = ("cpu",)

    def quick(self) -> "Config":
        return replace(self, activations=("tanh",), regs=("none", "l1"), epochs=3, fd_steps=4, eval_every=10,
                       methods=(("reverse[numpy]", "float64"), ("reverse[numpy]", "float32"),
                                ("finite_diff[central]", "float64")))


def validate(config: Config) -> None:
    """The values a run can use (``study/config.py`` calls this before anything is created or measured)."""
    from ...nn import ACTIVATIONS
    from ..common import DTYPES, method_labels
    from .. import config as check
    check.names("problems", config.problems, PROBLEMS)
    check.names("activations", config.activations, ACTIVATIONS)
    check.names("regs", config.regs, ("none", "l1", "l2"))
    if not config.methods:
        raise ValueError("methods is empty: it needs at least one [method, dtype] pair, e.g. [\"reverse[numpy]\", "
                         "\"float64\"]")
    check.distinct("methods", config.methods)
    for i, (method, dtype) in enumerate(config.methods):
        check.names(f"methods[{i}][0] (method)", method, method_labels(("cpu", "cuda")))
        check.names(f"methods[{i}][1] (dtype)", dtype, DTYPES if not method.startswith("symbolic") else ("float64",))
    for key in ("epochs", "fd_steps", "eval_every", "threads"):
        check.ints(key, getattr(config, key), 1)
    check.number("l1", config.l1, 0.0)
    check.number("l2", config.l2, 0.0)
    check.number("momentum", config.momentum, 0.0, 1.0, open_high=True)
    check.number("target_acc", config.target_acc, 0.0, 1.0, open_low=True)
    check.ints("seed", config.seed, 0)


def worker_env(config: Config) -> dict:
    """Cells run in a spawned worker whose BLAS, OpenMP and torch pools have ``config.threads`` threads."""
    n = str(config.threads)
    return {"OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n}


def _runs(config: Config, problem: str, reg: str, method: str) -> bool:
    if problem == "digits":  # symbolic does not fit; finite differences only without L1/L2 (cost)
        return not method.startswith("symbolic") and (reg == "none" or not method.startswith("finite_diff"))
    return True


def cells(config: Config):
    return [cell(problem=p, activation=a, reg=r, method=m, dtype=d)
            for p in config.problems for a in config.activations for r in config.regs
            for m, d in config.methods if _runs(config, p, r, m)]


# ----- measuring -----
@lru_cache(maxsize=None)
def dataset(problem: str):
    from ...data import load
    return load(PROBLEMS[problem]["data"], seed=0)


class ZeroedUnderflow:
    """Finite differences as a plain implementation behaves: where theta_i +- h leaves f unchanged in the
    evaluation dtype (float32: a change below the rounding of f), the quotient is 0. diffsuite refuses such
    a step (``StepUnderflowError``); with ``zero_step="warn"`` those entries are NaN, taken here as 0 and
    counted in ``zeroed`` (entries, summed over all steps)."""

    def __init__(self, differentiator):
        self.inner, self.name, self.zeroed = differentiator, differentiator.name, 0

    def value_and_grad(self, objective):
        from ...differentiators import Gradient
        from ...namespace import NUMPY
        vg = self.inner.value_and_grad(objective)
        index = {name: i for i, name in enumerate(objective.param_names())}
        real = np.float32 if self.inner.dtype == "float32" else np.float64

        def value_and_grad_fn(theta, batch=None):
            # f(theta) first, as a plain implementation computes it: a non-finite loss (divergence, float32
            # overflow) is a non-finite gradient, which stops training, rather than a stencil of NaNs
            x, y = objective.data(real) if batch is None else objective.batch_data(batch, real)
            value = float(objective.evaluate(NUMPY, objective.model.unpack(theta.astype(real)), x, y))
            if not np.isfinite(value):
                return Gradient(value, np.full(theta.size, np.nan), {})
            res = vg(theta, batch=batch)
            zeroed = [index[name] for key in ("zero_step_params", "zero_quotient_params")
                      for name in res.stats.get(key, ())]
            if zeroed:
                self.zeroed += len(zeroed)
                res.grad[zeroed] = 0.0
            return res

        return value_and_grad_fn


def _differentiator(method: str, dtype: str):
    if method.startswith("symbolic"):  # data as kernel arguments (batch=), SymEngine: setup in seconds
        return make_method(method, engine="symengine", symbolic_data=True, metrics=False)
    if method.startswith("finite_diff"):
        return ZeroedUnderflow(make_method(method, dtype=dtype, batch=64, kink_check=False, warn=False,
                                           zero_step="warn"))
    return make_method(method, dtype=dtype)


def _max_steps(config: Config, problem: str, method: str) -> int | None:
    return config.fd_steps if problem == "digits" and method.startswith("finite_diff") else None


def _train(config: Config, problem: str, activation: str, reg: str, method: str, dtype: str,
           max_steps: int | None):
    from ...nn import MLP
    from ...optim import SGD
    from ...training import train
    spec = PROBLEMS[problem]
    model = MLP(spec["layers"], activation, output_activation=spec["out"])
    diff = _differentiator(method, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = train(diff, model, spec["loss"], dataset(problem),
                    SGD(lr=spec["lr"], momentum=config.momentum), epochs=config.epochs, batch_size=spec["batch"],
                    seed=config.seed, l1=config.l1 if reg == "l1" else 0.0, l2=config.l2 if reg == "l2" else 0.0,
                    eval_every=config.eval_every, max_steps=max_steps, drop_last=True, on_nonfinite="stop")
    run.zeroed = getattr(diff, "zeroed", 0)
    return run


@lru_cache(maxsize=8)
def reference_run(config: Config, problem: str, activation: str, reg: str, max_steps: int | None):
    return _train(config, problem, activation, reg, *REFERENCE, max_steps)


def first_gradient_error(config: Config, problem: str, activation: str, reg: str, method: str, dtype: str) -> float:
    """max|g - r| / max|r| of the first minibatch's gradient at the initial theta, r from reverse mode."""
    from ...nn import MLP
    from ...objective import Objective
    from ...training import target_kind
    spec, data = PROBLEMS[problem], dataset(problem)
    model = MLP(spec["layers"], activation, output_activation=spec["out"])
    X, y = next(data.batches(spec["batch"], np.random.default_rng(config.seed),
                             target_kind(spec["loss"], model.layers[-1]), drop_last=True))
    obj = Objective(model, spec["loss"], X, y, l1=config.l1 if reg == "l1" else 0.0,
                    l2=config.l2 if reg == "l2" else 0.0)
    theta = model.init(config.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = _differentiator(method, dtype).value_and_grad(obj)(theta).grad
    return rel_error(g, make_method(REFERENCE[0]).value_and_grad(obj)(theta).grad)


def weight_stats(problem: str, activation: str, theta: np.ndarray) -> dict:
    from ...nn import MLP
    spec = PROBLEMS[problem]
    blocks = MLP(spec["layers"], activation, output_activation=spec["out"]).unpack(theta)
    w = np.concatenate([v.ravel() for k, v in blocks.items() if k.startswith("W")])
    return {"near_zero_1e-3": float(np.mean(np.abs(w) < SMALL[0])), "near_zero_1e-2": float(np.mean(np.abs(w) < SMALL[1])),
            "weight_l1": float(np.abs(w).sum()), "weight_l2": float(np.sqrt((w * w).sum()))}


def measure(config: Config, params: dict) -> list[dict]:
    p, a, r, m, d = (params[k] for k in ("problem", "activation", "reg", "method", "dtype"))
    max_steps = _max_steps(config, p, m)
    ref = reference_run(config, p, a, r, max_steps)
    run = ref if (m, d) == REFERENCE else _train(config, p, a, r, m, d, max_steps)
    ref_theta = dict(zip(ref.history["step"], ref.thetas))
    first = first_gradient_error(config, p, a, r, m, d)
    rows = []
    for row, theta in zip(run.history.to_dict("records"), run.thetas):
        t_ref = ref_theta.get(row["step"])
        dist = float(np.linalg.norm(theta - t_ref) / np.linalg.norm(t_ref)) if t_ref is not None else float("nan")
        rows.append({**row, "step": int(row["step"]), "dist_to_reverse": dist, "first_grad_error": first,
                     "setup_s": run.setup_s, "n_params": int(theta.size), "max_steps": max_steps or 0,
                     "underflow_zeroed": run.zeroed, "diverged_at": run.diverged_at or 0,
                     **weight_stats(p, a, theta)})
    return rows


# ----- report -----
def label(method: str, dtype: str) -> str:
    return method if dtype == "float64" else f"{method},float32"


def _style(lab: str) -> dict:
    return plot_kwargs(lab.split(",")[0], hollow="float32" in lab, markersize=3.5,
                       **({"linestyle": "--"} if "float32" in lab else {}))


def method_notes(table: pd.DataFrame, cfg: dict) -> str:
    """What the rows' finite-difference and symbolic runs are, said only of the runs the rows hold."""
    ran = table[table["status"] == "ok"] if "status" in table else table
    fd = ran[ran["method"].astype(str).str.startswith("finite_diff")]
    notes = []
    if (fd["dtype"] == "float32").any():
        notes.append("Finite differences in float32: where f(theta_i +- h) rounds to f(theta) although f changes, "
                     "the quotient is taken as 0 (what a plain implementation returns; diffsuite itself refuses "
                     "such a step with StepUnderflowError); the table counts those entries.")
    fd_digits = fd[fd["problem"] == "digits"]
    if len(fd_digits):
        regs = sorted(set(fd_digits["reg"].astype(str)))
        notes.append(f"On digits, finite differences train for {cfg.get('fd_steps')} steps only (central "
                     f"differences need 2n + 1 = {2 * 1210 + 1} forward passes per step for the n = 1210 "
                     "parameters)" + (" and without L1/L2." if regs == ["none"] else "."))
    sym = ran[ran["method"].astype(str).str.startswith("symbolic")]
    if len(sym):
        where = sorted(set(sym["problem"].astype(str)))
        notes.append("Symbolic runs on " + ", ".join(where) + (" only (its setup on the digits net does not fit a "
                                                              "minute)." if "digits" not in where else "."))
    return " ".join(notes)


def summary_table(table: pd.DataFrame, target: float) -> pd.DataFrame:
    ok = table[table["status"] == "ok"].copy()
    ok["label"] = [label(m, d) for m, d in zip(ok["method"], ok["dtype"])]
    rows = []
    for (p, a, r, lab), g in ok.groupby(["problem", "activation", "reg", "label"], sort=False):
        g = g.sort_values("step")
        last = g.iloc[-1]
        hit = g[g["test_acc"] >= target]
        rows.append({"problem": p, "activation": a, "reg": r, "method": lab, "steps": int(last["step"]),
                     "final data loss": float(last["train_loss"]), "test acc": float(last["test_acc"]),
                     f"s to {target:g}": float(hit["wall_s"].iloc[0]) if len(hit) else None,
                     f"steps to {target:g}": int(hit["step"].iloc[0]) if len(hit) else None,
                     "train s": float(last["wall_s"]), "setup s": float(last["setup_s"]),
                     "first-step grad error": float(last["first_grad_error"]),
                     "final distance": float(last["dist_to_reverse"]),
                     "near-zero W (<1e-3)": float(last["near_zero_1e-3"]),
                     "zeroed FD quotients": int(last.get("underflow_zeroed", 0) or 0),
                     "diverged at step": int(last.get("diverged_at", 0) or 0) or None})
    return pd.DataFrame(rows)


def _curves(table, out_dir, x: str, y: str, name: str, xlabel: str, ylabel: str, logx=False, logy=False,
            reg="none", skip_reference=False) -> None:
    ok = table[(table["status"] == "ok") & (table["reg"] == reg)]
    if skip_reference:
        ok = ok[~((ok["method"] == REFERENCE[0]) & (ok["dtype"] == REFERENCE[1]))]
    problems = [p for p in PROBLEMS if p in set(ok["problem"])]
    acts = list(dict.fromkeys(ok["activation"]))
    fig, axes = subplots(len(problems), len(acts), width=5.0, height=3.6)
    labels = method_order(set(ok["method"]))
    for i, p in enumerate(problems):
        for j, a in enumerate(acts):
            ax = axes[i][j]
            sub = ok[(ok["problem"] == p) & (ok["activation"] == a)]
            for m in labels:
                for dt in ("float64", "float32"):
                    g = sub[(sub["method"] == m) & (sub["dtype"] == dt)].sort_values("step")
                    if g.empty:
                        continue
                    yv = g[y].clip(lower=1e-18) if logy else g[y]
                    xv = g[x].clip(lower=1e-5) if logx else g[x]
                    ax.plot(xv, yv, label=label(m, dt), **_style(label(m, dt)))
            ax.set_xscale("log" if logx else "linear")
            ax.set_yscale("log" if logy else "linear")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_title(f"{p}, {a}, reg={reg}", fontsize=8.5)
    figure_legend(fig, ncol=4)  # every panel's methods, below the panels (never over ticks or axis labels)
    save(fig, out_dir / name)


def _reference_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table[(table["status"] == "ok") & (table["method"] == REFERENCE[0]) & (table["dtype"] == REFERENCE[1])]


def sparsity_caption(table: pd.DataFrame, cfg: dict) -> str:
    """The sparsity figure's caption, naming the regularisers its curves show (those of the reference's rows)."""
    drawn = set(_reference_rows(table)["reg"])
    names = {"none": "no regulariser", "l1": f"L1 ({cfg.get('l1')})", "l2": f"L2 ({cfg.get('l2')})"}
    shown = [names[r] for r in names if r in drawn]
    which = word_list(shown) or "no run"
    return ("Fraction of weights (biases excluded) with |w| below 1e-2 (solid) and 1e-3 (dotted), reverse mode, "
            f"for {which}.")


def _weights_figure(table, out_dir) -> None:
    ok = _reference_rows(table)
    problems = [p for p in PROBLEMS if p in set(ok["problem"])]
    acts = list(dict.fromkeys(ok["activation"]))
    fig, axes = subplots(len(problems), len(acts), width=5.0, height=3.6)
    colours = {"none": "#555555", "l1": "#d7191c", "l2": "#2c7bb6"}
    for i, p in enumerate(problems):
        for j, a in enumerate(acts):
            ax = axes[i][j]
            for r in ("none", "l1", "l2"):
                g = ok[(ok["problem"] == p) & (ok["activation"] == a) & (ok["reg"] == r)].sort_values("step")
                if len(g):
                    ax.plot(g["step"], g["near_zero_1e-2"], color=colours[r], label=f"{r}: |w| < 1e-2")
                    ax.plot(g["step"], g["near_zero_1e-3"], color=colours[r], linestyle=":", label=f"{r}: |w| < 1e-3")
            ax.set_xlabel("step")
            ax.set_ylabel("fraction of weights near zero")
            ax.set_title(f"{p}, {a}, reverse[numpy]", fontsize=8.5)
    figure_legend(fig, ncol=3)
    save(fig, out_dir / "sparsity.png")


def report(table: pd.DataFrame, meta: dict, out_dir) -> Report:
    cfg = meta.get("config", {})
    target = cfg.get("target_acc", 0.9)
    summary = summary_table(table, target)
    # the regularisers of the runs that trained (a failure row without cell parameters has none: NaN, not text)
    regs = [str(r) for r in dict.fromkeys(table.loc[table["status"] == "ok", "reg"].dropna())]
    _curves(table, out_dir, "step", "train_loss", "loss_vs_step.png", "step", "training loss (full train split)",
            logy=True)
    _curves(table, out_dir, "wall_s", "test_acc", "accuracy_vs_time.png", "wall time of the steps (s)",
            "test accuracy", logx=True)
    _curves(table, out_dir, "step", "dist_to_reverse", "distance.png", "step",
            "||theta - theta_reverse|| / ||theta_reverse||", logy=True, skip_reference=True)
    _weights_figure(table, out_dir)
    findings, bullets = {}, []
    ref_label = label(*REFERENCE)
    for (p, a), s in summary[summary["reg"] == "none"].groupby(["problem", "activation"], sort=False):
        s = s.set_index("method")
        if ref_label not in s.index:
            continue
        ref = s.loc[ref_label]
        key = f"{p}_{a}"
        t_ref = ref[f"s to {target:g}"]
        findings[f"{key}_reverse_test_acc"] = ref["test acc"]
        findings[f"{key}_reverse_s_to_target"] = t_ref
        parts = []
        for lab, row in s.iterrows():
            if lab == ref_label:
                continue
            findings[f"{key}_{lab}_final_distance"] = row["final distance"]
            findings[f"{key}_{lab}_first_grad_error"] = row["first-step grad error"]
            t = row[f"s to {target:g}"]
            same_step = ""
            if row["steps"] < ref["steps"]:  # a shortened run (finite differences on digits): compare like with like
                r = table[(table["status"] == "ok") & (table["problem"] == p) & (table["activation"] == a)
                          & (table["reg"] == "none") & (table["method"] == REFERENCE[0])
                          & (table["dtype"] == REFERENCE[1]) & (table["step"] == row["steps"])]
                if len(r):
                    same_step = f" (reverse mode at step {row['steps']}: {fmt(float(r['test_acc'].iloc[0]))})"
            cost = (f"{fmt(t / t_ref)}x reverse mode's time to {target:g}" if pd.notna(t) and pd.notna(t_ref)
                    else f"did not reach {target:g} in {row['steps']} steps")
            zeroed, diverged = row["zeroed FD quotients"], row["diverged at step"]
            findings[f"{key}_{lab}_zeroed_quotients"] = zeroed
            if pd.notna(diverged):
                findings[f"{key}_{lab}_diverged_at"] = int(diverged)
                parts.append(f"`{lab}`: **stopped at step {int(diverged)}**: its loss or gradient was not finite "
                             f"(the last finite theta has test accuracy {fmt(row['test acc'])})")
                continue
            parts.append(f"`{lab}`: first-step gradient error {fmt(row['first-step grad error'])}, distance "
                         f"{fmt(row['final distance'])} after {row['steps']} steps, test accuracy "
                         f"{fmt(row['test acc'])}{same_step}, {cost}"
                         + (f", {zeroed} gradient entries lost to float32 rounding (quotient 0)" if zeroed else ""))
        reach = (f"reaches test accuracy {fmt(target)} after {fmt(t_ref)} s" if pd.notna(t_ref)
                 else f"does not reach test accuracy {fmt(target)} in {ref['steps']} steps")
        bullets.append(f"**{p}, {a}** (no L1/L2): reverse mode {reach} and ends at {fmt(ref['test acc'])}. "
                       + "; ".join(parts) + ".")
    ref_rows = summary[summary["method"] == ref_label]
    for (p, a), s in ref_rows.groupby(["problem", "activation"], sort=False):
        s = s.set_index("reg")
        if "none" in s.index and len(s) > 1:
            desc = ", ".join(f"{r}: {fmt(100 * s.loc[r, 'near-zero W (<1e-3)'])} %" for r in s.index)
            for r in s.index:
                findings[f"{p}_{a}_{r}_near_zero"] = s.loc[r, "near-zero W (<1e-3)"]
            bullets.append(f"**{p}, {a}**: weights with |w| < 1e-3 at the end ({desc}); test accuracy "
                           + ", ".join(f"{r}: {fmt(s.loc[r, 'test acc'])}" for r in s.index) + ".")
    fd_note = method_notes(table, cfg)
    stopped = summary[summary["diverged at step"].notna()]
    if len(stopped):
        findings["runs_stopped_nonfinite"] = len(stopped)
        # (moons' binary cross-entropy on its sigmoid output is evaluated from the logits, so log(1 - p) of a p
        # rounded to 1, which stopped float32 runs before, is no longer a cause: no explanation is assumed)
        why = ""
        bullets.append(f"{len(stopped)} run(s) stopped on a non-finite loss or gradient ("
                       + ", ".join(f"{r.problem} {r.activation} {r.reg} `{r.method}` at step {int(r['diverged at step'])}"
                                   for _, r in stopped.iterrows()) + ")" + (why or "."))
    blocks = [
        Heading("What the data show"),
        Para("Every method starts from the same theta and sees the same minibatches in the same order; the only "
             "difference is how the gradient is computed. " + fd_note),
        Bullets(bullets),
        Figure("loss_vs_step.png", "Training loss (the data loss on the whole training split, no L1/L2 term) against "
               "step, for the runs without L1/L2. Dashed hollow: float32."),
        Figure("accuracy_vs_time.png", "Test accuracy against the wall time of the gradient and update steps "
               "(evaluation excluded; log axis; step 0, at 0 s, is drawn at 1e-5 s), without L1/L2."),
        Figure("distance.png", "Relative distance of each trajectory from reverse mode's (numpy, float64) at the "
               "same step, without L1/L2 (the reference itself, at distance 0, is not drawn; a distance of exactly 0 is drawn at "
               "1e-18)."),
        Figure("sparsity.png", sparsity_caption(table, cfg)),
        Table(summary, f"Per run: steps, final training loss and test accuracy, wall time and steps to test "
                       f"accuracy {target:g}, setup time, first-step gradient error and final distance against "
                       "reverse mode, fraction of near-zero weights"),
        Para(f"Regularisers: {', '.join(regs)}; SGD with momentum {cfg.get('momentum')}, learning rates "
             + ", ".join(f"{p} {PROBLEMS[p]['lr']}" for p in PROBLEMS) + f"; {cfg.get('epochs')} epochs; "
             f"evaluation every {cfg.get('eval_every')} steps; seed {cfg.get('seed')}."),
    ]
    return Report(TITLE, QUESTION, blocks, findings)
