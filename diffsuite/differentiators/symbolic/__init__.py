"""Symbolic differentiation: the shared definitions run on SymPy expressions, differentiated, CSE'd, compiled.

Cost model: all work is setup, paid once in ``value_and_grad``: build the loss expression (its DAG
grows linearly with the network, its printed tree exponentially with depth), differentiate it with
respect to every parameter (SymPy's rules applied once per distinct subexpression, ``dagdiff``; the
derivatives' printed trees swell, their DAGs grow linearly), optionally CSE the loss and
all derivatives jointly, and generate one straight-line Python function. A call then costs one pass
over that function: microseconds on tiny networks, where it beats every autodiff we measured
(benchmarks/bench_symbolic.py).
Error model: exact derivatives; the only error is the float64 rounding of the compiled arithmetic.

Files: ``__init__`` the ``Symbolic`` differentiator and ``expression_metrics``; ``namespace`` the xp
namespace on SymPy arrays (kink functions Step, Abs0, ...); ``build`` the loss expression, its
derivatives, CSE and the setup pipeline; ``rewrite`` equal forms that do not cancel (softmax, logsumexp); ``dagdiff`` SymPy's derivative of a DAG without tree walks; ``higher`` Hessians and Jacobians (second derivatives, compiled); ``codegen`` straight-line Python (float64 or mpmath) from the
expressions; ``symengine_bridge`` SymPy <-> SymEngine; ``metrics`` expression sizes (tree, DAG, ops).
"""
from __future__ import annotations

import dataclasses
import enum
import importlib.util
import math
import numbers
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, ClassVar

import numpy as np

from ... import pytree
from ...pytree import positional_only as shared_positional_only
from ...budget import Budget, check_node_budget, check_time_budget, run_budgeted
from ...objective import Objective
from ..base import Gradient, HigherOrder, check_flags, dtype_name, flatten_params, grad_leaf, with_argnums_of
from .build import (ENGINES, METRIC_KEYS, SetupOptions, build_function, build_objective, is_float_data,
                             setup)
from . import higher
from .codegen import Kernel
from .symengine_bridge import load_symengine


@dataclass(frozen=True)
class Symbolic(HigherOrder):
    """``get_differentiator("symbolic", cse=True, engine="sympy", symbolic_data=False, ...)``.

    Options: ``cse`` (joint CSE of loss and gradient before compiling), ``engine`` ("sympy", or
    "symengine" to differentiate and CSE with SymEngine), ``symbolic_data`` (data as symbols, passed
    at call time, instead of exact constants), ``node_budget`` (max expression nodes, see below),
    ``time_budget_s`` (max seconds for the whole setup; None disables), ``metrics`` (measure the
    expressions), ``count_ops_max_nodes`` (``grad_count_ops`` is None above this gradient tree size,
    because count_ops walks the printed tree). ``dtype``: float64 only.

    Budgets (``BudgetExceeded(stage, budget, progress)`` on overrun): ``node_budget`` caps the distinct nodes
    (DAG) of the loss while it is built and of the derivatives so far, and also the *printed-tree* size of what
    SymPy walks: the arguments of every ``xp`` call while the loss is built (SymPy's evaluation and sign queries
    walk trees, exponentially larger than the DAG in a deep net) and, with ``engine="sympy"``, the loss before it
    is differentiated. The derivatives themselves are taken once per distinct subexpression (``dagdiff``:
    SymPy's rules, the same expressions as ``sympy.diff``), so with only ``node_budget`` set the setup's work is
    polynomial in the budget: a deep net finishes or is refused early, it does not run for minutes (10 hidden
    sigmoid layers of width 10 under the default budget: refused in the build within ~10 s). A larger budget still
    buys proportionally more time (about 0.2 ms per derivative node with SymPy); ``time_budget_s`` caps it.

    Large arguments: logsumexp is compiled max-shifted (``LogSumExp``, rewrite.py); sigmoid and softmax entries
    are compiled unshifted (``1 / (1 + exp(-x))``, ``1 / (1 + sum exp(x_k - x_i))``), so the float kernel
    overflows once an exp argument passes ~709 (and an underflow can end in log(0) or 0 / 0); the call then
    reruns the same kernel on mpmath numbers (113-bit, unbounded exponent), which gives the finite value and
    gradient (e.g. logits [1000, 999], sigmoid at -800), only slower. A value or gradient entry beyond float64's
    range comes back inf, and a sum of finite exps that overflows without raising (arguments just below 709.78)
    is not detected. Where the code is undefined the rerun follows IEEE 754 (x / 0 is +-inf, log of a negative
    number nan), so a value CSE computed for an untaken ``where`` branch (1 / t beside t != 0) is discarded with
    it; a constant folded outside float64's range (1e-200 * 1e-200) also takes the rerun (codegen.py).

    ``stats`` (metrics defined in ``metrics``'s module docstring; None when not measured):
    ``build_s, diff_s, cse_s, compile_s`` (seconds per setup stage), ``metrics_s``, ``setup_s``;
    ``loss_tree_nodes, loss_dag_nodes`` (the loss); ``grad_tree_nodes`` (summed over all derivatives,
    shared subtrees counted at every use), ``grad_dag_nodes`` (distinct subexpressions of all
    derivatives jointly), ``grad_count_ops`` (sum of count_ops of the naive derivatives);
    ``cse_one_nodes, cse_one_ops`` (CSE of the derivative with respect to the first parameter alone);
    ``cse_all_nodes, cse_all_ops`` (joint CSE of [loss, all derivatives]; None when ``cse=False``);
    ``engine``, ``cse``, ``n_params``, ``kernel_lines``.
    """

    cse: bool = True
    engine: str = "sympy"
    symbolic_data: bool = False
    dtype: str = "float64"
    node_budget: int | None = 1_000_000
    time_budget_s: float | None = 60.0
    metrics: bool = True
    count_ops_max_nodes: int | None = 20_000
    name: ClassVar[str] = "symbolic"
    higher: ClassVar = higher  # jvp/vjp/jacobian/hessian/hvp: second derivatives CSE'd and compiled (higher.py)

    def __post_init__(self):
        check_flags(self, "cse", "symbolic_data", "metrics")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {self.engine!r}")
        object.__setattr__(self, "dtype", dtype_name(self.dtype))  # (np.float64 too)
        if self.dtype != "float64":
            raise ValueError(f"symbolic compiles its gradient for float64 only; got dtype={self.dtype!r}. For a "
                             "float32 ground truth use diffsuite.reference.reference_gradient(..., dtype='float32'); "
                             "for float32 arithmetic use get_differentiator('reverse', dtype='float32').")
        check_node_budget(self.node_budget)  # a bool, a float, 0: a ValueError naming the option
        check_time_budget(self.time_budget_s)  # math.inf: no limit
        if self.engine == "symengine" and importlib.util.find_spec("symengine") is None:
            load_symengine()  # refused here, at construction, with the install command (MissingDependency)

    @property
    def label(self) -> str:
        """A legend label: ``symbolic[sympy,cse]``."""
        return f"symbolic[{self.engine}{',cse' if self.cse else ''}{',data' if self.symbolic_data else ''}]"

    def run_setup(self, build: Callable, compile: bool = True, cse: bool | None = None) -> dict:
        """``build.setup`` under this differentiator's budgets (raises BudgetExceeded)."""
        opts = SetupOptions(engine=self.engine, cse=self.cse if cse is None else cse, metrics=self.metrics,
                            compile=compile, count_ops_max_nodes=self.count_ops_max_nodes)
        return run_budgeted(partial(setup, build, opts), Budget(time_s=self.time_budget_s, nodes=self.node_budget))

    @staticmethod
    def _kernel(result: dict) -> tuple[Kernel, dict]:
        t = time.perf_counter()
        kernel = Kernel(result["source"])
        stats = result["stats"]
        stats["compile_s"] += time.perf_counter() - t
        stats["setup_s"] = sum(stats.get(k) or 0.0 for k in ("build_s", "diff_s", "metrics_s", "cse_s", "compile_s"))
        return kernel, stats

    # ----- Objectives -----
    def value_and_grad(self, objective: Objective | Callable) -> Callable[[np.ndarray], Gradient]:
        """Build, differentiate, CSE and compile once; the returned ``(theta, batch=None) -> Gradient`` only
        evaluates. ``batch=(X, y)`` needs ``symbolic_data=True`` and the objective's batch shape (``_batch_values``).

        The returned function carries ``.kernel`` (``kernel.source`` is the generated Python, ``kernel.fast``
        the bare compiled function of a list of floats) and ``.stats``.
        """
        if not isinstance(objective, Objective):
            return self.value_and_grad_fn(objective)  # (f's own arguments after theta, positional)
        result = self.run_setup(partial(build_objective, objective, symbolic_data=self.symbolic_data))
        kernel, stats = self._kernel(result)
        data, n = result["data_values"], result["n_params"]

        fast, f64 = kernel.fast, np.float64

        def value_and_grad_fn(theta: np.ndarray, batch: tuple | None = None) -> Gradient:
            # The common call (a finite float64 vector, the objective's data) costs the kernel plus converting in and
            # out: a list of floats in, one array out. A sum of Python floats decides finiteness (inf or nan anywhere
            # makes it so; overflow of huge entries merely takes the slow path, which names a bad entry or passes).
            data_now = data if batch is None else self._batch_values(objective, batch)
            if type(theta) is np.ndarray and theta.shape == (n,) and theta.dtype == f64:
                values = theta.tolist()
                if not math.isfinite(sum(values)):  # rare: let check_theta name the bad entry
                    objective.check_theta(theta)
            else:
                values = objective.check_theta(theta).tolist()
            if data_now:
                values += data_now
            try:
                value, grad = fast(values)
            except (OverflowError, ZeroDivisionError, ValueError):  # the wrapper's fallbacks: mpmath, numpy scalars
                value, grad = kernel(values)
            # (fromiter with a count: half np.array's cost on a short list; ints, where a derivative is 0, become floats)
            return Gradient(float(value), np.fromiter(grad, f64, n), dict(stats))

        value_and_grad_fn.kernel, value_and_grad_fn.stats = kernel, stats  # kernel.source: the generated code
        return value_and_grad_fn

    def _batch_values(self, objective: Objective, batch: tuple) -> list:
        """A minibatch as the kernel's data arguments (build.build_objective's order: x, then y), or a clear error.

        Only ``symbolic_data=True`` compiles the data as arguments, of the objective's batch shape; the one-hot
        targets of cross_entropy are compiled in as constants (they select z[b, y_b]) even then."""
        if not self.symbolic_data:
            raise ValueError("batch= needs the data as arguments of the compiled kernel, but symbolic_data=False "
                             "compiled this objective's data in as constants: use get_differentiator('symbolic', "
                             "symbolic_data=True), or build a new value_and_grad per batch")
        if objective.loss.name == "cross_entropy":
            raise ValueError("batch= cannot change cross_entropy's targets in a symbolic kernel: their one-hot rows are "
                             "compiled in as constants (they pick z[b, y_b]); use the reverse or finite_diff "
                             "differentiator, or a loss whose targets are data (quadratic, binary_cross_entropy)")
        inputs, targets = objective.batch_data(batch)
        if inputs.shape != objective.inputs.shape:
            raise ValueError(f"the symbolic kernel takes batches of exactly {objective.batch_size} rows (the "
                             f"objective's data, compiled as symbols of that shape); got {inputs.shape[0]}. Use "
                             "minibatches of one size (e.g. drop_last=True) or reverse mode")
        return inputs.ravel().tolist() + targets.ravel().tolist()

    # ----- users' functions -----
    def value_and_grad_fn(self, f: Callable) -> Callable[..., Gradient]:
        """``(theta, *args) -> Gradient`` for ``f(xp, theta, *args)``; the gradient has theta's structure.

        Cost: one full setup per new signature (theta's structure: its containers' types, keys and leaf shapes; the
        shapes of float arguments; the values of other arguments), cached; later calls with that signature only
        evaluate. Float arguments are symbols, so new data of the same shape costs no rebuild. An argument that is
        not a plain value (see ``_value_key``) is built afresh at every call. Arguments are positional only.
        """
        cache: dict = {}

        def value_and_grad_fn(theta: Any, *args: Any, **kwargs: Any) -> Gradient:
            if kwargs:
                positional_only(kwargs)
            leaves, rebuild, keys = pytree.flatten(theta)  # keys: each leaf's path, ``theta``, ``W``, ``theta[0]['W']``
            key = signature_key(tree_key(theta), tuple(leaf.shape for leaf in leaves), args=args)
            if key is None or key not in cache:  # (None: an argument with no value key is built afresh, not cached)
                built = self._kernel(self.run_setup(partial(build_function, f, leaves, rebuild, args, keys)))
                if key is None:
                    kernel, stats = built
                else:
                    cache[key] = built
            if key is not None:
                kernel, stats = cache[key]
            values = [v for leaf in leaves for v in leaf.reshape(-1).tolist()]
            for a in args:
                if is_float_data(a):
                    values += np.asarray(a, dtype=np.float64).reshape(-1).tolist()
            value, grad = kernel(values)
            flat, parts, start = np.array(grad, dtype=np.float64), [], 0
            for leaf in leaves:
                parts.append(grad_leaf(flat[start:start + leaf.size].reshape(leaf.shape)))
                start += leaf.size
            return Gradient(float(value), rebuild(parts), dict(stats))

        return value_and_grad_fn

    def grad(self, f: Callable, argnums: int | tuple[int, ...] = 0) -> Callable[..., Any]:
        """``(theta, *args) -> gradient`` of ``f(xp, theta, *args)``, in theta's structure (``argnums``: see
        ``diffsuite.pytree.with_argnums``). Arguments are positional only."""
        grad_fn = with_argnums_of(self, f, argnums)

        def grad(*args: Any, **kwargs: Any) -> Any:
            if kwargs:
                positional_only(kwargs)
            return grad_fn(*args)

        return grad


def positional_only(kwargs: dict) -> None:
    """The shared TypeError for keywords (``diffsuite.pytree.positional_only``), with what binding means here."""
    shared_positional_only(kwargs, note=": a constant compiled into the kernel")


#: the cache key of an argument that cannot be keyed by its value: such a call builds afresh and caches nothing
UNCACHEABLE = None


def _arg_key(a: Any) -> tuple | None:
    """The cache key of one of f's arguments after theta: float data by shape (they become symbols, their values
    are passed at call time); anything else is compiled in as constants, so it is keyed by its *value* (a list of
    floats by its entries, an array by dtype, shape and bytes), never by ``id()``: a list mutated in place, or a new
    list at a freed address, must not reuse a kernel built for other values. None (``UNCACHEABLE``): no value key."""
    if is_float_data(a):
        return ("float", np.shape(a))
    return _value_key(a)


#: values that are their own key: immutable, equal exactly when they compute alike (numbers of one type, strings)
_PLAIN = (numbers.Number, np.generic, str, bytes, type(None), type(Ellipsis), range, np.dtype, enum.Enum)
#: the commonest plain values (dict keys, flags, sizes), recognised by their exact type before any isinstance test
_EXACT_PLAIN = frozenset((str, int, float, bool, type(None)))


def _value_key(a: Any) -> tuple | None:
    """``a``'s value as a hashable key, read now (so it follows any mutation): plain values (numbers, strings,
    None, ...), numpy arrays, and lists, tuples, dicts, slices and dataclass instances of them, each with its
    exact type (1, 1.0 and True differ; so do a list and a tuple). Anything else (a user's object, a set, a
    function: state a key cannot read, such as an attribute set later) has no key: None (``UNCACHEABLE``)."""
    kind = type(a)
    if kind in _EXACT_PLAIN:  # (hashable; numbers.Number's isinstance alone costs more than the rest of a key)
        return ("value", kind, a)
    if isinstance(a, np.ndarray):
        if a.dtype == object:  # (tobytes of an object array would be the elements' addresses)
            items = tuple(_value_key(x) for x in a.reshape(-1).tolist())
            return None if None in items else ("object array", a.shape, items)
        return ("array", a.dtype.str, a.shape, a.tobytes())
    if isinstance(a, (list, tuple)):
        items = tuple(_value_key(x) for x in a)
        return None if None in items else (kind, items)
    if isinstance(a, dict):
        items = tuple((_value_key(k), _value_key(v)) for k, v in a.items())
        return None if any(None in kv for kv in items) else (kind, items)
    if isinstance(a, slice):
        parts = tuple(_value_key(x) for x in (a.start, a.stop, a.step))
        return None if None in parts else (slice, parts)
    if dataclasses.is_dataclass(a) and not isinstance(a, type):  # its fields, read now (frozen or not)
        fields = tuple((f.name, _value_key(getattr(a, f.name))) for f in dataclasses.fields(a))
        return None if any(k is None for _, k in fields) else (kind, fields)
    if isinstance(a, _PLAIN):
        try:
            hash(a)
        except TypeError:
            return UNCACHEABLE
        return ("value", kind, a)
    return UNCACHEABLE


def tree_key(theta: Any) -> tuple:
    """theta's structure as a cache key: each container's type and keys (with their types: 1 and '1' differ), and
    where the leaves are; ``[a, b]`` and ``(a, b)`` differ, as a function may treat them differently."""
    if isinstance(theta, dict):
        return (type(theta), tuple((_value_key(k) or (type(k), k), tree_key(v)) for k, v in theta.items()))
    if isinstance(theta, (list, tuple)):
        return (type(theta), tuple(tree_key(v) for v in theta))
    return ("leaf",)


def signature_key(*parts: Any, args: tuple) -> tuple | None:
    """A kernel cache key from ``parts`` and f's extra ``args``, or None when some argument has no value key."""
    keys = tuple(_arg_key(a) for a in args)
    return None if None in keys else (*parts, keys)


def expression_metrics(objective: Objective, *, symbolic_data: bool = False, engine: str = "sympy",
                       node_budget: int | None = 1_000_000, time_budget_s: float | None = 60.0,
                       count_ops_max_nodes: int | None = 20_000) -> dict:
    """Every expression metric of ``objective`` (both CSEs included), without compiling; budgets apply.

    Returns the stats dict of ``Symbolic`` less ``compile_s``/``setup_s``: the timings of each stage
    and ``loss_tree_nodes ... cse_all_ops`` (see ``Symbolic``). Raises ``BudgetExceeded`` on overrun.
    """
    d = Symbolic(cse=True, engine=engine, symbolic_data=symbolic_data, node_budget=node_budget,
                 time_budget_s=time_budget_s, metrics=True, count_ops_max_nodes=count_ops_max_nodes)
    stats = d.run_setup(partial(build_objective, objective, symbolic_data=symbolic_data), compile=False)["stats"]
    stats.pop("compile_s", None)
    return stats

__all__ = ["METRIC_KEYS", "Symbolic", "expression_metrics"]
