"""``diffsuite demo`` / ``make demo``: the lecture's worked examples differentiated three ways, then every
study in quick mode with its figures and report."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from ..differentiators import get_differentiator
from ..lecture import LECTURE_INPUT, lecture_network
from ..objective import Objective
from .options import jobs, strict

#: The three ways of computing a gradient, as the demo shows them.
METHODS = {
    "reverse": {},
    "symbolic": {},
    "central FD": {"name": "finite_diff", "scheme": "central"},
}


def _gate_example(xp, p):
    return (p["x"] + p["y"]) * p["z"]


def _sigmoid_neuron(xp, w, x):
    return 1.0 / (1.0 + xp.exp(-(w[0] * x[0] + w[1] * x[1] + w[2])))


def _differentiators():
    out = {}
    for label, opts in METHODS.items():
        opts = dict(opts)
        out[label] = get_differentiator(opts.pop("name", label), **opts)
    return out


def show_lecture_examples(console: Console) -> None:
    """Print the lecture's three worked examples, each differentiated by every method side by side."""
    methods = _differentiators()
    console.rule("[bold]f(x, y, z) = (x + y) z at (-2, 5, -4)   (the lecture's add and mul gates)")
    point = {"x": -2.0, "y": 5.0, "z": -4.0}
    table = Table("parameter", *methods)
    grads = {label: d.grad(_gate_example)(point) for label, d in methods.items()}
    for k in point:
        table.add_row(f"df/d{k}", *(f"{grads[m][k]:+.12g}" for m in methods))
    console.print(table)

    console.rule("[bold]sigmoid neuron 1/(1 + exp(-(w.x + w2))), w = (2, -3, -3), x = (-1, -2)")
    w, x = np.array([2.0, -3.0, -3.0]), np.array([-1.0, -2.0])
    table = Table("parameter", *methods)
    grads = {label: d.grad(_sigmoid_neuron)(w, x) for label, d in methods.items()}
    for i in range(3):
        table.add_row(f"df/dw{i}", *(f"{grads[m][i]:+.15f}" for m in methods))
    console.print(table)

    model, theta = lecture_network()
    obj = Objective(model, "quadratic", LECTURE_INPUT, np.array([[1.0]]))
    console.rule("[bold]the lecture's [3, 2, 1] sigmoid network, quadratic loss against target 1")
    results = {label: d.value_and_grad(obj)(theta) for label, d in methods.items()}
    console.print(f"output y = {model.forward(theta, LECTURE_INPUT)[0, 0]:.6f} (the slide's 0.74 comes from two "
                  f"arithmetic slips: 0.1*0.2 written as 0.03, and 0.2+0.24+0.03+0.2 summed to 0.49); "
                  f"loss 1/2 (y - 1)^2 = {results['reverse'].value:.12f}")
    table = Table("parameter", *methods)
    for i, name in enumerate(model.param_names()):
        table.add_row(f"{name} = {theta[i]:g}", *(f"{results[m].grad[i]:+.10e}" for m in methods))
    console.print(table)
    console.print("cost per gradient: " + ", ".join(
        f"{m}: {_cost(results[m].stats)}" for m in methods))


def _cost(stats: dict) -> str:
    if "tape_records" in stats:
        return f"a tape of {stats['tape_records']} records"
    if "n_evals" in stats:
        return f"{stats['n_evals']} evaluations of the loss"
    if stats.get("cse_all_ops") is not None:
        return f"a compiled program of {stats['cse_all_ops']} operations (gradient tree: {stats['grad_tree_nodes']} nodes)"
    return "-"


def run_demo(console: Console | None = None, studies: bool = True, out: Path | str | None = None,
             jobs: int = 1) -> None:
    """The lecture's examples, then (``studies=True``) every study in quick mode into ``out``."""
    console = console or Console()
    show_lecture_examples(console)
    if studies:
        from ..study import run_all
        from .run import print_summaries
        console.rule("[bold]every study, quick mode")
        summaries = run_all(quick=True, out=out, jobs=jobs)
        print_summaries(summaries, file=console.file)
        where = Path(out) if out is not None else Path("reports") / "quick"
        console.print(f"reports written: {where / 'index.html'}", markup=False)


def configure(parser) -> None:
    parser.add_argument("--no-studies", action="store_true",
                        help="only print the lecture's examples; run no study")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="folder for the quick studies' reports (default: reports/quick)")
    parser.add_argument("--jobs", type=jobs, default=1, metavar="N",
                        help="worker processes for the studies (default 1)")
    strict(parser)
    parser.set_defaults(func=_run)


def _run(args) -> int:
    run_demo(studies=not args.no_studies, out=args.out, jobs=args.jobs)
    return 0
