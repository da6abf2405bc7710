"""The study commands: ``diffsuite list``, ``diffsuite run``, ``diffsuite report``, and the scripts' ``main``.

    diffsuite list
    diffsuite run [STUDY ...] [--quick] [--jobs N] [--device cpu|cuda|all] [--out DIR]
        (results go to reports/, or reports/quick/ with --quick, unless --out says otherwise)
    diffsuite report [--out DIR]
    python studies/<name>.py [--quick] [--out DIR] [--jobs N] [--device cpu|cuda|all]

``--device cuda`` without a usable GPU is an error (exit status 2, nothing measured); ``--device all``
measures the CPU rows and records in ``meta.json`` and the report why the CUDA rows were skipped.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .runner import DEVICES, STUDIES, StudyError, check_studies, default_out, study_module


def _jobs(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"--jobs needs a whole number >= 1 (worker processes); got {text!r}")
    return n


def _strict(parser: argparse.ArgumentParser) -> None:
    """Make an unknown option an error of this subcommand that lists its options (argparse's own message,
    raised by the top-level parser, names neither the subcommand nor the choices)."""
    original = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        ns, extras = original(args, namespace)
        if extras:
            options = sorted({o for a in parser._actions for o in a.option_strings if o.startswith("--")})
            parser.error(f"unknown option(s) {' '.join(extras)}; the options are {', '.join(options)}")
        return ns, extras

    parser.parse_known_args = parse_known_args


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    _strict(parser)
    parser.add_argument("--quick", action="store_true", help="the small grid: each study in well under a minute")
    parser.add_argument("--jobs", type=_jobs, default=1, metavar="N", help="worker processes (default 1)")
    parser.add_argument("--device", choices=DEVICES, default="cpu",
                        help="cpu (default), cuda (an error without a GPU), or all (CUDA rows where a GPU exists)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="where results and reports go, one folder per study (default: reports, or "
                             "reports/quick with --quick, so that a quick run never replaces full results). "
                             "A study whose stored results were measured under another configuration starts "
                             "afresh; its old results are not deleted but moved aside in its folder, to "
                             "results.<old-config-hash>.jsonl and meta.<old-config-hash>.json (never "
                             "overwriting an earlier backup)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


# ----- diffsuite list -----
def configure_list(parser: argparse.ArgumentParser) -> None:
    _strict(parser)
    parser.set_defaults(func=list_studies)


def list_studies(args=None) -> int:
    for name in STUDIES:
        m = study_module(name)
        print(f"{name:<18} {m.QUESTION}")
    return 0


# ----- diffsuite run -----
def configure_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("studies", nargs="*", metavar="STUDY",
                        help=f"studies to run (default: all): {', '.join(STUDIES)}")
    _add_run_options(parser)
    parser.set_defaults(func=run_command)


def run_command(args) -> int:
    from .runner import run_all
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


# ----- diffsuite report -----
def configure_report(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("reports"), metavar="DIR",
                        help="the folder holding the results (default: reports)")
    _strict(parser)
    parser.set_defaults(func=report_command)


def report_command(args) -> int:
    from .report import rebuild, studies_present
    # check before writing anything: a missing or empty folder gets the message, not a traceback or a
    # stray index.html
    if not studies_present(args.out):
        print(f"diffsuite report: error: no stored results under {args.out}; run `diffsuite run` first "
              f"(studies: {', '.join(STUDIES)})", file=sys.stderr)
        return 2
    names = rebuild(args.out)
    print(f"rebuilt {', '.join(names)}; index: {Path(args.out) / 'index.html'}")
    return 0


# ----- python studies/<name>.py -----
def script_main(name: str, argv: list[str] | None = None) -> int:
    """What every ``studies/<name>.py`` runs: measure (resuming), draw, report, refresh the index."""
    parser = argparse.ArgumentParser(prog=f"studies/{name}.py", description=study_module(name).QUESTION)
    _add_run_options(parser)
    args = parser.parse_args(argv)
    args.studies = [name]
    try:
        return run_command(args)
    except KeyboardInterrupt:
        print("interrupted; results written so far are kept (rerun to resume)", file=sys.stderr)
        return 130
