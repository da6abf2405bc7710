"""Array backends of the reverse engine: numpy always; torch (CPU or CUDA) when installed.

A backend is only the array library: the rules in ``ops.py`` and the tape do the differentiation.
Every backend module defines one class with the same methods as ``NumpyBackend``.
"""
from __future__ import annotations

from ....errors import MissingDependency
from .numpy_backend import NumpyBackend
from .placement import BACKENDS, check_placement


def load_backend(name: str = "numpy", device: str = "cpu", dtype: str = "float64"):
    """The backend ``name`` on ``device`` in ``dtype``; clear errors for unknown names or missing torch/CUDA."""
    check_placement(name, device)
    if name == "numpy":
        return NumpyBackend(device=device, dtype=dtype)
    if name == "torch":
        try:
            from .torch_backend import TorchBackend
        except ImportError as e:
            raise MissingDependency("backend 'torch'", "torch", "torch", "or pip install torch") from e
        return TorchBackend(device=device, dtype=dtype)
