"""Argument helpers shared by the subcommands: strict option checking and the run options.

``diffsuite run`` and every ``studies/<name>.py`` script take the same
run options (``add_run_options``); ``strict`` makes an unknown option this subcommand's error.
"""
from __future__ import annotations

import argparse
from pathlib import Path

DEVICES = ("cpu", "cuda", "all")  # diffsuite.study.runner.DEVICES (not imported here: --help stays light)


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
    parser.add_argument("--quick", action="store_true",
                        help="the small grid: each study in seconds to about a minute and a half (agreement is the "
                             "longest)")
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
    parser.add_argument("--config", type=Path, default=None, metavar="FILE.toml",
                        help="a TOML file setting the study's grid (keys: the fields of its Config; those left out "
                             "keep the full grid's, or the quick grid's with base = \"quick\"); one study only. "
                             "`diffsuite list --config STUDY` prints the shipped quick and full files to start from")
    parser.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT|local",
                        help="measure the cells on a Dask cluster: a running scheduler's address, or 'local' for a "
                             "cluster of --jobs worker processes on this machine (pip install 'diffsuite[dask]'; "
                             "see docs/distributed.md). Only this process writes the results, so resuming works "
                             "as without it")
