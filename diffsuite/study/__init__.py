"""Studies: grids of measurements, a resumable result store, one timing harness, figures and reports.

    from diffsuite.study import run_study, run_all, rebuild
    run_study("rounding_error", quick=True, out="reports")   # measure (resumes), draw, write report.md
    run_all(quick=True, out=Path("reports"))                 # every study + reports/index.html
    rebuild("reports")                                       # figures and reports from stored rows only

The mechanism lives here (``runner``, ``store``, ``timing``, ``figures``, ``report``, ``metadata``,
``common``, ``tape_ops``); each study is one module of ``studies/`` (registry: ``studies.STUDIES``).
See ``docs/studies.md`` for the studies, the files they write and how to read them.
"""
from ..errors import StudyError
from .report import rebuild
from .runner import Cell, cell, run_all, run_study
from .studies import STUDIES

__all__ = ["STUDIES", "Cell", "StudyError", "cell", "rebuild", "run_all", "run_study"]
