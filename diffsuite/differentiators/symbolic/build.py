"""The symbolic pipeline's stages: build the loss expression, differentiate it, measure it, CSE and generate code.

``setup(problem_builder, options, budget)`` runs them under a ``Budget`` and returns a plain,
picklable ``dict`` (source code, symbol names, stats), so that it can run in a worker process.
``Symbolic`` (``__init__.py``) and ``expression_metrics`` call it; ``diffsuite.reference`` uses
``build_*`` and ``differentiate``.
"""
from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

import numpy as np
import sympy as sp

from ...budget import Budget
from ...objective import Objective
from ..base import check_result, scalar_check
from .codegen import generate_source
from .dagdiff import diff_dag, post_order
from .metrics import count_ops, cse_size, dag_nodes, tree_nodes
from .namespace import SYMPY, SymArray, symbol_array, wrap
from .rewrite import stable_forms
from .symengine_bridge import diff as symengine_diff
from .symengine_bridge import from_symengine, load_symengine, to_symengine

ENGINES = ("sympy", "symengine")
METRIC_KEYS = ("loss_tree_nodes", "loss_dag_nodes", "grad_tree_nodes", "grad_dag_nodes", "grad_count_ops",
               "cse_one_nodes", "cse_one_ops", "cse_all_nodes", "cse_all_ops")


@dataclass
class Problem:
    """A built loss: the expression, the parameter symbols (theta's flat order) and the symbolic data."""

    loss: sp.Expr
    params: list[sp.Symbol]
    data: list[sp.Symbol] = field(default_factory=list)


def _flat_symbols(arrays) -> list[sp.Symbol]:
    return [s for a in arrays for s in np.asarray(a, dtype=object).reshape(-1)]


def _scalar_expr(out: Any, who: str) -> sp.Expr:
    if isinstance(out, SymArray):
        scalar_check(out.shape, who)
        return out.expr()
    if isinstance(out, sp.Basic):
        return out
    scalar_check(np.shape(out), who)
    return wrap(SYMPY.asarray(out)).expr()  # a constant: the gradient is zero


#: the budget of the build in progress (``setup`` sets it): the namespace models see then checks it as it goes
_BUILDING: ContextVar[Budget | None] = ContextVar("diffsuite_symbolic_build_budget", default=None)


class _BudgetedNamespace:
    """SYMPY, checking the node budget around every namespace call: a network too large for the budget stops
    while its loss is being built, not after.

    Before the call: the printed-tree size of its arguments. SymPy's automatic evaluation (``exp``'s and
    ``Pow``'s ``eval``, assumption queries such as ``is_positive``) walks its arguments as trees, not as DAGs,
    and a deep network's hidden units are shared, so their trees grow exponentially with depth while the
    distinct nodes grow linearly: 10 hidden layers of width 10 are ~10^4 distinct nodes but ~10^13 tree nodes,
    and building their loss ran for hours under a budget of 10^6 nodes. After the call: the distinct nodes
    built so far, and the time budget.
    """

    def __init__(self, budget: Budget):
        self._budget, self._seen, self._tree = budget, set(), {}

    def __getattr__(self, name: str):
        fn = getattr(SYMPY, name)
        if not callable(fn):
            return fn

        def checked(*args, **kwargs):
            if self._budget.nodes is not None:
                walked = tree_nodes(_expressions(list(args) + list(kwargs.values())), self._tree)
                self._budget.check_nodes(walked, f"the arguments of xp.{name}, as printed trees (SymPy's "
                                                 "evaluation walks them)")
            out = fn(*args, **kwargs)
            n = dag_nodes(_expressions([out]), self._seen)
            self._budget.check_nodes(n, "the loss built so far")
            self._budget.check_time()
            return out
        return checked


def _expressions(values: list) -> list[sp.Basic]:
    """The SymPy expressions in ``values`` (arrays of them, single ones; other arguments are skipped)."""
    out = []
    for v in values:
        if isinstance(v, (list, tuple)):
            out += _expressions(list(v))
        elif isinstance(v, (np.ndarray, sp.Basic)):
            out += [e for e in np.asarray(v, dtype=object).reshape(-1) if isinstance(e, sp.Basic)]
    return out


def _namespace():
    budget = _BUILDING.get()
    return SYMPY if budget is None or (budget.nodes is None and budget.time_s is None) else _BudgetedNamespace(budget)


def build_budgeted(build: Callable[[], Any], budget: Budget) -> Any:
    """``build()`` with ``budget`` checked around every namespace call (``_BudgetedNamespace``): a function too large
    for the node budget is refused while it is being built. Every pipeline that builds under a budget (``setup``,
    the higher-order methods, the reference Hessian) goes through here."""
    token = _BUILDING.set(budget)
    try:
        return build()
    finally:
        _BUILDING.reset(token)


def build_objective(objective: Objective, *, symbolic_data: bool = False, dtype=np.float64) -> tuple[Problem, list]:
    """The loss of ``objective`` with one real symbol per parameter (named like ``W1[0, 3]``).

    Data enter as exact constants (``dtype``-rounded first), or, with ``symbolic_data``, as symbols
    ``x[b, i]`` and ``y[b, j]`` (cross_entropy's one-hot targets stay constants). Returns the problem
    and the data values (in ``problem.data`` order).
    """
    params = {name: symbol_array(name, shape) for name, shape in objective.model.shapes.items()}
    inputs, targets = objective.data(dtype)
    values: list = []
    data_symbols: list = []
    if symbolic_data:
        x = symbol_array("x", inputs.shape)
        data_symbols += _flat_symbols([x])
        values += inputs.reshape(-1).tolist()
        if objective.loss.name != "cross_entropy":
            y = symbol_array("y", targets.shape)
            data_symbols += _flat_symbols([y])
            values += targets.reshape(-1).tolist()
            targets = y
        inputs = x
    out = objective.evaluate(_namespace(), params, SYMPY.asarray(inputs), targets)
    return Problem(_scalar_expr(out, objective.describe()), _flat_symbols(params.values()), data_symbols), values


def build_function(f: Callable, leaves: list[np.ndarray], rebuild: Callable, args: tuple,
                   keys: list | None = None) -> tuple[Problem, list]:
    """``f(xp, theta, *args)`` with theta's leaves as symbols (``theta[i]``, or ``theta['W'][i]`` for a dict).

    Floating-point arguments (float arrays, floats) become symbols ``arg{k}[...]`` too, so one build
    serves every call with the same shapes; others (ints, strings, ...) are passed as they are.
    Symbol names are injective: parameters start with ``theta``, data with ``arg``; a leaf is named by the repr
    of its path label (``diffsuite.pytree``: a top-level dict's key as ``str(key)``, so ``1`` and ``'1'`` both
    label ``'1'``), and where labels coincide every name gets its leaf's position too (``theta[0:'1']``). (The
    kernel cache tells such thetas apart by their keys' types: ``symbolic.tree_key``.)
    """
    out, params, data_symbols, values = call_on_symbols(f, leaves, rebuild, args, keys)
    return Problem(_scalar_expr(out, getattr(f, "__name__", "f")), params, data_symbols), values


def call_on_symbols(f: Callable, leaves: list[np.ndarray], rebuild: Callable, args: tuple,
                    keys: list | None = None) -> tuple[Any, list, list, list]:
    """``f`` on symbols, as ``build_function`` describes: (its output as returned, the parameter symbols in
    theta's flat order, the data symbols, the data values). The output may be any shape (Jacobians)."""
    # keys: a printable path per leaf (diffsuite.pytree). Symbols are named ``theta[<repr(path)>]`` so that no
    # user key can collide with a generated data symbol (``arg0[0]``); paths that print alike (keys 1 and '1')
    # get their leaf's position as well, so the names stay injective.
    names = ["theta"] if keys is None or list(keys) == ["theta"] else [f"theta[{k!r}]" for k in keys]
    if len(set(names)) != len(names):
        names = [f"theta[{i}:{k!r}]" for i, k in enumerate(keys)]
    leaf_syms = [symbol_array(n, np.shape(leaf)) for n, leaf in zip(names, leaves)]
    sym_args, data_symbols, values = [], [], []
    for k, a in enumerate(args):
        if is_float_data(a):
            arr = np.asarray(a, dtype=np.float64)
            s = symbol_array(f"arg{k}", arr.shape)
            sym_args.append(s)
            data_symbols += _flat_symbols([s])
            values += arr.reshape(-1).tolist()
        else:
            sym_args.append(a)
    out = check_result(f(_namespace(), rebuild(leaf_syms), *sym_args), getattr(f, "__name__", "f"))
    return out, _flat_symbols(leaf_syms), data_symbols, values


def is_float_data(a: Any) -> bool:
    """Floats and float arrays are data that can become symbols; ints, bools and other objects are not."""
    if isinstance(a, (float, np.floating)):
        return True
    return isinstance(a, np.ndarray) and a.dtype.kind == "f"


def differentiate(problem: Problem, engine: str, budget: Budget) -> tuple[Any, list[Any]]:
    """(loss, [d loss / d param for each param]) in ``engine``'s expression type; the DAG is budgeted."""
    seen: set = set()
    n = len(problem.params)
    if engine == "sympy":
        # sympy.diff walks every subexpression as a tree (exponential in depth); diff_dag gives the identical
        # expression with one rule application per distinct subexpression (see dagdiff). SymPy's sign queries
        # (asked once per subexpression, then cached on it) still walk the loss's printed tree: that is checked.
        if budget.nodes is not None:
            budget.check_nodes(tree_nodes([problem.loss]), "the loss as a printed tree (SymPy's sign queries walk "
                                                           "it while differentiating; engine='symengine' does not)")
        order = post_order(problem.loss)
        loss, wrt, diff = problem.loss, problem.params, partial(diff_dag, order=order)
    else:
        se = load_symengine()
        loss = to_symengine(problem.loss)
        wrt = [se.Symbol(p.name) for p in problem.params]
        diff = symengine_diff  # tanh' as cosh^-2, as the SymPy engine's Tanh (SymEngine's 1 - tanh^2 is 0 at u = 20)
    grads = []
    for i, p in enumerate(wrt):
        g = diff(loss, p)
        grads.append(g)
        budget.check_nodes(dag_nodes([g], seen), f"the derivatives of {i + 1} of {n} parameters")
        budget.note(f"differentiated {i + 1} of {n} parameters")
    unevaluated = sorted({type(node.args[0]).__name__ for node in seen if type(node).__name__ == "Derivative"})
    if unevaluated:
        raise NotImplementedError(f"{engine} left unevaluated derivatives of {', '.join(unevaluated)}: it cannot "
                                  "differentiate that function"
                                  + (". Use engine='sympy'." if engine == "symengine" else "."))
    return loss, grads


def _cse(exprs: list, engine: str):
    if engine == "symengine":
        replacements, reduced = load_symengine().cse(exprs)
        # SymEngine's CSE also names shared conditions (x12 = a >= b) and leaves the symbol as the Piecewise
        # condition; SymPy would read Piecewise((u, x12), ...) as Eq(x12, True) and fail on it. Such a symbol
        # is put back as its relation: seeding the shared memo makes every use convert to the relation itself.
        memo: dict = {}
        kept = []
        for s, r in replacements:
            value = from_symengine(r, memo)
            if isinstance(value, sp.logic.boolalg.Boolean):
                memo[s] = value
            else:
                kept.append((from_symengine(s, memo), value))
        return kept, [from_symengine(r, memo) for r in reduced]
    return sp.cse(exprs, symbols=sp.numbered_symbols("_cse"), order="none")


@dataclass(frozen=True)
class SetupOptions:
    engine: str = "sympy"
    cse: bool = True
    metrics: bool = True
    compile: bool = True
    count_ops_max_nodes: int | None = 20_000


def setup(build: Callable[[], tuple[Problem, list]], opts: SetupOptions, budget: Budget) -> dict:
    """Build, differentiate, measure, CSE and generate code, each stage timed; a picklable dict comes back.

    Keys: ``source`` (the kernel's code, or None; its arguments are the parameters then the data symbols),
    ``n_params``, ``data_values``, ``stats`` (see ``Symbolic``; every metric key is present, None when
    not measured).
    """
    stats: dict[str, Any] = {"engine": opts.engine, "cse": opts.cse, **dict.fromkeys(METRIC_KEYS),
                             "metrics_s": 0.0}
    clock = time.perf_counter
    budget.enter("build")
    t = clock()
    problem, data_values = build_budgeted(build, budget)
    problem = Problem(stable_forms(problem.loss), problem.params, problem.data)  # (rewrite.py)
    stats["build_s"] = clock() - t
    stats["n_params"] = len(problem.params)
    loss_dag = dag_nodes([problem.loss])
    budget.check_nodes(loss_dag, "the loss")
    stats.update(loss_dag_nodes=loss_dag, loss_tree_nodes=tree_nodes([problem.loss]))

    budget.enter("differentiate")
    t = clock()
    loss, grads = differentiate(problem, opts.engine, budget)
    stats["diff_s"] = clock() - t

    if opts.metrics:
        budget.enter("metrics")
        t = clock()
        stats["grad_tree_nodes"] = tree_nodes(grads)
        stats["grad_dag_nodes"] = dag_nodes(grads)
        limit = opts.count_ops_max_nodes
        stats["grad_count_ops"] = (count_ops(grads) if limit is None or stats["grad_tree_nodes"] <= limit
                                   else None)
        if grads:
            budget.note("CSE of the first derivative")
            stats["cse_one_nodes"], stats["cse_one_ops"] = cse_size(*_cse(grads[:1], opts.engine))
        else:
            stats["cse_one_nodes"] = stats["cse_one_ops"] = 0
        stats["metrics_s"] = clock() - t

    outputs = [loss] + grads
    replacements: list = []
    stats["cse_s"] = 0.0
    stats["cse_all_nodes"] = stats["cse_all_ops"] = None
    if opts.cse:
        budget.enter("cse", f"joint CSE of the loss and {len(grads)} derivatives")
        t = clock()
        replacements, outputs = _cse(outputs, opts.engine)
        stats["cse_s"] = clock() - t
        if opts.metrics:
            stats["cse_all_nodes"], stats["cse_all_ops"] = cse_size(replacements, outputs)

    source = None
    stats["compile_s"] = 0.0
    if opts.compile:
        budget.enter("compile", "generating code")
        t = clock()
        names = [p.name for p in problem.params] + [d.name for d in problem.data]
        source = generate_source(names, replacements, [from_symengine(o) for o in outputs])
        stats["compile_s"] = clock() - t
        stats["kernel_lines"] = source.count("\n")
    return {"source": source, "n_params": len(problem.params), "data_values": data_values, "stats": stats}
