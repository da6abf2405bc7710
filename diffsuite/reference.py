"""High-precision reference gradients: the ground truth of the accuracy study and of the project's tests.

``reference_gradient(objective, theta)`` is the exact gradient at exactly the binary point ``theta``
that the other methods see: the loss is built symbolically with every constant exact (data as the
Rationals of their binary values), differentiated by SymPy (or SymEngine: ``engine``), and evaluated with mpmath at ``dps``
(>= 50) significant digits by a memoised walk over the expression DAG, then rounded to the nearest
float64. With ``dtype="float32"`` theta and the data are first rounded to float32 (what a float32
run sees); the model's own constants (0.5 / batch, leaky slope, ...) stay as the float64 they are.

The mpmath values themselves (``reference_gradient_mp``) measure errors below one ulp. Kinks follow
the conventions (DESIGN.md): at an exact tie, max routes to its first argument, abs'(0) = 0, step' = 0.
Problems must be small: the symbolic derivative grows quickly with depth. Node and time budgets
apply (``BudgetExceeded``), as for the symbolic differentiator.
"""
from __future__ import annotations

import importlib.util
import time
from functools import partial
from typing import Any, Callable

import mpmath
import numpy as np

from . import pytree
from .budget import Budget, run_budgeted
from .differentiators.base import Gradient, grad_leaf
from .differentiators.symbolic.build import build_function, build_objective, differentiate, is_float_data
from .differentiators.symbolic.codegen import evaluate_mp
from .differentiators.symbolic.metrics import dag_nodes
from .differentiators.symbolic.symengine_bridge import from_symengine
from .objective import Objective

DTYPES = {"float64": np.float64, "float32": np.float32}


def to_float64(x: Any) -> float:
    """An mpmath number rounded to the nearest float64 (ties to even)."""
    return mpmath.libmp.to_float(mpmath.mpf(x)._mpf_ if not hasattr(x, "_mpf_") else x._mpf_, rnd="n")


def _engine(engine: str) -> str:
    if engine == "auto":
        return "symengine" if importlib.util.find_spec("symengine") is not None else "sympy"
    if engine not in ("sympy", "symengine"):
        raise ValueError(f"engine must be 'auto', 'sympy' or 'symengine'; got {engine!r}")
    return engine


def _rounded(a: Any, dtype) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).astype(dtype).astype(np.float64)


def reference_gradient_mp(target: Objective | Callable, theta: Any, *args: Any, dtype: str = "float64",
                          dps: int = 50, engine: str = "auto", node_budget: int | None = 1_000_000,
                          time_budget_s: float | None = 120.0) -> Gradient:
    """Like ``reference_gradient``, but ``value`` is an mpmath ``mpf`` and ``grad`` holds object arrays of mpf.

    The mpf values carry ``dps`` digits; do arithmetic on them under ``mpmath.workdps(dps)``.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    if not (isinstance(dps, int) and dps >= 50):
        raise ValueError(f"the reference needs dps >= 50 significant digits (an int); got {dps!r}")
    engine = _engine(engine)
    np_dtype = DTYPES[dtype]
    if isinstance(target, Objective):
        leaves, rebuild = [_rounded(target.check_theta(theta), np_dtype)], (lambda new: new[0])
        build = partial(build_objective, target, dtype=np_dtype)
        who = target.describe()
    elif callable(target):
        leaves, rebuild, keys = pytree.flatten(theta)  # keys: a name per leaf (its path in theta)
        leaves = [_rounded(leaf, np_dtype) for leaf in leaves]
        args = tuple(_rounded(a, np_dtype) if is_float_data(a) else a for a in args)
        build = partial(build_function, target, leaves, rebuild, args, keys)
        who = getattr(target, "__name__", "f")
    else:
        raise TypeError(f"reference_gradient needs an Objective or a function f(xp, theta, *args); got "
                        f"{type(target).__name__}")
    theta_values = [v for leaf in leaves for v in leaf.reshape(-1).tolist()]

    def work(budget: Budget):
        clock, stats = time.perf_counter, {}
        budget.enter("build", who)
        t = clock()
        problem, data_values = build()
        budget.check_nodes(dag_nodes([problem.loss]), "the loss")
        stats["build_s"] = clock() - t
        budget.enter("differentiate")
        t = clock()
        loss, grads = differentiate(problem, engine, budget)
        if engine == "symengine":
            memo: dict = {}
            loss, grads = problem.loss, [from_symengine(g, memo) for g in grads]
        stats["diff_s"] = clock() - t
        budget.enter("evaluate", f"mpmath at {dps} digits")
        t = clock()
        ctx = mpmath.MPContext()
        ctx.dps = dps
        names = [p.name for p in problem.params] + [d.name for d in problem.data]
        values = {name: ctx.mpf(v) for name, v in zip(names, theta_values + data_values)}  # exact: 53 bits fit
        out = evaluate_mp([loss] + grads, values, ctx)
        stats["eval_s"] = clock() - t
        return [v._mpf_ for v in out], stats  # raw tuples: picklable, and no rounding on the way back

    raw, stats = run_budgeted(work, Budget(time_s=time_budget_s, nodes=node_budget))
    value, *flat = (mpmath.mp.make_mpf(r) for r in raw)
    parts, start = [], 0
    for leaf in leaves:
        part = np.empty(leaf.size, dtype=object)
        part[:] = flat[start:start + leaf.size]
        parts.append(part.reshape(leaf.shape) if leaf.ndim else part[0])
        start += leaf.size
    stats.update(dps=dps, reference="mpmath", dtype=dtype, engine=engine, n_params=len(flat))
    return Gradient(value, rebuild(parts), stats)


def reference_gradient(target: Objective | Callable, theta: Any, *args: Any, dtype: str = "float64",
                       dps: int = 50, engine: str = "auto", node_budget: int | None = 1_000_000,
                       time_budget_s: float | None = 120.0) -> Gradient:
    """The exact gradient at the binary point theta, correctly rounded to float64.

    ``target``: an ``Objective`` (theta flat, as everywhere) or a function ``f(xp, theta, *args)``
    (theta a flat or shaped array, a dict of arrays or scalars, or a scalar; the gradient comes back
    in the same structure). ``engine``: who differentiates the exact expression: "sympy", "symengine"
    (10-100x faster), or "auto" (SymEngine when installed); both give exact derivatives, so the
    results agree to the working precision. ``stats``: ``dps``, ``reference`` ("mpmath"), ``dtype``,
    ``engine``, ``build_s``, ``diff_s``, ``eval_s``. Raises ``BudgetExceeded`` when the problem is too large for the budgets,
    ValueError when the function is undefined at theta.
    """
    res = reference_gradient_mp(target, theta, *args, dtype=dtype, dps=dps, engine=engine,
                                node_budget=node_budget, time_budget_s=time_budget_s)
    rounded = np.vectorize(to_float64, otypes=[np.float64])

    def leaf(g):
        return to_float64(g) if not isinstance(g, np.ndarray) else grad_leaf(rounded(g))

    grad = pytree.map_leaves(leaf, res.grad)
    return Gradient(to_float64(res.value), grad, res.stats)
