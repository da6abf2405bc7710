"""Reverse-mode automatic differentiation: our own tape and rule table, on numpy or torch arrays.

Cost model: one forward pass that records every primitive, then one backward pass with one VJP per
(primitive, traced input): about 2-3 forward passes of work, whatever the number of parameters.
Error model: the rounding of the forward and backward arithmetic only; no truncation error.

Backends: ``backend="numpy"`` (default) or ``backend="torch"`` with ``device="cpu"`` or ``"cuda"``: the same
tape and rules, torch only as the array library (torch.autograd is never used). docs/reverse.md explains
the engine, how to add a primitive, and the speed benchmark (``benchmarks/bench_reverse.py``).

Files: ``__init__`` the ``Reverse`` differentiator; ``tape`` the tape, its traced ``Var`` and the xp
namespace that records; ``plan`` an objective's recorded tape replayed without it; ``ops`` the rule table (one VJP per primitive); ``backends/`` the array
library each rule runs on (numpy, torch).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np

from ...nn.losses import CrossEntropy
from ...objective import Objective
from ..base import (Gradient, HigherOrder, call_checked, check_dtype, check_flags, flatten_params, grad_leaves,
                    positional_only, scalar_check, with_argnums_of)
from . import higher
from .backends import check_placement, load_backend
from .fused import SOFTMAX_CROSS_ENTROPY, target_index
from .plan import PlanRecorder, build_plan, plannable
from .tape import Tape, TapeNamespace, Var

DTYPES = ("float64", "float32")
_add_reduce = np.add.reduce  # what theta.sum() calls, without the method's Python wrapper
_einsum = np.einsum
#: from this many parameters an objective's gradient is written into slots of one buffer and theta is summed by einsum
SLOTS_FROM = 10_000
#: minibatch shapes one ``value_and_grad`` keeps a plan for (a training loop has one, or two with a last partial batch)
BATCH_PLANS = 8


@dataclass(frozen=True)
class Reverse(HigherOrder):
    """``get_differentiator("reverse", backend="numpy"|"torch", device="cpu"|"cuda", dtype="float64"|"float32")``.

    Parameters and data are moved to the backend, in ``dtype``, once, in ``value_and_grad``. Each
    call records a fresh tape, except that for an ``Objective`` (``replay=True``, the default) the first call's
    tape is turned into a plan (``plan.py``) that later calls on the objective's own data replay without
    the tape, bit for bit the same; ``batch=`` calls get one plan per batch shape that takes the batch as arguments
    (where the loss's program allows: see ``plan.build_plan``); ``replay=False`` records every call. ``stats``:
    ``tape_records`` (all records, leaves included),
    ``tape_forward_ops`` (primitives recorded), ``tape_backward_ops`` (VJPs evaluated), ``tape_leaves``.
    """

    backend: str = "numpy"
    device: str = "cpu"
    dtype: str = "float64"
    replay: bool = True
    name: ClassVar[str] = "reverse"
    # jvp/vjp/jacobian/hessian/hvp (higher.py): the backward pass recorded on an outer tape (reverse-over-reverse)
    # only when a higher-order method is called; value_and_grad and grad pay nothing for it
    higher: ClassVar = higher

    def __post_init__(self):
        check_flags(self, "replay")
        check_placement(self.backend, self.device)  # refused here, not at the first call (backend="jax", numpy on cuda)
        check_dtype(self, DTYPES)

    @property
    def label(self) -> str:
        """A legend label: ``reverse[numpy]``, ``reverse[torch-cuda,float32]``."""
        where = self.backend if self.backend == "numpy" else f"{self.backend}-{self.device}"
        return f"reverse[{where}{'' if self.dtype == 'float64' else ',' + self.dtype}]"

    def load(self):
        """The backend object (raises a clear error if torch or CUDA is missing)."""
        return load_backend(self.backend, device=self.device, dtype=self.dtype)

    # ----- Objectives -----
    def value_and_grad(self, objective: Objective | Callable) -> Callable[[np.ndarray], Gradient]:
        """``(theta, batch=None) -> Gradient`` for an ``Objective`` (or a function ``f(xp, theta)`` of a flat
        theta); ``batch=(X, y)`` evaluates on that minibatch instead of the objective's data."""
        if not isinstance(objective, Objective):
            vg = self.value_and_grad_fn(objective)
            return lambda theta, *args: vg(theta, *args)  # (f's own arguments after theta, as value_and_grad_fn)
        B = self.load()
        inputs, targets = (B.asarray(a) for a in objective.data(np.float64))  # moved and cast once
        layout = list(objective.model.layout.items())
        n_params = objective.n_params
        # Per block, built once (each call then only splits theta into views): name, size, and the shape to
        # reshape to, or None for a 1-D block (bias), whose piece of the flat vector already has its shape.
        names = [name for name, _ in layout]
        sizes = [b - a for _, (a, b, _) in layout]
        shapes = [shape if len(shape) != 1 else None for _, (_, _, shape) in layout]
        fused = _fused_evaluate(objective)
        evaluate, finish, fused = fused or objective.evaluate, self._finish, fused is not None
        concat_flat, split = B.concat_flat, B.split
        # B.asarray of a float64 ndarray is that array itself on the float64 numpy backend: skip the call there
        same_array = B.name == "numpy" and B.dtype == np.float64
        tiny, small = n_params <= 64, n_params < SLOTS_FROM
        plan = [None, self.replay and plannable(objective)]  # [the plan once recorded, whether to make one]
        # Minibatch plans (``batch=``), per (inputs shape, targets shape, whether they are one array): the plan, or
        # None where the recording made none (build_plan's ``data``: a constant computed from the data outside the
        # tape). At most BATCH_PLANS keys (threads racing on a new one may each record it: harmless); further
        # shapes record a tape per call.
        batch_plans: dict = {}
        batch_plannable = plan[1]

        def value_and_grad_fn(theta: np.ndarray, batch: tuple | None = None) -> Gradient:
            # ``batch=(X, y)``: this call's data instead of the objective's (checked, cast, moved; no re-setup)
            data_x, data_y = (inputs, targets) if batch is None else \
                (B.asarray(a) for a in objective.batch_data(batch))
            # Fast path for the common call (a finite float64 vector of the right length). A replay whose plan has
            # witness rows (plan.py: row 0 of each layer's x @ W + b holds a product with every entry of W and b, so
            # it is finite only if they are) needs no look at theta: it checks about 10^2 entries per layer, made
            # in cache, instead of reading all of theta (118k entries on [784,128,128,10], whose einsum cost the
            # hand-written code 3.5% of a b64 call in a process of its own; in one process the witnessed plan times
            # as the plan without any check: benchmarks/bench_theta_check.py). Otherwise one sum decides finiteness
            # (an inf or nan anywhere makes it inf or nan; so does overflow of huge entries, which then merely takes
            # the slow path); anything else gets the full check,
            # which names the offending entry. Not theta @ theta: BLAS may run a long dot product on two threads,
            # and waiting for the second one costs milliseconds on a loaded machine (measured). A large theta is
            # summed by einsum, whose loop is vectorised (numpy's add.reduce sums pairwise in scalar code: 280k
            # instructions for 118k parameters against einsum's 164k, cachegrind); a small one by add.reduce
            # (einsum parses its subscripts first), a tiny one as Python floats (a numpy reduction's fixed cost is
            # larger there).
            recording = batch is None and plan[1]
            witnessed = recording and plan[0] is not None and plan[0].witnessed  # (never below SLOTS_FROM)
            if not (type(theta) is np.ndarray and theta.dtype == np.float64 and theta.shape == (n_params,)
                    and (witnessed or math.isfinite(sum(theta.tolist()) if tiny else
                                                    _add_reduce(theta) if small else _einsum("i->", theta)))):
                flat, witnessed = B.asarray(objective.check_theta(theta)), False
            elif same_array:
                flat = theta
            else:
                try:
                    flat = B.asarray(theta)
                except (RuntimeWarning, FloatingPointError):  # a float32 cast's overflow, as an exception (-W error,
                    objective.check_theta(theta)              # seterr raise): a witnessed call has not looked at
                    raise                                     # theta yet, and its nan must still be named first
            # The flat gradient is allocated first, and each block's gradient is written into its slot
            # (Tape.backward's ``into``): the weight gradients need no temporaries and no final concatenate,
            # and the buffer, allocated before the forward pass's temporaries, sits low in the heap where
            # freeing it does not make glibc hand pages back to the system (page faults, next call).
            # Below about 10^4 parameters the slots cost more (a view per block) than the copy they save.
            grad_out = B.empty(n_params)
            slots = split(grad_out, sizes, shapes) if n_params >= SLOTS_FROM else None
            blocks = split(flat, sizes, shapes)
            batch_key, fused_hot = None, {}
            if batch is not None and batch_plannable:  # a minibatch: its shapes' plan takes the data as arguments
                hot = target_index(data_y) if fused else None
                data = (data_x, data_y) if hot is None else (data_x, data_y, hot)
                fused_hot = {} if hot is None else {"hot": hot}
                # (the aliasing too: a plan recorded with inputs that *are* the targets, an autoencoder's (X, X),
                # reads one argument for both, right only for batches aliased the same way)
                batch_key = (tuple(data_x.shape), tuple(data_y.shape), data_x is data_y)
            if recording and plan[0] is not None:  # replay: same structure, data, dtype and backend
                done = _witnessed_run(plan[0], B, blocks, slots, objective, theta) if witnessed else \
                    plan[0].run(B, blocks, slots)
                grads, value, stats = done
            elif batch_key is not None and batch_plans.get(batch_key) is not None:
                grads, value, stats = batch_plans[batch_key].run(B, blocks, slots, data=data)
            else:
                new_batch_plan = batch_key is not None and batch_key not in batch_plans \
                    and len(batch_plans) < BATCH_PLANS
                # a fresh tape: nothing stale survives
                tape = PlanRecorder(B) if recording or new_batch_plan else Tape(B)
                wrt = tape.inputs(blocks)
                out = evaluate(TapeNamespace(tape), dict(zip(names, wrt)), data_x, data_y, **fused_hot)
                if recording:
                    plan[0] = build_plan(tape, out, wrt, witness=not small)
                    plan[1] = plan[0] is not None
                elif new_batch_plan:
                    batch_plans[batch_key] = build_plan(tape, out, wrt, witness=False, data=data)
                grads, value, stats = finish(tape, out, wrt, objective.describe, slots)
            grad = grad_out if slots else concat_flat(grads, out=grad_out)
            return Gradient(B.item(value), grad if same_array else B.to_numpy(grad), stats)

        return value_and_grad_fn

    # ----- users' functions -----
    def value_and_grad_fn(self, f: Callable) -> Callable[..., Gradient]:
        """``(theta, *args) -> Gradient`` for ``f(xp, theta, *args) -> scalar``; grad has theta's structure."""
        B = self.load()

        def value_and_grad_fn(theta: Any, *args: Any, **kwargs: Any) -> Gradient:
            if kwargs:
                positional_only(kwargs)
            leaves, rebuild = flatten_params(theta)
            tape = Tape(B)
            wrt = tape.inputs([B.leaf(leaf) for leaf in leaves])  # (0-d: numpy scalars, see B.leaf)
            out = call_checked(f, getattr(f, "__name__", "f"), TapeNamespace(tape), rebuild(wrt), *args)
            grads, value, stats = self._finish(tape, out, wrt, lambda: getattr(f, "__name__", "f"))
            return Gradient(B.item(value), rebuild(grad_leaves([B.to_numpy(g) for g in grads])), stats)

        return value_and_grad_fn

    def grad(self, f: Callable, argnums: int | tuple[int, ...] = 0) -> Callable[..., Any]:
        """``(theta, *args) -> gradient`` of ``f(xp, theta, *args)``, in theta's structure (``argnums``: see
        ``diffsuite.pytree.with_argnums``)."""
        return with_argnums_of(self, f, argnums)

    @staticmethod
    def _finish(tape: Tape, out: Any, wrt: list[Var], who: Callable[[], str],
                into: list | None = None) -> tuple[list, Any, dict]:
        """The backward pass: (gradients, one per ``wrt``; the output's value, a backend array; stats)."""
        B = tape.backend
        if type(out) is not Var:  # the output does not depend on theta at all
            if np.size(out) != 1:
                scalar_check(np.shape(out), who())
            grads = [B.zeros_like(v.value) for v in wrt] if into is None else [B.copy_into(d, 0.0) for d in into]
            n_vjps, value = 0, out
        else:
            if B.numel(out.value) != 1:
                scalar_check(out.shape, who())
            grads, n_vjps = tape.backward(out, wrt, into)
            value = out.value
        n_records, n_leaves = len(tape.records), tape.n_leaves
        # Records hold arrays and indices, never Vars (a Var points to its tape: that would be a cycle for the
        # garbage collector). Emptying them frees now what the backward pass did not reach (records after the
        # output, and the leaves).
        tape.records.clear()
        stats = {"tape_records": n_records, "tape_forward_ops": n_records - n_leaves,
                 "tape_backward_ops": n_vjps, "tape_leaves": n_leaves}
        return grads, value, stats


def _witnessed_run(plan, B, blocks: list, slots: list | None, objective: Objective, theta: np.ndarray) -> tuple:
    """``plan.run`` with its witness rows checked in place of theta: a row that is not finite sends theta to
    ``check_theta``, which names the bad entry; a finite theta (the forward pass or a row's sum overflowed) is then
    run again without rows (its forward pass up to that row paid twice: only such huge thetas pay it).
    numpy's complaint about an inf entry's arithmetic in the forward pass (``0 * inf``, ``inf - inf``), raised as
    an exception under ``-W error`` or ``np.seterr(all="raise")``, meets the same check first."""
    try:
        done = plan.run(B, blocks, slots, check=True)
    except (RuntimeWarning, FloatingPointError):
        objective.check_theta(theta)
        raise
    if done is None:
        objective.check_theta(theta)
        done = plan.run(B, blocks, slots)
    return done


def _fused_evaluate(objective: Objective) -> Callable | None:
    """``objective.evaluate`` with the loss recorded as one fused primitive (``fused.py``), where there is one:
    softmax cross-entropy (the loss exactly ``CrossEntropy``). None otherwise."""
    if type(objective.loss) is not CrossEntropy:
        return None

    def fused_evaluate(xp: TapeNamespace, params: dict, inputs: Any = None, targets: Any = None, *,
                       hot: Any = None) -> Any:
        """``hot``: the targets' ``target_index``, computed here when not given (a minibatch plan passes the object
        it records with, so that the plan takes it as data)."""
        def fused_loss(xp: TapeNamespace, logits: Any, onehot: Any) -> Any:
            return xp.tape.apply(SOFTMAX_CROSS_ENTROPY, logits, onehot,
                                 hot=hot if hot is not None and onehot is targets else target_index(onehot))

        return objective.evaluate(xp, params, inputs, targets, loss=fused_loss)

    return fused_evaluate
