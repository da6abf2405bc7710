"""``diffsuite demo``: the lecture's examples three ways, then every study in quick mode (``make demo``)."""
from __future__ import annotations

from pathlib import Path


def configure(parser) -> None:
    parser.add_argument("--no-studies", action="store_true",
                        help="only print the lecture's examples; run no study")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the quick studies' reports (default: reports/quick)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes for the studies (default 1)")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from .demo import run_demo
    if args.jobs < 1:
        raise SystemExit(f"diffsuite demo: --jobs must be at least 1; got {args.jobs}")
    run_demo(studies=not args.no_studies, out=args.out, jobs=args.jobs)
    return 0
