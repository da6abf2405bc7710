"""The ``diffsuite`` command: one module per subcommand (``demo``, ``check``, ``list``, ``run``, ``report``), each
defining ``configure(parser)``; this file only dispatches. ``options`` holds the argument helpers they share."""
from __future__ import annotations

import argparse
import sys
from importlib import import_module

from .. import __version__

#: subcommand -> (module defining ``configure(parser)``, one-line help)
COMMANDS = {
    "demo": ("diffsuite.cli.demo", "the lecture's examples differentiated three ways, then every study in quick mode"),
    "check": ("diffsuite.cli.check", "compare every method's gradient accuracy with a stored baseline (CI)"),
    "list": ("diffsuite.cli.list", "list the studies and the question each answers"),
    "run": ("diffsuite.cli.run", "run studies (resuming), draw their figures, write reports/ and index.html"),
    "report": ("diffsuite.cli.report", "rebuild figures and reports from stored results, measuring nothing"),
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; results written so far are kept", file=sys.stderr)
        return 130
