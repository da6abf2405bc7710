"""A SymPy expression DAG compiled once into a straight-line program, run in any arithmetic.

``Program(roots, inputs)`` numbers every distinct node of the DAG in topological order (arguments
before their users). ``forward(arith, values)`` computes every node's value in an ``Arithmetic``
(arb balls, mpmath numbers); ``backward`` then accumulates adjoints in reverse order: the exact
chain rule on the DAG, with each node's local derivatives from ``rules`` (SymPy's own derivative,
``fdiff``, for functions without a hand-written rule). Cost: one pass over the nodes each way.

Kinks are decided, never guessed: a comparison whose sign the arithmetic cannot certify (a ball that
contains 0 but is not exactly 0) yields ``UNDECIDED`` unless the exact rational value of the
compared nodes settles it (``exact``: ``Fraction`` arithmetic on +, *, integer powers and the binary
inputs). ``UNDECIDED`` spreads to every value and adjoint that depends on it, so the caller sees which
outputs are not settled and raises the precision.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Any

import sympy as sp
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.logic.boolalg import ITE, And, BooleanFalse, BooleanTrue, Not, Or

from . import rules


class _Undecided:
    """A value the arithmetic could not certify at this precision (a kink too close to call)."""

    def __repr__(self):
        return "UNDECIDED"


UNDECIDED = _Undecided()

_RELATIONS = {sp.StrictGreaterThan: lambda s: s > 0, sp.GreaterThan: lambda s: s >= 0,
              sp.StrictLessThan: lambda s: s < 0, sp.LessThan: lambda s: s <= 0,
              sp.Equality: lambda s: s == 0, sp.Unequality: lambda s: s != 0}

# node kinds
SYM, NUM, ADD, MUL, POW, FN, REL, PIECEWISE, PAIR, ITE_, AND, OR, NOT, BOOL = range(14)


def _kind(node: sp.Basic) -> int:
    if type(node) in rules.TABLE:  # (before the generic classes: Max and Min are not sympy Functions)
        return FN
    if isinstance(node, sp.Symbol):
        return SYM
    if isinstance(node, (BooleanTrue, BooleanFalse)):
        return BOOL
    if isinstance(node, (sp.Number, sp.NumberSymbol)) or (not node.args and node.is_number):
        return NUM
    if isinstance(node, sp.Add):
        return ADD
    if isinstance(node, sp.Mul):
        return MUL
    if isinstance(node, sp.Pow):
        return POW
    if type(node) in _RELATIONS:
        return REL
    if isinstance(node, sp.Piecewise):
        return PIECEWISE
    if isinstance(node, ExprCondPair):
        return PAIR
    if isinstance(node, ITE):
        return ITE_
    if isinstance(node, And):
        return AND
    if isinstance(node, Or):
        return OR
    if isinstance(node, Not):
        return NOT
    if isinstance(node, sp.Function):
        return FN
    raise NotImplementedError(f"the reference has no rule for {type(node).__name__} (in {_short(node)}); it knows "
                              f"+ * ** and comparisons, Piecewise/ITE/And/Or/Not, and {rules.known_names()}")


def _short(node: Any, n: int = 120) -> str:
    s = str(node)
    return s if len(s) <= n else s[:n - 3] + "..."


class Program:
    """The DAG of ``roots`` in topological order; ``inputs``: the symbols whose values are given per run.

    Symbols not in ``inputs`` raise ValueError. ``active[i]``: node i depends on a symbol in ``wrt``
    (only those carry adjoints).
    """

    def __init__(self, roots: list[sp.Basic], inputs: list[sp.Symbol], wrt: list[sp.Symbol] = ()):
        index: dict = {}
        nodes: list = []
        for root in roots:
            stack = [(root, False)]
            while stack:
                node, ready = stack.pop()
                if ready:
                    if node not in index:
                        index[node] = len(nodes)
                        nodes.append(node)
                elif node not in index:
                    stack.append((node, True))
                    if not isinstance(node, sp.Symbol):  # (a Symbol's args are empty; Dummy's too)
                        stack.extend((a, False) for a in reversed(node.args) if a not in index)
        self.nodes = nodes
        self.roots = [index[r] for r in roots]
        self.kinds = [_kind(n) for n in nodes]
        self.args = [[index[a] for a in n.args] if k != SYM else [] for n, k in zip(nodes, self.kinds)]
        slot = {s: i for i, s in enumerate(inputs)}
        self.input_slot = [slot.get(n, -1) if k == SYM else -1 for n, k in zip(nodes, self.kinds)]
        for n, k, s in zip(nodes, self.kinds, self.input_slot):
            if k == SYM and s < 0:
                raise ValueError(f"no value given for the symbol {n.name!r}")
        self.rule = [rules.rule_for(n) if k == FN else None for n, k in zip(nodes, self.kinds)]
        wrt_set = set(wrt)
        active = [False] * len(nodes)
        for i, (n, k) in enumerate(zip(nodes, self.kinds)):
            if k == SYM:
                active[i] = n in wrt_set
            elif k not in (REL, AND, OR, NOT, BOOL, NUM):  # conditions carry no derivative
                active[i] = any(active[j] for j in self.args[i])
        self.active = active
        self.wrt_nodes = [index.get(s, -1) for s in wrt]

    def __len__(self):
        return len(self.nodes)

    def wrt_under(self, nodes) -> set[int]:
        """The positions in ``wrt`` of the inputs that any of ``nodes`` depends on (a walk down the DAG)."""
        position = {j: p for p, j in enumerate(self.wrt_nodes) if j >= 0}
        seen, stack, out = set(), list(nodes), set()
        while stack:
            j = stack.pop()
            if j not in seen:
                seen.add(j)
                if j in position:
                    out.add(position[j])
                stack.extend(self.args[j])
        return out

    def symbols_under(self, i: int) -> list[str]:
        """The names of the symbols node ``i`` depends on (for error messages)."""
        return sorted(s.name for s in self.nodes[i].free_symbols)


class Run:
    """One evaluation of a Program in one arithmetic: values, decisions and (after ``backward``) adjoints.

    ``exact_inputs``: the inputs as Fractions (exact binary values), used to decide ties that the
    arithmetic cannot. ``undecided``: nodes whose comparison could not be settled; ``singular``: a
    description of the first operation that was undefined on exact arguments (log 0, 1/0).

    ``side``: 0 decides an exact tie by the project's kink conventions (the compared quantity is 0). +1 or -1 evaluates
    the one-sided piece instead: a tie counts as the sign of the compared quantity's derivative along theta
    moved in the direction ``side * (1, 1, ...)``, lexicographically (the first parameter whose partial derivative
    is nonzero decides, then the next; Nesterov's lexicographic derivative with directions +-I). Where the
    function is differentiable that piece's gradient is its gradient, on both sides; ``engine`` compares them.
    ``side_incomplete`` is set where a tie could not be decided that way (no nonzero partial at this precision,
    or a tie inside a template function's sub-program).
    """

    def __init__(self, prog: Program, arith: Any, values: list, exact_inputs: list[Fraction], side: int = 0):
        self.prog, self.A, self.exact_inputs = prog, arith, exact_inputs
        self.values = [None] * len(prog)
        self.choice: dict[int, int] = {}
        self.undecided: list[int] = []
        self.singular: str | None = None
        self.ties = 0
        self.tie_nodes: list[tuple] = []  # per exact tie, the compared nodes (() where unknown: "all of theta")
        self.side, self.side_incomplete = side, False
        self._sides: dict[tuple, int] = {}
        self._exact: dict[int, Fraction | None] = {}
        self._forward(values)

    # ----- exact decisions -----
    def exact(self, i: int) -> Fraction | None:
        """Node i's exact rational value where + * integer powers and the binary inputs give it, else None."""
        if i in self._exact:
            return self._exact[i]
        prog = self.prog
        stack = [i]
        while stack:
            j = stack[-1]
            if j in self._exact:
                stack.pop()
                continue
            pending = [a for a in prog.args[j] if a not in self._exact]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            self._exact[j] = self._exact_node(j)
        return self._exact[i]

    def _exact_node(self, j: int) -> Fraction | None:
        prog, node, kind = self.prog, self.prog.nodes[j], self.prog.kinds[j]
        vals = [self._exact[a] for a in prog.args[j]]
        if kind == SYM:
            return self.exact_inputs[prog.input_slot[j]]
        if kind == NUM:
            return Fraction(node.p, node.q) if isinstance(node, sp.Rational) else None
        if kind == FN and any(v is None for v in vals):
            return rules.exact_by_decision(self, j, vals)
        if any(v is None for v in vals):
            return None
        if kind == ADD:
            return sum(vals, Fraction(0))
        if kind == MUL:
            out = Fraction(1)
            for v in vals:
                out *= v
            return out
        if kind == POW and isinstance(node.exp, sp.Integer) and abs(int(node.exp)) <= 64:
            base, e = vals[0], int(node.exp)
            return None if base == 0 and e < 0 else base ** e
        return rules.exact_value(node, vals)

    def sign(self, x: Any, *nodes_ab: int, derivative: bool = False) -> int | None:
        """The sign of x (= a - b for the nodes given, or of node a): certified by the arithmetic, else exact.

        ``derivative``: the decision only picks a local derivative that multiplies the compared quantity's own
        derivative (|u|' = sign(u), max's winner): on a one-sided piece, a tie whose quantities agree to first
        order may then keep the convention, since every choice gives the same product."""
        s = self.A.sign(x)
        if s is None and nodes_ab:
            exact = [self.exact(k) for k in nodes_ab]
            if all(v is not None for v in exact):
                d = exact[0] - exact[1] if len(exact) == 2 else exact[0]
                s = (d > 0) - (d < 0)
        if s is None and getattr(self.A, "zero_means_tie", False) and x == 0:
            s = 0
        if s == 0:
            self.ties += 1
            self.tie_nodes.append(nodes_ab)
            if self.side and nodes_ab:
                s = self._one_sided_sign(nodes_ab, derivative)
        return s

    def _one_sided_sign(self, nodes_ab: tuple, derivative: bool) -> int:
        """The side of an exact tie of (a - b), or of a, on this run's piece: the sign of the first nonzero partial
        derivative of the compared quantity, times ``side``; 0 (the convention) where none is nonzero."""
        if nodes_ab in self._sides:
            return self._sides[nodes_ab]
        grads = [self._input_gradient(k) for k in nodes_ab]
        s = 0
        for parts in zip(*grads):
            if any(p is UNDECIDED for p in parts):
                self.side_incomplete = True
                break
            d = parts[0] if len(parts) == 1 else (
                parts[0] if parts[1] is None else -parts[1] if parts[0] is None else parts[0] - parts[1])
            sd = 0 if d is None else self.A.sign(d)
            if sd is None:  # a partial the arithmetic cannot tell from 0 at this precision
                self.side_incomplete = True
                break
            if sd:
                s = sd * self.side
                break
        else:  # the compared quantities have the same derivative: only a higher order could tell the sides apart
            self.side_incomplete = not derivative
        self._sides[nodes_ab] = s
        return s

    def _input_gradient(self, k: int) -> list:
        """d(node k)/d(each wrt input), in ``prog.wrt_nodes``' order (None: exactly 0), on this run's piece."""
        prog = self.prog
        if not prog.active[k]:
            return [None] * len(prog.wrt_nodes)
        adj = self.backward(k)
        return [adj[j] if j >= 0 else None for j in prog.wrt_nodes]

    # ----- forward -----
    def _forward(self, inputs: list) -> None:
        prog, A, vals = self.prog, self.A, self.values
        take_cancelled = getattr(A, "take_cancelled", None)  # (mpmath: digits lost; arb's balls need no guard)
        for i, (node, kind, args) in enumerate(zip(prog.nodes, prog.kinds, prog.args)):
            if kind == SYM:
                vals[i] = inputs[prog.input_slot[i]]
                continue
            if kind == NUM:
                vals[i] = A.number(node)
                continue
            if kind == BOOL:
                vals[i] = bool(node)
                continue
            a = [vals[j] for j in args]
            if kind == PIECEWISE:
                vals[i] = self._piecewise(i, a)
                continue
            if kind == ITE_:
                c = a[0]
                vals[i] = UNDECIDED if c is UNDECIDED else (a[1] if c else a[2])
                self.choice[i] = -1 if c is UNDECIDED else (1 if c else 2)
                continue
            if kind in (AND, OR):
                vals[i] = _logic(kind, a)
                continue
            if kind == PAIR:  # (value, condition): the Piecewise decides what an undecided part means
                vals[i] = tuple(a)
                continue
            if any(v is UNDECIDED for v in a):
                vals[i] = UNDECIDED
                continue
            if take_cancelled is not None:
                take_cancelled()  # (clear: the flag is about this node only)
            if kind == ADD:
                vals[i] = A.add(a)
            elif kind == MUL:
                vals[i] = A.mul(a)
            elif kind == POW:
                vals[i] = self._pow(i, node, a)
            elif kind == REL:
                s = self.sign(a[0] - a[1], *args)
                vals[i] = UNDECIDED if s is None else _RELATIONS[type(node)](s)
            elif kind == NOT:
                vals[i] = not a[0]
            else:  # FN
                try:
                    vals[i] = prog.rule[i].value(self, i, a)
                except ZeroDivisionError:  # (mpmath; arb returns a NaN ball)
                    vals[i] = A.nan()
            if take_cancelled is not None and take_cancelled():
                self._lost_bits(i)
            if vals[i] is UNDECIDED:
                self.undecided.append(i)

    def _lost_bits(self, i: int) -> None:
        """mpmath only: node i lost (almost) every bit (a sum that cancelled, a log of an argument within rounding
        of 1, a huge power; ``mp.MpArithmetic``). Its exact rational value, where known, replaces it (so that
        (1 + 2^-200) - 1 is 2^-200, not the 0 that 64 and 128 bits agree on); otherwise the pass is not accepted."""
        exact = self.exact(i)
        if exact is None:
            self.A.lost += 1
        else:
            self.values[i] = self.A.number(sp.Rational(exact.numerator, exact.denominator))

    def _piecewise(self, i: int, pairs: list) -> Any:
        for k, (value, cond) in enumerate(pairs):
            if cond is UNDECIDED:
                self.choice[i] = -1
                self.undecided.append(i)
                return UNDECIDED
            if cond:
                self.choice[i] = k
                return value
        self.choice[i] = -2
        return self.A.nan()  # no condition holds: undefined here

    def _pow(self, i: int, node, a) -> Any:
        base, e = a
        A = self.A
        if isinstance(node.exp, sp.Integer):
            n = int(node.exp)
            if n < 0 and A.is_exact_zero(base):
                self.note_singular(f"division by an exact zero in {_short(node)}")
            return A.ipow(base, n)
        if node.exp == sp.Rational(1, 2):
            if A.sign(base) == -1:
                self.note_singular(f"the square root of a negative number in {_short(node)}")
            return A.sqrt(base)
        if A.sign(base) == -1:  # a real power u^e of u < 0 exists only for an integer e (t^(1/3) at t = -8: none)
            exponent = self.exact(self.prog.args[i][1])
            if exponent is None or exponent.denominator != 1:
                self.note_singular(f"a power of a negative number to an exponent that is not exactly an integer in "
                                   f"{_short(node)}")
        return A.pow(base, e)

    def note_singular(self, what: str) -> None:
        if self.singular is None:
            self.singular = what

    # ----- backward -----
    def backward(self, root: int) -> list:
        """Adjoints of every active node for d(root); ``adj[i]`` is None where it is exactly zero."""
        prog, A, vals = self.prog, self.A, self.values
        adj: list = [None] * len(prog)
        adj[root] = A.one()
        for i in range(root, -1, -1):
            g = adj[i]
            if g is None or not prog.active[i]:
                continue
            kind, args = prog.kinds[i], prog.args[i]
            if kind == SYM:
                continue
            if g is UNDECIDED:
                for j in args:
                    if prog.active[j]:
                        adj[j] = UNDECIDED
                continue
            if kind == ADD:
                for j in args:
                    if prog.active[j]:
                        adj[j] = self._accumulate(adj[j], g)
                continue
            if kind in (PIECEWISE, ITE_):
                # the branch values: a Piecewise's are its pairs' first arguments; an ITE's are args 1, 2
                branches = [prog.args[p][0] for p in args] if kind == PIECEWISE else [None, args[1], args[2]]
                k = self.choice.get(i, -1)
                chosen = [b for b in branches if b is not None] if k == -1 else [branches[k]] if k >= 0 else []
                for j in chosen:
                    if prog.active[j]:
                        adj[j] = UNDECIDED if k == -1 else self._accumulate(adj[j], g)
                continue
            if kind == PAIR:
                continue  # handled by its Piecewise
            a = [vals[j] for j in args]
            if any(v is UNDECIDED for v in a):  # a local derivative of an undecided value is undecided too
                for j in args:
                    if prog.active[j]:
                        adj[j] = UNDECIDED
                continue
            try:
                if kind == MUL:
                    locals_ = _mul_partials(A, a)
                elif kind == POW:
                    locals_ = self._pow_partials(i, a, vals[i], prog.active[args[1]])
                else:
                    locals_ = prog.rule[i].partials(self, i, a, vals[i])
            except ZeroDivisionError:  # (mpmath; arb returns a NaN ball)
                locals_ = [A.nan()] * len(a)
            for j, d in zip(args, locals_):
                if not prog.active[j]:
                    continue
                if d is UNDECIDED:
                    self.undecided.append(i)
                    adj[j] = UNDECIDED
                elif d is not None:
                    adj[j] = self._accumulate(adj[j], g * d)
        return adj

    def _accumulate(self, acc: Any, term: Any) -> Any:
        if acc is UNDECIDED or term is UNDECIDED:
            return UNDECIDED
        if acc is None:
            return term
        accumulate = getattr(self.A, "accumulate", None)  # (mpmath counts cancellations; arb's balls need not)
        return acc + term if accumulate is None else accumulate(acc, term)

    def _pow_partials(self, i: int, a, value, exp_active: bool) -> list:
        A, node = self.A, self.prog.nodes[i]
        base, e = a
        take_cancelled = getattr(A, "take_cancelled", None)
        if take_cancelled is not None:
            take_cancelled()
        # an exactly zero base: the derivative divides by it (sqrt(u)' = 1 / (2 sqrt(u)), u^e' = e u^(e - 1) for
        # e < 1, d/de u^e = u^e log u). Noted, so that the refusal names it; the entry's NaN does the refusing.
        if A.is_exact_zero(base) and not isinstance(node.exp, sp.Integer) and (
                exp_active or node.exp == sp.Rational(1, 2) or A.sign(e - A.one()) != 1):
            how = "1 / (2 sqrt(u)) at u = 0" if node.exp == sp.Rational(1, 2) else "u^(e - 1) or log u at u = 0"
            self.note_singular(f"a division by an exact zero in the derivative of {_short(node)} ({how})")
        if isinstance(node.exp, sp.Integer):
            n = int(node.exp)
            d_base = A.number(node.exp) * A.ipow(base, n - 1) if n != 0 else None
        elif node.exp == sp.Rational(1, 2):
            d_base = A.number(sp.Rational(1, 2)) / value
        else:
            d_base = e * A.pow(base, e - A.one())
        d_exp = value * A.log(base) if exp_active else None
        # (mpmath: log of a base absorbed into 1, or a huge exponent; exact only where the base is exactly 1)
        if take_cancelled is not None and take_cancelled():
            if not (base == 1 and self.exact(self.prog.args[i][0]) == 1):
                A.lost += 1
        return [d_base, d_exp]




def _mul_partials(A, a: list) -> list:
    """d(a0 a1 ... an)/d ai = the product of the others (prefix and suffix products: no division)."""
    n = len(a)
    if n == 2:
        return [a[1], a[0]]
    prefix, suffix = [A.one()] * n, [A.one()] * n
    for k in range(1, n):
        prefix[k] = prefix[k - 1] * a[k - 1]
        suffix[n - 1 - k] = suffix[n - k] * a[n - k]
    return [prefix[k] * suffix[k] for k in range(n)]


def _logic(kind: int, a: list) -> Any:
    """Three-valued and/or: a certain False (and) or True (or) decides even beside an undecided operand."""
    if kind == AND:
        if any(v is False for v in a):
            return False
        return UNDECIDED if any(v is UNDECIDED for v in a) else True
    if any(v is True for v in a):
        return True
    return UNDECIDED if any(v is UNDECIDED for v in a) else False
