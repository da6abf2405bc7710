"""Which devices each backend runs on: checked when a differentiator is made (without importing torch) and again
when its backend loads, with the same messages. Whether a CUDA GPU is there is known only once torch loads."""
from __future__ import annotations

import re
from typing import Any

BACKENDS = ("numpy", "torch")


def check_placement(backend: Any, device: Any) -> None:
    """A known backend on a device it has: numpy on 'cpu'; torch on 'cpu', 'cuda' or 'cuda:N'. Else a ValueError."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)} (the array library the "
                         "tape runs on)")
    device = str(device)
    if backend == "numpy" and device != "cpu":
        raise ValueError(f"backend 'numpy' runs on device 'cpu' only; got device={device!r}. "
                         "For CUDA use backend='torch', device='cuda'.")
    if backend == "torch" and not re.fullmatch(r"cpu|cuda(:[0-9]+)?", device):
        raise ValueError(f"backend 'torch' runs on device 'cpu', 'cuda' or 'cuda:N'; got device={device!r}")
