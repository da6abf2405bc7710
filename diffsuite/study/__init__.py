"""Studies: grids of measurements, a resumable result store, one timing harness, figures and reports.

    from diffsuite.study import run_study, run_all, rebuild
    run_study("rounding_error", quick=True, out="reports")   # measure (resumes), draw, write report.md
    run_all(quick=True, out=Path("reports"))                 # every study + reports/index.html
    rebuild("reports")                                       # figures and reports from stored rows only

See ``docs/studies.md`` for the studies, the files they write and how to read them.
"""
from .report import rebuild
from .runner import STUDIES, Cell, StudyError, cell, run_all, run_study

__all__ = ["STUDIES", "Cell", "StudyError", "cell", "rebuild", "run_all", "run_study"]
