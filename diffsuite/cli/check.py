"""``diffsuite check``: the accuracy grid against a stored baseline.

    diffsuite check --quick                         # against baselines/accuracy_quick.json
    diffsuite check --baseline FILE [--factor 10]   # the full grid
    diffsuite check --quick --update                # write a new baseline after an intended change
    diffsuite check --quick --fail-unmeasured       # a baseline cell not measured here (torch missing) fails

``--update`` keeps the old baseline's entries for cells it cannot measure here (an optional package such as torch
missing, or no GPU for ``--device all``), and says so; see docs/gradcheck.md.

Exit status: 0 every cell held; 1 a regression, a cell that raises (e.g. a broken import), a baseline cell not
measured with --fail-unmeasured, or --update refused because cells failed to measure; 2 a missing, malformed,
read-only or wrong-grid baseline, or a bad option; 130 interrupted (Ctrl-C).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

from .options import strict

DEFAULT_BASELINES = {True: "baselines/accuracy_quick.json", False: "baselines/accuracy_full.json"}


def default_baseline(quick: bool, update: bool = False) -> str:
    """The baseline used without ``--baseline``: ``baselines/...`` in the current directory if it is there (and
    always for ``--update``), else the one committed in the checkout diffsuite runs from (an editable install or
    a source tree), so that ``diffsuite check`` works from any directory. Neither: the relative path (whose
    loading error says how to create it)."""
    relative = DEFAULT_BASELINES[quick]
    if update or Path(relative).exists():
        return relative
    checkout = Path(__file__).resolve().parents[2] / relative
    return str(checkout) if checkout.exists() else relative


def configure(parser) -> None:
    strict(parser)  # an unknown option: this subcommand's error, listing its options (as `diffsuite run` does)
    parser.add_argument("--baseline", metavar="FILE",
                        help=f"the baseline JSON (default: {DEFAULT_BASELINES[True]} with --quick, "
                             f"else {DEFAULT_BASELINES[False]}; in the current directory if there, else in "
                             "diffsuite's own checkout)")
    parser.add_argument("--update", action="store_true", help="measure and write FILE instead of comparing")
    parser.add_argument("--quick", action="store_true", help="the quick grid (seconds): what CI runs")
    parser.add_argument("--factor", type=float, default=None,
                        help="a cell regresses when its error grows more than this factor (default 10)")
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="cpu",
                        help="devices for the torch backend's cells (default cpu)")
    parser.add_argument("--fail-unmeasured", action="store_true",
                        help="fail (exit 1) when a cell of the baseline could not be measured here (an optional "
                             "backend such as torch missing) instead of listing it as not measured")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    try:
        return _check(args)
    except KeyboardInterrupt:  # before the CLI's generic message, which would claim results were kept
        what = (f"the baseline {args.baseline or default_baseline(args.quick, True)} was not written or changed"
                if args.update else "nothing was compared")
        print(f"diffsuite check: interrupted; {what}", file=sys.stderr)
        return 130


def _check(args) -> int:
    from ..gradcheck import baseline as bl
    factor = bl.DEFAULT_FACTOR if args.factor is None else args.factor
    if not (factor > 1 and math.isfinite(factor)):  # (inf would turn the check off)
        print(f"diffsuite check: error: --factor must be a finite number > 1; got {args.factor}", file=sys.stderr)
        return 2
    path = args.baseline or default_baseline(args.quick, args.update)
    stored = None
    grid_name = "quick" if args.quick else "full"
    previous = None  # with --update: the baseline replaced, whose cells not measurable here are carried over
    if args.update:
        try:
            bl.require_writable(path)  # before minutes of measuring, not after
        except bl.BaselineError as e:
            print(f"diffsuite check: error: {e}", file=sys.stderr)
            return 2
        if Path(path).is_file():
            try:
                previous = bl.load_baseline(path)
            except bl.BaselineError as e:  # it is being replaced anyway; only nothing can be carried over from it
                print(f"  the old baseline cannot be read, so no cell is carried over from it: {e}")
    else:
        try:
            stored = bl.load_baseline(path)
        except bl.BaselineError as e:
            print(f"diffsuite check: error: {e}", file=sys.stderr)
            return 2
        written_for = stored.get("grid")
        if written_for in ("quick", "full") and written_for != grid_name:
            fix = "add --quick" if written_for == "quick" else "drop --quick"
            print(f"diffsuite check: the baseline {path} was written for the {written_for} grid, and this run measures "
                  f"the {grid_name} grid; {fix} (or give the {grid_name} grid's baseline with --baseline)",
                  file=sys.stderr)
            return 2
    from ..study.runner import StudyError, resolve_devices
    try:
        devices, skipped = resolve_devices(args.device)  # cuda without a GPU: an error; all: the CPU, and why
    except StudyError as e:
        print(f"diffsuite check: error: {e}", file=sys.stderr)
        return 2
    for label, reason in skipped.items():
        print(f"  {label} not measured: {reason}")
    try:
        grid = bl.QUICK if args.quick else bl.full_grid()
        rows, info = bl.measure_grid(grid, devices, reference=None if stored is None else stored.get("reference"),
                                     references=None if stored is None else stored["references"])
    except bl.BaselineError as e:
        print(f"diffsuite check: {path}: {e}; regenerate the baseline with: diffsuite check --baseline {path} --update"
              f"{' --quick' if args.quick else ''}", file=sys.stderr)
        return 2
    reference = info["reference"]
    if args.update:
        if not any(r["status"] == "ok" for r in rows):
            _print_unrecorded(rows)
            print(f"diffsuite check: no cell could be measured; {path} was not written", file=sys.stderr)
            return 1
        failed = [r for r in rows if r["status"] not in ("ok", "skipped")]
        if failed:  # a baseline without them would never check them again
            _print_unrecorded(failed, "failed to measure")
            print(f"diffsuite check: {len(failed)} cell(s) failed to measure (not for a missing optional package); "
                  f"{path} was not written. Fix them first: a baseline written now would leave them out and never "
                  "check them again", file=sys.stderr)
            return 1
        # cells not measurable here (torch missing, no GPU for --device all) keep their old entries: a baseline
        # written without them would stop checking them everywhere
        carried, not_carried = bl.carry_over(previous, rows, info, grid_name, skipped)
        kept = {tuple(str(c[f]) for f in bl.KEY) for c in carried}
        rest = [r for r in rows if tuple(str(r[f]) for f in bl.KEY) not in kept]
        try:
            written = bl.write_baseline(path, bl.baseline_document(rest + carried, info, grid_name))
        except bl.BaselineError as e:
            print(f"diffsuite check: error: {e}", file=sys.stderr)
            return 2
        n = sum(r["status"] == "ok" for r in rest)
        also = (f", and {len(carried)} cell{'s' if len(carried) > 1 else ''} carried over from the old baseline "
                "(not measured here: their old entries kept)" if carried else "")
        print(f"wrote {n} cells ({grid_name} grid, reference: {reference}) to {written}{also}")
        _print_unrecorded(carried, "carried over")
        if not_carried:
            print(f"  not carried over from the old baseline: {not_carried}")
        _print_unrecorded(rest)
        return 0
    result = bl.compare(stored, rows, factor)
    if result.n_compared == 0:
        print(f"diffsuite check: the baseline {path} shares no cell with the {grid_name} grid measured here; "
              f"check --quick against the right file, or regenerate it with: diffsuite check --baseline {path} "
              f"--update{' --quick' if args.quick else ''}", file=sys.stderr)
        return 2
    print(f"diffsuite check: {result.n_compared} cells compared with {path} ({grid_name} grid, reference: "
          f"{reference}, factor {factor:g})")
    if result.new:
        print(f"  {len(result.new)} cells are not in the baseline (record them with --update)")
    if result.improved:
        print(f"  {len(result.improved)} cells improved more than {factor:g}x; consider --update:")
        print(_indent(bl.format_table(result.improved, with_why=False)))
    _print_unrecorded([r for r in rows if r["status"] != "error"], "not measured")
    failing = False
    if result.regressions:
        print(f"REGRESSIONS: {len(result.regressions)} cell(s) lost accuracy:")
        print(_indent(bl.format_table(result.regressions)))
        failing = True
    if result.broken:
        print(f"FAILURES: {len(result.broken)} cell(s) not in the baseline raise an error now:")
        print(_indent(bl.format_table(result.broken)))
        failing = True
    if result.unmeasured and args.fail_unmeasured:
        print(f"UNMEASURED: {len(result.unmeasured)} cell(s) of the baseline were not measured here "
              "(--fail-unmeasured); install what they need or drop --fail-unmeasured")
        failing = True
    if failing:
        return 1
    print("ok: no cell lost accuracy")
    return 0


def _print_unrecorded(rows: list[dict], what: str = "not recorded") -> None:
    """Cells that did not give an error, grouped by status and exception type, with one example each."""
    by_reason: dict[str, list[dict]] = {}
    for r in rows:
        if r["status"] != "ok":
            by_reason.setdefault(f"{r['status']}: {r['message'].split(':', 1)[0]}", []).append(r)
    for group in by_reason.values():
        first = group[0]
        message = first["message"] if len(first["message"]) <= 240 else first["message"][:240] + "..."
        status = "" if first["status"] == "carried" else f"{first['status']}: "
        print(f"  {what} ({len(group)} cell{'s' if len(group) > 1 else ''}, e.g. {first['method']} {first['dtype']} "
              f"on {first['activation']}/{first['loss']}): {status}{message}")


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
