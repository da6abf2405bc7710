"""Argument helpers shared by the subcommands: strict option checking and the run options.

``diffsuite run`` and every ``studies/<name>.py`` script take the same
run options (``add_run_options``); ``strict`` makes an unknown option this subcommand's error.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..study.runner import DEVICES


def jobs(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"--jobs needs a whole number >= 1 (worker processes); got {text!r}")
    return n


def strict(parser: argparse.ArgumentParser) -> None:
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


def add_run_options(parser: argparse.ArgumentParser) -> None:
    strict(parser)
    parser.add_argument("--quick", action="store_true", help="the small grid: each study in well under a minute")
    parser.add_argument("--jobs", type=jobs, default=1, metavar="N", help="worker processes (default 1)")
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
