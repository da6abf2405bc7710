"""Second derivatives and Jacobians, symbolically: the same expressions differentiated again, CSE'd, compiled.

``hessian(f)``: the loss is built and differentiated once per parameter (as for the gradient), then each
derivative again by every parameter at or after its own (the Hessian is symmetric: n(n+1)/2 second
derivatives, mirrored), every stage under the node and time budgets; the loss, gradient and Hessian
entries are CSE'd jointly and compiled into one straight-line kernel. ``jacobian(f)`` of a
vector-valued ``f``: every output differentiated by every parameter, the same way. ``hvp``, ``jvp`` and
``vjp`` contract the compiled Hessian or Jacobian (a symbolic HVP pays for the whole Hessian: its cost is
the expression swell of second derivatives, which the second_order study measures).

Kernels are cached per signature (theta's structure and shapes, the shapes of float arguments), as for
``grad``. Stats: ``hessian_dag_nodes`` (distinct subexpressions of all second derivatives),
``hessian_tree_nodes``, ``hessian_cse_nodes`` (the joint CSE's size), ``grad_dag_nodes``, ``n_second``
(second derivatives taken), the stage timings ``build_s, diff_s, diff2_s, cse_s, compile_s`` and their sum
``setup_s``, and ``cached`` (True when the call reused a cached kernel: the stage times are then its setup's).
A cache key holds theta's structure (containers' types, keys with their types, leaf shapes), the shapes of float
arguments and the *values* of the others (a list of floats by its entries, never by ``id()``); an argument that is
not a plain value (a set, a user's object: ``symbolic._value_key``) is built afresh at every call.
"""
from __future__ import annotations

import time
from functools import partial
from typing import Any, Callable

import numpy as np

from ...budget import Budget, run_budgeted
from ...objective import Objective
from ...structure import Structure, output_value
from ..base import WithStats, no_extra_arguments
from .build import SetupOptions, _cse, build_budgeted, build_objective, call_on_symbols, is_float_data
from .codegen import Kernel, generate_source
from .dagdiff import diff_dag
from .metrics import cse_size, dag_nodes, tree_nodes
from .namespace import SYMPY, SymArray, wrap
from .rewrite import stable_forms
from .symengine_bridge import diff as symengine_diff
from .symengine_bridge import from_symengine, load_symengine, to_symengine


def _engine_fns(engine: str):
    if engine == "sympy":
        return (lambda e: e), diff_dag, (lambda p: p)  # sympy.diff's expressions, without its tree walks
    se = load_symengine()
    return to_symengine, symengine_diff, (lambda p: se.Symbol(p.name))


def _build_outputs(f: Callable, structure: Structure, args: tuple) -> tuple[list, list, list, list, tuple]:
    """f on symbols: (output expressions flat, parameter symbols, data symbols, data values, output shape)."""
    out, params, data, values = call_on_symbols(f, structure.leaves, structure.rebuild, args, structure.names)
    arr = out if isinstance(out, SymArray) else wrap(SYMPY.asarray(out))
    return list(np.asarray(arr, dtype=object).reshape(-1)), params, data, values, tuple(arr.shape)


def _setup(build: Callable, opts: SetupOptions, budget: Budget, second: bool) -> dict:
    """Build, differentiate (twice if ``second``), CSE and compile under ``budget``; a picklable dict comes back.

    ``build() -> (output expressions, parameter symbols, data symbols, data values, output shape)``. The
    kernel returns the outputs, then d out_k / d theta_i (k-major), then (if ``second``, for one output) the
    upper triangle of the Hessian, row-major.
    """
    clock, stats = time.perf_counter, {"engine": opts.engine, "cse": opts.cse}
    budget.enter("build")
    t = clock()
    outs, params, data, values, shape = build_budgeted(build, budget)  # every xp call checks the budgets
    outs = [stable_forms(o) for o in outs]  # softmax and logsumexp in forms that do not cancel (rewrite.py)
    stats["build_s"] = clock() - t
    budget.check_nodes(dag_nodes(outs), "the function's expressions")
    if opts.engine == "sympy" and budget.nodes is not None:  # (as build.differentiate: SymPy's sign queries walk it)
        budget.check_nodes(tree_nodes(outs), "the function's expressions as printed trees (SymPy's sign queries "
                                             "walk them while differentiating; engine='symengine' does not)")
    conv, diff, sym = _engine_fns(opts.engine)
    wrt = [sym(p) for p in params]
    n = len(params)
    budget.enter("differentiate")
    t = clock()
    seen: set = set()
    exprs = [conv(o) for o in outs]
    firsts = []
    for k, o in enumerate(exprs):
        for i, p in enumerate(wrt):
            firsts.append(diff(o, p))
            budget.check_nodes(dag_nodes(firsts[-1:], seen), f"the first derivatives (output {k}, parameter {i})")
    stats["diff_s"] = clock() - t
    stats["grad_dag_nodes"] = dag_nodes(firsts)
    stats["grad_tree_nodes"] = tree_nodes(firsts)
    seconds = []
    if second:
        budget.enter("differentiate again", f"{n * (n + 1) // 2} second derivatives")
        t = clock()
        seen = set()
        for i in range(n):
            for j in range(i, n):
                seconds.append(diff(firsts[i], wrt[j]))
                budget.check_nodes(dag_nodes(seconds[-1:], seen), f"the second derivatives (row {i} of {n})")
            budget.note(f"Hessian row {i + 1} of {n}")
        stats["diff2_s"] = clock() - t
        stats["hessian_dag_nodes"] = dag_nodes(seconds)
        stats["hessian_tree_nodes"] = tree_nodes(seconds)
        stats["n_second"] = len(seconds)
    unevaluated = sorted({type(e.args[0]).__name__ for e in _walk(firsts + seconds) if type(e).__name__ == "Derivative"})
    if unevaluated:
        raise NotImplementedError(f"{opts.engine} left unevaluated derivatives of {', '.join(unevaluated)}: it cannot "
                                  "differentiate that function twice")
    outputs = exprs + firsts + seconds
    replacements: list = []
    stats["cse_s"] = 0.0
    if opts.cse:
        budget.enter("cse", f"joint CSE of {len(outputs)} expressions")
        t = clock()
        replacements, outputs = _cse(outputs, opts.engine)
        stats["cse_s"] = clock() - t
        stats["hessian_cse_nodes" if second else "jacobian_cse_nodes"] = cse_size(replacements, outputs)[0]
    if not opts.compile:
        return {"source": None, "n_params": n, "data_values": values, "shape": shape, "n_out": len(exprs),
                "stats": stats}
    budget.enter("compile", "generating code")
    t = clock()
    names = [p.name for p in params] + [d.name for d in data]
    source = generate_source(names, replacements, [from_symengine(o) for o in outputs])
    stats["compile_s"] = clock() - t
    return {"source": source, "n_params": n, "data_values": values, "shape": shape, "n_out": len(exprs),
            "stats": stats}


#: the stage times that ``setup_s`` sums
SETUP_STAGES = ("build_s", "diff_s", "diff2_s", "cse_s", "compile_s")


def _walk(exprs):
    seen, stack = set(), list(exprs)
    while stack:
        e = stack.pop()
        if e not in seen:
            seen.add(e)
            yield e
            stack.extend(e.args)


class _Compiled:
    """One compiled kernel per signature of (theta, args); calls return (outputs, Jacobian, Hessian or None)."""

    def __init__(self, d, f: Callable, second: bool):
        self.d, self.f, self.second, self.cache = d, f, second, {}

    def __call__(self, theta: Any, args: tuple, stats: dict) -> tuple[Structure, np.ndarray, np.ndarray, Any]:
        from . import signature_key, tree_key
        f = self.f
        if isinstance(f, Objective):
            no_extra_arguments(f, args)
            structure = Structure.blocks(f.check_theta(theta), [spec for _, spec in f.model.layout.items()])
            key = ("objective",)

            def build():
                problem, values = build_objective(f)
                return [problem.loss], problem.params, problem.data, values, ()
        else:
            structure = Structure.of(theta)
            # (None: an argument with no value key, e.g. a set, is built afresh at every call and not cached)
            key = signature_key(tree_key(theta), tuple(leaf.shape for leaf in structure.leaves), args=args)
            build = partial(_build_outputs, f, structure, args)
        if key is None or key not in self.cache:
            opts = SetupOptions(engine=self.d.engine, cse=self.d.cse, metrics=True, compile=True)
            result = run_budgeted(partial(_setup, build, opts, second=self.second),
                                  Budget(time_s=self.d.time_budget_s, nodes=self.d.node_budget))
            result["stats"]["setup_s"] = sum(result["stats"].get(k) or 0.0 for k in SETUP_STAGES)
            built = (Kernel(result["source"]), result)
            if key is not None:
                self.cache[key] = built
            cached = False
        else:
            built, cached = self.cache[key], True
        kernel, result = built
        values = structure.flat().tolist() + list(result["data_values"] if isinstance(f, Objective) else
                                                   [v for a in args if is_float_data(a)
                                                    for v in np.asarray(a, dtype=np.float64).reshape(-1).tolist()])
        first, rest = kernel(values)
        flat = np.array([first] + list(rest), dtype=np.float64)
        m, n = result["n_out"], result["n_params"]
        outputs, J = flat[:m].reshape(result["shape"]), flat[m:m + m * n].reshape(result["shape"] + (n,))
        H = None
        if self.second:
            H = np.zeros((n, n))
            H[np.triu_indices(n)] = flat[m + m * n:]
            H = H + np.triu(H, 1).T
        stats.update(result["stats"])
        stats["cached"] = cached  # True: this call reused a kernel; the stage times are those of its setup
        return structure, outputs, J, H


def hessian(d, f: Callable) -> WithStats:
    compiled = _Compiled(d, f, second=True)

    def hessian_fn(stats, theta, *args):
        structure, value, _, H = compiled(theta, args, stats)
        if np.size(value) != 1:
            raise TypeError(f"a Hessian needs a scalar function; f returned shape {np.shape(value)}")
        return structure.hessian(H)

    return WithStats(hessian_fn, "hessian", d.label)


def hvp(d, f: Callable) -> WithStats:
    compiled = _Compiled(d, f, second=True)

    def hvp_fn(stats, theta, v, *args):
        structure, value, _, H = compiled(theta, args, stats)
        if np.size(value) != 1:  # (H holds the first output's second derivatives only: never a silent H v)
            raise TypeError(f"a Hessian-vector product needs a scalar function; f returned shape {np.shape(value)}")
        stats["note"] = "the whole Hessian is compiled; H v is a product with it"
        return structure.tree(H @ structure.flatten_like(v, "v"))

    return WithStats(hvp_fn, "hvp", d.label)


def jacobian(d, f: Callable) -> WithStats:
    compiled = _Compiled(d, f, second=False)

    def jacobian_fn(stats, theta, *args):
        structure, value, J, _ = compiled(theta, args, stats)
        return structure.jacobian(J, np.shape(value))

    return WithStats(jacobian_fn, "jacobian", d.label)


def jvp(d, f: Callable) -> WithStats:
    compiled = _Compiled(d, f, second=False)

    def jvp_fn(stats, theta, tangent, *args):
        structure, value, J, _ = compiled(theta, args, stats)
        return output_value(value), output_value(J @ structure.flatten_like(tangent, "tangent"))

    return WithStats(jvp_fn, "jvp", d.label)


def vjp(d, f: Callable) -> WithStats:
    compiled = _Compiled(d, f, second=False)

    def vjp_fn(stats, theta, *args):
        structure, value, J, _ = compiled(theta, args, stats)

        def pullback(u):
            u = np.asarray(u, dtype=np.float64)
            if u.shape != np.shape(value):
                raise ValueError(f"the cotangent u must be shaped like f's output {np.shape(value)}; got {u.shape}")
            return structure.tree(np.tensordot(u, J, axes=u.ndim))

        return output_value(value), pullback

    return WithStats(vjp_fn, "vjp", d.label)


def hessian_metrics(objective: Objective, *, engine: str = "symengine", symbolic_data: bool = True,
                    node_budget: int | None = 1_000_000, time_budget_s: float | None = 60.0) -> dict:
    """The symbolic Hessian's sizes and stage times (see the module docstring), without compiling; budgets apply.

    With ``symbolic_data`` the data are symbols (the expression of any input, as ``expression_metrics``)."""

    def build():
        problem, values = build_objective(objective, symbolic_data=symbolic_data)
        return [problem.loss], problem.params, problem.data, values, ()

    opts = SetupOptions(engine=engine, cse=True, metrics=True, compile=False)
    return run_budgeted(partial(_setup, build, opts, second=True),
                        Budget(time_s=time_budget_s, nodes=node_budget))["stats"]
