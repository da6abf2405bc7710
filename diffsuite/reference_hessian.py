"""The exact Hessian and Hessian-vector product at a binary point: the ground truth of second derivatives.

``reference_hessian(target, theta, *args)`` builds the loss exactly as ``reference_gradient`` does (every
constant exact, data as the rationals of their binary values), differentiates it twice (SymPy, or SymEngine:
``engine``; the n(n+1)/2 second derivatives of the upper triangle, mirrored), evaluates every entry with
mpmath at ``dps`` (>= 50) significant digits and rounds each to the nearest float64. ``reference_hvp``
forms H v in mpmath before rounding (one rounding per entry, not n). Results have the shapes of the
differentiators' ``hessian``/``hvp`` (docs/higher_order.md). Kinks follow the conventions: at an exact tie
max routes to its first argument, and the second derivative of a kink function is 0 (relu'' = 0, also at 0).

Problems must be small: n^2 second derivatives of an expression that already swells with depth. Node and
time budgets apply (``BudgetExceeded``), as for the symbolic differentiator.
"""
from __future__ import annotations

import importlib.util
import time
from functools import partial
from typing import Any, Callable

import mpmath
import numpy as np

from .budget import Budget, run_budgeted
from .differentiators.symbolic.build import (build_budgeted, build_function, build_objective, differentiate,
                                             is_float_data)
from .differentiators.symbolic.codegen import evaluate_mp
from .differentiators.symbolic.dagdiff import diff_dag
from .differentiators.symbolic.metrics import dag_nodes
from .differentiators.symbolic.symengine_bridge import diff as symengine_diff
from .differentiators.symbolic.symengine_bridge import from_symengine, load_symengine
from .objective import Objective
from .structure import Structure
from .reference import to_float64


def _second_derivatives(grads: list, params: list, engine: str, budget: Budget) -> list:
    """The upper triangle (row-major) of the Hessian, from the first derivatives, in ``engine``'s type."""
    if engine == "sympy":
        diff, wrt = diff_dag, params  # sympy.diff's expressions, without its tree walks
    else:
        se = load_symengine()
        # the bridge's diff: it writes out the derivatives of the functions that cross as opaque (tanh, softplus, ...)
        diff, wrt = symengine_diff, [se.Symbol(p.name) for p in params]  # (the first derivatives are SymEngine's already)
    n, seen, out = len(params), set(), []
    for i in range(n):
        for j in range(i, n):
            out.append(diff(grads[i], wrt[j]))
            budget.check_nodes(dag_nodes(out[-1:], seen), f"the second derivatives (row {i + 1} of {n})")
        budget.note(f"Hessian row {i + 1} of {n}")
    return out


def _symbolic_engine(engine: str) -> str:
    """Which library differentiates twice: ``auto`` is SymEngine where installed (faster), else SymPy."""
    if engine == "auto":
        return "symengine" if importlib.util.find_spec("symengine") is not None else "sympy"
    if engine not in ("sympy", "symengine"):
        raise ValueError(f"engine must be 'auto', 'sympy' or 'symengine'; got {engine!r}")
    return engine


def reference_hessian_mp(target: Objective | Callable, theta: Any, *args: Any, dps: int = 50, engine: str = "auto",
                         node_budget: int | None = 1_000_000, time_budget_s: float | None = 120.0):
    """(value, H, stats, structure): the exact value and Hessian (an n x n object array of mpf) at ``dps``
    digits, unrounded; ``structure`` is theta's (``diffsuite.structure.Structure``)."""
    if not (isinstance(dps, int) and dps >= 50):
        raise ValueError(f"the reference needs dps >= 50 significant digits (an int); got {dps!r}")
    engine = _symbolic_engine(engine)
    if isinstance(target, Objective):
        structure = Structure.of(target.check_theta(theta))
        build = partial(build_objective, target)
    elif callable(target):
        structure = Structure.of(theta)
        args = tuple(np.asarray(a, dtype=np.float64) if is_float_data(a) else a for a in args)
        build = partial(build_function, target, structure.leaves, structure.rebuild, args, structure.names)
    else:
        raise TypeError(f"reference_hessian needs an Objective or a function f(xp, theta, *args); got "
                        f"{type(target).__name__}")
    theta_values = structure.flat().tolist()

    def work(budget: Budget):
        clock, stats = time.perf_counter, {}
        budget.enter("build")
        t = clock()
        problem, data_values = build_budgeted(build, budget)  # every xp call checks the budgets, as for gradients
        budget.check_nodes(dag_nodes([problem.loss]), "the loss")
        stats["build_s"] = clock() - t
        budget.enter("differentiate")
        t = clock()
        _, grads = differentiate(problem, engine, budget)
        budget.enter("differentiate again", f"{len(grads) * (len(grads) + 1) // 2} second derivatives")
        upper = _second_derivatives(grads, problem.params, engine, budget)
        if engine == "symengine":
            memo: dict = {}
            upper = [from_symengine(h, memo) for h in upper]
        stats["diff_s"] = clock() - t
        budget.enter("evaluate", f"mpmath at {dps} digits")
        t = clock()
        ctx = mpmath.MPContext()
        ctx.dps = dps
        names = [p.name for p in problem.params] + [d.name for d in problem.data]
        values = {name: ctx.mpf(v) for name, v in zip(names, theta_values + data_values)}  # exact: 53 bits fit
        out = evaluate_mp([problem.loss] + upper, values, ctx)
        stats["eval_s"] = clock() - t
        return [v._mpf_ for v in out], stats  # raw tuples: picklable, no rounding on the way back

    raw, stats = run_budgeted(work, Budget(time_s=time_budget_s, nodes=node_budget))
    value, *upper = (mpmath.mp.make_mpf(r) for r in raw)
    n = structure.n
    H = np.empty((n, n), dtype=object)
    k = 0
    for i in range(n):
        for j in range(i, n):
            H[i, j] = H[j, i] = upper[k]
            k += 1
    stats.update(dps=dps, reference="mpmath", engine=engine, n_params=n, n_second=len(upper))
    return value, H, stats, structure


def reference_hessian(target: Objective | Callable, theta: Any, *args: Any, dps: int = 50, engine: str = "auto",
                      node_budget: int | None = 1_000_000, time_budget_s: float | None = 120.0) -> Any:
    """The exact Hessian at the binary point theta, each entry correctly rounded to float64, in the shape the
    differentiators' ``hessian`` returns (an Objective: n x n)."""
    _, H, _, structure = reference_hessian_mp(target, theta, *args, dps=dps, engine=engine, node_budget=node_budget,
                                              time_budget_s=time_budget_s)
    return structure.hessian(np.vectorize(to_float64, otypes=[np.float64])(H))


def reference_hvp(target: Objective | Callable, theta: Any, v: Any, *args: Any, dps: int = 50, engine: str = "auto",
                  node_budget: int | None = 1_000_000, time_budget_s: float | None = 120.0) -> Any:
    """The exact H v (formed at ``dps`` digits, v's float64 entries taken exactly), rounded once per entry, in
    theta's structure."""
    _, H, _, structure = reference_hessian_mp(target, theta, *args, dps=dps, engine=engine, node_budget=node_budget,
                                              time_budget_s=time_budget_s)
    vf = structure.flatten_like(v, "v")
    with mpmath.workdps(dps):
        Hv = [to_float64(mpmath.fsum(H[i, j] * mpmath.mpf(float(vf[j])) for j in range(structure.n)))
              for i in range(structure.n)]
    return structure.tree(np.array(Hv, dtype=np.float64))
