"""argparse types shared by the command lines (``diffsuite ...`` and ``python -m diffsuite.reference.campaign``)."""
from __future__ import annotations

import argparse
from typing import Callable


def whole_number(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``low`` (argparse names the option in its error:
    "argument --seed: must be a whole number >= 0; got 'x'")."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            n = None
        if n is None or n < low:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {low}; got {text!r}")
        return n
    parse.__name__ = "whole number"
    return parse
