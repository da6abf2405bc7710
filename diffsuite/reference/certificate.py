"""What a reference result proves, and the errors raised where no precision settles an entry.

``Certificate``: the arithmetic (``arb``: ball arithmetic, every entry's exact value is proven to lie
in a ball whose endpoints round to the same float64; ``mpmath``: the fallback, two successive
precisions gave the same float64, which is evidence, not proof), the precision in bits of the pass
that settled every entry, the precisions tried, and the enclosure radius of each entry (arb only).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Certificate:
    """How the reference's numbers were obtained and what they are proven to be.

    ``arithmetic``: "arb" (certified) or "mpmath" (agreement of two precisions). ``bits``: the working
    precision of the settling pass. ``tried``: every precision used, in order. ``radius``: per entry
    (value first, then the gradient in theta's flat order), an upper bound of the ball's radius (arb),
    or the difference between the two agreeing precisions (mpmath). ``differentiation``: who produced
    the derivative ("adjoint": the chain rule on the exact loss DAG; "sympy" or "symengine": their
    symbolic derivatives). ``ties``: kink conditions that were exact ties. ``kinks``: at ties, the entries
    whose two one-sided pieces (theta moved along +-(1, 1, ...), lexicographically) have different
    derivatives: a true kink or jump there, so the entry is the project's convention, not a derivative; the
    other entries are the derivative both pieces agree on, also where the convention would differ
    (relu(x) - relu(-x) at 0 has derivative 1). At a jump, or where a piece's value is not finite at the tie
    (0 log 0), every entry whose parameter a tied quantity depends on is listed; an entry whose parameter none
    does is never listed (the conventions' value is its partial derivative). ``resolved``: entries where that
    derivative replaced the convention's value. ``tie_check``: "" (no ties), "sides" (both pieces evaluated)
    or, where they could not be (the gradient's symbolic engines, a tie inside a function's own sub-program, a tie no
    partial derivative decides), "conventions" (every entry at a tie is then the conventions' value, unchecked).
    """

    arithmetic: str
    bits: int
    tried: tuple[int, ...]
    radius: np.ndarray = field(repr=False)
    differentiation: str = "adjoint"
    ties: int = 0
    kinks: tuple[str, ...] = ()
    resolved: tuple[str, ...] = ()
    tie_check: str = ""

    @property
    def max_radius(self) -> float:
        return float(np.max(self.radius)) if self.radius.size else 0.0

    def describe(self) -> str:
        """One line for reports: ``certified: arb ball arithmetic at 128 bits, enclosure radius <= 3e-36``."""
        if self.arithmetic == "arb":
            text = (f"certified: arb ball arithmetic at {self.bits} bits, each entry's enclosure rounds to one "
                    f"float64 (radius <= {self.max_radius:.1e})")
        else:
            text = (f"mpmath at {self.bits} bits, agreeing with the previous precision to the last float64 bit "
                    "(not a proof)")
        if self.kinks:
            text += (f"; on a kink in {', '.join(self.kinks[:4])}{' ...' if len(self.kinks) > 4 else ''}: "
                     "the conventions' value there, not a derivative")
        elif self.ties and self.tie_check == "conventions":
            text += f"; {self.ties} exact tie(s) decided by the conventions, one-sided pieces not compared"
        return text


class NotCertified(ValueError):
    """No precision up to the cap settled some entries: a kink hit exactly where the convention cannot
    decide, a true singularity, or a point within 2^-cap of a kink. ``entries``: the names concerned."""

    def __init__(self, message: str, entries: list[str]):
        self.entries = entries
        super().__init__(message)
