"""The lecture's worked example: the [3, 2, 1] sigmoid network, its parameters and its input.

The demo prints it, the rounding-error study measures at it, and tests and benchmarks check against it.
"""
from __future__ import annotations

import numpy as np

from .nn import MLP

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
