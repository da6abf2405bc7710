"""``diffsuite run`` and the studies' scripts: measure (resuming), draw, write reports and the index.

    diffsuite run [STUDY ...] [--quick] [--jobs N] [--device cpu|cuda|all] [--out DIR]
        (results go to reports/, or reports/quick/ with --quick, unless --out says otherwise)
    diffsuite run STUDY --config FILE.toml          (the grid from a file: study/config.py)
    diffsuite run STUDY --scheduler tcp://HOST:8786 (cells on a Dask cluster; `local`: one on this machine)
    python studies/<name>.py [--quick] [--out DIR] [--jobs N] [--device cpu|cuda|all]

``--device cuda`` without a usable GPU is an error (exit status 2, nothing measured); ``--device all``
measures the CPU rows and records in ``meta.json`` and the report why the CUDA rows were skipped.
"""
from __future__ import annotations

import argparse
import sys

from ..errors import StudyError
from ..study.studies import STUDIES, check_studies, study_module
from .options import add_run_options


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("studies", nargs="*", metavar="STUDY",
                        help=f"studies to run (default: all): {', '.join(STUDIES)}")
    add_run_options(parser)
    parser.set_defaults(func=run_command)


def run_command(args) -> int:
    from ..study.runner import default_out, run_all
    try:
        names = check_studies(args.studies)
        if args.config is not None and args.quick:
            raise StudyError(f"--config {args.config} sets the whole grid; drop --quick (a file can start from the "
                             "quick grid with base = \"quick\")")
        summaries = run_all(quick=args.quick, out=args.out, jobs=args.jobs, device=args.device, studies=names,
                            progress=args.progress, config=args.config, scheduler=args.scheduler)
    except (StudyError, OSError) as e:  # the environment: one line (what, where, what to do), exit 2
        from ..study.store import environment_error
        print(f"diffsuite run: error: {environment_error(e) if isinstance(e, OSError) else e}", file=sys.stderr)
        return 2
    print_summaries(summaries)
    where = args.out or (summaries[0].directory.parent if summaries else default_out(args.quick))
    print(f"index: {where / 'index.html'}")
    return 0


def print_summaries(summaries, file=None) -> None:
    """One line per study: cells measured and resumed, and its rows by status in words (what was not run for
    a missing package, with the command that installs it; what was refused by design)."""
    for s in summaries:
        print(f"{s.study}: {s.cells} cells ({s.measured} measured, {s.resumed} resumed); rows: {s.rows_summary}; "
              f"report: {s.directory / 'report.md'}", file=file or sys.stdout)


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
