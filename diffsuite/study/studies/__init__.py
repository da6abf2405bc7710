"""The studies, one module each, and their registry.

A study module defines ``TITLE``, ``QUESTION``, ``Config`` (the grid's decisions, with ``quick()``),
``cells(config)``, ``measure(config, params)`` and ``report(table, meta, out_dir)``; the runner
(``diffsuite.study.runner``) describes the contract. To add a study, add its module here and one line to
``STUDIES``; ``diffsuite list|run|report`` and ``studies/<name>.py`` then know it.

Modules are imported by name, only when a study is used, so this registry imports none of them.
"""
from __future__ import annotations

from importlib import import_module

from ...errors import StudyError

#: study name -> module. The order is the order of ``diffsuite list`` and of the report.
STUDIES = {
    "expression_growth": "diffsuite.study.studies.expression_growth",
    "rounding_error": "diffsuite.study.studies.rounding_error",
    "accuracy": "diffsuite.study.studies.accuracy",
    "speed": "diffsuite.study.studies.speed",
}


def study_module(name: str):
    try:
        return import_module(STUDIES[name])
    except KeyError:
        raise StudyError(f"unknown study {name!r}; choose from {', '.join(STUDIES)}") from None


def check_studies(names) -> list[str]:
    names = list(names) or list(STUDIES)
    unknown = [n for n in names if n not in STUDIES]
    if unknown:
        raise StudyError(f"unknown study {', '.join(map(repr, unknown))}; choose from {', '.join(STUDIES)}")
    return names


__all__ = ["STUDIES", "StudyError", "check_studies", "study_module"]
