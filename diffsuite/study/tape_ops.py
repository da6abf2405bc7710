"""Scalar arithmetic of one reverse-mode gradient, counted from the tape's records.

The tape records array primitives (one ``matmul`` is one record), while SymPy's ``count_ops`` counts
scalar operations. To set the two side by side, this module walks a recorded tape and counts the
scalar operations each record costs, forward and backward, by these rules (n = elements of the
output, for a matmul (m, k) @ (k, n)):

| primitive                       | forward              | each VJP                                     |
|---------------------------------|----------------------|----------------------------------------------|
| add, sub, neg                   | n                    | 0 (sub's second input, neg: n)               |
| mul, div, pow, maximum, minimum | n                    | mul, maximum, minimum: n; div, pow: 3n       |
| exp, log, tanh, abs, step       | n                    | exp, log, abs: n; tanh: 3n; step: 0          |
| sigmoid                         | 4n  (1/(1+exp(-x)))  | 3n  (g s (1 - s))                            |
| power (x**p, p a number)        | n                    | 3n                                           |
| matmul                          | m n (2k - 1)         | m k (2n - 1) and k n (2m - 1)                |
| sum, mean, logsumexp            | N - 1, N, 4N (N in)  | 0, N, 3N                                     |
| reshape, transpose, getitem     | 0                    | 0                                            |

plus, in the backward pass, the reductions that undo broadcasting (output size - input size per
broadcast input) and one addition per element each time a cotangent is accumulated (fan-out, the
lecture's copy gate). Same spirit as ``count_ops``: every +, -, *, /, and function call is one.
"""
from __future__ import annotations

import numpy as np

from ..differentiators.reverse.backends import load_backend
from ..differentiators.reverse.tape import Tape, TapeNamespace, unpack_record

FORWARD = {"sigmoid": 4, "sum": None, "mean": None, "logsumexp": None, "matmul": None,
           "reshape": 0, "transpose": 0, "getitem": 0}
VJP = {"add": (0, 0), "sub": (0, 1), "neg": (1,), "mul": (1, 1), "div": (1, 3), "pow": (3, 3),
       "maximum": (1, 1), "minimum": (1, 1), "exp": (1,), "log": (1,), "tanh": (3,), "abs": (1,), "step": (0,),
       "sigmoid": (3,), "power": (3,), "reshape": (0,), "transpose": (0,), "getitem": (0,)}


def _size(a) -> int:
    return int(np.prod(np.shape(a)))


def count(objective, theta) -> dict:
    """``{"tape_records", "tape_forward_ops", "tape_scalar_forward_ops", "tape_scalar_backward_ops",
    "tape_scalar_ops"}`` for one gradient of ``objective`` at ``theta`` on the numpy backend."""
    B = load_backend("numpy")
    inputs, targets = (B.asarray(a) for a in objective.data(np.float64))
    flat = objective.check_theta(theta)
    tape = Tape(B, keep_all=True)  # every input and output kept: their sizes are counted
    params = {name: tape.input(B.reshape(flat[a:b], shape)) for name, (a, b, shape) in objective.model.layout.items()}
    objective.evaluate(TapeNamespace(tape), params, inputs, targets)
    fwd = bwd = 0
    uses = np.zeros(len(tape.records), dtype=int)
    n_ops = 0
    for record in tape.records:
        op, params_, out, parents, vals = unpack_record(record)
        if op is None:
            continue
        n_ops += 1
        name, n = op.name, _size(out)
        if name == "matmul":
            a, b = np.shape(vals[0]), np.shape(vals[1])
            m = int(np.prod(a[:-1])) if len(a) > 1 else 1
            k = a[-1]
            nn = b[-1] if len(b) > 1 else 1
            fwd += m * nn * (2 * k - 1)
            vjp_costs = (m * k * (2 * nn - 1), k * nn * (2 * m - 1))
        elif name in ("sum", "mean", "logsumexp"):
            N = _size(vals[0])
            fwd += {"sum": N - 1, "mean": N, "logsumexp": 4 * N}[name]
            vjp_costs = ({"sum": 0, "mean": N, "logsumexp": 3 * N}[name],)
        else:
            fwd += n * FORWARD.get(name, 1)
            vjp_costs = tuple(c * n for c in VJP.get(name, (1,) * len(vals)))
        for i, (j, a) in enumerate(zip(parents, vals)):
            if j is None:  # a constant
                continue
            bwd += vjp_costs[i] if i < len(vjp_costs) else n
            if name not in ("matmul", "sum", "mean", "logsumexp", "reshape", "transpose", "getitem"):
                bwd += max(0, n - _size(a))  # undoing the broadcast: a reduction
            uses[j] += 1
    for idx, u in enumerate(uses):  # each extra use of a value adds its cotangent once more
        if u > 1:
            bwd += (u - 1) * _size(tape.records[idx][2])
    return {"tape_records": len(tape.records), "tape_forward_ops": n_ops, "tape_scalar_forward_ops": int(fwd),
            "tape_scalar_backward_ops": int(bwd), "tape_scalar_ops": int(fwd + bwd)}
