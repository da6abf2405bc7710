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
    symbolic derivatives). ``ties``: kink conditions that were exact ties (decided by DESIGN.md's
    conventions).
    """

    arithmetic: str
    bits: int
    tried: tuple[int, ...]
    radius: np.ndarray = field(repr=False)
    differentiation: str = "adjoint"
    ties: int = 0

    @property
    def max_radius(self) -> float:
        return float(np.max(self.radius)) if self.radius.size else 0.0

    def describe(self) -> str:
        """One line for reports: ``certified: arb ball arithmetic at 128 bits, enclosure radius <= 3e-36``."""
        if self.arithmetic == "arb":
            return (f"certified: arb ball arithmetic at {self.bits} bits, each entry's enclosure rounds to one "
                    f"float64 (radius <= {self.max_radius:.1e})")
        return (f"mpmath at {self.bits} bits, agreeing with the previous precision to the last float64 bit "
                "(not a proof)")


class NotCertified(ValueError):
    """No precision up to the cap settled some entries: a kink hit exactly where the convention cannot
    decide, a true singularity, or a point within 2^-cap of a kink. ``entries``: the names concerned."""

    def __init__(self, message: str, entries: list[str]):
        self.entries = entries
        super().__init__(message)
