"""``diffsuite train``: train an MLP on a bundled data set with a chosen differentiator; progress bar, summary.

    diffsuite train                                            # digits, (64, 32, 10) tanh, reverse mode, SGD
    diffsuite train --data moons --layers 2,16,2 --activation relu --epochs 20
    diffsuite train --differentiator finite_diff --scheme central --layers 64,8,10 --max-steps 20
    diffsuite train --optimizer adam --lr 0.01 --schedule cosine --l1 0.001

The model's input and output widths must match the data (digits: 64 features, 10 classes; breast_cancer:
30, 2; moons: 2, 2; spirals: 2, 3); a mismatch, bad data or an unknown option is an error before any step.
"""
from __future__ import annotations

import argparse
import sys
import time

from .options import strict

DIFFERENTIATORS = ("reverse", "finite_diff", "symbolic")


def _layers(text: str) -> tuple[int, ...]:
    try:
        layers = tuple(int(t) for t in text.split(","))
    except ValueError:
        layers = ()
    if len(layers) < 2 or min(layers) < 1:
        raise argparse.ArgumentTypeError(f"--layers needs at least two positive ints separated by commas, e.g. "
                                          f"64,32,10; got {text!r}")
    return layers


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
                   default="cross_entropy", help="loss (default cross_entropy; binary_cross_entropy uses a sigmoid "
                                                 "output, hinge one output with labels -1/+1)")
    g.add_argument("--l1", type=float, default=0.0, help="L1 penalty on the weights (default 0)")
    g.add_argument("--l2", type=float, default=0.0, help="L2 penalty on the weights (default 0)")
    g.add_argument("--test-fraction", type=float, default=0.25, help="held-out share, stratified (default 0.25)")
    g = parser.add_argument_group("differentiator")
    g.add_argument("--differentiator", choices=DIFFERENTIATORS, default="reverse", help="default reverse")
    g.add_argument("--backend", choices=("numpy", "torch"), default="numpy", help="reverse mode's arrays")
    g.add_argument("--scheme", default="central", help="finite_diff's scheme (default central)")
    g.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="reverse/finite_diff")
    g = parser.add_argument_group("optimisation")
    g.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd", help="default sgd")
    g.add_argument("--lr", type=float, default=None, help="learning rate (default 0.1 for sgd, 0.001 for adam)")
    g.add_argument("--momentum", type=float, default=0.9, help="sgd momentum (default 0.9)")
    g.add_argument("--nesterov", action="store_true", help="sgd: Nesterov momentum")
    g.add_argument("--schedule", choices=("constant", "step", "cosine"), default="constant",
                   help="learning rate schedule over all steps: step halves it every epoch, cosine decays it to 0")
    g.add_argument("--epochs", type=int, default=5, help="default 5")
    g.add_argument("--batch", type=int, default=32, help="minibatch size (default 32)")
    g.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    g.add_argument("--seed", type=int, default=0, help="initialisation, split and minibatch order (default 0)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.set_defaults(func=train_command)


def _differentiator(args):
    from ..differentiators import get_differentiator
    if args.differentiator == "reverse":
        return get_differentiator("reverse", backend=args.backend, dtype=args.dtype)
    if args.differentiator == "finite_diff":
        # batch=32: 32 stencil points per objective call (same evaluations, less overhead; see finite_diff)
        return get_differentiator("finite_diff", scheme=args.scheme, dtype=args.dtype, warn=False,
                                  batch=1 if args.scheme == "complex_step" else 32)
    try:  # SymEngine differentiates and CSEs many times faster than SymPy (docs/symbolic.md)
        import symengine  # noqa: F401
        engine = "symengine"
    except ImportError:
        engine = "sympy"
    return get_differentiator("symbolic", symbolic_data=True, metrics=False, engine=engine)


def _optimizer(args, steps_per_epoch: int, total: int):
    from ..optim import Cosine, StepDecay, get_optimizer
    lr = args.lr if args.lr is not None else (0.1 if args.optimizer == "sgd" else 0.001)
    if args.schedule == "step":
        lr = StepDecay(lr, step_size=steps_per_epoch, gamma=0.5)
    elif args.schedule == "cosine":
        lr = Cosine(lr, t_max=total)
    if args.optimizer == "sgd":
        return get_optimizer("sgd", lr=lr, momentum=args.momentum, nesterov=args.nesterov)
    return get_optimizer(args.optimizer, lr=lr)


def train_command(args) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from ..data import load
    from ..nn import MLP
    from ..errors import BudgetExceeded
    from ..training import TrainingDiverged, check_setup, train

    console = Console(stderr=True)
    try:
        if args.epochs < 1 or args.batch < 1:
            raise ValueError(f"--epochs and --batch must be >= 1; got {args.epochs} and {args.batch}")
        data = load(args.data, test_fraction=args.test_fraction, seed=args.seed)
        out = "sigmoid" if args.loss == "binary_cross_entropy" else "identity"
        model = MLP(args.layers, args.activation, output_activation=out)
        check_setup(model, args.loss, data)  # before the progress bar: a mismatch is an error, not a run
        symbolic = args.differentiator == "symbolic"
        n = len(data.y_train)
        per_epoch = n // args.batch if symbolic else -(-n // args.batch)
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
                bar.update(task, completed=row["step"], epoch=row["epoch"], loss=row["train_loss"],
                           acc=row["test_acc"])

            t0 = time.perf_counter()
            run = train(diff, model, args.loss, data, opt, epochs=args.epochs, batch_size=args.batch, seed=args.seed,
                        l1=args.l1, l2=args.l2, eval_every=max(1, per_epoch // 4), max_steps=args.max_steps,
                        drop_last=symbolic, callback=progress)
            total_s = time.perf_counter() - t0
    except (ValueError, TypeError, ImportError, BudgetExceeded, TrainingDiverged) as e:
        print(f"diffsuite train: error: {e}", file=sys.stderr)
        return 2
    s = run.summary()
    table = Table(title="diffsuite train: summary")
    for col in ("steps", "train loss", "train acc", "test loss", "test acc", "in steps (s)", "setup (s)", "total (s)"):
        table.add_column(col, justify="right")
    table.add_row(str(s["steps"]), f"{s['train_loss']:.4f}", f"{s['train_acc']:.4f}", f"{s['test_loss']:.4f}",
                  f"{s['test_acc']:.4f}", f"{s['wall_s']:.2f}", f"{s['setup_s']:.2f}", f"{total_s:.2f}")
    Console().print(table)
    return 0
