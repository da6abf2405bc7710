"""One table of specs for the numpy subset (docs/language.md), shared by the op tests.

``PRIMITIVE_SPECS``: the reverse engine's primitives added for the subset, in the format of
``tests/differentiators/reverse/test_ops.py`` (input shapes, static params, domain), so the existing checks
(VJP vs central differences, rules read only what they declare, numpy and torch agree) run on them too.

``XP_SPECS``: one entry per ``xp`` function: ``fn(xp, *inputs)`` with the domain of each input, drawn tiny
(a few entries), and its kink cases: inputs placed on a kink with the gradient of ``sum(fn(...))`` that the
conventions give, written out by hand. ``tests/test_ops_language.py`` runs each through every differentiator.
"""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

POSITIVE, UNIT, NONZERO = "positive", "unit", None


def draw(shape, domain, rng):
    """Inputs away from kinks and poles: ``None`` normal but |x| >= 0.1, ``positive`` in [0.5, ...), ``unit``
    in 0.1 <= |x| <= 0.8 (arcsin, tan)."""
    x = rng.normal(size=shape)
    if domain == POSITIVE:
        return 0.5 + np.abs(x)
    if domain == UNIT:
        return np.sign(x) * (0.1 + 0.7 * rng.uniform(size=shape))
    return x + np.sign(x) * 0.1


S = (2, 3)
PRIMITIVE_SPECS = {
    "sqrt": ([S], {}, POSITIVE), "sin": ([S], {}, None), "cos": ([S], {}, None), "tan": ([S], {}, UNIT),
    "arcsin": ([S], {}, UNIT), "arccos": ([S], {}, UNIT), "arctan": ([S], {}, None),
    "arctan2": ([S, (3,)], {}, None), "sinh": ([S], {}, None), "cosh": ([S], {}, None),
    "log1p": ([S], {}, POSITIVE), "expm1": ([S], {}, None), "log2": ([S], {}, POSITIVE), "log10": ([S], {}, POSITIVE),
    "erf": ([S], {}, None), "softplus": ([S], {}, None), "log_sigmoid": ([S], {}, None), "sign": ([S], {}, None),
    "sqrt0": ([S], {}, POSITIVE),
    "where": ([S, (3,)], {"cond": np.array([[True, False, True], [False, False, True]])}, None),
    "softmax": ([S], {"axis": -1}, None),
    "max": ([S], {"axis": 1}, None), "min": ([S], {"axis": None, "keepdims": True}, None),
    "prod": ([S], {"axis": 0}, None), "cumsum": ([S], {"axis": 1}, None),
    "permute": ([(2, 3, 4)], {"axes": (2, 0, 1)}, None), "broadcast_to": ([(3, 1)], {"shape": (2, 3, 4)}, None),
    "pad": ([S], {"pad_width": ((1, 0), (2, 1)), "value": 0.5}, None),
    "concatenate": ([S, (2, 2)], {"axis": 1, "split": 3}, None),
    "einsum1": ([(2, 3, 4)], {"spec": (("ijk",), "ki")}, None),
    "einsum2": ([(2, 3), (3, 4)], {"spec": (("ij", "jk"), "ik")}, None),
    "einsum3": ([(2, 3), (3,), (3, 4)], {"spec": (("ij", "j", "jk"), "ik")}, None),
}
PRIMITIVE_EXTRA_SPECS = [  # shapes and options the single entries above do not cover
    ("einsum2", [(2, 3), (4, 3)], {"spec": (("ij", "kl"), "ik")}, None),  # letters summed away: broadcast back
    # numpy's broadcasting of a letter's size-1 axis against its size n elsewhere (summed back in the VJP)
    ("einsum2", [(2, 2), (1,)], {"spec": (("ij", "j"), "i")}, None),
    ("einsum2", [(2, 1), (1, 3)], {"spec": (("ij", "ij"), "ij")}, None),
    ("einsum3", [(2,), (1, 3), (3,)], {"spec": (("i", "ij", "j"), "")}, None),
    ("max", [(2, 3, 2)], {"axis": -1, "keepdims": True}, None),
    ("prod", [S], {"axis": None}, None),
    ("softmax", [(2, 3, 4)], {"axis": 1}, None),
]


@dataclass
class Spec:
    """``fn(xp, *inputs)`` on inputs drawn from ``domains`` (shape, domain) and its kink cases
    ``(inputs, expected gradient of sum(fn(...)), what the convention is)``."""

    name: str
    fn: Callable
    domains: list
    kinks: list = field(default_factory=list)
    symbolic: bool = True  # False: not expressible symbolically (a mask that depends on theta)


def a(*rows):
    return np.array(rows, dtype=float)


M = np.array([[True, False, True], [False, True, True]])  # a data mask
XP_SPECS = [
    Spec("exp", lambda xp, x: xp.exp(x), [(S, None)]),
    Spec("log", lambda xp, x: xp.log(x), [(S, POSITIVE)]),
    Spec("sqrt", lambda xp, x: xp.sqrt(x), [(S, POSITIVE)]),
    Spec("square", lambda xp, x: xp.square(x), [(S, None)]),
    Spec("sin", lambda xp, x: xp.sin(x), [(S, None)]),
    Spec("cos", lambda xp, x: xp.cos(x), [(S, None)]),
    Spec("tan", lambda xp, x: xp.tan(x), [(S, UNIT)]),
    Spec("arcsin", lambda xp, x: xp.arcsin(x), [(S, UNIT)]),
    Spec("arccos", lambda xp, x: xp.arccos(x), [(S, UNIT)]),
    Spec("arctan", lambda xp, x: xp.arctan(x), [(S, None)]),
    Spec("arctan2", lambda xp, y, x: xp.arctan2(y, x), [(S, None), (S, None)],
         kinks=[((a(0.0), a(0.0)), (a(0.0), a(0.0)), "no derivative at the origin: 0 by convention")]),
    Spec("sinh", lambda xp, x: xp.sinh(x), [(S, None)]),
    Spec("cosh", lambda xp, x: xp.cosh(x), [(S, None)]),
    Spec("tanh", lambda xp, x: xp.tanh(x), [(S, None)]),
    Spec("log1p", lambda xp, x: xp.log1p(x), [(S, POSITIVE)]),
    Spec("expm1", lambda xp, x: xp.expm1(x), [(S, None)]),
    Spec("log2", lambda xp, x: xp.log2(x), [(S, POSITIVE)]),
    Spec("log10", lambda xp, x: xp.log10(x), [(S, POSITIVE)]),
    Spec("erf", lambda xp, x: xp.erf(x), [(S, None)]),
    Spec("sigmoid", lambda xp, x: xp.sigmoid(x), [(S, None)]),
    Spec("softplus", lambda xp, x: xp.softplus(x), [(S, None)],
         kinks=[((a(0.0, 1.0),), (a(0.5, 1 / (1 + np.exp(-1.0))),), "smooth: sigmoid(0) = 1/2, no kink at 0")]),
    Spec("log_sigmoid", lambda xp, x: xp.log_sigmoid(x), [(S, None)],
         kinks=[((a(0.0),), (a(0.5),), "smooth: sigmoid(-0) = 1/2")]),
    Spec("relu", lambda xp, x: xp.relu(x), [(S, None)], kinks=[((a(0.0, 2.0),), (a(0.0, 1.0),), "relu'(0) = 0")]),
    Spec("abs", lambda xp, x: xp.abs(x), [(S, None)], kinks=[((a(0.0, -2.0),), (a(0.0, -1.0),), "abs'(0) = 0")]),
    Spec("sign", lambda xp, x: xp.sign(x) * x, [(S, None)],
         kinks=[((a(0.0, -2.0, 3.0),), (a(0.0, -1.0, 1.0),), "sign' = 0: d(sign(x) x) = sign(x)")]),
    Spec("step", lambda xp, x: xp.step(x) * x, [(S, None)],
         kinks=[((a(0.0, -2.0, 3.0),), (a(0.0, 0.0, 1.0),), "step' = 0, step(0) = 0")]),
    Spec("clip", lambda xp, x: xp.clip(x, -0.5, 0.5), [(S, None)],
         kinks=[((a(-0.5, 0.5, 0.7),), (a(1.0, 1.0, 0.0),), "gradient 1 at the bounds")]),
    Spec("maximum", lambda xp, x, y: xp.maximum(x, y), [(S, None), (S, None)],
         kinks=[((a(1.0), a(1.0)), (a(1.0), a(0.0)), "ties: the first argument")]),
    Spec("minimum", lambda xp, x, y: xp.minimum(x, y), [(S, None), (S, None)],
         kinks=[((a(1.0), a(1.0)), (a(1.0), a(0.0)), "ties: the first argument")]),
    Spec("power", lambda xp, x, y: xp.power(x, y), [(S, POSITIVE), (S, None)],
         kinks=[((a(0.0, 0.0, 2.0), a(2.0, 1.0, 0.0)), (a(0.0, 1.0, 0.0), a(0.0, 0.0, np.log(2.0))),
                 "0 ** y = 0 for y > 0: gradient 0 in y; x ** 0 = 1: gradient 0 in x")]),
    Spec("where", lambda xp, x: xp.where(x > 0, xp.sqrt(xp.abs(x)), 0.0) + xp.where(x > 0, 0.0, x ** 3), [(S, None)],
         kinks=[((a(0.0, 4.0, -1.0),), (a(0.0, 0.25, 3.0),),
                 "where(x > 0, sqrt(x), 0) at 0: the unselected sqrt'(0) = inf does not leak")]),
    Spec("sum", lambda xp, x: xp.sum(x ** 2, axis=0), [(S, None)]),
    Spec("mean", lambda xp, x: xp.mean(x ** 2, axis=1, keepdims=True), [(S, None)]),
    Spec("prod", lambda xp, x: xp.prod(x, axis=1), [(S, None)],
         kinks=[((a([0.0, 2.0, 3.0], [0.0, 0.0, 5.0]),), (a([6.0, 0.0, 0.0], [0.0, 0.0, 0.0]),),
                 "exact with zeros: the product of the other entries")]),
    Spec("max", lambda xp, x: xp.max(x, axis=0), [(S, None)],
         kinks=[((a([1.0, 3.0], [1.0, 3.0], [0.0, 3.0]),), (a([1.0, 1.0], [0.0, 0.0], [0.0, 0.0]),),
                 "ties: the first maximal entry")]),
    Spec("min", lambda xp, x: xp.min(x), [(S, None)],
         kinks=[((a(2.0, -1.0, -1.0),), (a(0.0, 1.0, 0.0),), "ties: the first minimal entry")]),
    Spec("var", lambda xp, x: xp.var(x, axis=1, ddof=1), [(S, None)]),
    Spec("std", lambda xp, x: xp.std(x, axis=0), [(S, None)],
         kinks=[((a([1.5, 2.0]),), (a([0.0, 0.0]),), "std of one element: 0, gradient 0")]),
    Spec("norm", lambda xp, x: xp.norm(x, axis=1), [(S, None)],
         kinks=[((a([0.0, 0.0], [3.0, 4.0]),), (a([0.0, 0.0], [0.6, 0.8]),), "gradient 0 at x = 0")]),
    Spec("cumsum", lambda xp, x: xp.cumsum(x, axis=1) ** 2, [(S, None)]),
    Spec("logsumexp", lambda xp, x: xp.logsumexp(x, axis=-1), [(S, None)]),
    Spec("reshape", lambda xp, x: xp.reshape(x, (3, 2)) ** 2, [(S, None)]),
    Spec("transpose", lambda xp, x: xp.transpose(x, (2, 0, 1)) ** 2, [((2, 3, 2), None)]),
    Spec("moveaxis", lambda xp, x: xp.moveaxis(x, 0, -1) ** 2, [((2, 3, 2), None)]),
    Spec("expand_dims", lambda xp, x: xp.expand_dims(x, 1) ** 2, [(S, None)]),
    Spec("squeeze", lambda xp, x: xp.squeeze(x, axis=0) ** 2, [((1, 3), None)]),
    Spec("broadcast_to", lambda xp, x: xp.broadcast_to(x, (4, 3)) ** 2, [((3,), None)]),
    Spec("concatenate", lambda xp, x, y: xp.concatenate([x, y, x], axis=0) ** 2, [(S, None), ((1, 3), None)]),
    Spec("stack", lambda xp, x, y: xp.stack([x, y], axis=-1) ** 2, [(S, None), (S, None)]),
    Spec("split", lambda xp, x: xp.split(x, [1], axis=1)[1] ** 2, [(S, None)]),
    Spec("tile", lambda xp, x: xp.tile(x, (2, 1)) ** 2, [(S, None)]),
    Spec("repeat", lambda xp, x: xp.repeat(x, 2, axis=0) ** 2, [(S, None)]),
    Spec("pad", lambda xp, x: xp.pad(x, ((1, 0), (0, 2)), constant_values=0.5) ** 2, [(S, None)]),
    Spec("matmul", lambda xp, x, y: xp.matmul(x, y), [(S, None), ((3, 2), None)]),
    Spec("dot", lambda xp, x, y: xp.dot(x, y), [(S, None), ((3,), None)]),
    Spec("tensordot", lambda xp, x, y: xp.tensordot(x, y, axes=([1], [0])), [(S, None), ((3, 2), None)]),
    Spec("einsum", lambda xp, x, y: xp.einsum("ij,kj->ik", x, y), [(S, None), ((2, 3), None)]),
    Spec("einsum[size-1 broadcast]", lambda xp, x, y: xp.einsum("ij,j->i", x, y), [(S, None), ((1,), None)]),
    Spec("outer", lambda xp, x, y: xp.outer(x, y), [((2,), None), ((3,), None)]),
    Spec("trace", lambda xp, x: xp.trace(x * x), [((3, 3), None)]),
    Spec("asarray", lambda xp, x: x * xp.asarray(np.array([1.0, 2.0, 3.0])), [(S, None)]),
    Spec("getitem[int array]", lambda xp, x: x[np.array([1, 0, 1])] ** 2, [(S, None)]),
    Spec("getitem[data mask]", lambda xp, x: x[M] ** 2, [(S, None)]),
    Spec("getitem[theta mask]", lambda xp, x: x[x > 0] ** 3, [(S, None)], symbolic=False,
         kinks=[((a(-1.0, 2.0, 0.0),), (a(0.0, 12.0, 0.0),), "a mask from a comparison is a constant")]),
]
