"""Expression growth: how large do symbolic derivatives get with depth, how much does CSE recover,
and is the CSE'd program of all derivatives as cheap as the reverse-mode tape?

Grid: MLPs ``(w, w, ..., w, 1)`` with ``depth`` hidden layers of width ``w`` (sigmoid, the lecture's),
quadratic loss, one sample, for depth 1..8 and widths 2 and 3. Per cell, either the symbolic
metrics, with SymEngine and with SymPy (tree and DAG nodes of the loss and of the gradient, ``count_ops`` of the naive gradient,
nodes and ops after CSE for one derivative and for all of them together) or the reverse tape's
length (records, forward primitives, VJPs) and its scalar operation count (``tape_ops``). A
symbolic cell that exceeds the node or time budget is a ``budget`` row; deeper cells of the same
width are then not attempted (also ``budget`` rows, saying so).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..common import describe_growth, fit_growth, fit_loglog
from ..figures import figure_legend, plot_kwargs, save, subplots
from ..report import Bullets, Figure, Heading, Para, Report, Table, fmt, word_list
from ..runner import cell

TITLE = "Expression growth"
QUESTION = ("How large do symbolic derivatives get as the network deepens, how much does common-subexpression "
            "elimination recover, and is the CSE'd gradient program as cheap as the reverse-mode tape?")
KINDS = ("symbolic", "tape")
SYMBOLIC_METRICS = ("loss_tree_nodes", "loss_dag_nodes", "grad_tree_nodes", "grad_dag_nodes", "grad_count_ops",
                    "cse_one_nodes", "cse_one_ops", "cse_all_nodes", "cse_all_ops")


@dataclass(frozen=True)
class Config:
    depths: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
    widths: tuple[int, ...] = (2, 3)
    activation: str = "sigmoid"
    seed: int = 0
    engines: tuple[str, ...] = ("symengine", "sympy")  # the first one's metrics are plotted; both are timed
    node_budget: int = 2_000_000
    time_budget_s: float = 20.0
    symbolic_inputs: bool = True  # inputs and targets as symbols: the expression of any data, not folded constants
    count_ops_max_nodes: int = 200_000  # count_ops walks the printed tree: skipped above this size
    devices: tuple[str, ...] = ("cpu",)

    def quick(self) -> "Config":
        # the fast engine when it is installed (an extra); SymPy manages depths 1-3 in seconds too
        engine = "symengine" if importlib.util.find_spec("symengine") is not None else "sympy"
        return replace(self, depths=(1, 2, 3), widths=(2,), engines=(engine,), time_budget_s=10.0)


ENGINES = ("symengine", "sympy")


def validate(config: Config) -> None:
    """The values a run can use (``study/config.py`` calls this before anything is created or measured)."""
    from ...nn import ACTIVATIONS
    from .. import config as check
    check.ints("depths", config.depths, 1)
    check.ints("widths", config.widths, 1)
    check.names("activation", config.activation, ACTIVATIONS)
    check.ints("seed", config.seed, 0)
    check.names("engines", config.engines, ENGINES)
    check.ints("node_budget", config.node_budget, 1)
    check.number("time_budget_s", config.time_budget_s, 0.0, open_low=True)
    check.ints("count_ops_max_nodes", config.count_ops_max_nodes, 0)


def cells(config: Config):
    out = []
    for w in config.widths:
        out += [cell(width=w, depth=d, kind="tape", engine="-") for d in config.depths]
        out += [cell(width=w, depth=d, kind="symbolic", engine=e) for e in config.engines for d in config.depths]
    return out


def prune(config: Config, params: dict, done: dict) -> str | None:
    """Skip a symbolic cell when a shallower one of the same width already ran out of budget."""
    if params["kind"] != "symbolic":
        return None
    for rows in done.values():
        for r in rows:
            if (r.get("kind") == "symbolic" and r.get("width") == params["width"] and r.get("status") == "budget"
                    and r.get("engine") == params["engine"] and r.get("depth", 99) < params["depth"]):
                return f"not attempted: depth {r['depth']} already exceeded the budget"
    return None


def problem(width: int, depth: int, config: Config):
    from ...nn import MLP
    from ...objective import Objective
    rng = np.random.default_rng(config.seed)
    model = MLP(layers=(width,) * (depth + 1) + (1,), activation=config.activation, output_activation="identity")
    inputs = rng.normal(size=(1, width))
    targets = rng.normal(size=(1, 1))
    return Objective(model, "quadratic", inputs, targets), model.init(seed=config.seed)


def _symbolic_metrics(obj, config: Config, engine: str) -> dict:
    """The symbolic differentiator's expression metrics, without compiling; budgets apply."""
    from ...differentiators.symbolic import expression_metrics
    return expression_metrics(obj, symbolic_data=config.symbolic_inputs, engine=engine, node_budget=config.node_budget,
                              time_budget_s=config.time_budget_s, count_ops_max_nodes=config.count_ops_max_nodes)


#: the engines this process has built an expression with: the first build pays one-time costs (imports, caches;
#: 0.118 s at depth 1 against 0.0246 s at depth 2 in the committed run), so ``measure`` builds once untimed first
_WARMED: set = set()


def warm_up(config: Config, width: int, engine: str) -> None:
    """One untimed build of the depth-1 network with ``engine``, once per process, before its first timed cell.
    A failure here is left to the timed call, which records it."""
    if engine in _WARMED:
        return
    _WARMED.add(engine)
    try:
        _symbolic_metrics(problem(width, 1, config)[0], config, engine)
    except Exception:  # noqa: BLE001 - the timed call measures (and records) what fails
        pass


def measure(config: Config, params: dict) -> list[dict]:
    obj, theta = problem(params["width"], params["depth"], config)
    row = {"n_params": obj.n_params}
    if params["kind"] == "tape":
        from ..tape_ops import count
        from ...differentiators import get_differentiator
        row.update(count(obj, theta))
        stats = get_differentiator("reverse").value_and_grad(obj)(theta).stats
        row["tape_backward_ops"] = stats.get("tape_backward_ops")
        return [row]
    warm_up(config, params["width"], params["engine"])
    stats = _symbolic_metrics(obj, config, params["engine"])
    for k, v in stats.items():
        if isinstance(v, (int, float, str, bool, np.integer, np.floating)) or v is None:
            row[k] = v
    return [row]


# ----- report -----
SERIES = (  # (column, label, line style, from which kind)
    ("grad_tree_nodes", "symbolic gradient, tree nodes", "-", "symbolic"),
    ("grad_dag_nodes", "symbolic gradient, DAG nodes", "--", "symbolic"),
    ("cse_all_ops", "symbolic gradient after CSE, ops (all derivatives)", ":", "symbolic"),
    ("cse_one_ops", "one derivative after CSE, ops", "-.", "symbolic"),
    ("tape_scalar_ops", "reverse tape, scalar ops (forward + backward)", "-", "tape"),
)


def primary_engine(table: pd.DataFrame) -> str:
    """The engine whose metrics are plotted: SymEngine when it was measured (it reaches deeper)."""
    engines = set(table.loc[table["kind"] == "symbolic", "engine"])
    return "symengine" if "symengine" in engines else (sorted(engines)[0] if engines else "-")


def _series(table: pd.DataFrame, kind: str, width: int, col: str) -> pd.DataFrame:
    t = table[(table["kind"] == kind) & (table["width"] == width) & (table["status"] == "ok")]
    if kind == "symbolic":
        t = t[t["engine"] == primary_engine(table)]
    if col not in t:
        return t.iloc[0:0]
    return t[["depth", col]].dropna().sort_values("depth")


#: how ``growth_table`` names a growth's shape (``common.Growth``)
SHAPE_WORDS = {"linear": "linear (same increase each layer)", "geometric": "geometric (same factor each layer)",
               "falling": "factor per layer falls", "rising": "factor per layer rises",
               "mixed": "factor per layer goes up and down", "one step": "two depths only", "single": "one depth only"}


def growth_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per width and metric: how it grows from depth to depth (``common.describe_growth``: its shape, and the factor
    and the increase per layer at the deepest step), the value at the deepest measured depth, and two fits over all
    depths kept for reference (a factor per layer of y ~ C factor^depth, and the log-log slope): a fit summarises
    a curve these shapes do not follow, and its factor depends on the depths fitted."""
    rows = []
    for w in sorted(table["width"].dropna().unique()):
        for col, label, _, kind in SERIES + (("loss_tree_nodes", "loss tree nodes", "", "symbolic"),
                                               ("cse_all_nodes", "all derivatives after CSE, nodes", "", "symbolic"),
                                               ("tape_records", "reverse tape records", "", "tape")):
            s = _series(table, kind, w, col)
            if len(s) == 0:
                continue
            g = describe_growth(s["depth"], s[col])
            last = g.last
            rows.append({"width": int(w), "metric": col, "growth": SHAPE_WORDS[g.shape],
                         "last step": f"{int(last[0])} to {int(last[1])}" if last else "",
                         "factor per layer there": last[2] if last else None,
                         "increase per layer there": last[3] if last else None,
                         "max depth": int(s["depth"].max()), "value there": float(s[col].iloc[-1]),
                         "fitted factor (all depths)": fit_growth(s["depth"], s[col]),
                         "log-log slope (all depths)": fit_loglog(s["depth"], s[col])})
    return pd.DataFrame(rows)


def ratio_table(table: pd.DataFrame) -> pd.DataFrame:
    """CSE'd all-derivatives ops / tape scalar ops, per width and depth (where both were measured)."""
    sym = table[(table["kind"] == "symbolic") & (table["status"] == "ok") & (table["engine"] == primary_engine(table))]
    tape = table[(table["kind"] == "tape") & (table["status"] == "ok")]
    if "cse_all_ops" not in sym or "tape_scalar_ops" not in tape:
        return pd.DataFrame(columns=["width", "depth", "cse_all_ops", "tape_scalar_ops", "ratio"])
    m = sym[["width", "depth", "cse_all_ops"]].merge(tape[["width", "depth", "tape_scalar_ops"]], on=["width", "depth"])
    m = m.dropna().sort_values(["width", "depth"])
    m["ratio"] = m["cse_all_ops"] / m["tape_scalar_ops"]
    return m.reset_index(drop=True)


def ratio_trend(ratios: pd.DataFrame) -> str:
    """How CSE'd ops / tape ops moves with depth, per width: ``widens`` (non-decreasing at every width, rising
    at one at least), ``narrows``, ``flat``, ``mixed``, or ``single`` (one depth per width)."""
    ups, downs, multi = [], [], False
    for _, g in ratios.sort_values("depth").groupby("width"):
        d = np.diff(g["ratio"].astype(float).to_numpy())
        if len(d):
            multi = True
            ups.append(bool((d >= 0).all() and (d > 0).any()))
            downs.append(bool((d <= 0).all() and (d < 0).any()))
            if (d == 0).all():
                ups[-1] = downs[-1] = None
    if not multi:
        return "single"
    if all(u is None for u in ups):
        return "flat"
    if all(u is not False for u in ups) and any(ups):
        return "widens"
    if all(x is not False for x in downs) and any(downs):
        return "narrows"
    return "mixed"


def _depths(ds) -> str:
    ds = [int(d) for d in ds]
    return f"depth{'s' if len(ds) > 1 else ''} {word_list(ds)}"


def cheaper_clause(r: pd.DataFrame, width: int, findings: dict) -> str:
    """One sentence on one width: at which depths the CSE'd program needs fewer scalar operations than the tape
    (ratio < 1: cheaper) and at which more (ratio > 1: costlier), read from the rows, and where the ratio crosses
    1 when it crosses once."""
    r = r.sort_values("depth")
    d, v = r["depth"].astype(int).to_numpy(), r["ratio"].astype(float).to_numpy()
    w = f"w{width}"
    findings[f"{w}_min_depth"], findings[f"{w}_ratio_at_min_depth"] = int(d[0]), float(v[0])
    findings[f"{w}_max_depth"], findings[f"{w}_ratio_at_max_depth"] = int(d[-1]), float(v[-1])
    cheaper, costlier, equal = v < 1, v > 1, v == 1
    findings[f"{w}_cheaper_depths"] = [int(x) for x in d[cheaper]]

    def values(mask) -> str:
        """The ratios at the depths of ``mask``: one value, or the first and the last with their depths."""
        dd, vv = d[mask], v[mask]
        if len(dd) == 1:
            return f"{fmt(vv[0])} times the tape's scalar operations"
        return f"{fmt(vv[0])} times the tape's scalar operations at depth {dd[0]}, {fmt(vv[-1])} at depth {dd[-1]}"

    same = f"; exactly as costly at {_depths(d[equal])}" if equal.any() else ""
    head = f"At width {width} the CSE'd gradient is"
    if not costlier.any() and not cheaper.any():
        return f"{head} exactly as costly as the tape at every measured depth ({_depths(d)})."
    if not costlier.any():
        where = _depths(d[cheaper]) if equal.any() else "every measured depth"
        return f"{head} cheaper than the tape at {where} ({values(cheaper)}{same})."
    if not cheaper.any():
        where = _depths(d[costlier]) if equal.any() else "every measured depth"
        return f"{head} costlier than the tape at {where} ({values(costlier)}{same})."
    lo_side, hi_side = d[cheaper], d[costlier]
    if lo_side.max() < hi_side.min():
        findings[f"{w}_first_costlier_depth"] = int(hi_side.min())
        return (f"{head} cheaper than the tape at {_depths(lo_side)} ({values(cheaper)}) and costlier from depth "
                f"{hi_side.min()} on ({values(costlier)}){same}, so the ratio crosses 1 between depths "
                f"{lo_side.max()} and {hi_side.min()}.")
    if hi_side.max() < lo_side.min():
        findings[f"{w}_first_cheaper_depth"] = int(lo_side.min())
        return (f"{head} costlier than the tape at {_depths(hi_side)} ({values(costlier)}) and cheaper from depth "
                f"{lo_side.min()} on ({values(cheaper)}){same}, so the ratio crosses 1 between depths "
                f"{hi_side.max()} and {lo_side.min()}.")
    return (f"{head} cheaper than the tape at {_depths(lo_side)} and costlier at {_depths(hi_side)}{same} (ratio "
            f"{fmt(v.min())} to {fmt(v.max())}): the ratio crosses 1 more than once.")

def shown_failures(table: pd.DataFrame) -> pd.Series:
    """The non-ok rows the report's own "Cells that did not finish" table lists: those naming their cell (kind,
    width, depth); ``report.build`` lists the others (a hand-edited row, say) by their cell id."""
    return (table["status"] != "ok") & table[["kind", "width", "depth"]].notna().all(axis=1)


def report(table: pd.DataFrame, meta: dict, out_dir) -> Report:
    widths = sorted(int(w) for w in table["width"].dropna().unique())  # (a hand-edited failure row may have none)
    fig, axes = subplots(1, len(widths))
    for ax, w in zip(axes[0], widths):
        for col, label, ls, kind in SERIES:
            s = _series(table, kind, w, col)
            if len(s):
                method = "symbolic[cse]" if kind == "symbolic" else "reverse[numpy]"
                ax.plot(s["depth"], s[col], label=label, **plot_kwargs(method, linestyle=ls))
        ax.set_yscale("log")
        ax.set_xlabel("depth (hidden layers)")
        ax.set_ylabel("size (nodes or scalar operations)")
        ax.set_title(f"width {w}, one sample, {meta.get('config', {}).get('activation', 'sigmoid')}")
    figure_legend(fig, axes[0][0], ncol=3)
    save(fig, out_dir / "expression_size.png")

    ratios = ratio_table(table)
    fig, axes = subplots()
    ax = axes[0][0]
    for w in widths:
        r = ratios[ratios["width"] == w]
        if len(r):
            ax.plot(r["depth"], r["ratio"], label=f"width {w}",
                    **plot_kwargs("symbolic[cse]", linestyle="-" if w == widths[0] else "--"))
    ax.axhline(1.0, color="#2c7bb6", linewidth=1, label="reverse tape (ratio 1)")
    ax.set_xlabel("depth (hidden layers)")
    ax.set_ylabel("CSE'd gradient ops / tape scalar ops (ratio)")
    ax.set_title("Is the CSE'd gradient program as cheap as the tape?")
    ax.legend()
    save(fig, out_dir / "cse_vs_tape.png")

    fig, axes = subplots(width=5.8)
    ax = axes[0][0]
    sym = table[(table["kind"] == "symbolic") & (table["status"] == "ok")].copy()
    stage_cols = [c for c in ("build_s", "diff_s", "cse_s") if c in sym]
    if stage_cols:
        sym["setup_s"] = sym[stage_cols].fillna(0).sum(axis=1)
    engines = sorted(set(sym["engine"])) if len(sym) else []
    for e in engines:
        for w in widths:
            g = sym[(sym["engine"] == e) & (sym["width"] == w)].sort_values("depth")
            if len(g) and "setup_s" in g:
                ax.plot(g["depth"], g["setup_s"], label=f"{e}, width {w}",
                        **plot_kwargs("symbolic[cse]" if e == "symengine" else "symbolic[no-cse]",
                                      linestyle="-" if w == widths[0] else "--"))
    ax.set_yscale("log")
    ax.set_xlabel("depth (hidden layers)")
    ax.set_ylabel("build + differentiate + CSE (s)")
    ax.set_title("Symbolic setup time by engine")
    if engines:
        ax.legend()
    save(fig, out_dir / "symbolic_time.png")

    growth = growth_table(table)
    findings: dict = {}
    bullets = []
    shapes: dict = {}
    for w in widths:
        g = growth[growth["width"] == w].set_index("metric") if len(growth) else growth
        for col in ("grad_tree_nodes", "grad_dag_nodes", "cse_all_ops", "tape_scalar_ops"):
            if col in g.index:
                # the fits over all depths (the growth table's reference columns; the text quotes the shapes)
                findings[f"w{w}_{col}_factor"] = float(g.loc[col, "fitted factor (all depths)"])
                findings[f"w{w}_{col}_degree"] = float(g.loc[col, "log-log slope (all depths)"])
                kind = "tape" if col.startswith("tape") else "symbolic"
                s = _series(table, kind, w, col)
                shapes[w, col] = d = describe_growth(s["depth"], s[col])
                findings[f"w{w}_{col}_shape"] = d.shape
                if d.last:
                    findings[f"w{w}_{col}_last_step_depths"] = [int(d.last[0]), int(d.last[1])]
                    findings[f"w{w}_{col}_last_step_factor"] = d.last[2]
                    findings[f"w{w}_{col}_last_step_increase"] = d.last[3]
                    findings[f"w{w}_{col}_first_step_factor"] = d.first[2]
                if d.increase is not None:
                    findings[f"w{w}_{col}_increase_per_layer"] = d.increase
        r = ratios[ratios["width"] == w]
        if len(r):
            findings[f"w{w}_ratio_min"] = float(r["ratio"].min())
            findings[f"w{w}_ratio_max"] = float(r["ratio"].max())
            findings[f"w{w}_ratio_at_max_depth"] = float(r["ratio"].iloc[-1])
            findings[f"w{w}_max_depth"] = int(r["depth"].iloc[-1])
        if all((w, c) in shapes for c in ("grad_tree_nodes", "cse_all_ops", "tape_scalar_ops")):
            bullets.append(
                f"Width {w}, from depth to depth: the tape grows "
                f"{shapes[w, 'tape_scalar_ops'].words('scalar operations')}; "
                f"the gradient's expression tree {shapes[w, 'grad_tree_nodes'].words()}; the CSE'd program of all "
                f"derivatives {shapes[w, 'cse_all_ops'].words('operations')}.")
        if f"w{w}_ratio_min" in findings:
            bullets.append(
                f"Width {w}: CSE'd ops / tape ops lies between **{fmt(findings[f'w{w}_ratio_min'])}** and "
                f"**{fmt(findings[f'w{w}_ratio_max'])}**; at depth {findings[f'w{w}_max_depth']} it is "
                f"**{fmt(findings[f'w{w}_ratio_at_max_depth'])}**.")
    budget = table[(table["kind"] == "symbolic") & (table["status"] == "budget")]
    tb = meta.get("config", {}).get("time_budget_s")
    for (e, w), g in budget.groupby(["engine", "width"]):
        d = int(g["depth"].min())
        findings[f"{e}_w{int(w)}_budget_depth"] = d
        bullets.append(f"{e}, width {int(w)}: the budget ({tb} s, or the node budget) stopped symbolic "
                       f"differentiation at depth **{d}**.")
    if ratios.empty:
        verdict = "No depth has both a symbolic and a tape measurement, so the comparison cannot be made."
    else:
        hi = float(ratios["ratio"].max())
        lo = float(ratios["ratio"].min())
        findings["ratio_min"], findings["ratio_max"] = lo, hi
        trend = ratio_trend(ratios)
        findings["ratio_trend"] = trend
        # the factor per layer at the deepest step both were measured over (the factors fall with depth: a fit over
        # all depths would compare averages of different spans)
        stepped = [w for w in widths if (w, "grad_tree_nodes") in shapes and (w, "cse_all_ops") in shapes
                   and shapes[w, "grad_tree_nodes"].last and shapes[w, "cse_all_ops"].last
                   and shapes[w, "grad_tree_nodes"].last[:2] == shapes[w, "cse_all_ops"].last[:2]]
        shrinks = [w for w in stepped if shapes[w, "cse_all_ops"].last[2] < shapes[w, "grad_tree_nodes"].last[2]]
        if stepped and len(shrinks) == len(stepped):
            cse = ("CSE slows the growth of the tree (factor per layer at the deepest step measured: " + "; ".join(
                f"width {w}, depth {int(shapes[w, 'grad_tree_nodes'].last[0])} to "
                f"{int(shapes[w, 'grad_tree_nodes'].last[1])}: tree {fmt(shapes[w, 'grad_tree_nodes'].last[2])}, "
                f"CSE'd program {fmt(shapes[w, 'cse_all_ops'].last[2])}" for w in stepped) + ")")
        elif stepped:
            cse = "CSE does not slow the tree's growth per layer at every width (factors below)"
        else:
            cse = "No growth per layer could be read (fewer than two depths)"
        trend_text = {"widens": "the ratio rises with depth at every width",
                      "narrows": "the ratio falls with depth at every width",
                      "flat": "the ratio does not change with depth",
                      "mixed": "the ratio does not change monotonically with depth",
                      "single": "only one depth was measured per width"}[trend]
        clauses = [cheaper_clause(ratios[ratios["width"] == w], w, findings) for w in widths
                   if (ratios["width"] == w).any()]
        if lo > 1:
            lead = "CSE does not make symbolic differentiation as cheap as reverse mode at any measured depth."
        elif hi < 1:
            lead = "The CSE'd gradient needs fewer scalar operations than the tape at every measured depth."
        elif lo < 1 < hi:
            lead = "The CSE'd gradient is cheaper than the tape (fewer scalar operations) at some measured depths " \
                   "and costlier at others."
        else:
            lead = "The CSE'd gradient is never costlier than the tape at a measured depth." if hi <= 1 else \
                "The CSE'd gradient is never cheaper than the tape at a measured depth."
        verdict = f"{cse}. {lead} " + " ".join(clauses) + f" Across depths, {trend_text}."
        if hi > 1:
            verdict += (" (A likely reason where it is costlier, not measured here: differentiating each parameter's "
                        "expression separately repeats backward chain products that the tape computes once, and CSE "
                        "finds only part of that sharing.)")
    ok_sym = table[(table["kind"] == "symbolic") & (table["status"] == "ok")]
    cols = ["engine", "width", "depth", "n_params"] + [c for c in SYMBOLIC_METRICS if c in ok_sym]
    for c in ("build_s", "diff_s", "cse_s"):
        if c in ok_sym:
            cols.append(c)
    blocks = [
        Heading("What the data show"),
        Para(verdict),
        Bullets(bullets),
        Figure("expression_size.png", "Expression and tape size against depth (log scale): symbolic tree, DAG, "
                                      "CSE'd program, and the reverse tape's scalar operations."),
        Figure("symbolic_time.png", "Seconds to build, differentiate and CSE the symbolic gradient, per engine "
                                    "(log scale)."),
        Figure("cse_vs_tape.png", "Scalar operations of the CSE'd all-derivatives program divided by those of "
                                  "one reverse-mode gradient (forward + backward)."),
        Table(growth, "Growth with depth, from successive measured depths: its shape (linear: the same increase "
                      "every layer; factor falls: the factor per layer falls with depth), and the factor and the "
                      "increase per layer over the deepest step. For reference only, a least-squares factor "
                      "(y ~ C factor^depth) and log-log slope over all depths: summaries of curves of another shape, "
                      "which depend on the depths fitted and misstate the growth beyond them"),
        Table(ratios, "CSE'd ops against the tape, per depth"),
        *([Table(ok_sym[cols].sort_values(["engine", "width", "depth"]), "Symbolic metrics")] if len(ok_sym) else []),
        Para(f"Sizes are {primary_engine(table)}'s; figures and fits use them. Data enter as symbols "
             f"(symbolic_data={meta.get('config', {}).get('symbolic_inputs')}), so the expressions hold for any "
             "input, as the tape does."),
        Para("Definitions: *tree nodes* count every shared subtree at every use (a memoised count over the DAG, "
             "never printed); *DAG nodes* count distinct subexpressions; *ops* are SymPy's `count_ops`; the "
             "tape's scalar operations are counted from its records by the rules in `diffsuite/study/tape_ops.py` "
             "(a matmul (m, k) @ (k, n) is m n (2k - 1) operations)."),
    ]
    bad = table[shown_failures(table)]
    if len(bad):
        blocks.append(Table(bad[["engine", "width", "depth", "kind", "status", "message"]],
                            "Cells that did not finish"))
    return Report(TITLE, QUESTION, blocks, findings)
