"""``diffsuite report [--out DIR]``: rebuild figures, reports and the index from stored results, measuring nothing.

A study whose report cannot be drawn from its folder's results (another study's, or an older diffsuite's) is one
line naming the folder (exit 2), after the other studies' reports are rebuilt; ``DIFFSUITE_DEBUG=1`` in the
environment shows the traceback instead."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..study.studies import STUDIES
from .options import strict


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("reports"), metavar="DIR",
                        help="the folder holding the results (default: reports)")
    strict(parser)
    parser.set_defaults(func=report_command)


def report_command(args) -> int:
    from ..study.report import ReportsFailed, rebuild, studies_present
    # check before writing anything: a missing or empty folder gets the message, not a traceback or a
    # stray index.html
    if not studies_present(args.out):
        print(f"diffsuite report: error: no stored results under {args.out}; run `diffsuite run` first "
              f"(studies: {', '.join(STUDIES)})", file=sys.stderr)
        return 2
    try:
        names = rebuild(args.out)
    except ReportsFailed as e:  # one line per study whose report could not be drawn; the others were rebuilt
        if e.rebuilt:
            print(f"rebuilt {', '.join(e.rebuilt)}; index: {Path(args.out) / 'index.html'}")
        for line in e.failures:
            print(f"diffsuite report: error: {line}", file=sys.stderr)
        return 2
    print(f"rebuilt {', '.join(names)}; index: {Path(args.out) / 'index.html'}")
    return 0
