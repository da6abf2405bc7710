"""The exact Hessian and Hessian-vector product at a binary point: the ground truth of second derivatives.

``reference_hessian(target, theta, *args)`` builds the loss as ``reference_gradient`` does (theta and the data are
symbols bound to their exact binary values, every constant exact), differentiates it twice (SymPy, or SymEngine:
``engine``; the n(n+1)/2 entries of the upper triangle, mirrored) and runs the value and every entry through the
gradient reference's precision loop (``reference.evaluate``): arb balls at 128, 256, ... bits until each entry's ball
rounds to one float64, which is then the proven, correctly rounded exact value. Without python-flint (or with
``arithmetic="mpmath"``) mpmath at 64, 128, ... bits until two passes agree in every float64: evidence, not proof
(the certificate says which). ``reference_hvp`` certifies each entry of H v itself (v's float64 entries exact).

Kinks, as for gradients (docs/reference.md, "Kinks"): at an exact tie the entries first follow the conventions (max
routes to its first argument, relu'' = 0); then the two one-sided pieces (theta moved along +-(1, ..., 1)) are
evaluated. An entry both pieces agree on is theirs (|x|^2 at 0: 2, where the conventions give 0); an entry where
they differ sits on a true kink, keeps the conventions' value, is listed in the certificate's ``kinks`` and named by
a ``ReferenceKinkWarning``. Problems must be small: n^2 second derivatives of an expression that already swells with
depth. Node and time budgets apply (``BudgetExceeded``), as for the symbolic differentiator.
"""
from __future__ import annotations

import importlib.util
import time
import warnings
from functools import partial
from typing import Any, Callable

import numpy as np
import sympy as sp

from .budget import Budget, run_budgeted
from .errors import user_stacklevel
from .differentiators.symbolic.build import (build_budgeted, build_function, build_objective, differentiate,
                                             is_float_data)
from .differentiators.symbolic.dagdiff import diff_dag
from .differentiators.symbolic.metrics import dag_nodes
from .differentiators.symbolic.symengine_bridge import diff as symengine_diff
from .differentiators.symbolic.symengine_bridge import from_symengine, load_symengine
from .objective import Objective
from .reference import Certificate, check_arithmetic, digits_tests, evaluate, to_mpfs
from .reference.engine import Compiled, check_finite
from .reference.program import Program
from .structure import Structure


class ReferenceKinkWarning(UserWarning):
    """The exact Hessian (or H v) has entries on a true kink (the conventions' value, not a derivative), or exact ties
    whose one-sided pieces could not be compared (the conventions' values, unchecked)."""


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


def _problem(target: Objective | Callable, theta: Any, args: tuple) -> tuple[Structure, Callable]:
    """theta's structure, and the build of the exact loss: data as symbols bound to their binary values (as
    ``reference_gradient``), so that 1 - y is exact, not 1.0 - 0.3 rounded first."""
    if isinstance(target, Objective):
        return Structure.of(target.check_theta(theta)), partial(build_objective, target, symbolic_data=True)
    if callable(target):
        structure = Structure.of(theta)
        args = tuple(np.asarray(a, dtype=np.float64) if is_float_data(a) else a for a in args)
        return structure, partial(build_function, target, structure.leaves, structure.rebuild, args, structure.names)
    raise TypeError(f"reference_hessian needs an Objective or a function f(xp, theta, *args); got "
                    f"{type(target).__name__}")


def _compile(build: Callable, structure: Structure, engine: str, budget: Budget, v: np.ndarray | None) -> Compiled:
    """The program of [loss, H's upper triangle] (or [loss, H v]), its inputs bound to their exact values."""
    budget.enter("build")
    problem, data_values = build_budgeted(build, budget)  # every xp call checks the budgets, as for gradients
    budget.check_nodes(dag_nodes([problem.loss]), "the loss")
    params, data = list(problem.params), list(problem.data)
    values = structure.flat().tolist() + list(data_values)
    check_finite([p.name for p in params + data], values)  # (the gradient reference's check)
    budget.enter("differentiate")
    _, grads = differentiate(problem, engine, budget)
    n = len(params)
    budget.enter("differentiate again", f"{n * (n + 1) // 2} second derivatives")
    upper = _second_derivatives(grads, params, engine, budget)
    if engine == "symengine":  # back to SymPy, SymEngine's (plain) symbols bound to the inputs through the memo
        se = load_symengine()
        memo: dict = {se.Symbol(s.name): s for s in params + data}
        upper = [from_symengine(h, memo) for h in upper]
    names = [p.name for p in params]
    pairs = [(i, j) for i in range(n) for j in range(i, n)]
    inputs = params + data
    if v is None:
        outputs, entry_wrt, entries = upper, pairs, [f"H[{names[i]}, {names[j]}]" for i, j in pairs]
    else:  # (H v)_i = sum_j H_ij v_j, one certified rounding per entry; v's entries enter exactly, as inputs
        H = dict(zip(pairs, upper))
        moved = [j for j in range(n) if v[j] != 0]
        vs = [sp.Dummy(f"v{j}") for j in moved]
        outputs = [sp.Add(*[H[min(i, j), max(i, j)] * s for j, s in zip(moved, vs)]) for i in range(n)]
        entry_wrt, entries = [(i, *moved) for i in range(n)], [f"(H v)[{names[i]}]" for i in range(n)]
        inputs, values = inputs + vs, values + [float(v[j]) for j in moved]
    budget.enter("compile", f"{len(outputs)} entries")
    program = Program([problem.loss] + outputs, inputs, wrt=params)
    return Compiled(program, values, entries, engine, structure.leaves, structure.rebuild, sides=True,
                    entry_wrt=entry_wrt)


def _certified(target, theta, args, v, *, engine, arithmetic, max_bits, node_budget, time_budget_s, accept=None,
               same=None, want_mp=False) -> tuple[list, Certificate, dict, Structure]:
    """(raw entries, value first; certificate; stats; theta's structure), warning at kinks."""
    engine, arithmetic = _symbolic_engine(engine), check_arithmetic(arithmetic, max_bits)
    structure, build = _problem(target, theta, args)
    vf = None if v is None else structure.flatten_like(v, "v")

    def work(budget: Budget):
        clock, stats = time.perf_counter, {}
        t = clock()
        compiled = _compile(build, structure, engine, budget, vf)
        stats["build_s"] = clock() - t  # (build, differentiate twice, compile)
        budget.enter("evaluate", arithmetic)
        t = clock()
        raw, cert = evaluate(compiled, arithmetic, max_bits=max_bits, budget=budget, accept=accept, same=same,
                             want_mp=want_mp)
        stats["eval_s"] = clock() - t
        stats["nodes"] = len(compiled.program)
        return raw, cert, stats  # (picklable: the work may run in a worker process)

    raw, cert, stats = run_budgeted(work, Budget(time_s=time_budget_s, nodes=node_budget))
    stats.update(reference=cert.arithmetic, bits=cert.bits, max_radius=cert.max_radius, certificate=cert,
                 engine=engine, n_params=structure.n, kinks=cert.kinks, ties=cert.ties)
    if cert.kinks or (cert.ties and cert.tie_check == "conventions"):
        warnings.warn(ReferenceKinkWarning(
            f"the exact {'Hessian' if v is None else 'H v'} at this point: {cert.describe()}"),
            stacklevel=user_stacklevel())
    return raw, cert, stats, structure


def _mirrored(upper: list, n: int) -> np.ndarray:
    H = np.empty((n, n), dtype=object)
    k = 0
    for i in range(n):
        for j in range(i, n):
            H[i, j] = H[j, i] = upper[k]
            k += 1
    return H


def reference_hessian_mp(target: Objective | Callable, theta: Any, *args: Any, dps: int = 50, engine: str = "auto",
                         arithmetic: str = "auto", max_bits: int = 1 << 15, node_budget: int | None = 1_000_000,
                         time_budget_s: float | None = 120.0):
    """(value, H, stats, structure): the exact value and Hessian (an n x n object array of mpf), every entry to ``dps``
    proven significant digits (arb: each ball's relative radius below 10^-dps, as ``reference_gradient_mp``; mpmath:
    two passes agree to that); ``structure`` is theta's (``diffsuite.structure.Structure``). ``stats``:
    ``certificate``, ``reference`` ("arb" or "mpmath"), ``bits``, ``kinks``, ``ties``, ``engine``, ``dps``."""
    accept, same = digits_tests(dps, "reference_hessian_mp")
    raw, cert, stats, structure = _certified(target, theta, args, None, engine=engine, arithmetic=arithmetic,
                                             max_bits=max_bits, node_budget=node_budget, time_budget_s=time_budget_s,
                                             accept=accept, same=same, want_mp=True)
    value, *upper = to_mpfs(raw, cert)
    stats.update(dps=dps, n_second=len(upper))
    return value, _mirrored(upper, structure.n), stats, structure


def reference_hessian(target: Objective | Callable, theta: Any, *args: Any, dps: int | None = None,
                      engine: str = "auto", arithmetic: str = "auto", max_bits: int = 1 << 15,
                      node_budget: int | None = 1_000_000, time_budget_s: float | None = 120.0) -> Any:
    """The exact Hessian at the binary point theta, each entry correctly rounded to float64 (arb: proven), in the
    shape the differentiators' ``hessian`` returns (an Objective: n x n). ``dps``: accepted for compatibility,
    unused (the precision is chosen per entry). A ``ReferenceKinkWarning`` names entries on a true kink; the
    certificate is in ``reference_hessian_mp``'s stats. Raises ``NotCertified`` (a ValueError) where no precision
    up to ``max_bits`` settles an entry, ``BudgetExceeded`` for a problem too large for the budgets."""
    raw, cert, stats, structure = _certified(target, theta, args, None, engine=engine, arithmetic=arithmetic,
                                             max_bits=max_bits, node_budget=node_budget, time_budget_s=time_budget_s)
    return structure.hessian(_mirrored(raw[1:], structure.n).astype(np.float64))


def reference_hvp(target: Objective | Callable, theta: Any, v: Any, *args: Any, dps: int | None = None,
                  engine: str = "auto", arithmetic: str = "auto", max_bits: int = 1 << 15,
                  node_budget: int | None = 1_000_000, time_budget_s: float | None = 120.0) -> Any:
    """The exact H v (v's float64 entries taken exactly), each entry correctly rounded to float64 (arb: proven), in
    theta's structure. ``dps``: accepted for compatibility, unused."""
    raw, cert, stats, structure = _certified(target, theta, args, v, engine=engine, arithmetic=arithmetic,
                                             max_bits=max_bits, node_budget=node_budget, time_budget_s=time_budget_s)
    return structure.tree(np.array(raw[1:], dtype=np.float64))


__all__ = ["reference_hessian", "reference_hessian_mp", "reference_hvp", "ReferenceKinkWarning"]
