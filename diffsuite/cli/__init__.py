"""The ``diffsuite`` command: one module per subcommand (``demo``, ``check``, ``list``, ``run``, ``report``,
``train``), each defining ``configure(parser)``; this file only dispatches. ``options`` holds the argument helpers they share."""
from __future__ import annotations

import argparse
import sys
import warnings
from importlib import import_module

from .. import __version__
from ..errors import StudyError

#: subcommand -> (module defining ``configure(parser)``, one-line help)
COMMANDS = {
    "demo": ("diffsuite.cli.demo", "the lecture's examples differentiated three ways, then every study in quick mode"),
    "check": ("diffsuite.cli.check", "compare every method's gradient accuracy with a stored baseline (CI)"),
    "list": ("diffsuite.cli.list", "list the studies and the question each answers"),
    "run": ("diffsuite.cli.run", "run studies (resuming), draw their figures, write reports/ and index.html"),
    "report": ("diffsuite.cli.report", "rebuild figures and reports from stored results, measuring nothing"),
    "train": ("diffsuite.cli.train", "train an MLP on a bundled data set with a chosen differentiator"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffsuite",
        description="Compare symbolic differentiation, finite differences and reverse-mode autodiff "
                    "on the same neural-network losses.")
    parser.add_argument("--version", action="version", version=f"diffsuite {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        import_module(module).configure(cmd)
    return parser


def interrupted(args) -> str:
    """What Ctrl-C leaves behind, per command: only ``run`` (and ``demo`` with its studies) stores results."""
    if args.command == "run" or (args.command == "demo" and not getattr(args, "no_studies", False)):
        return "interrupted; the cells measured so far are stored: rerun the same command to resume"
    if args.command == "report":
        return "interrupted; the stored results are unchanged (rerun diffsuite report to rebuild the reports)"
    return "interrupted"


def _cli_warning(command: str):
    """``warnings.formatwarning`` for a command line: one line, without a source location (a user of the command
    has no line of their own for it to name; Python's format named ``<frozen runpy>``). Only the text changes:
    which warnings are shown, and where they go, stay Python's (and pytest's)."""
    def format(message, category, filename, lineno, line=None):
        return f"diffsuite {command}: warning: {message}\n"
    return format


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    previous = warnings.formatwarning
    warnings.formatwarning = _cli_warning(args.command)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"diffsuite {args.command}: {interrupted(args)}", file=sys.stderr)
        return 130
    except (StudyError, OSError) as e:
        # the environment, not diffsuite: one line (what, where, what to do) and exit 2, never a traceback
        from ..study.store import environment_error
        message = environment_error(e) if isinstance(e, OSError) else e
        print(f"diffsuite {args.command}: error: {message}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = previous
