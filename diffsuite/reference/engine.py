"""The reference's work: build the exact loss, compile it, and raise the precision until every entry settles.

``compile_problem`` builds the loss with every constant exact (theta and the data enter as symbols
bound to their binary values), unevaluated (SymPy's automatic simplification is the slow part of
building and changes nothing exact), and compiles it into a ``Program``. With ``engine="adjoint"``
the gradient is the chain rule run backwards over that DAG; with "sympy" or "symengine" those
libraries differentiate the (evaluated) expression first and the program evaluates their derivatives.

``certify_arb`` runs the program in arb at 128, 256, 512, ... bits up to ``max_bits``, until the value
and every gradient entry is a ball that rounds to one float64. ``agree_mp`` (no python-flint) runs it
in mpmath at 64, 128, 256, ... bits until two successive passes (neither losing bits to a cancellation,
``mp.MpArithmetic``) round to the same float64s.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable

import numpy as np
import sympy as sp

from ..budget import Budget
from ..differentiators.symbolic.metrics import dag_nodes
from ..differentiators.symbolic.build import build_function, build_objective, differentiate, is_float_data
from ..differentiators.symbolic.symengine_bridge import from_symengine
from .. import pytree
from ..objective import Objective
from .certificate import Certificate, NotCertified
from .program import UNDECIDED, Program, Run

DTYPES = {"float64": np.float64, "float32": np.float32}
ENGINES = ("adjoint", "sympy", "symengine")


@dataclass
class Compiled:
    """A problem ready to evaluate: the program, the input values (params then data), entry names."""

    program: Program
    values: list[float]
    names: list[str]             # one per gradient entry (theta's flat order)
    differentiation: str
    leaves: list[np.ndarray]     # theta's leaves, rounded to the dtype
    rebuild: Callable[[list], Any]
    # whether ties are checked by one-sided pieces (``_one_sided``); the symbolic engines' gradients are not
    sides: bool = True
    # per output after the value, the positions in ``program.wrt`` it differentiates by (None: output k is
    # d/d wrt[k - 1], a gradient); a Hessian entry (i, j) is (i, j)
    entry_wrt: list[tuple[int, ...]] | None = None


def check_finite(names: list[str], values: list[float]) -> None:
    """The reference evaluates at exact binary values: there is none for inf or nan. A ValueError names the first."""
    for name, v in zip(names, values):
        if not np.isfinite(v):
            raise ValueError(f"the reference needs finite inputs; {name} is {v!r}. Choose a finite point and data.")


def _rounded(a: Any, dtype) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).astype(dtype).astype(np.float64)


def compile_problem(target: Objective | Callable, theta: Any, args: tuple, dtype: str, engine: str,
                    budget: Budget) -> Compiled:
    np_dtype = DTYPES[dtype]
    evaluated = engine != "adjoint"
    if isinstance(target, Objective):
        leaves, rebuild = [_rounded(target.check_theta(theta), np_dtype)], (lambda new: new[0])

        def build():
            return build_objective(target, symbolic_data=True, dtype=np_dtype)
        who, names = target.describe(), None
    elif callable(target):
        leaves, rebuild, keys = pytree.flatten(theta)  # keys: each leaf's path in theta (diffsuite.pytree)
        leaves = [_rounded(leaf, np_dtype) for leaf in leaves]
        args = tuple(_rounded(a, np_dtype) if is_float_data(a) else a for a in args)

        def build():
            return build_function(target, leaves, rebuild, args, keys)
        who, names = getattr(target, "__name__", "f"), None
    else:
        raise TypeError(f"reference_gradient needs an Objective or a function f(xp, theta, *args); got "
                        f"{type(target).__name__}")
    budget.enter("build", who)
    if evaluated:
        problem, data_values = build()
    else:
        with sp.evaluate(False):
            problem, data_values = build()
    budget.check_nodes(dag_nodes([problem.loss]), "the loss")
    theta_values = [v for leaf in leaves for v in leaf.reshape(-1).tolist()]
    names = names or [p.name for p in problem.params]
    check_finite(names + [d.name for d in problem.data], theta_values + list(data_values))
    inputs = list(problem.params) + list(problem.data)
    if evaluated:
        budget.enter("differentiate", engine)
        loss, grads = differentiate(problem, engine, budget)
        if engine == "symengine":
            memo: dict = {}
            loss, grads = problem.loss, [from_symengine(g, memo) for g in grads]
            # SymEngine's symbols come back as plain ones: bind the inputs by name
            by_name = {s.name: s for s in inputs}
            grads = [g.xreplace({s: by_name[s.name] for s in g.free_symbols if s.name in by_name}) for g in grads]
        program = Program([loss] + grads, inputs)
    else:
        budget.enter("compile", f"{len(names)} parameters")
        program = Program([problem.loss], inputs, wrt=problem.params)
    return Compiled(program, theta_values + data_values, names, engine, leaves, rebuild, sides=not evaluated)


def _outputs(c: Compiled, run: Run) -> list:
    """[value, d/d theta_0, ...]: the adjoints (None = exact zero) or the symbolic derivatives' values."""
    prog = c.program
    if c.differentiation == "adjoint":
        adj = run.backward(prog.roots[0])
        return [run.values[prog.roots[0]]] + [adj[k] if k >= 0 else None for k in prog.wrt_nodes]
    return [run.values[r] for r in prog.roots]


def _entry_names(c: Compiled) -> list[str]:
    return ["the loss value"] + c.names


def certify_arb(c: Compiled, *, start_bits: int = 128, max_bits: int = 1 << 15, budget: Budget | None = None,
                accept: Callable | None = None) -> tuple[list, Certificate]:
    """The value and gradient, each a ball that rounds to one float64, at the lowest precision that does it.

    Returns ([(float64 rounding, exact midpoint (m, e)) per entry], certificate); ``accept(ball) -> bool``
    replaces "rounds to one float64" (the ``reference_gradient_mp`` digits target). Raises NotCertified naming
    the entries no precision up to ``max_bits`` settles, and why (an undecidable kink, a singularity).
    """
    from flint import arb

    from .arb import ArbArithmetic, precision, settle, to_man_exp
    exact = [Fraction(v) for v in c.values]
    accept = accept or (lambda x: settle(x) is not None)
    tried: list[int] = []
    bits = start_bits
    while True:
        tried.append(bits)
        if budget is not None:
            budget.note(f"arb at {bits} bits")
        with precision(bits):
            run = Run(c.program, ArbArithmetic(), [arb(v) for v in c.values], exact)
            out = _outputs(c, run)
            bad = [k for k, x in enumerate(out) if x is UNDECIDED or not (x is None or accept(x))]
            if not bad:
                def evaluate(side):
                    piece = Run(c.program, ArbArithmetic(), [arb(v) for v in c.values], exact, side=side)
                    return piece, _outputs(c, piece)

                def same(a, b):  # both settle, to the same float64
                    a, b = (arb(0) if x is None else x for x in (a, b))
                    return settle(a) is not None and settle(b) is not None and settle(a)[0] == settle(b)[0]

                def differs(a, b):  # proven: the ball of a - b excludes 0 (a jump far below one ulp counts)
                    a, b = (arb(0) if x is None else x for x in (a, b))
                    return 0 not in a - b

                settled, ties = _one_sided(c, run, out, evaluate, same, lambda x: x is None or accept(x),
                                           lambda x: x is None or x.is_finite(), differs)
                if settled is None and bits >= max_bits:  # the pieces never settled: the conventions, unchecked
                    settled, ties = out, {"tie_check": "conventions"}
            if not bad and settled is not None:  # (endpoints and midpoints read at the working precision: exactly)
                radius = np.array([0.0 if x is None else float(x.rad()) for x in settled])
                return ([(settle(x)[0] if settle(x) else float(x.mid()), to_man_exp(x)) for x in settled],
                        Certificate("arb", bits, tuple(tried), radius, c.differentiation, run.ties, **ties))
        nonfinite = [k for k in bad if out[k] is not UNDECIDED and not out[k].is_finite()]
        if run.singular and nonfinite and len(tried) >= 2:
            raise _singular_error(c, run, nonfinite)
        if bits >= max_bits:
            raise _cap_error(c, run, out, bad, bits)
        bits *= 2


def _one_sided(c: Compiled, run: Run, out: list, evaluate: Callable, same: Callable, settled: Callable,
               finite: Callable, differs: Callable) -> tuple[list | None, dict]:
    """At exact ties, the derivative where the function has one, and the entries where it has none.

    ``run``/``out``: the evaluation with the conventions. ``evaluate(side) -> (Run, outputs)`` evaluates the
    one-sided piece of ``side`` (+1, -1; see ``Run``). Where both pieces continue the value (no jump) and agree
    on an entry, that is the entry's derivative (relu(x) - relu(-x) at 0: 1, where the conventions give 0);
    where they differ, the entry is on a true kink and keeps the conventions' value. Returns (the outputs, or
    None when a piece's finite entry is not settled at this precision; the Certificate's ``kinks``, ``resolved``,
    ``tie_check``). An entry that is infinite on a piece (sqrt at 0 on one side) is a kink: no precision changes
    that. ``differs(a, b)``: the values a and b are proven different (arb: the ball of a - b excludes 0), which
    decides a jump, however small against the value's ulp; ``same``: the float64 roundings agree, which decides
    that two one-sided derivatives agree. Cost: two more evaluations, plus a backward pass per distinct tie; only
    where ties occur."""
    if not run.ties:
        return out, {}
    if not c.sides:  # (the symbolic engines' gradient expressions: ties unchecked, as documented)
        return out, {"tie_check": "conventions"}
    (plus, p_out), (minus, m_out) = evaluate(1), evaluate(-1)
    if plus.side_incomplete or minus.side_incomplete:
        return out, {"tie_check": "conventions"}
    if any(x is UNDECIDED for x in p_out + m_out):
        return out, {"tie_check": "conventions"}
    if any(finite(x) and not settled(x) for x in p_out + m_out):
        return None, {}  # more bits
    names = _entry_names(c)
    # A jump: a piece's value differs from the value. A piece whose value is not finite (its formula is singular
    # exactly at the tie: the 0 log 0 of where(x > 0, x log x, 0) at 0) cannot show one, nor derivatives.
    jump = any(finite(x) and differs(x, out[0]) for x in (p_out[0], m_out[0]))
    blind = not (finite(p_out[0]) and finite(m_out[0]))
    # The entries whose parameter some tied quantity depends on. Moving any other parameter alone keeps every tie
    # a tie, so the conventions' piece is the function along it: its entry is that partial derivative, unflagged.
    # (a Hessian entry (i, j) is touched where theta_i or theta_j is: ``Compiled.entry_wrt``)
    touched = set(range(1, len(out)))
    if all(run.tie_nodes):
        moved = c.program.wrt_under([j for nodes in run.tie_nodes for j in nodes])
        wrt = c.entry_wrt or [(k,) for k in range(len(out) - 1)]
        touched = {1 + k for k, by in enumerate(wrt) if moved.intersection(by)}
    final, kinks, resolved = [out[0]], ["the loss value"] if jump else [], []
    for k in range(1, len(out)):
        if k not in touched:
            final.append(out[k])
        elif not (jump or blind) and finite(p_out[k]) and finite(m_out[k]) and same(p_out[k], m_out[k]):
            final.append(p_out[k])
            if not same(p_out[k], out[k]):
                resolved.append(names[k])
        else:
            final.append(out[k])
            kinks.append(names[k])
    return final, {"tie_check": "sides", "kinks": tuple(kinks), "resolved": tuple(resolved)}


def _singular_error(c: Compiled, run: Run, entries: list[int]) -> NotCertified:
    names = [_entry_names(c)[k] for k in entries]
    return NotCertified(f"the expression or its derivative is not defined at this point: {run.singular}, exactly (the "
                        f"inputs are exact, so no precision changes it); affected: {_list(names)}. Choose another "
                        "point.", names)


def _cap_error(c: Compiled, run: Run, out: list, bad: list[int], bits: int) -> NotCertified:
    names = [_entry_names(c)[k] for k in bad]
    undecided = [k for k in bad if out[k] is UNDECIDED]
    if undecided:
        prog = run.prog
        node = run.undecided[0] if run.undecided else None
        where = ""
        if node is not None:
            where = (f" (first: {str(prog.nodes[node])[:100]}, which depends on "
                     f"{_list(prog.symbols_under(node))})")
        return NotCertified(f"a kink condition could not be decided at {bits} bits{where}: the point lies on a kink "
                            f"that exact arithmetic cannot settle, or within 2^-{bits} of one; affected: "
                            f"{_list(names)}. Move theta off the kink, or raise max_bits.", names)
    if run.singular:
        return _singular_error(c, run, bad)
    ties = [k for k in bad if _straddles_tie(out[k])]
    if ties and len(ties) == len(bad):
        k = ties[0]
        lo, hi = float(out[k].lower()), float(out[k].upper())
        return NotCertified(f"{_list(names)} {'is' if len(names) == 1 else 'are'} within 2^-{bits} (relative) of a float64 rounding tie: the exact "
                            f"value of {_entry_names(c)[k]} is between {lo!r} and {hi!r}, two adjacent float64s, "
                            f"and so close to the midpoint between them that no precision up to {bits} bits decides "
                            "the rounding. Either neighbour is within half an ulp of the exact value; raise max_bits "
                            "to decide it, or accept one of them.", names)
    return NotCertified(f"the value or gradient is not finite or not narrow enough at {bits} bits: "
                        f"{_list(names)}. A cancellation deeper than {bits} bits (such as 1 - sigmoid(z) for z beyond "
                        f"{bits} ln 2), or a singularity the inputs only approach. Choose another point, or raise "
                        "max_bits.", names)


def _straddles_tie(x) -> bool:
    """True if the finite ball x is narrow but holds the midpoint between two adjacent float64s."""
    if x is None or x is UNDECIDED or not x.is_finite():
        return False
    lo, hi = float(x.lower()), float(x.upper())
    return lo != hi and np.isfinite(lo) and np.isfinite(hi) and np.nextafter(lo, np.inf) == hi


def _list(names: list[str], n: int = 6) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def agree_mp(c: Compiled, *, start_bits: int = 64, max_bits: int = 1 << 15, budget: Budget | None = None,
             same: Callable | None = None) -> tuple[list, Certificate]:
    """The mpmath fallback: precision doubled until two successive passes give the same float64s
    (``same(a, b) -> bool`` replaces that test). Returns (mpf values, certificate)."""
    from .mp import MpArithmetic, to_float
    exact = [Fraction(v) for v in c.values]
    same = same or (lambda a, b: to_float(a) == to_float(b))
    tried: list[int] = []
    previous = None
    bits = start_bits
    while True:
        tried.append(bits)
        if budget is not None:
            budget.note(f"mpmath at {bits} bits")
        A = MpArithmetic(bits)
        run = Run(c.program, A, [A.from_float(v) for v in c.values], exact)
        out = [A.zero() if x is None else x for x in _outputs(c, run)]
        ok = [x is not UNDECIDED and A.finite(x) and A.lost == 0 for x in out]
        ties: dict = {}
        if all(ok) and run.ties:
            def evaluate(side, A=A):
                piece = Run(c.program, A, [A.from_float(v) for v in c.values], exact, side=side)
                return piece, [A.zero() if x is None else x for x in _outputs(c, piece)]

            def settled(x, A=A):
                return A.lost == 0

            def differs(a, b, A=A):  # (no enclosures: a difference beyond the pass's noise bound, 2^(24 - bits))
                return to_float(a) != to_float(b) or abs(a - b) > A._guard * max(abs(a), abs(b))

            final, ties = _one_sided(c, run, out, evaluate, lambda a, b: to_float(a) == to_float(b), settled,
                                     A.finite, differs)
            if final is None:
                ok = [False]
            else:
                out = final
        if previous is not None and all(ok):
            bad = [k for k, (a, b) in enumerate(zip(previous, out)) if b is UNDECIDED or a is UNDECIDED
                   or not same(a, b)]
            if not bad:
                radius = np.array([float(abs(a - b)) for a, b in zip(previous, out)])
                return out, Certificate("mpmath", bits, tuple(tried), radius, c.differentiation, run.ties, **ties)
        else:
            bad = [k for k, good in enumerate(ok) if not good]
        nonfinite = [k for k in bad if out[k] is not UNDECIDED and not A.finite(out[k])]
        if run.singular and nonfinite and len(tried) >= 2 and A.lost == 0:  # (as arb: an exact singularity)
            raise _singular_error(c, run, nonfinite)
        if bits >= max_bits:
            if run.singular:
                raise _singular_error(c, run, bad)
            names = [_entry_names(c)[k] for k in bad]
            raise NotCertified(f"mpmath did not settle {_list(names)} up to {bits} bits (a kink, a singularity, or "
                               "a point within rounding of one). Choose another point, or raise max_bits.", names)
        # a pass that lost bits (a sum cancelled to noise, exp of a huge argument) cannot vouch for the next one:
        # 64 and 128 bits agree on exp(2^100 cos(2^-70)) / exp(2^100) = 1.0, wrongly, and only 64 bits lost
        previous = out if all(ok) else None
        bits *= 2


def compile_expression(expr: sp.Basic, wrt: list[sp.Symbol], point: list[float],
                       data: dict[sp.Symbol, float] | None = None) -> Compiled:
    """A bare SymPy expression as a problem: d expr / d wrt at ``point`` (floats, exact), other symbols bound
    by ``data``. For testing functions the models cannot express (sin, atan2, erf, ...) and new primitives."""
    data = data or {}
    inputs = list(wrt) + list(data)
    program = Program([sp.sympify(expr)], inputs, wrt=list(wrt))
    return Compiled(program, [float(v) for v in point] + [float(v) for v in data.values()],
                    [s.name for s in wrt], "adjoint", [np.asarray(point, dtype=np.float64)], lambda new: new[0])
