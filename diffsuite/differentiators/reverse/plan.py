"""A recorded tape turned into a replayable plan: later gradients of the same objective without the tape.

An ``Objective``'s sequence of primitives depends on its structure (model, loss, L1/L2, data shapes, dtype,
backend), never on theta's values: the built-in activations and losses branch on nothing traced (maximum,
the step and the fused cross-entropy are elementwise primitives). So the first gradient call records a tape
as usual (``PlanRecorder``: a ``Tape`` that also logs each record's inputs) and ``build_plan`` turns it into

- forward steps ``(kind, forward, out_slot, inputs, params)``: plain backend arrays in slots (one per record;
  constants and the shapes the VJPs read have fixed slots of their own), no ``Var``, no records;
- backward entries, precomputed in the order ``Tape.backward`` evaluates them (only the VJPs that walk reaches,
  the ``into`` rule where it would use it, the same accumulation order), so the floating-point operations and
  their order are those of the tape path: the gradients are bit for bit the same.

Slots that no later step reads are released as the walk passes them (the tape's memory profile). The steps are
then compiled into straight-line Python (``Plan.source``), each slot a local variable.

Witness rows (numpy backend): a replay can prove theta finite from a few hundred entries of the forward pass
instead of reading all of theta (``Plan.witnessed``). Row 0 of ``x @ W`` holds ``x[0, i] * W[i, j]`` for every entry
of ``W``, and under IEEE arithmetic a product with an inf or nan factor is inf or nan (``0 * inf`` is nan), as is any
sum with such a term; so ``W`` is finite if that row is (whatever ``x`` holds). Row 0 of ``m + b`` (``b`` broadcast
over rows) holds every entry of ``b``, and carries row 0 of ``m``. This rests on the matrix product computing every
product, which a BLAS that skips zero factors would not: ``build_plan`` probes each such product once, with the
recorded shapes and layouts, on zeros against nan and against inf, and witnesses only where every entry comes out
nan (a replay's W of another layout, from a strided theta, goes through numpy's own loop, which multiplies every
pair). A plan whose parameters are not all witnessed leaves the check of theta to the caller.
Cost: one forward call and one VJP call per primitive, nothing else; the tape's per-op Python (Var objects,
record tuples, the backward loop's dispatch) is gone, and a call allocates only the arrays themselves.

Valid only while nothing the plan baked in changes: the objective's data (the plan is used for calls on the
objective's own data), the backend and dtype (fixed per ``value_and_grad``). A minibatch plan (``build_plan``'s
``data``) takes its batch as arguments instead, per batch shape, where every array the recording took from the
batch is the batch itself (identity, never values); a program with constants computed from the data outside the
tape (``1 - targets``) gets none. Objectives whose model, activations or loss are not the built-in classes are
never planned (user code could branch).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...nn import activations, losses
from ...nn.mlp import MLP
from ...objective import Objective
from .ops import OPS, SHAPE, VALUE
from .tape import _NO_PARAMS, Tape, Var

# forward step kinds: the common arities without parameters unrolled; the rest generic
_UNARY, _BINARY, _UNARY_PARAMS, _GENERIC = 0, 1, 2, 3


def plannable(objective: Any) -> bool:
    """True when the objective's op sequence is known to depend on structure only (the built-in classes)."""
    if type(objective) is not Objective or type(objective.model) is not MLP:
        return False
    parts = (objective.model.activation, objective.model.output_activation)
    return (all(type(a).__module__ == activations.__name__ for a in parts)
            and all(x is None or type(x).__module__ == losses.__name__ for x in (objective.loss, objective.logit_loss)))


class PlanRecorder(Tape):
    """A ``Tape`` that also logs, per record index, ``(op, params, inputs)`` as the forward received them
    (traced inputs as their ``Var``, constants converted as the tape converts them)."""

    __slots__ = ("log",)

    def __init__(self, backend: Any):
        super().__init__(backend)
        self.log: dict[int, tuple] = {}

    def _constant(self, a: Any) -> Any:
        return a if type(a) is Var or type(a) is float else self.backend.constant(a)

    def binary(self, op, x, y):
        x, y = self._constant(x), self._constant(y)
        out = Tape.binary(self, op, x, y)
        if type(out) is Var:
            self.log[out.index] = (op, _NO_PARAMS, (x, y))
        return out

    def unary(self, op, x, params=_NO_PARAMS):
        if type(x) is not Var or x.tape is not self:
            return self.apply(op, x, **params)
        out = Tape.unary(self, op, x, params)
        self.log[out.index] = (op, params or _NO_PARAMS, (x,))
        return out

    def apply(self, op, *args, **params):
        args = tuple(self._constant(a) for a in args)
        out = Tape.apply(self, op, *args, **params)
        if type(out) is Var and out.tape is self:
            self.log[out.index] = (OPS[op] if type(op) is str else op, params or _NO_PARAMS, args)
        return out


class Plan:
    """Replays a recorded objective: ``plan.run(B, blocks, into) -> (grads, value, stats)`` as ``Reverse._finish``.

    The steps are compiled into one straight-line Python function per case (``into`` given or not; ``source``
    shows them): every value and cotangent is a local variable, every primitive a direct call with its parameters
    as keyword constants. Per call that leaves no slot lists, argument tuples or keyword dicts to allocate
    (a small net's peak memory) and no dispatch on step kinds (its time); being a plain function of its
    arguments, it is safe to call from several threads at once.
    """

    def __init__(self, base: list, n_leaves: int, fsteps: list, bsteps: list, out_slot: int, leaf_slots: list,
                 stats: dict, witnesses: tuple = (), n_data: int = 0):
        self.stats = stats
        #: how many per-call data values ``run`` takes (``build_plan``'s ``data``): 0 for a plan of fixed data
        self.n_data = n_data
        #: True when the forward pass's witness rows (module docstring) cover every parameter: ``run(...,
        #: check=True)`` then proves theta finite, and the caller need not read theta for it
        self.witnessed = bool(witnesses)
        self.source, self._runs = _compile(base, n_leaves, fsteps, bsteps, out_slot, leaf_slots, witnesses, n_data)

    def run(self, B: Any, blocks: list, into: list | None, check: bool = False,
            data: tuple = ()) -> tuple[list, Any, dict] | None:
        """``(grads, value, stats)``; with ``check`` (a witnessed plan only), None as soon as a witness row's sum is
        not finite: theta has an inf or nan entry, or (finite theta) the forward pass or the row's sum overflowed;
        nothing was written to ``into`` then. ``check=False`` computes no rows. ``data``: this call's values of the
        plan's ``n_data`` data arguments, in ``build_plan``'s order."""
        done = self._runs[into is not None](B, blocks, into, check, data)
        if done is None:
            return None
        return done[0], done[1], dict(self.stats)


def _compile(base: list, n_leaves: int, fsteps: list, bsteps: list, out_slot: int,
             leaf_slots: list, witnesses: tuple = (), n_data: int = 0) -> tuple[str, tuple]:
    """(the generated source, (function without ``into``, function with it)); each ``(B, blocks, into, check) ->
    (grads, value)`` runs the plan's steps in their order with its release schedule (a local set to None where
    the slot list was), so the arithmetic, its order and the bits are those of the steps. ``witnesses``: the slots
    whose row 0 is summed as it is made, with ``check`` only; a sum that is not finite returns None at once, before
    any later step computes with an inf or nan."""
    # the generated code's globals: the witness test's functions, then functions, constants, parameters
    names: dict = {"_row0_sum": _row0_sum, "_isfinite": math.isfinite}
    assigned = set(range(n_leaves))
    for kind, _, i, a, b, _ in fsteps:
        assigned.add(i)
        if kind == _GENERIC and b[1] is not None:
            assigned.add(b[1])

    def slot(k: int) -> str:  # a per-call value is a local; anything else is a constant of the plan
        if k in assigned:
            return f"s{k}"
        if base[k] is None:  # a value the VJP does not read
            return "None"
        if type(base[k]) is DataRef:  # this call's data
            return f"D{base[k].position}"
        names[f"K{k}"] = base[k]
        return f"K{k}"

    def call(fn_name: str, fn: Any, args: list[str], params: dict) -> str:
        names[fn_name] = fn
        keywords = []
        for key, v in params.items():
            if type(v) is DataRef:
                keywords.append(f"{key}=D{v.position}")
            else:
                names[f"{fn_name}_{key}"] = v
                keywords.append(f"{key}={fn_name}_{key}")
        return f"{fn_name}(B, {', '.join(args + keywords)})"

    def free_lines(free: tuple | None) -> list[str]:
        return [f"    {'c' + str(~k) if k < 0 else 's' + str(k)} = None" for k in free or ()
                if k < 0 or k in assigned]

    fwd = [f"    ({', '.join(f's{k}' for k in range(n_leaves))},) = blocks"]
    if n_data:
        fwd.append(f"    ({', '.join(f'D{j}' for j in range(n_data))},) = data")
    for t, (kind, fn, i, a, b, free) in enumerate(fsteps):
        if kind == _BINARY:
            line = call(f"F{t}", fn, [slot(a), slot(b)], {})
        elif kind == _UNARY:
            line = call(f"F{t}", fn, [slot(a)], {})
        elif kind == _UNARY_PARAMS:
            line = call(f"F{t}", fn, [slot(a)], b)
        else:
            line = call(f"F{t}", fn, [slot(k) for k in a], b[0])
        target = f"s{i}" if kind != _GENERIC or b[1] is None else f"s{i}, s{b[1]}"
        fwd.append(f"    {target} = {line}")
        if i in witnesses:  # decided at once: no later step computes with this layer's inf or nan
            fwd.append(f"    if check and not _isfinite(_row0_sum(s{i})):\n        return None")
        fwd += free_lines(free)
    o = out_slot
    fwd += [f"    value = s{o}", f"    c{o} = B.ones_like(value)"]
    has_ct = {o}
    bodies = ([], [])  # without into, with into
    for t, (kind, vjp, gi, args, params, j, acc, into_fn, pos, free) in enumerate(bsteps):
        ins = [f"c{gi}"] + [slot(k) for k in args]
        for with_into, body in enumerate(bodies):
            if with_into and into_fn is not None:
                line = call(f"I{t}", into_fn, [f"into[{pos}]"] + ins, params)
            else:
                line = call(f"V{t}", vjp, ins, params)
            body.append(f"    c{j} = c{j} + {line}" if acc else f"    c{j} = {line}")  # the copy gate adds
            body.extend(free_lines(free))
        has_ct.add(j)
    lines_out = []
    for with_into, body in enumerate(bodies):
        tail = []
        for n, leaf in enumerate(leaf_slots):
            g = f"c{leaf}" if leaf <= o and leaf in has_ct else None
            if not with_into:
                tail.append(f"    g{n} = {g or f'B.zeros_like(blocks[{n}])'}")
            elif g is None:
                tail.append(f"    g{n} = B.copy_into(into[{n}], 0.0)")
            else:  # the parameter's own slot, unless its VJP could not write there
                tail.append(f"    g{n} = {g} if {g} is into[{n}] else B.copy_into(into[{n}], {g})")
        grads = ", ".join(f"g{n}" for n in range(len(leaf_slots)))
        name = "run_into" if with_into else "run"
        lines = [f"def {name}(B, blocks, into, check, data):"] + fwd + body + tail + [f"    return [{grads}], value"]
        lines_out.append("\n".join(lines))
    source = "\n\n".join(lines_out) + "\n"
    exec(compile(source, "<diffsuite.reverse plan>", "exec"), names)
    return source, (names["run"], names["run_into"])


def build_plan(tape: PlanRecorder, out: Any, wrt: list[Var], witness: bool = True,
               data: tuple | None = None) -> Plan | None:
    """The plan of a recorded (not yet walked back) tape whose scalar output is ``out``; None if it cannot be one
    (the output is not traced, a record was not logged, or ``where`` baked a mask into its parameters). ``witness``:
    look for witness rows (numpy backend only); False where the caller checks theta itself anyway (a small theta,
    whose sum costs less), so that no call pays for rows nobody reads.

    ``data``: the values this recording took from its minibatch (inputs, targets, ...), to become arguments of
    ``run`` (a plan for every batch of these shapes). Each constant or parameter of a primitive that *is* one of
    them (the same object) becomes that argument. Any other array among the constants or parameters could have
    been computed from the data outside the tape (``1 - targets``) and would go stale on the next batch: such a
    recording makes no plan (None). Values are never compared: two batches can agree by chance."""
    records, log = tape.records, tape.log
    n_leaves = tape.n_leaves
    if type(out) is not Var or len(log) != len(records) - n_leaves or any(op is OPS["where"] for op, _, _ in log.values()):
        return None
    if [v.index for v in wrt] != list(range(n_leaves)):
        return None
    base: list = [None] * len(records)
    none_slot = len(base)
    base.append(None)

    def const_slot(value: Any) -> int:
        base.append(value)
        return len(base) - 1

    def slot_of(a: Any) -> int:
        return a.index if type(a) is Var else const_slot(a)

    # ----- forward steps -----
    fsteps, in_slots, residual_of = [], {}, {}
    for i in sorted(log):
        op, params, args = log[i]
        ins = tuple(slot_of(a) for a in args)
        in_slots[i] = ins
        if op.residual:
            residual_of[i] = r = const_slot(None)
            fsteps.append((_GENERIC, op.forward, i, ins, (params, r)))
        elif len(ins) == 1 and params is _NO_PARAMS:
            fsteps.append((_UNARY, op.forward, i, ins[0], None))
        elif len(ins) == 1:
            fsteps.append((_UNARY_PARAMS, op.forward, i, ins[0], params))
        elif len(ins) == 2 and params is _NO_PARAMS:
            fsteps.append((_BINARY, op.forward, i, ins[0], ins[1]))
        else:
            fsteps.append((_GENERIC, op.forward, i, ins, (params, None)))

    # ----- backward entries: Tape.backward's walk, simulated -----
    o = out.index
    has_ct = [False] * (o + 1)
    has_ct[o] = True
    wrt_pos = {v.index: n for n, v in enumerate(wrt)}
    bsteps, n_vjps = [], 0
    for i in range(o, -1, -1):
        if not has_ct[i] or i not in log:
            continue
        op, params, args = log[i]
        mask = sum(1 << k for k, a in enumerate(args) if type(a) is Var)
        codes, keep_out = op.keep[mask]
        ins = in_slots[i]
        saved = tuple(ins[k] if c == VALUE else const_slot(_raw_shape(args[k]))
                      if c == SHAPE else none_slot for k, c in enumerate(codes))
        vjp_args = ((residual_of.get(i, i) if keep_out else none_slot),) + saved
        for k, (a, vjp) in enumerate(zip(args, op.vjps)):
            if vjp is None or type(a) is not Var:
                continue
            j = a.index
            into_fn = None
            if len(args) >= 2 and not has_ct[j] and j in wrt_pos and k < len(op.into):
                into_fn = op.into[k]
            kind = _GENERIC if into_fn is not None or params is not _NO_PARAMS else \
                _UNARY if len(args) == 1 else _BINARY if len(args) == 2 else _GENERIC
            bsteps.append((kind, vjp, i, vjp_args, params, j, has_ct[j], into_fn, wrt_pos.get(j)))
            has_ct[j] = True
            n_vjps += 1

    ffree, bfree = _release_schedule(fsteps, bsteps, n_leaves, o)
    bsteps = [step + (free,) for step, free in zip(bsteps, bfree)]
    stats = {"tape_records": len(records), "tape_forward_ops": len(records) - n_leaves,
             "tape_backward_ops": n_vjps, "tape_leaves": n_leaves}
    fsteps = [step + (free,) for step, free in zip(fsteps, ffree)]
    witnesses = _witness_slots(log, n_leaves) if witness and tape.backend.name == "numpy" else ()
    if data is not None:
        parts = _with_data_refs(base, fsteps, bsteps, data)
        if parts is None:
            return None
        base, fsteps, bsteps = parts
    return Plan(base, n_leaves, fsteps, bsteps, o, [v.index for v in wrt], stats, witnesses,
                0 if data is None else len(data))


class DataRef:
    """A plan's constant or parameter that is this call's ``data[position]`` (``build_plan``'s ``data``)."""

    __slots__ = ("position",)

    def __init__(self, position: int):
        self.position = position


def _with_data_refs(base: list, fsteps: list, bsteps: list, data: tuple) -> tuple | None:
    """(base, fsteps, bsteps) with every value that is one of ``data`` replaced by its ``DataRef``; None when an
    array is left among them (it may have been computed from the data: see ``build_plan``)."""
    def ref(v: Any) -> Any:
        for j, d in enumerate(data):
            if v is d:
                return DataRef(j)
        return v

    def params_ref(params: Any) -> Any:
        return {k: ref(v) for k, v in params.items()} if isinstance(params, dict) and params else params

    base = [ref(v) for v in base]
    fsteps = [(kind, fn, i, a, params_ref(b) if kind == _UNARY_PARAMS else
               (params_ref(b[0]), b[1]) if kind == _GENERIC else b, free)
              for kind, fn, i, a, b, free in fsteps]
    bsteps = [step[:4] + (params_ref(step[4]),) + step[5:] for step in bsteps]
    params = [b if kind == _UNARY_PARAMS else b[0] for kind, _, _, _, b, _ in fsteps
              if kind in (_UNARY_PARAMS, _GENERIC)]
    params += [step[4] for step in bsteps]
    values = base + [v for p in params if isinstance(p, dict) for v in p.values()]
    if any(_holds_array(v) for v in values):
        return None
    return base, fsteps, bsteps


def _holds_array(v: Any) -> bool:
    """True when ``v`` is, or holds in a tuple, list, dict or slice, an array (or numpy scalar) other than a
    ``DataRef``: a getitem's index of label arrays is as stale on the next batch as a constant array."""
    if type(v) is DataRef:
        return False
    if isinstance(v, (tuple, list)):  # (shapes, torch.Size and index tuples)
        return any(_holds_array(x) for x in v)
    if isinstance(v, dict):
        return any(_holds_array(x) for x in v.values())
    if isinstance(v, slice):
        return any(_holds_array(x) for x in (v.start, v.stop, v.step))
    return hasattr(v, "shape")


_einsum = np.einsum


def _row0_sum(a: Any) -> Any:
    """The sum of a witness's row 0 (numpy): inf or nan when an entry is, or when finite entries overflow (then the
    caller's full check finds theta finite and runs the plan without rows). By einsum, which raises no floating-point
    warning: add.reduce would warn of that overflow, or of inf - inf, which ``-W error`` or ``np.seterr(all="raise")``
    turn into exceptions on a finite theta that the tape path computes without complaint."""
    return _einsum("i->", a[0])


def _witness_slots(log: dict, n_leaves: int) -> tuple:
    """The slots whose row 0 proves every parameter finite (module docstring), or () when some parameter has no
    witness or the backend's matrix product fails the probe. Covered: the right factor of a 2-D ``x @ W``; a 1-D
    ``b`` added to a 2-D array of rows of its length; and whatever an operand of the same shape as an ``add``'s
    output covers, moved to that output (one row sum per layer: ``x @ W + b``)."""
    covers: dict[int, set] = {}  # witness slot -> leaves it proves finite
    for i in sorted(log):
        op, _, args = log[i]
        if len(args) != 2 or type(args[0]) is not Var and type(args[1]) is not Var:
            continue
        x, y = args
        xv, yv = (a.value if type(a) is Var else a for a in args)
        if op is OPS["matmul"]:
            if (type(y) is Var and y.index < n_leaves and getattr(xv, "ndim", 0) == 2 and yv.ndim == 2
                    and _multiplies_every_entry(op, xv, yv)):
                covers.setdefault(i, set()).add(y.index)
        elif op is OPS["add"]:
            got = set()
            for a, other in ((x, y), (y, x)):
                if type(a) is not Var:
                    continue
                av, ov = a.value, (other.value if type(other) is Var else other)
                if a.index < n_leaves and av.ndim == 1 and getattr(ov, "ndim", 0) == 2 and ov.shape[1] == av.shape[0]:
                    got.add(a.index)  # a bias: row 0 of the sum holds all of it
                elif a.index in covers and np.broadcast_shapes(av.shape, np.shape(ov)) == av.shape:
                    got |= covers.pop(a.index)  # row 0 of the sum carries row 0 of the operand
            if got:
                covers.setdefault(i, set()).update(got)
    covered = set().union(*covers.values()) if covers else set()
    return tuple(sorted(covers)) if covered == set(range(n_leaves)) else ()


def _multiplies_every_entry(op: Any, x: Any, y: Any) -> bool:
    """True when the backend's product of arrays laid out as ``x`` and ``y`` is nan everywhere for zeros against
    nan and against inf: no product skipped for a zero factor (a BLAS may skip them; then W's inf or nan need not
    reach the output, and this layer is no witness)."""
    zeros = np.zeros_like(x)
    with np.errstate(all="ignore"):
        return all(bool(np.isnan(op.forward(None, zeros, np.full_like(y, bad))).all()) for bad in (np.nan, np.inf))


def _raw_shape(a: Any) -> Any:
    """The shape object a record keeps of input ``a`` (the backend's own: a tuple, or torch's ``Size``)."""
    return (a.value if type(a) is Var else a).shape


def _release_schedule(fsteps: list, bsteps: list, n_leaves: int, out_slot: int) -> tuple[list, list]:
    """Per step, the slots to release after it (None: nothing): an intermediate goes after its last reader, as
    the tape frees a record's kept values once its VJPs ran; a cotangent (as ``~index``) after its record's VJPs."""
    last_f, last_b = {}, {}
    for t, (kind, _, _, a, b) in enumerate(fsteps):
        reads = (a, b) if kind == _BINARY else (a,) if kind in (_UNARY, _UNARY_PARAMS) else a
        for k in reads:
            last_f[k] = t
    for t, (_, _, gi, args, *_) in enumerate(bsteps):
        for k in args:
            last_b[k] = t
        last_b[~gi] = t
    keep = set(range(n_leaves)) | {out_slot}
    ffree: list = [None] * len(fsteps)
    bfree: list = [None] * len(bsteps)
    for k, t in last_f.items():
        if k not in keep and k not in last_b:
            ffree[t] = (ffree[t] or ()) + (k,)
    for k, t in last_b.items():
        if k >= 0 and k in keep:
            continue
        bfree[t] = (bfree[t] or ()) + (k,)
    # an output no step reads (and not the result) can go right after it is made
    for t, (kind, _, i, _, b) in enumerate(fsteps):
        if i not in last_f and i not in last_b and i != out_slot:
            ffree[t] = (ffree[t] or ()) + (i,)
    return ffree, bfree
