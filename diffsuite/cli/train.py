"""``diffsuite train``: train an MLP on a bundled data set with a chosen differentiator; progress bar, summary.

    diffsuite train                                            # digits, (64, 32, 10) tanh, reverse mode, SGD
    diffsuite train --data moons --layers 2,16,2 --activation relu --epochs 20
    diffsuite train --differentiator finite_diff --scheme central --layers 64,8,10 --max-steps 20
    diffsuite train --optimizer adam --lr 0.01 --schedule cosine --l1 0.001

The model's input and output widths must match the data (digits: 64 features, 10 classes; breast_cancer:
30, 2; moons: 2, 2; spirals: 2, 3); a mismatch, bad data, an unknown option or an option that does not
apply to the chosen differentiator or optimizer is an error before any step:

    --backend          reverse only
    --dtype            reverse and finite_diff (symbolic evaluates in float64)
    --scheme           finite_diff only
    --time-budget      symbolic only (its build and compile; default 60 s)
    --momentum, --nesterov   sgd only (adam and adamw have no momentum option)

symbolic compiles the data as arguments of one kernel, so it trains on equal minibatches (the last partial
one is dropped) and not with --loss cross_entropy (its one-hot targets are compiled in as constants): use
--loss quadratic or binary_cross_entropy. Forward mode is not offered here (n JVPs per step; train() in Python takes it).
"""
from __future__ import annotations

import argparse
import math
import sys
import time

from ..argtypes import whole_number
from .options import strict

DIFFERENTIATORS = ("reverse", "finite_diff", "symbolic")  # (forward mode: n JVPs per step; train() in Python takes it)
SCHEMES = ("forward", "backward", "central", "five_point", "richardson", "complex_step")  # finite_diff's
SYMBOLIC_BUDGET_S = 60.0  # the symbolic differentiator's default time budget (build, differentiate, compile)
#: option -> (attribute, the differentiators it applies to)
FOR_DIFFERENTIATORS = {"--backend": ("backend", ("reverse",)), "--dtype": ("dtype", ("reverse", "finite_diff")),
                       "--scheme": ("scheme", ("finite_diff",)), "--time-budget": ("time_budget", ("symbolic",))}
#: option -> (attribute, the optimizers it applies to)
FOR_OPTIMIZERS = {"--momentum": ("momentum", ("sgd",)), "--nesterov": ("nesterov", ("sgd",))}


def _layers(text: str) -> tuple[int, ...]:
    try:
        layers = tuple(int(t) for t in text.split(","))
    except ValueError:
        layers = ()
    if len(layers) < 2 or min(layers) < 1:
        raise argparse.ArgumentTypeError(f"--layers needs at least two positive ints separated by commas, e.g. "
                                          f"64,32,10; got {text!r}")
    return layers


def _seconds(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        x = float("nan")
    if not x > 0:  # NaN too; inf: no limit
        raise argparse.ArgumentTypeError(f"--time-budget needs a positive number of seconds (inf: no limit); "
                                          f"got {text!r}")
    return x


def configure(parser: argparse.ArgumentParser) -> None:
    from ..data import SOURCES
    from ..nn import ACTIVATIONS
    from ..optim import OPTIMIZERS
    strict(parser)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("\n\n", 1)[1]
    g = parser.add_argument_group("model and data")
    g.add_argument("--data", choices=sorted(SOURCES), default="digits", help="data set (default digits)")
    g.add_argument("--layers", type=_layers, default=(64, 32, 10), metavar="N,...,K",
                   help="layer widths, inputs first (default 64,32,10)")
    g.add_argument("--activation", choices=sorted(ACTIVATIONS), default="tanh", help="hidden activation (default tanh)")
    g.add_argument("--loss", choices=("cross_entropy", "quadratic", "binary_cross_entropy", "hinge"),
                   default="cross_entropy", help="loss (default cross_entropy, which symbolic cannot train with; "
                                                 "binary_cross_entropy uses a sigmoid output, hinge one output with "
                                                 "labels -1/+1)")
    g.add_argument("--l1", type=float, default=0.0, help="L1 penalty on the weights (default 0)")
    g.add_argument("--l2", type=float, default=0.0, help="L2 penalty on the weights (default 0)")
    g.add_argument("--test-fraction", type=float, default=0.25, help="held-out share, stratified (default 0.25)")
    g = parser.add_argument_group("differentiator")
    g.add_argument("--differentiator", choices=DIFFERENTIATORS, default="reverse",
                   help="default reverse (forward mode is not offered here: n JVPs per step; train() in Python takes it)")
    g.add_argument("--backend", choices=("numpy", "torch"), default=None,
                   help="reverse only: its arrays (default numpy)")
    g.add_argument("--scheme", choices=SCHEMES, default=None, help="finite_diff only (default central)")
    g.add_argument("--dtype", choices=("float64", "float32"), default=None,
                   help="reverse and finite_diff only (default float64; symbolic evaluates in float64)")
    g.add_argument("--time-budget", type=_seconds, default=None, metavar="SECONDS",
                   help=f"symbolic only: seconds its build, differentiation and compilation may take "
                        f"(default {SYMBOLIC_BUDGET_S:g}; inf: no limit)")
    g = parser.add_argument_group("optimisation")
    g.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd", help="default sgd")
    g.add_argument("--lr", type=float, default=None, help="learning rate (default 0.1 for sgd, 0.001 for adam "
                                                          "and adamw)")
    g.add_argument("--momentum", type=float, default=None, help="sgd only (default 0.9)")
    g.add_argument("--nesterov", action="store_true", help="sgd only: Nesterov momentum")
    g.add_argument("--schedule", choices=("constant", "step", "cosine"), default="constant",
                   help="learning rate schedule over all steps (default constant): step halves it every epoch, "
                        "cosine decays it to 0")
    g.add_argument("--epochs", type=whole_number(1), default=5, help="default 5")
    g.add_argument("--batch", type=whole_number(1), default=32, help="minibatch size (default 32)")
    g.add_argument("--max-steps", type=whole_number(1), default=None,
                   help="stop after this many steps (at least 1; default: all epochs)")
    g.add_argument("--seed", type=whole_number(0), default=0,
                   help="initialisation, split and minibatch order (default 0)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.set_defaults(func=train_command)


def check_options(args) -> None:
    """Refuse, before any work or output, an option that does not apply to the chosen differentiator or optimizer
    (it would be ignored silently), a differentiator that cannot train with the chosen loss, and a negative or
    non-finite --l1 or --l2."""
    problems = []
    for option, (attr, owners) in FOR_DIFFERENTIATORS.items():
        if getattr(args, attr) is not None and args.differentiator not in owners:
            problems.append(f"{option} applies to --differentiator {' or '.join(owners)} only, not "
                            f"{args.differentiator}: drop {option}, or use --differentiator {owners[0]}")
    for option, (attr, owners) in FOR_OPTIMIZERS.items():
        if getattr(args, attr) not in (None, False) and args.optimizer not in owners:
            problems.append(f"{option} applies to --optimizer {' or '.join(owners)} only, not {args.optimizer}: "
                            f"drop {option}, or use --optimizer {owners[0]}")
    if args.differentiator == "symbolic" and args.loss == "cross_entropy":
        problems.append("--differentiator symbolic cannot train with --loss cross_entropy (the default): its kernel "
                        "compiles the one-hot targets in as constants, so minibatches cannot change them; use --loss "
                        "quadratic or --loss binary_cross_entropy, or another --differentiator")
    for option, value in (("--l1", args.l1), ("--l2", args.l2)):  # (the Objective checks too, after the header)
        if not (value >= 0 and math.isfinite(value)):
            problems.append(f"{option} must be a finite number >= 0 (the penalty's weight; 0: none); got {value!r}")
    if problems:
        raise ValueError("; ".join(problems))


def _differentiator(args):
    from ..differentiators import get_differentiator
    dtype = args.dtype or "float64"
    if args.differentiator == "reverse":
        return get_differentiator("reverse", backend=args.backend or "numpy", dtype=dtype)
    if args.differentiator == "finite_diff":
        scheme = args.scheme or "central"
        # batch=32: 32 stencil points per objective call (same evaluations, less overhead; see finite_diff)
        return get_differentiator("finite_diff", scheme=scheme, dtype=dtype, warn=False,
                                  batch=1 if scheme == "complex_step" else 32)
    try:  # SymEngine differentiates and CSEs many times faster than SymPy (docs/symbolic.md)
        import symengine  # noqa: F401
        engine = "symengine"
    except ImportError:
        engine = "sympy"
    budget = SYMBOLIC_BUDGET_S if args.time_budget is None else args.time_budget
    return get_differentiator("symbolic", symbolic_data=True, metrics=False, engine=engine,
                              time_budget_s=None if budget == float("inf") else budget)


def _optimizer(args, steps_per_epoch: int, total: int):
    from ..optim import Cosine, StepDecay, get_optimizer
    lr = args.lr if args.lr is not None else (0.1 if args.optimizer == "sgd" else 0.001)
    if not (lr > 0 and lr != float("inf")):  # NaN too; the same rule with or without --schedule
        raise ValueError(f"--lr must be a finite number > 0; got {lr!r}")
    if args.schedule == "step":
        lr = StepDecay(lr, step_size=steps_per_epoch, gamma=0.5)
    elif args.schedule == "cosine":
        lr = Cosine(lr, t_max=total)
    if args.optimizer == "sgd":
        return get_optimizer("sgd", lr=lr, momentum=0.9 if args.momentum is None else args.momentum,
                             nesterov=args.nesterov)
    return get_optimizer(args.optimizer, lr=lr)


def _budget_message(e, args) -> str:
    """A budget overrun with the advice this command can follow (errors.BudgetExceeded's own says "raise the
    budget", which for a node budget has no option here)."""
    got = f" (got as far as {e.progress})" if e.progress else ""
    if "node" in str(e.budget):
        advice = "use a smaller network (--layers) or --differentiator reverse"
    else:
        now = SYMBOLIC_BUDGET_S if args.time_budget is None else args.time_budget
        advice = (f"raise --time-budget (now {now:g} s), or use a smaller network (--layers) or --differentiator "
                  "reverse")
    return f"{e.stage} exceeded its budget of {e.budget}{got}; {advice}"


def train_command(args) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..data import load
    from ..nn import MLP
    from ..errors import BudgetExceeded
    from ..training import TrainingDiverged, check_setup, train

    console = Console(stderr=True)
    last: dict = {}
    total = None
    try:
        check_options(args)
        if args.epochs < 1 or args.batch < 1:
            raise ValueError(f"--epochs and --batch must be >= 1; got {args.epochs} and {args.batch}")
        if args.max_steps is not None and args.max_steps < 1:
            raise ValueError(f"--max-steps needs a whole number >= 1; got {args.max_steps}")
        data = load(args.data, test_fraction=args.test_fraction, seed=args.seed)
        out = "sigmoid" if args.loss == "binary_cross_entropy" else "identity"
        model = MLP(args.layers, args.activation, output_activation=out)
        check_setup(model, args.loss, data)  # before the progress bar: a mismatch is an error, not a run
        symbolic = args.differentiator == "symbolic"
        n = len(data.y_train)
        per_epoch = n // args.batch if symbolic else -(-n // args.batch)
        if per_epoch < 1:
            raise ValueError(f"--batch {args.batch} is larger than the {n} training rows, and symbolic trains on "
                             f"full minibatches only: use --batch {n} or less")
        total = per_epoch * args.epochs if args.max_steps is None else min(args.max_steps, per_epoch * args.epochs)
        diff, opt = _differentiator(args), _optimizer(args, per_epoch, total)
        console.print(escape(f"{data.describe()}; MLP{model.layers} {args.activation}, {args.loss}"
                             f"{f', l1={args.l1:g}' if args.l1 else ''}{f', l2={args.l2:g}' if args.l2 else ''}; "
                             f"{getattr(diff, 'label', diff.name)}; {args.optimizer}; {model.n_params} parameters"))
        with Progress(TextColumn("[bold]epoch {task.fields[epoch]:.2f}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("loss {task.fields[loss]:.4f}  test acc {task.fields[acc]:.3f}"),
                      TimeElapsedColumn(), console=console, disable=not args.progress) as bar:
            task = bar.add_task("train", total=total, epoch=0.0, loss=float("nan"), acc=float("nan"))

            def progress(row):
                last.update(row)
                bar.update(task, completed=row["step"], epoch=row["epoch"], loss=row["train_loss"],
                           acc=row["test_acc"])

            t0 = time.perf_counter()
            run = train(diff, model, args.loss, data, opt, epochs=args.epochs, batch_size=args.batch, seed=args.seed,
                        l1=args.l1, l2=args.l2, eval_every=max(1, per_epoch // 4), max_steps=args.max_steps,
                        drop_last=symbolic, callback=progress)
            total_s = time.perf_counter() - t0
    except BudgetExceeded as e:
        print(f"diffsuite train: error: {_budget_message(e, args)}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, ImportError, TrainingDiverged) as e:
        print(f"diffsuite train: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # train stores nothing: say where it stopped instead
        where = (f" at step {last['step']} of {total} (last evaluation: train loss {last['train_loss']:.4f}, "
                 f"test acc {last['test_acc']:.3f})" if last and total else " before the first step")
        print(f"diffsuite train: interrupted{where}; train saves nothing", file=sys.stderr)
        return 130
    s = run.summary()
    penalized = bool(args.l1 or args.l2)  # the losses are data losses; the L1/L2 term gets its own column
    cols = ("steps", "train loss", "train acc", "test loss", "test acc") + (("penalty",) if penalized else ()) \
        + ("in steps (s)", "setup (s)", "total (s)")
    cells = (str(s["steps"]), _number(s["train_loss"]), f"{s['train_acc']:.4f}", _number(s["test_loss"]),
             f"{s['test_acc']:.4f}", *((_number(s["penalty"]),) if penalized else ()), f"{s['wall_s']:.2f}",
             f"{s['setup_s']:.2f}", f"{total_s:.2f}")
    out = Console()
    out.print(summary_table(cols, cells, out.width))
    return 0


def _number(x: float) -> str:
    """4 decimals, or 4 significant digits in scientific notation when that would hide digits or lose them
    (|x| >= 1e4 or below 1e-3): 1858096.77 -> 1.858e+06, never a figure cut to look 10x smaller."""
    return f"{x:.4f}" if x == 0 or 1e-3 <= abs(x) < 1e4 or x != x or abs(x) == float("inf") else f"{x:.3e}"


def summary_table(cols: tuple[str, ...], cells: tuple[str, ...], width: int):
    """The summary as one row, each column as wide as its number (headers wrap at spaces where needed), if that
    fits in ``width`` columns; else one line per quantity. No number is ever cut (rich would end it with …)."""
    from rich.table import Table
    natural = [max(len(v), len(c)) for c, v in zip(cols, cells)]
    narrow = [max(len(v), *map(len, c.split())) for c, v in zip(cols, cells)]
    for widths in (natural, narrow):
        if sum(widths) + 3 * len(widths) + 1 <= width:  # 2 of padding and 1 of border a column, 1 at the end
            table = Table(title="diffsuite train: summary")
            for col, w in zip(cols, widths):
                table.add_column(col, justify="right", width=w)
            table.add_row(*cells)
            return table
    table = Table(title="diffsuite train: summary")
    table.add_column("quantity")
    table.add_column("value", justify="right", overflow="fold")
    for col, value in zip(cols, cells):
        table.add_row(col, value)
    return table
