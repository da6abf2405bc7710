"""Studies: grids of measurements, a resumable result store, one timing harness, figures and reports.

    from diffsuite.study import run_study, run_all, rebuild
    run_study("rounding_error", quick=True, out="reports")   # measure (resumes), draw, write report.md
    run_all(quick=True, out=Path("reports"))                 # every study + reports/index.html
    rebuild("reports")                                       # figures and reports from stored rows only

The mechanism lives here (``runner``, ``store``, ``timing``, ``figures``, ``report``, ``metadata``,
``common``, ``tape_ops``); each study is one module of ``studies/`` (registry: ``studies.STUDIES``).
See ``docs/studies.md`` for the studies, the files they write and how to read them.
"""
from importlib import import_module

from ..errors import StudyError
from .studies import STUDIES

#: public name -> the module defining it, imported on first use (pandas and matplotlib load only then, so that
#: ``diffsuite --help`` and the study registry stay light)
_LAZY = {"Cell": "runner", "cell": "runner", "run_all": "runner", "run_study": "runner", "rebuild": "report"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["STUDIES", "Cell", "StudyError", "cell", "rebuild", "run_all", "run_study"]
