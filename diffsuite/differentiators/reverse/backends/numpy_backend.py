"""The numpy array backend of the reverse engine. Every backend has the same methods (tests check)."""
from __future__ import annotations

import numpy as np

from ....namespace import _logsumexp, _sigmoid, _step


class NumpyBackend:
    """numpy arrays in ``dtype`` (float64 by default) on the CPU."""

    name = "numpy"

    def __init__(self, device: str = "cpu", dtype: str = "float64"):
        if device != "cpu":
            raise ValueError(f"backend 'numpy' runs on device 'cpu' only; got device={device!r}. "
                             "For CUDA use backend='torch', device='cuda'.")
        self.device = "cpu"
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")

    # ----- conversion -----
    def asarray(self, x):
        """A numpy array in this backend's dtype (float data is cast; other data is left alone)."""
        a = np.asarray(x)
        return a.astype(self.dtype, copy=False) if a.dtype.kind in "fiub" and a.dtype != self.dtype else a

    def constant(self, x):
        """Convert a constant met inside a traced function; Python numbers stay numbers (dtype-neutral)."""
        if isinstance(x, (int, float)):
            return x
        if isinstance(x, np.ndarray) and x.dtype == self.dtype:
            return x
        return self.asarray(x)

    @staticmethod
    def to_numpy(x) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)

    @staticmethod
    def concat_flat(parts):
        return np.concatenate([np.ravel(p) for p in parts])

    def synchronize(self):
        """Wait for queued work (nothing to wait for on numpy)."""

    # ----- elementwise -----
    exp = staticmethod(np.exp)
    log = staticmethod(np.log)
    tanh = staticmethod(np.tanh)
    sigmoid = staticmethod(_sigmoid)
    abs = staticmethod(np.abs)
    sign = staticmethod(np.sign)
    step = staticmethod(_step)
    maximum = staticmethod(np.maximum)
    minimum = staticmethod(np.minimum)
    ge = staticmethod(np.greater_equal)
    le = staticmethod(np.less_equal)
    where = staticmethod(np.where)

    # ----- reductions and shapes -----
    @staticmethod
    def sum(x, axis=None, keepdims=False):
        return np.sum(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def mean(x, axis=None, keepdims=False):
        return np.mean(x, axis=axis, keepdims=keepdims)

    logsumexp = staticmethod(_logsumexp)
    reshape = staticmethod(np.reshape)
    swapaxes = staticmethod(np.swapaxes)
    expand_dims = staticmethod(np.expand_dims)
    outer = staticmethod(np.outer)

    @staticmethod
    def numel(x) -> int:
        return int(np.size(x))

    @staticmethod
    def ones_like(x):
        return np.ones_like(x)

    @staticmethod
    def zeros_like(x):
        return np.zeros_like(x)

    @staticmethod
    def sum_to(g, like):
        """Undo broadcasting: sum ``g`` down to the shape of ``like``."""
        shape = np.shape(like)
        if np.shape(g) == shape:
            return g
        g = np.asarray(g)
        lead = g.ndim - len(shape)
        if lead > 0:
            g = g.sum(axis=tuple(range(lead)))
        axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
        g = g.sum(axis=axes, keepdims=True) if axes else g
        return g.reshape(shape)

    @staticmethod
    def expand_to(g, like, axis, keepdims):
        """Broadcast a reduction's cotangent back to the input's shape (the VJP of sum)."""
        if axis is not None and not keepdims:
            g = np.expand_dims(g, axis)
        return np.broadcast_to(g, np.shape(like))

    @staticmethod
    def scatter(g, like, index):
        out = np.zeros(np.shape(like), dtype=np.result_type(g, like))
        np.add.at(out, index, g)  # add.at: a repeated index gets every contribution
        return out
