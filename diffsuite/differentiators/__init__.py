"""The registry of differentiators: ``get_differentiator(name, **options)``.

| name          | what it is                                                         | options                  |
|---------------|--------------------------------------------------------------------|--------------------------|
| ``symbolic``  | SymPy expression trees, differentiated, CSE'd and compiled          | cse, engine, budgets, ...|
| ``finite_diff``| difference quotients (forward ... Richardson, complex step)       | scheme, step, dtype, ... |
| ``reverse``   | our reverse-mode tape on numpy or torch (CPU or CUDA)              | backend, device, dtype   |

Each differentiator is a package of its own (``symbolic/``, ``finite_diff/``, ``reverse/``); they never
import each other, and what they share lives in ``base.py``. Each package is imported only when its
differentiator is asked for, so an optional dependency (torch, symengine) is needed only by whoever uses it.
"""
from __future__ import annotations

import dataclasses
from importlib import import_module

from .base import Differentiator, Gradient

#: name -> "module:Class"
DIFFERENTIATORS = {
    "symbolic": "diffsuite.differentiators.symbolic:Symbolic",
    "finite_diff": "diffsuite.differentiators.finite_diff:FiniteDiff",
    "reverse": "diffsuite.differentiators.reverse:Reverse",
}


def differentiator_class(name: str) -> type:
    try:
        target = DIFFERENTIATORS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown differentiator {name!r}; choose one of {', '.join(DIFFERENTIATORS)}") from None
    module, cls = target.split(":")
    return getattr(import_module(module), cls)


def get_differentiator(name: str, **options) -> Differentiator:
    """A differentiator by registry name, configured by keyword options (its dataclass fields)."""
    cls = differentiator_class(name)
    fields = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = [k for k in options if k not in fields]
    if unknown:
        raise TypeError(f"differentiator {name!r} has no option(s) {', '.join(map(repr, unknown))}; "
                        f"its options are {', '.join(fields)}")
    return cls(**options)


__all__ = ["DIFFERENTIATORS", "Differentiator", "Gradient", "differentiator_class", "get_differentiator"]
