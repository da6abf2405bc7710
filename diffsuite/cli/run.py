"""``diffsuite run`` and the studies' scripts: measure (resuming), draw, write reports and the index.

    diffsuite run [STUDY ...] [--quick] [--jobs N] [--device cpu|cuda|all] [--out DIR]
        (results go to reports/, or reports/quick/ with --quick, unless --out says otherwise)
    python studies/<name>.py [--quick] [--out DIR] [--jobs N] [--device cpu|cuda|all]

``--device cuda`` without a usable GPU is an error (exit status 2, nothing measured); ``--device all``
measures the CPU rows and records in ``meta.json`` and the report why the CUDA rows were skipped.
"""
from __future__ import annotations

import argparse
import sys

from ..study.runner import StudyError, default_out, run_all
from ..study.studies import STUDIES, check_studies, study_module
from .options import add_run_options


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("studies", nargs="*", metavar="STUDY",
                        help=f"studies to run (default: all): {', '.join(STUDIES)}")
    add_run_options(parser)
    parser.set_defaults(func=run_command)


def run_command(args) -> int:
    try:
        names = check_studies(args.studies)
        summaries = run_all(quick=args.quick, out=args.out, jobs=args.jobs, device=args.device, studies=names,
                            progress=args.progress)
    except StudyError as e:
        print(f"diffsuite run: error: {e}", file=sys.stderr)
        return 2
    for s in summaries:
        counts = ", ".join(f"{v} {k}" for k, v in sorted(s.statuses.items()))
        print(f"{s.study}: {s.cells} cells ({s.measured} measured, {s.resumed} resumed); rows: {counts}; "
              f"report: {s.directory / 'report.md'}")
    print(f"index: {(args.out or default_out(args.quick)) / 'index.html'}")
    return 0


def script_main(name: str, argv: list[str] | None = None) -> int:
    """What every ``studies/<name>.py`` runs: measure (resuming), draw, report, refresh the index."""
    parser = argparse.ArgumentParser(prog=f"studies/{name}.py", description=study_module(name).QUESTION)
    add_run_options(parser)
    args = parser.parse_args(argv)
    args.studies = [name]
    try:
        return run_command(args)
    except KeyboardInterrupt:
        print("interrupted; results written so far are kept (rerun to resume)", file=sys.stderr)
        return 130
