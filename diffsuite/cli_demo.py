"""``diffsuite demo``."""
from __future__ import annotations


def configure(parser) -> None:
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from .demo import run_demo
    run_demo()
    return 0
