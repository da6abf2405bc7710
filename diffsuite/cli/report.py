"""``diffsuite report [--out DIR]``: rebuild figures, reports and the index from stored results, measuring nothing."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..study.report import rebuild, studies_present
from ..study.studies import STUDIES
from .options import strict


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("reports"), metavar="DIR",
                        help="the folder holding the results (default: reports)")
    strict(parser)
    parser.set_defaults(func=report_command)


def report_command(args) -> int:
    # check before writing anything: a missing or empty folder gets the message, not a traceback or a
    # stray index.html
    if not studies_present(args.out):
        print(f"diffsuite report: error: no stored results under {args.out}; run `diffsuite run` first "
              f"(studies: {', '.join(STUDIES)})", file=sys.stderr)
        return 2
    names = rebuild(args.out)
    print(f"rebuilt {', '.join(names)}; index: {Path(args.out) / 'index.html'}")
    return 0
