"""Class labels as numbers: the checks the datasets (``data.check_data``) and the cross-entropy loss share.

A label is a whole number; text, None, nan and 2.5 are refused by entry, and the range is checked on the values as
given, before any cast to int64 (which would wrap 2**64 - 1 to -1 and turn 1e20 into a negative number).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

MAX_LABEL = 2**31 - 1  # the largest class label taken (one-hot targets need a row of that many columns)


def plain(v: Any) -> Any:
    """A numpy scalar as the Python value it holds (for messages: 1e+20, not np.float64(1e+20)); else ``v``."""
    return v.item() if isinstance(v, np.generic) else v


def whole_number(v: Any) -> bool:
    """True for an int (not a bool) or a finite float with no fractional part."""
    if isinstance(v, (bool, np.bool_)):
        return False
    if isinstance(v, (int, np.integer)):
        return True
    return isinstance(v, (float, np.floating)) and math.isfinite(v) and float(v).is_integer()


def label_values(y: np.ndarray, owner: str, called: str = "y") -> np.ndarray:
    """``y`` as numbers (integers as they are, whole floats as floats), or a ValueError naming the first entry
    that is not a whole number: text, None, nan, 2.5."""
    kind = y.dtype.kind
    if kind in "iu":
        return y
    if kind == "b":
        return y.astype(np.int64)
    bad = None
    if kind == "f":
        with np.errstate(invalid="ignore"):
            wrong = ~np.isfinite(y) | (np.mod(y, 1) != 0)
        bad = int(np.flatnonzero(wrong)[0]) if wrong.any() else None
    else:  # object (None, Python ints, pandas' NA), text, anything else: entry by entry
        bad = next((i for i, v in enumerate(y.tolist()) if not whole_number(v)), None)
    if bad is not None:
        raise ValueError(f"{owner}: {called} must hold integer class labels; {called}[{bad}] is {plain(y[bad])!r}. "
                         "Encode the classes as 0..k-1, e.g. np.unique(y, return_inverse=True)[1].")
    return y.astype(np.float64) if kind != "f" else y
