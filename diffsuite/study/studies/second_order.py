"""Second order: how accurate are Hessians and Hessian-vector products from each method, what does an HVP cost
against one gradient as networks grow, and how do symbolic Hessians grow with depth next to the gradient?

Three kinds of cells:

- ``accuracy``: MLPs (2, 3, 2), batch 4 (l2 = 0.01), one per (activation, loss) case, at ``seeds`` random points; each
  method's Hessian and its HVP with a random v against the exact Hessian (``reference_hessian``: certified,
  each entry correctly rounded to float64; rows measured before it record no ``reference`` and were taken against
  mpmath at 50 digits, which the report says). Error: ``max |H - H_ref| / max |H_ref|``.
- ``cost``: MLPs of growing size (up to the issue's [784, 128, 128, 10] batch 64), relu, cross-entropy;
  per method the time of one HVP (setup apart: a symbolic kernel is compiled once) over the time of one
  reverse-mode gradient measured in the same cell. Pearlmutter: forward-over-reverse costs a small constant
  (2-4) times a gradient. Methods whose HVP costs n of something (forward-over-forward: n JVP-of-JVPs;
  finite differences: 4n evaluations; symbolic: the whole Hessian) are run where their estimated HVP time
  (``HVP_ESTIMATE``, from the gradient's and a forward pass's times) stays within ``budget_s``, and are
  ``budget`` rows beyond (larger nets of that method are then not attempted).
- ``growth``: the symbolic Hessian's size (tree nodes, DAG nodes, nodes after joint CSE) against depth
  next to the gradient's, for (w, ..., w, 1) sigmoid networks, one sample, data as symbols (as the
  expression_growth study), under node and time budgets.

Methods (labels): ``forward[fwd-rev]`` (forward-over-reverse), ``forward[fwd-fwd]``,
``reverse[rev-rev]`` (reverse-over-reverse), ``symbolic[cse]`` (SymEngine), ``finite_diff[central]``
(second differences, h ~ eps^(1/4)), ``finite_diff[complex_step]`` (complex step over a central difference).
"""
from __future__ import annotations

import functools
import importlib.util
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..common import describe_growth, fit_loglog
from ..figures import figure_legend, method_order, plot_kwargs, save, subplots
from ..report import Bullets, Figure, Heading, Para, Report, Table, fmt
from ..runner import cell
from ..timing import measure as time_calls, time_once

SERIAL = True  # the cost cells are timings: never more than one cell at a time
ROUNDS = 3  # gradient-then-HVP timing rounds per cost cell
ONE_ROUND_AFTER_S = 1.0  # a cost cell whose first HVP call takes this long or longer is timed in one round
HVP_DISAGREE = 1e-3  # a cost row whose HVP differs from forward-over-reverse's by more (relative) is flagged
#: a cost row whose rounds' ratios spread (max - min) over more than this fraction of its (median) ratio is flagged
#: ``noisy``: its rounds disagree too much for the ratio to be quoted as a maximum (the machine's load changed)
SPREAD_FLAG = 0.5
HESSIAN_FLOOR = 1e-17  # where the Hessian-error figure draws errors below it (exact zeros included)
TITLE = "Second order"
QUESTION = ("How accurate are Hessians and Hessian-vector products from each method, what does an HVP cost "
            "against one gradient as networks grow, and how do symbolic Hessians grow with depth next to the "
            "gradient?")

#: label -> (registry name, options); symbolic's engine comes from the config
METHODS = {
    "forward[fwd-rev]": ("forward", {}),
    "forward[fwd-fwd]": ("forward", {"second_order": "forward_over_forward"}),
    "reverse[rev-rev]": ("reverse", {}),
    "symbolic[cse]": ("symbolic", {}),
    "finite_diff[central]": ("finite_diff", {"scheme": "central", "warn": False}),
    "finite_diff[complex_step]": ("finite_diff", {"scheme": "complex_step", "warn": False}),
}
#: an HVP's estimated cost, from a gradient's time ``g`` and a forward pass's ``e`` (numpy), for n parameters:
#: what the budget check compares with ``budget_s`` before running a cost cell (complex arithmetic ~ 4 real)
HVP_ESTIMATE = {"forward[fwd-rev]": lambda n, g, e: 3 * g, "reverse[rev-rev]": lambda n, g, e: 6 * g,
                "forward[fwd-fwd]": lambda n, g, e: 6 * n * e, "finite_diff[central]": lambda n, g, e: 4 * n * e,
                "finite_diff[complex_step]": lambda n, g, e: 8 * n * e, "symbolic[cse]": lambda n, g, e: n * n * e}
LINESTYLE = {"forward[fwd-rev]": "-", "forward[fwd-fwd]": ":", "reverse[rev-rev]": "--"}


@dataclass(frozen=True)
class Config:
    cases: tuple[tuple[str, str], ...] = (("tanh", "quadratic"), ("sigmoid", "binary_cross_entropy"),
                                         ("elu", "cross_entropy"), ("relu", "hinge"), ("maxout", "quadratic"))
    seeds: tuple[int, ...] = (0, 1)
    accuracy_layers: tuple[int, ...] = (2, 3, 2)
    accuracy_batch: int = 4
    accuracy_methods: tuple[str, ...] = tuple(METHODS)
    cost_nets: tuple[tuple[tuple[int, ...], int], ...] = (((8, 8, 2), 16), ((32, 32, 10), 32),
                                                          ((64, 64, 10), 64), ((784, 32, 10), 64),
                                                          ((784, 128, 128, 10), 64))
    cost_methods: tuple[str, ...] = ("forward[fwd-rev]", "reverse[rev-rev]", "forward[fwd-fwd]",
                                     "finite_diff[complex_step]", "finite_diff[central]", "symbolic[cse]")
    growth_depths: tuple[int, ...] = (1, 2, 3, 4, 5)
    growth_width: int = 2
    symbolic_engine: str = "symengine"
    node_budget: int = 2_000_000
    time_budget_s: float = 30.0
    budget_s: float = 20.0  # a cost cell whose estimated HVP time exceeds this is a budget row
    min_time_s: float = 0.3
    threads: int = 1
    seed: int = 0
    devices: tuple[str, ...] = ("cpu",)

    def quick(self) -> "Config":
        engine = "symengine" if importlib.util.find_spec("symengine") is not None else "sympy"
        return replace(self, cases=(("tanh", "quadratic"), ("relu", "hinge")), seeds=(0,), accuracy_layers=(2, 2, 1),
                       accuracy_batch=2, cost_nets=(((4, 4, 2), 4), ((16, 16, 2), 8)),
                       cost_methods=("forward[fwd-rev]", "reverse[rev-rev]", "finite_diff[central]"),
                       growth_depths=(1, 2), symbolic_engine=engine, time_budget_s=10.0, budget_s=2.0,
                       min_time_s=0.01)


def validate(config: Config) -> None:
    """The values a run can use (``study/config.py`` calls this before anything is created or measured)."""
    from ...nn import ACTIVATIONS, LOSSES
    from .. import config as check
    if not config.cases:
        raise ValueError("cases is empty: it needs at least one [activation, loss] pair")
    check.distinct("cases", config.cases)
    for i, (activation, loss) in enumerate(config.cases):
        check.names(f"cases[{i}][0] (activation)", activation, ACTIVATIONS)
        check.names(f"cases[{i}][1] (loss)", loss, LOSSES)
    check.ints("seeds", config.seeds, 0)
    check.layers("accuracy_layers", config.accuracy_layers)
    check.ints("accuracy_batch", config.accuracy_batch, 1)
    check.names("accuracy_methods", config.accuracy_methods, METHODS, empty=True)
    check.distinct("cost_nets", config.cost_nets)
    for i, (net, batch) in enumerate(config.cost_nets):
        check.layers(f"cost_nets[{i}][0] (layers)", net)
        check.ints(f"cost_nets[{i}][1] (batch)", batch, 1)
    check.names("cost_methods", config.cost_methods, METHODS, empty=True)
    check.ints("growth_depths", config.growth_depths, 1, empty=True)
    check.ints("growth_width", config.growth_width, 1)
    check.names("symbolic_engine", config.symbolic_engine, ("symengine", "sympy"))
    check.ints("node_budget", config.node_budget, 1)
    for key in ("time_budget_s", "budget_s", "min_time_s"):
        check.number(key, getattr(config, key), 0.0, open_low=True)
    check.ints("threads", config.threads, 1)
    check.ints("seed", config.seed, 0)


def worker_env(config: Config) -> dict:
    n = str(config.threads)
    return {"OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n}


def cells(config: Config):
    out = [cell(kind="accuracy", case=f"{a}/{l}", seed=s, method=m)
           for a, l in config.cases for s in config.seeds for m in config.accuracy_methods]
    out += [cell(kind="cost", net="x".join(map(str, layers)), batch=b, method=m)
            for m in config.cost_methods for layers, b in config.cost_nets]
    out += [cell(kind="growth", depth=d, width=config.growth_width) for d in config.growth_depths]
    return out


def prune(config: Config, params: dict, done: dict) -> str | None:
    """Skip a larger cost cell of a method, or a deeper growth cell, once a smaller one ran out of budget."""
    for rows in done.values():
        for r in rows:
            if r.get("status") != "budget" or r.get("kind") != params["kind"]:
                continue
            # (the size from the net's name: a row that ran out of budget has no measured n_params)
            if params["kind"] == "cost" and r.get("method") == params["method"] and \
                    _n_params(r["net"]) < _n_params(params["net"]):
                return f"not attempted: {r['net']} already exceeded the budget"
            if params["kind"] == "growth" and r.get("depth", 99) < params["depth"]:
                return f"not attempted: depth {r['depth']} already exceeded the budget"
    return None


def _n_params(net: str) -> int:
    layers = [int(k) for k in net.split("x")]
    return sum(a * b + b for a, b in zip(layers[:-1], layers[1:]))


def make(label: str, config: Config):
    from ...differentiators import get_differentiator
    name, opts = METHODS[label]
    if name == "symbolic":
        opts = {**opts, "engine": config.symbolic_engine, "time_budget_s": config.time_budget_s,
                "node_budget": config.node_budget}
    return get_differentiator(name, **opts)


def accuracy_problem(case: str, seed: int, config: Config):
    from ...nn import get_activation
    from ...nn.mlp import MLP
    from ...objective import Objective
    act, loss = case.split("/")
    rng = np.random.default_rng(seed)
    out_act = {"binary_cross_entropy": "sigmoid"}.get(loss, "identity")
    layers = config.accuracy_layers
    model = MLP(layers, activation=get_activation(act), output_activation=out_act)
    x = rng.normal(size=(config.accuracy_batch, layers[0]))
    n_out = layers[-1]
    targets = {"quadratic": lambda: rng.normal(size=(len(x), n_out)),
               "binary_cross_entropy": lambda: rng.uniform(size=(len(x), n_out)),
               "cross_entropy": lambda: rng.integers(0, n_out, size=len(x)),
               "hinge": lambda: rng.choice([-1.0, 1.0], size=(len(x), n_out))}[loss]()
    return Objective(model, loss, x, targets, l2=0.01), model.init(seed=seed)


def cost_problem(net: str, batch: int, config: Config):
    from ...nn.mlp import MLP
    from ...objective import Objective
    layers = tuple(int(k) for k in net.split("x"))
    rng = np.random.default_rng(config.seed)
    model = MLP(layers, activation="relu", output_activation="identity")
    obj = Objective(model, "cross_entropy", rng.normal(size=(batch, layers[0])),
                    rng.integers(0, layers[-1], size=batch))
    return obj, model.init(seed=config.seed)


def growth_problem(depth: int, width: int, config: Config):
    from ...nn.mlp import MLP
    from ...objective import Objective
    rng = np.random.default_rng(config.seed)
    model = MLP((width,) * (depth + 1) + (1,), activation="sigmoid", output_activation="identity")
    return Objective(model, "quadratic", rng.normal(size=(1, width)), rng.normal(size=(1, 1))), None


def _rel(a, ref) -> float:
    a, ref = np.asarray(a, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        return float("inf")
    den = float(np.max(np.abs(ref)))
    num = float(np.max(np.abs(a - ref)))
    return num / den if den > 0 else num


def measure(config: Config, params: dict) -> list[dict]:
    kind = params["kind"]
    if kind == "accuracy":
        return [_accuracy(config, params)]
    if kind == "cost":
        return [_cost(config, params)]
    return [_growth(config, params)]


def _reference_words(acc: pd.DataFrame, short: bool = False) -> str:
    """How the rows' exact Hessian was computed: certified (rows that say so), else mpmath at 50 digits (rows
    measured before the certified Hessian, which record no ``reference``)."""
    certified = "reference" in acc and len(acc) and (acc["reference"] == "certified").all()
    if certified:
        return "certified, each entry correctly rounded to float64" if short else \
            "certified by arb ball arithmetic, each entry correctly rounded to float64"
    return "mpmath at 50 digits, rounded to float64" if short else \
        ("evaluated with mpmath at 50 digits and rounded to float64 (the reference of the diffsuite version that "
         "measured these rows; the certified Hessian replaced it)")


@functools.lru_cache(maxsize=16)
def _reference(case: str, seed: int, config: Config) -> np.ndarray:
    """The exact Hessian of one accuracy problem: computed once per worker, shared by every method's cell."""
    from ...reference_hessian import reference_hessian
    obj, theta = accuracy_problem(case, seed, config)
    return reference_hessian(obj, theta, time_budget_s=config.time_budget_s)


def _accuracy(config: Config, params: dict) -> dict:
    obj, theta = accuracy_problem(params["case"], params["seed"], config)
    ref = _reference(params["case"], params["seed"], config)
    v = np.random.default_rng(params["seed"] + 100).normal(size=theta.size)
    d = make(params["method"], config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        H = d.hessian(obj)(theta)
        Hv = d.hvp(obj)(theta, v)
    return {"n_params": int(theta.size), "reference": "certified",
            "hessian_rel_err": _rel(H, ref), "hvp_rel_err": _rel(Hv, ref @ v),
            "asymmetry": float(np.max(np.abs(H - H.T)) / max(np.max(np.abs(ref)), 1e-300))}


def _cost(config: Config, params: dict) -> dict:
    from ...differentiators import get_differentiator
    obj, theta = cost_problem(params["net"], params["batch"], config)
    n = int(theta.size)
    row = {"n_params": n}
    grad = get_differentiator("reverse").value_and_grad(obj)
    t_grad = time_calls(lambda: grad(theta), min_total_s=config.min_time_s / ROUNDS)
    label = params["method"]
    t_eval = time_calls(lambda: obj.value(theta), min_total_s=config.min_time_s / 3).median
    guess = HVP_ESTIMATE[label](n, t_grad.median, t_eval)
    row["forward_s"] = t_eval
    if guess > config.budget_s:
        from ...errors import BudgetExceeded
        raise BudgetExceeded(f"{label}'s HVP (an estimated {guess:.1f} s from the gradient's and a forward pass's "
                             "times)", f"budget_s = {config.budget_s:g} s")
    v = np.random.default_rng(1).normal(size=n)
    hvp = make(label, config).hvp(obj)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first, setup_s = time_once(lambda: hvp(theta, v))  # setup (a symbolic kernel) is paid here, off the clock
        # rounds of gradient-then-HVP timings, the ratio taken per round and its median reported: a change of the
        # machine's load then hits both sides of a ratio (one round for HVPs slower than a second)
        rounds = []
        for _ in range(ROUNDS if setup_s < ONE_ROUND_AFTER_S else 1):
            tg = time_calls(lambda: grad(theta), min_total_s=config.min_time_s / ROUNDS)
            th = time_calls(lambda: hvp(theta, v), min_total_s=config.min_time_s / ROUNDS,
                            max_total_s=config.budget_s / ROUNDS)
            rounds.append((tg.median, th.median))
    row["grad_s"] = float(np.median([g for g, _ in rounds]))
    row["hvp_s"] = float(np.median([h for _, h in rounds]))
    row["ratio"] = float(np.median([h / g for g, h in rounds]))
    row["ratio_spread"] = float(max(h / g for g, h in rounds) - min(h / g for g, h in rounds))
    row["rounds"] = len(rounds)
    check = get_differentiator("forward").hvp(obj)(theta, v)
    row["rel_diff_from_fwd_rev"] = _rel(first, check)
    return row


def _growth(config: Config, params: dict) -> dict:
    from ...differentiators.symbolic import expression_metrics
    from ...differentiators.symbolic.higher import hessian_metrics
    obj, _ = growth_problem(params["depth"], params["width"], config)
    g = expression_metrics(obj, symbolic_data=True, engine=config.symbolic_engine, node_budget=config.node_budget,
                           time_budget_s=config.time_budget_s)
    h = hessian_metrics(obj, engine=config.symbolic_engine, symbolic_data=True, node_budget=config.node_budget,
                        time_budget_s=config.time_budget_s)
    row = {"n_params": obj.n_params, "grad_tree_nodes": g["grad_tree_nodes"], "grad_dag_nodes": g["grad_dag_nodes"],
           "grad_cse_nodes": g["cse_all_nodes"]}
    row.update({k: h[k] for k in ("hessian_tree_nodes", "hessian_dag_nodes", "hessian_cse_nodes", "diff2_s", "cse_s")})
    return row


# ----- report -----
def _ok(table: pd.DataFrame, kind: str) -> pd.DataFrame:
    return table[(table["kind"] == kind) & (table["status"] == "ok")]


def accuracy_table(table: pd.DataFrame) -> pd.DataFrame:
    acc = _ok(table, "accuracy")
    if acc.empty:
        return pd.DataFrame(columns=["method", "median Hessian error", "max Hessian error", "max HVP error"])
    g = acc.groupby("method")
    out = pd.DataFrame({"median Hessian error": g["hessian_rel_err"].median(),
                        "max Hessian error": g["hessian_rel_err"].max(), "max HVP error": g["hvp_rel_err"].max()})
    return out.reindex(method_order(out.index)).reset_index()


def cost_table(table: pd.DataFrame) -> pd.DataFrame:
    """The ok cost rows: times, ratio, the spread of the rounds' ratios (``spread check``: ``noisy`` beyond
    ``SPREAD_FLAG`` times the ratio, ``one round`` where there was a single round), the rounds timed and, where
    stored, how far the timed HVP is from forward-over-reverse's (``HVP check``: ``differs`` beyond
    ``HVP_DISAGREE``)."""
    cost = _ok(table, "cost")
    cols = ["method", "net", "batch", "n_params", "grad_s", "hvp_s", "ratio"]
    cols += [c for c in ("ratio_spread", "rounds", "rel_diff_from_fwd_rev") if c in cost]
    if not len(cost):
        return pd.DataFrame(columns=cols)
    out = cost[cols].sort_values(["method", "n_params"]).reset_index(drop=True)
    if "rounds" in out:
        out["rounds"] = out["rounds"].map(lambda r: int(r) if pd.notna(r) else None).astype(object)
    if "ratio_spread" in out:
        spread, ratio = out["ratio_spread"].astype(float), out["ratio"].astype(float)
        single = out["rounds"].map(lambda r: r == 1) if "rounds" in out else pd.Series(False, index=out.index)
        out.insert(out.columns.get_loc("ratio_spread") + 1, "spread check",
                   np.where(spread.isna(), "", np.where(spread > SPREAD_FLAG * ratio, "noisy",
                                                        np.where(single.astype(bool), "one round", "ok"))))
    if "rel_diff_from_fwd_rev" in out:
        d = out["rel_diff_from_fwd_rev"].astype(float)
        out["HVP check"] = np.where(d.isna(), "", np.where(d > HVP_DISAGREE, "differs", "ok"))
    return out


def disagreeing(ct: pd.DataFrame) -> pd.DataFrame:
    """Cost rows whose timed HVP differs from forward-over-reverse's by more than ``HVP_DISAGREE``."""
    if "rel_diff_from_fwd_rev" not in ct:
        return ct.iloc[0:0]
    return ct[ct["rel_diff_from_fwd_rev"].astype(float) > HVP_DISAGREE]


def rounds_sentence(ct: pd.DataFrame) -> str:
    """How the cost rows were timed, from their ``rounds``: the number of rounds each group of rows ran, and why
    some ran one (the rule in ``_cost``)."""
    base = ("a cost cell times the gradient and the HVP back to back in rounds and reports the median of the "
            "rounds' ratios (ratio_spread: their range), so that a change of the machine's load hits both sides of "
            "a ratio")
    if "rounds" not in ct or not ct["rounds"].notna().any():
        return base + "."
    r = ct["rounds"].dropna().astype(int)
    if r.nunique() == 1:
        k = int(r.iloc[0])
        text = f"{base}: every cost row here ran {k} round{'s' if k != 1 else ''}"
    else:
        groups = []
        for k, idx in sorted(r.groupby(r).groups.items(), reverse=True):
            g = ct.loc[idx]
            who = "" if k != 1 else " (" + ", ".join(f"{m} {net}" for m, net in zip(g["method"], g["net"])) + ")"
            groups.append(f"{len(g)} of the {len(r)} cost rows ran {k} round{'s' if k != 1 else ''}{who}")
        text = f"{base}: " + "; ".join(groups)
    if (r == 1).any():
        text += (f". A cell runs one round when its first HVP call took {ONE_ROUND_AFTER_S:g} s or more; a "
                 "one-round ratio is that round's, with no spread (ratio_spread 0)")
    return text + "."


def growth_table(table: pd.DataFrame) -> pd.DataFrame:
    gr = _ok(table, "growth")
    cols = ["depth", "n_params", "grad_tree_nodes", "hessian_tree_nodes", "grad_dag_nodes", "hessian_dag_nodes",
            "grad_cse_nodes", "hessian_cse_nodes"]
    return gr[[c for c in cols if c in gr]].sort_values("depth").reset_index(drop=True) if len(gr) else \
        pd.DataFrame(columns=cols)


def shown_failures(table: pd.DataFrame) -> pd.Series:
    """The non-ok rows the report's own "Cells that did not finish" table lists: those naming their kind of cell;
    ``report.build`` lists the others (a hand-edited row, say) by their cell id."""
    return (table["status"] != "ok") & table["kind"].notna()


def report(table: pd.DataFrame, meta: dict, out_dir) -> Report:
    findings: dict = {}
    bullets = []
    # accuracy
    acc = _ok(table, "accuracy")
    fig, axes = subplots(width=6.4)
    ax = axes[0][0]
    methods = method_order(acc["method"].unique()) if len(acc) else []
    for k, m in enumerate(methods):
        e = acc[acc["method"] == m]["hessian_rel_err"].astype(float).clip(lower=HESSIAN_FLOOR)
        ax.scatter(np.full(len(e), k) + np.linspace(-0.15, 0.15, len(e)), e, **{
            kk: vv for kk, vv in plot_kwargs(m).items() if kk in ("color", "marker")})
    ax.set_yscale("log")
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels(methods, rotation=20, ha="right")
    ax.set_ylabel("Hessian error, max|H - H_ref| / max|H_ref|")
    ax.set_title("Hessian accuracy against the exact reference (one point per case and seed)")
    save(fig, out_dir / "hessian_error.png")
    herr = acc["hessian_rel_err"].astype(float) if len(acc) else pd.Series(dtype=float)
    zeros, tiny = int((herr == 0).sum()), int(((herr > 0) & (herr < HESSIAN_FLOOR)).sum())
    undrawn = int((~np.isfinite(herr)).sum())
    findings["hessian_errors_zero"], findings["hessian_errors_below_floor"] = zeros, tiny
    hessian_caption = ("Relative Hessian error per method, one point per case and seed, against the exact Hessian "
                       f"({_reference_words(acc, short=True)}; log scale); errors below {HESSIAN_FLOOR:g} are drawn at "
                       f"{HESSIAN_FLOOR:g}")
    floor_parts = ([f"{zeros} error{'s' if zeros != 1 else ''} of exactly 0"] if zeros else []) + \
                  ([f"{tiny} nonzero error{'s' if tiny != 1 else ''} below it"] if tiny else [])
    hessian_caption += f" (here: {' and '.join(floor_parts)})" if floor_parts else " (none here)"
    if undrawn:
        hessian_caption += f"; {undrawn} non-finite error{'s' if undrawn != 1 else ''} not drawn"
    hessian_caption += "."
    at = accuracy_table(table)
    for _, r in at.iterrows():
        findings[f"{r['method']}_max_hessian_err"] = float(r["max Hessian error"])
        findings[f"{r['method']}_max_hvp_err"] = float(r["max HVP error"])
    if len(at):
        bullets.append("Largest Hessian error against the exact reference, per method: " + "; ".join(
            f"{r['method']} **{fmt(r['max Hessian error'])}**" for _, r in at.iterrows()) + ".")

    # cost
    cost = _ok(table, "cost")
    fig, axes = subplots(width=6.4)
    ax = axes[0][0]
    for m in method_order(cost["method"].unique()) if len(cost) else []:
        c = cost[cost["method"] == m].sort_values("n_params")
        ax.plot(c["n_params"], c["ratio"], label=m, **plot_kwargs(m, linestyle=LINESTYLE.get(m, "-")))
    ct = cost_table(table)
    wrong = disagreeing(ct)
    if len(wrong):
        ax.scatter(wrong["n_params"], wrong["ratio"], s=160, facecolors="none", edgecolors="black", linewidths=1.5,
                   zorder=5, label=f"HVP differs from fwd-rev by > {HVP_DISAGREE:g}")
    ax.axhspan(2, 4, color="#cccccc", alpha=0.4, label="Pearlmutter: 2-4 gradients")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters n")
    ax.set_ylabel("HVP time / reverse-mode gradient time")
    ax.set_title("What one Hessian-vector product costs")
    if len(cost):
        ax.legend()
    save(fig, out_dir / "hvp_cost.png")
    for m in ("forward[fwd-rev]", "reverse[rev-rev]"):
        c = ct[ct["method"] == m]
        if len(c):
            last = c.iloc[-1]
            noisy = (c["spread check"] == "noisy") if "spread check" in c else pd.Series(False, index=c.index)
            findings[f"{m}_ratio_at_largest"] = float(last["ratio"])
            findings[f"{m}_largest_n"] = int(last["n_params"])
            findings[f"{m}_noisy_sizes"] = int(noisy.sum())
            flag = (f"; flagged noisy: the range of its rounds' ratios, {fmt(float(last['ratio_spread']))}, exceeds "
                    f"{fmt(SPREAD_FLAG)} times the ratio" if noisy.loc[last.name] else "")
            clean = c[~noisy]
            if len(clean):
                findings[f"{m}_ratio_max_unflagged"] = float(clean["ratio"].max())
                most = (f"at most {fmt(findings[f'{m}_ratio_max_unflagged'])} over the {len(clean)} measured "
                        f"size{'s' if len(clean) != 1 else ''} not flagged"
                        + (f" ({int(noisy.sum())} of {len(c)} flagged noisy)" if noisy.any() else ""))
            else:
                most = f"every one of its {len(c)} sizes is flagged noisy, so no maximum is quoted"
            bullets.append(f"{m}: an HVP costs **{fmt(last['ratio'])}** gradients at n = {int(last['n_params']):,} "
                           f"({last['net']}, batch {int(last['batch'])}{flag}); {most}.")
    for m in ("forward[fwd-fwd]", "finite_diff[central]", "finite_diff[complex_step]", "symbolic[cse]"):
        c = ct[ct["method"] == m]
        if len(c) >= 2:
            slope = fit_loglog(c["n_params"], c["ratio"])
            findings[f"{m}_ratio_slope"], findings[f"{m}_ratio_sizes"] = slope, len(c)
            over = "a line through its 2 sizes, not a fit" if len(c) == 2 else f"least squares over its {len(c)} sizes"
            flagged = wrong[wrong["method"] == m]
            note = ("; the fit includes the time of the HVP that differs from forward-over-reverse at "
                    + ", ".join(flagged["net"]) + " (below)") if len(flagged) else ""
            bullets.append(f"{m}: HVP time / gradient time against n has a log-log slope of **{fmt(slope)}** "
                           f"({over}, n = {int(c['n_params'].min()):,} to {int(c['n_params'].max()):,}){note}.")
    if "rel_diff_from_fwd_rev" in ct and ct["rel_diff_from_fwd_rev"].notna().any():
        findings["cost_hvp_disagreements"] = len(wrong)
        if len(wrong):
            for _, r in wrong.iterrows():
                findings[f"{r['method']}_{r['net']}_rel_diff_from_fwd_rev"] = float(r["rel_diff_from_fwd_rev"])
            one = len(wrong) == 1
            bullets.append(f"{len(wrong)} of {len(ct)} timed HVPs differ{'s' if one else ''} from "
                           f"forward-over-reverse's at the same point by more than {HVP_DISAGREE:g} (max-norm "
                           "relative difference): " + "; ".join(
                               f"{r['method']} at {r['net']} (n = {int(r['n_params']):,}): "
                               f"**{fmt(float(r['rel_diff_from_fwd_rev']))}**" for _, r in wrong.iterrows())
                           + (". That HVP is flagged, not dropped: its time stays" if one else ". Those HVPs are "
                              "flagged, not dropped: their times stay") + " in the cost table (HVP check: differs), "
                           "the figure (circled) and the fitted slopes.")
        else:
            findings["cost_hvp_max_rel_diff"] = float(ct["rel_diff_from_fwd_rev"].max())
            bullets.append(f"Every timed HVP agrees with forward-over-reverse's at the same point within "
                           f"{HVP_DISAGREE:g} (largest relative difference "
                           f"**{fmt(findings['cost_hvp_max_rel_diff'])}**).")

    # growth
    gt = growth_table(table)
    fig, axes = subplots(width=6.4)
    ax = axes[0][0]
    series = (("grad_tree_nodes", "gradient, tree", "symbolic[no-cse]", "-"),
              ("hessian_tree_nodes", "Hessian, tree", "symbolic[cse]", "-"),
              ("grad_dag_nodes", "gradient, DAG", "symbolic[no-cse]", "--"),
              ("hessian_dag_nodes", "Hessian, DAG", "symbolic[cse]", "--"),
              ("grad_cse_nodes", "gradient, after CSE", "symbolic[no-cse]", ":"),
              ("hessian_cse_nodes", "Hessian, after CSE", "symbolic[cse]", ":"))
    shapes = {}
    for col, label, style, ls in series:
        if col in gt and gt[col].notna().any():
            ax.plot(gt["depth"], gt[col], label=label, **plot_kwargs(style, linestyle=ls))
            shapes[col] = d = describe_growth(gt["depth"], gt[col])  # from depth to depth, no fit
            findings[f"{col}_growth"] = d.shape
            if d.last:
                findings[f"{col}_first_step_factor"], findings[f"{col}_last_step_factor"] = d.first[2], d.last[2]
                findings[f"{col}_last_step_depths"] = [int(d.last[0]), int(d.last[1])]
    ax.set_yscale("log")
    ax.set_xlabel("depth (hidden layers)")
    ax.set_ylabel("expression size (nodes)")
    ax.set_title("Symbolic Hessian against gradient, by depth (width "
                 f"{meta.get('config', {}).get('growth_width', 2)}, one sample)")
    if len(gt):
        figure_legend(fig, ax, ncol=3)
    save(fig, out_dir / "symbolic_growth.png")
    if "hessian_tree_nodes" in shapes and "grad_tree_nodes" in shapes:
        after = [f"the gradient's {shapes['grad_cse_nodes'].words(bold=False)}" if "grad_cse_nodes" in shapes else "",
                 f"the Hessian's {shapes['hessian_cse_nodes'].words(bold=False)}" if "hessian_cse_nodes" in shapes
                 else ""]
        after = [a for a in after if a]
        bullets.append(f"From depth to depth, the gradient's expression tree grows "
                       f"{shapes['grad_tree_nodes'].words()}; "
                       f"the Hessian's {shapes['hessian_tree_nodes'].words()}"
                       + (f". After CSE, {'; '.join(after)}." if after else "."))
    budget = table[(table["kind"] == "growth") & (table["status"] == "budget")]
    if len(budget):
        findings["growth_budget_depth"] = int(budget["depth"].min())
        bullets.append(f"The symbolic Hessian ran out of budget at depth **{int(budget['depth'].min())}**.")

    parts = []
    fl = findings.get("forward[fwd-rev]_ratio_at_largest")
    if fl is not None:
        fr, k = findings.get("forward[fwd-rev]_ratio_max_unflagged"), findings["forward[fwd-rev]_noisy_sizes"]
        n = len(ct[ct["method"] == "forward[fwd-rev]"])
        at_largest = ct[ct["method"] == "forward[fwd-rev]"].iloc[-1]
        noisy_largest = " (flagged noisy)" if at_largest.get("spread check") == "noisy" else ""
        most = (f"at most {fmt(fr)} on the {n - k} net{'s' if n - k != 1 else ''} not flagged noisy"
                if fr is not None else "every net flagged noisy")
        parts.append(f"a forward-over-reverse HVP cost {fmt(fl)} gradients on the largest net{noisy_largest} and "
                     f"{most}" + (f" ({k} of {n} flagged: the range of their rounds' ratios exceeds {fmt(SPREAD_FLAG)} "
                                  "times the ratio)" if k and fr is not None else ""))
    ad = [findings.get(f"{m}_max_hessian_err") for m in ("forward[fwd-rev]", "reverse[rev-rev]", "forward[fwd-fwd]")]
    ad = [e for e in ad if e is not None]
    if ad:
        parts.append(f"AD Hessians are within {fmt(max(ad))} of the exact one (rounding)")
    cd, cs = findings.get("finite_diff[central]_max_hessian_err"), findings.get("finite_diff[complex_step]_max_hessian_err")
    if cd is not None:
        parts.append(f"central second differences within {fmt(cd)} (about sqrt(eps): half the digits)")
    if cs is not None:
        parts.append(f"the complex step over a central difference within {fmt(cs)} (about eps^(2/3))")
    g, h = shapes.get("grad_tree_nodes"), shapes.get("hessian_tree_nodes")
    if g is not None and h is not None and g.last and h.last and g.last[:2] == h.last[:2]:
        falling = (" (factors that fall with depth)" if g.shape == h.shape == "falling" else "")
        parts.append(f"and from depth {int(h.last[0])} to {int(h.last[1])} the symbolic Hessian's expression tree grew "
                     f"by a factor of {fmt(h.last[2])} against the gradient's {fmt(g.last[2])}{falling}")
    verdict = ("Measured here: " + "; ".join(parts) + ".") if parts else "No cell finished."
    notes = ([f"ratio_spread: max - min of the rounds' ratios; spread check: noisy where it exceeds {fmt(SPREAD_FLAG)} "
              "times the ratio, one round where a single round was timed"] if "ratio_spread" in ct else []) + \
        ([f"rel_diff_from_fwd_rev: the timed HVP against forward-over-reverse's; HVP check: differs beyond "
          f"{HVP_DISAGREE:g}"] if "rel_diff_from_fwd_rev" in ct else [])
    blocks = [
        Heading("What the data show"), Para(verdict), Bullets(bullets),
        Figure("hessian_error.png", hessian_caption),
        Figure("hvp_cost.png", "Time of one Hessian-vector product over one reverse-mode gradient, against the number "
                               "of parameters (log-log); the band is Pearlmutter's 2-4" +
                               (f"; circled: HVPs that differ from forward-over-reverse's by more than "
                                f"{HVP_DISAGREE:g} (timed all the same)." if len(wrong) else ".")),
        Figure("symbolic_growth.png", "Symbolic expression sizes of the gradient and the Hessian against depth."),
        Table(at, "Hessian errors against the exact Hessian (rounded to float64); HVP errors against that Hessian "
                  "times v, computed in float64"),
        Table(ct, "HVP cost against one gradient" + ((" (" + "; ".join(notes) + ")") if notes else "")),
        Table(gt, "Symbolic gradient and Hessian sizes"),
        Para("Errors are max|H - H_ref| / max|H_ref| over all n^2 entries, H_ref being the exact Hessian, "
             f"{_reference_words(acc)}; HVP errors are max|Hv - H_ref v| / max|H_ref v| over "
             "n entries (v random normal), H_ref v being the product of that rounded Hessian with v in float64. "
             "Times are medians (study/timing.py) in one process with one BLAS thread; " + rounds_sentence(ct)),
    ]
    bad = table[shown_failures(table)]
    if len(bad):
        cols = [c for c in ("kind", "method", "case", "net", "depth", "status", "message") if c in bad]
        blocks.append(Table(bad[cols], "Cells that did not finish"))
    return Report(TITLE, QUESTION, blocks, findings)
