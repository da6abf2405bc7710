"""The status of a stored row, the same vocabulary in every study.

- ``ok``: measured.
- ``budget``: stopped by a node or time budget (``BudgetExceeded``), or not attempted after a smaller size was.
- ``unavailable``: not run, because an optional package is missing (``MissingDependency``, or a
  ``ModuleNotFoundError``); the row's ``needs`` names the package and its message the command that installs
  it. A resumed run measures the row's cell again once the package can be imported.
- ``refused``: the method declines this input by design (``RefusedByDesign``, e.g. a float32 step so small
  that theta + h == theta); a documented limit, not a failure.
- ``error``: anything else: a bug or a bad input, with the exception's message.

``failure_row(e)`` turns an exception into such a row; ``needs_rerun(rows)`` says whether a stored cell must
be measured again; ``describe(statuses)`` writes the run summary's counts in words.
"""
from __future__ import annotations

import importlib.util
from collections import Counter
from typing import Iterable

from ..errors import BudgetExceeded, MissingDependency, RefusedByDesign

OK, BUDGET, UNAVAILABLE, REFUSED, ERROR = "ok", "budget", "unavailable", "refused", "error"
#: status -> what it means, as the run summary and the reports say it
MEANING = {
    OK: "measured",
    BUDGET: "over the node or time budget",
    UNAVAILABLE: "not run: a package is missing",
    REFUSED: "by design: a documented limit of the method",
    ERROR: "failed",
}
#: import name -> the diffsuite extra that installs it (a ModuleNotFoundError elsewhere names the package)
EXTRAS = {"torch": "torch", "symengine": "symengine"}


def install_hint(package: str, extra: str | None = None) -> str:
    extra = extra or EXTRAS.get(package)
    return f"pip install 'diffsuite[{extra}]'" if extra else f"pip install {package}"


def not_run_message(package: str, extra: str | None = None) -> str:
    """``not run: needs torch, `pip install 'diffsuite[torch]'` ``: the words every report and summary use."""
    return f"not run: needs {package}, `{install_hint(package, extra)}`"


def failure_row(e: BaseException) -> dict:
    """The status columns of a row for a measurement that raised ``e`` (``status``, ``message``, and ``needs``
    for a missing package). The message of an ``error`` is ``Type: message``."""
    if isinstance(e, BudgetExceeded):
        return {"status": BUDGET, "message": str(e)}
    missing = _missing_package(e)
    if missing is not None:
        package, extra = missing
        return {"status": UNAVAILABLE, "needs": package, "message": not_run_message(package, extra)}
    if isinstance(e, RefusedByDesign):
        return {"status": REFUSED, "message": f"{type(e).__name__}: {e}"}
    return {"status": ERROR, "message": f"{type(e).__name__}: {e}"}


def _missing_package(e: BaseException) -> tuple[str, str | None] | None:
    """(package, extra) when ``e`` (or an exception it was raised from) is a missing optional package."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, MissingDependency):
            return e.package, e.extra
        if isinstance(e, ModuleNotFoundError) and e.name:
            top = e.name.split(".")[0]
            if top != "diffsuite":  # our own module missing is a bug, not a dependency
                return top, EXTRAS.get(top)
        e = e.__cause__ or e.__context__
    return None


def importable(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def needs_rerun(rows: Iterable[dict]) -> bool:
    """A stored cell to measure again: it failed as a whole (``cell_failed``), or a row of it was not run for
    a package that can be imported now."""
    for r in rows:
        if r.get("cell_failed"):
            return True
        if r.get("status") == UNAVAILABLE and r.get("needs") and importable(str(r["needs"])):
            return True
    return False


def describe(statuses: dict, rows: Iterable[dict] = ()) -> str:
    """``"40 ok, 117 refused by design (...), 6 not run: needs torch, `pip install ...`"``: the run summary's
    words for a ``{status: count}``; ``rows`` (the stored rows) name the missing packages."""
    needs = Counter(str(r.get("needs")) for r in rows if r.get("status") == UNAVAILABLE and r.get("needs"))
    parts = []
    for status, n in sorted(statuses.items(), key=lambda kv: (list(MEANING).index(kv[0])
                                                              if kv[0] in MEANING else len(MEANING), kv[0])):
        if status == UNAVAILABLE and needs:
            parts += [f"{k} {not_run_message(p)}" for p, k in sorted(needs.items())]
        elif status in (OK, ERROR, UNAVAILABLE):
            parts.append(f"{n} {status}")
        else:
            parts.append(f"{n} {status} ({MEANING.get(status, status)})")
    return ", ".join(parts)
