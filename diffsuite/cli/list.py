"""``diffsuite list``: the studies and the question each answers."""
from __future__ import annotations

import argparse

from ..study.studies import STUDIES, study_module
from .options import strict


def configure(parser: argparse.ArgumentParser) -> None:
    strict(parser)
    parser.set_defaults(func=list_studies)


def list_studies(args=None) -> int:
    for name in STUDIES:
        m = study_module(name)
        print(f"{name:<18} {m.QUESTION}")
    return 0
