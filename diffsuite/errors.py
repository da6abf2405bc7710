"""Exceptions shared across diffsuite. Each message says what was required, what was given, what to do."""
from __future__ import annotations

import os
import sys

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_stacklevel() -> int:
    """The ``stacklevel`` for a ``warnings.warn`` made in the calling function that attributes the warning to the
    first frame outside diffsuite: the user's own line, however many of diffsuite's wrappers lie between (a fixed
    level named a line inside the package for some call paths, where no one can see or filter it)."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


class BudgetExceeded(RuntimeError):
    """A node or time budget stopped expensive work (symbolic building, differentiation, CSE).

    Attributes: ``stage`` (what was being done), ``budget`` (the limit, with unit), ``progress``
    (how far it got). Studies record it as a row with status ``budget`` and go on.
    """

    def __init__(self, stage: str, budget: str, progress: str | None = "", where: str = ""):
        self.stage, self.budget, self.progress = stage, budget, progress or ""
        msg = f"{stage} exceeded its budget of {budget}"
        if progress:
            msg += f" (got as far as {progress}{where})"
        elif progress is None:  # a time budget whose stage had reported no finished step
            msg += f" (before its first step finished{where})"
        super().__init__(msg + "; raise the budget, or use a smaller network or the reverse differentiator")


class StudyError(ValueError):
    """A study, option or device that cannot be used; the message lists the choices."""


#: how a package's name is written in messages
DISPLAY = {"torch": "PyTorch", "symengine": "SymEngine", "sklearn": "scikit-learn"}


class MissingDependency(ImportError):
    """An optional package that a method needs is not installed.

    ``package`` is its import name (``torch``), ``extra`` the diffsuite extra that installs it
    (``pip install 'diffsuite[torch]'``). Studies record it as a row with status ``unavailable`` ("not run:
    needs torch") rather than an error, and measure it again once the package is there.
    """

    def __init__(self, what: str, package: str, extra: str | None = None, alternative: str = ""):
        self.what, self.package, self.extra, self.alternative = what, package, extra or package, alternative
        msg = (f"{what} needs {DISPLAY.get(package, package)}, which is not installed: "
               f"pip install 'diffsuite[{self.extra}]'")
        super().__init__(msg + (f" ({alternative})" if alternative else ""), name=package)

    def __reduce__(self):  # picklable: it crosses from worker processes to the parent
        return type(self), (self.what, self.package, self.extra, self.alternative)


class RefusedByDesign(ValueError):
    """A method declines an input it cannot handle by construction (e.g. a finite-difference step so small
    that theta + h == theta in float32). Not a failure of the code: studies record it with status ``refused``."""
