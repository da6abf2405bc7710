"""``diffsuite demo``: the lecture's worked examples and a small MLP, differentiated and printed."""
from __future__ import annotations

import numpy as np
from rich.console import Console
from rich.table import Table

from .differentiators import get_differentiator
from .nn import MLP
from .objective import Objective

#: The lecture's single-hidden-layer example: x = (0.4, 0.2, 0.2), rows of W0 are the slide's w_1, w_2, w_3.
LECTURE_PARAMS = {
    "W0": [[1.0, 0.5], [0.2, 1.2], [1.2, 0.1]],
    "b0": [0.1, 0.2],
    "W1": [[0.3], [0.9]],
    "b1": [0.3],
}
LECTURE_INPUT = np.array([[0.4, 0.2, 0.2]])


def lecture_network() -> tuple[MLP, np.ndarray]:
    """The lecture's [3, 2, 1] sigmoid network and its parameters as a flat vector."""
    model = MLP((3, 2, 1), activation="sigmoid", output_activation="sigmoid")
    return model, model.pack(LECTURE_PARAMS)


def _gate_example(xp, p):
    return (p["x"] + p["y"]) * p["z"]


def _sigmoid_neuron(xp, w, x):
    return 1.0 / (1.0 + xp.exp(-(w[0] * x[0] + w[1] * x[1] + w[2])))


def run_demo(console: Console | None = None, differentiators: tuple[str, ...] = ("reverse",)) -> None:
    """Print the gradients of the lecture's examples with each available differentiator."""
    console = console or Console()
    for name in differentiators:
        d = get_differentiator(name)
        console.rule(f"[bold]{name}")
        g = d.grad(_gate_example)({"x": -2.0, "y": 5.0, "z": -4.0})
        console.print("f(x, y, z) = (x + y) z at (-2, 5, -4):", {k: round(v, 12) for k, v in g.items()})
        g = d.grad(_sigmoid_neuron)(np.array([2.0, -3.0, -3.0]), np.array([-1.0, -2.0]))
        console.print("sigmoid neuron at w = (2, -3, -3), x = (-1, -2): df/dw =", np.round(g, 6))

        model, theta = lecture_network()
        obj = Objective(model, "quadratic", LECTURE_INPUT, np.array([[1.0]]))
        res = d.value_and_grad(obj)(theta)
        console.print(f"lecture network, output {model.forward(theta, LECTURE_INPUT)[0, 0]:.6f}, "
                      f"quadratic loss vs target 1: {res.value:.10f}")
        table = Table("parameter", "value", "dJ/dparameter")
        for pname, value, gi in zip(model.param_names(), theta, res.grad):
            table.add_row(pname, f"{value:g}", f"{gi:+.12f}")
        console.print(table)

        model = MLP((4, 8, 3), activation="tanh")
        rng = np.random.default_rng(0)
        obj = Objective(model, "cross_entropy", rng.normal(size=(16, 4)), rng.integers(0, 3, size=16), l2=1e-3)
        res = d.value_and_grad(obj)(model.init(seed=0))
        console.print(f"{obj.describe()}: loss {res.value:.6f}, |grad| {np.linalg.norm(res.grad):.6f}, "
                      f"stats {res.stats}")
