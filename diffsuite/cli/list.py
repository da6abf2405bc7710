"""``diffsuite list``: the studies and the question each answers; ``diffsuite list --config STUDY``: the
study's shipped quick and full configuration files (TOML), to copy and edit for ``diffsuite run --config``."""
from __future__ import annotations

import argparse
import sys

from ..study import config as study_config
from ..study.studies import STUDIES, StudyError, check_studies, study_module
from .options import strict


def configure(parser: argparse.ArgumentParser) -> None:
    strict(parser)
    parser.add_argument("--config", metavar="STUDY", default=None,
                        help="print STUDY's shipped configuration files (quick and full grids) instead")
    parser.set_defaults(func=list_studies)


def list_studies(args=None) -> int:
    if args is not None and args.config is not None:
        return print_configs(args.config)
    for name in STUDIES:
        m = study_module(name)
        print(f"{name:<18} {m.QUESTION}")
    return 0


def print_configs(name: str) -> int:
    try:
        module = study_module(check_studies([name])[0])
    except StudyError as e:
        print(f"diffsuite list: error: {e}", file=sys.stderr)
        return 2
    for grid in study_config.GRIDS:
        path = study_config.shipped_path(name, grid)
        text = path.read_text() if path.exists() else study_config.to_toml(
            name, study_config.base_config(module, grid), grid=grid, question=module.QUESTION)
        print(f"# ---- {path.name} ----")
        print(text)
    return 0
