"""The torch array backend of the reverse engine: torch tensors on the CPU or a CUDA GPU.

torch is only the array library here. The tape in ``tape.py`` and the rules in ``ops.py`` do the
differentiation; torch.autograd is never involved (no tensor ever has ``requires_grad``, so torch
records no graph). This is the only module of diffsuite that imports torch, and ``load_backend``
imports it only when ``backend="torch"`` is asked for.

Plain torch calls, not array-api-compat: wrapping torch in the array-API namespace adds a Python
layer to every op (measured in docs/reverse.md), and the engine's small nets are bound by exactly
that per-op overhead. The methods below give numpy's semantics where torch's differ (ties in
``maximum``, indexing with negative steps and repeated indices, ``keepdims`` of a full reduction).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .placement import check_placement

Tensor = torch.Tensor
_threshold_backward = torch.ops.aten.threshold_backward.default  # g where x > threshold, else 0 (NaN keeps g)
_DTYPES = {"float64": torch.float64, "float32": torch.float32}
_SIGMOID_EXP_BELOW = {torch.float64: -700.0, torch.float32: -80.0}  # sigmoid(x) = e^x, rounded, below these


def _basic_index(index) -> bool:
    """True for indices torch handles exactly like numpy: ints, None, ..., slices with positive steps."""
    parts = index if type(index) is tuple else (index,)
    for p in parts:
        if p is None or p is Ellipsis or (isinstance(p, int) and not isinstance(p, bool)):
            continue
        if type(p) is slice and (p.step is None or (isinstance(p.step, int) and p.step > 0)):
            continue
        return False
    return True


def _reduce(fn, x, axis, keepdims):
    """numpy's ``axis=None`` (every entry; ``keepdims``: ndim ones) or one axis, for torch's amax/amin/prod.
    ``axis=()`` reduces nothing, as in numpy (torch's ``dim=()`` would reduce every axis)."""
    if type(axis) is tuple and not axis:
        return x
    if axis is None:
        out = fn(x.reshape(-1), dim=0)
        return out.reshape((1,) * x.ndim) if keepdims else out
    return fn(x, dim=axis, keepdim=keepdims)


class TorchBackend:
    """torch tensors in ``dtype`` (float64 by default) on ``device`` ("cpu", "cuda" or "cuda:N")."""

    name = "torch"

    def __init__(self, device: str = "cpu", dtype: str = "float64"):
        if str(dtype) not in _DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
        check_placement("torch", device)
        device = str(device)
        if device.startswith("cuda"):
            if not torch.cuda.is_available():
                build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
                raise RuntimeError(
                    f"device={device!r} needs a CUDA GPU, and torch.cuda.is_available() is False here (torch "
                    f"{torch.__version__}, {build}). On a machine with an NVIDIA GPU, install a CUDA build of torch "
                    "(see https://pytorch.org/get-started/locally/); otherwise use device='cpu'.")
        self.device = torch.device(device)
        self.dtype = _DTYPES[str(dtype)]
        self.np_dtype = np.dtype(str(dtype))
        self.is_cuda = self.device.type == "cuda"

    def __repr__(self):
        return f"TorchBackend(device={str(self.device)!r}, dtype={str(self.dtype).removeprefix('torch.')!r})"

    # ----- conversion -----
    def leaf(self, x):
        """A parameter as the tape holds it: ``asarray(x)`` (torch has no separate scalar type)."""
        return self.asarray(x)

    def asarray(self, x):
        """A tensor on this device in this dtype (numbers, bools and floats are cast; numpy is shared on the CPU)."""
        if type(x) is not Tensor:
            if type(x) is np.ndarray and (min(x.strides, default=0) < 0 or not x.flags.writeable):
                x = np.array(x)  # (x[::-1]: torch takes no negative strides; a read-only array: torch warns)
            if type(x) is np.ndarray and x.dtype.kind == "f" and x.dtype != self.np_dtype and not self.is_cuda:
                return torch.from_numpy(x.astype(self.np_dtype))  # numpy's memory: see empty()
            x = torch.as_tensor(x if type(x) is np.ndarray or isinstance(x, (int, float)) else np.asarray(x))
        if x.dtype != self.dtype or x.device != self.device:
            x = x.to(device=self.device, dtype=self.dtype)
        return x

    def constant(self, x):
        """Convert a constant met inside a traced function; Python numbers stay numbers (dtype-neutral)."""
        if isinstance(x, (int, float)):
            return x
        if type(x) is Tensor and x.dtype == self.dtype and x.device == self.device:
            return x
        return self.asarray(x)

    @staticmethod
    def item(x) -> float:
        """A one-element array as a Python float."""
        return float(x.item()) if type(x) is Tensor else float(np.asarray(x).reshape(()))

    @staticmethod
    def to_numpy(x) -> np.ndarray:
        if type(x) is Tensor:
            if not x.is_cuda:
                if x.dtype is torch.float64:  # shared, as before: no copy
                    return (x.detach() if x.requires_grad else x).numpy()  # (one call in the common case)
                out = np.empty(tuple(x.shape))  # numpy's memory: see empty()
                torch.from_numpy(out).copy_(x.detach())  # (float32 -> float64: exact)
                return out
            return x.detach().to(device="cpu", dtype=torch.float64).numpy()
        return np.asarray(x, dtype=np.float64)

    def empty(self, n: int):
        """An uninitialised vector of ``n`` entries in this backend's dtype, on its device (an ``out=`` buffer).

        On the CPU the memory is numpy's, as are a float cast's in ``asarray`` and ``to_numpy``'s float64 copy:
        these per-call buffers of a gradient (the size of theta) then never make glibc hand pages back to the
        system between calls. Allocated by torch, they did on [784,512,512,10] in float32 in about one process in
        three: 2,584 minor page faults per call and 16-17 ms against 0 and 11-12 (measured, numpy's allocation:
        0 in six processes out of six)."""
        if self.is_cuda:
            return torch.empty(n, dtype=self.dtype, device=self.device)
        return torch.from_numpy(np.empty(n, dtype=self.np_dtype))

    @staticmethod
    def split(flat, sizes, shapes):
        """Views of consecutive pieces of the vector ``flat``, ``sizes[i]`` entries each, reshaped to
        ``shapes[i]`` (``None``: left 1-D). Writing into a view writes into ``flat``."""
        return [p if s is None else p.view(s) for p, s in zip(flat.split(sizes), shapes)]  # one call, not n slices

    @staticmethod
    def concat_flat(parts, out=None):
        """The parts raveled and joined into one vector (into ``out`` if given)."""
        return torch.cat([p.reshape(-1) for p in parts], out=out)

    def synchronize(self):
        """Wait for the GPU to finish queued work (timings need it; results read back wait anyway)."""
        if self.is_cuda:
            torch.cuda.synchronize(self.device)

    def _t(self, x):
        return x if type(x) is Tensor else self.asarray(x)

    # ----- elementwise -----
    def exp(self, x): return torch.exp(x) if type(x) is Tensor else torch.exp(self._t(x))
    def log(self, x): return torch.log(x) if type(x) is Tensor else torch.log(self._t(x))
    def tanh(self, x): return torch.tanh(x) if type(x) is Tensor else torch.tanh(self._t(x))
    def sigmoid(self, x):
        # torch.sigmoid returns 0 below about -709.8 in float64 (-88.7 in float32), where sigmoid(x) is still the
        # subnormal e^x; below -700 (-80) e^x is sigmoid(x) correctly rounded (1 + e^x rounds to 1)
        x = x if type(x) is Tensor else self._t(x)
        return torch.where(x < _SIGMOID_EXP_BELOW.get(x.dtype, -80.0), torch.exp(x), torch.sigmoid(x))
    def abs(self, x): return torch.abs(x) if type(x) is Tensor else torch.abs(self._t(x))
    def sign(self, x): return torch.sign(x) if type(x) is Tensor else torch.sign(self._t(x))

    def step(self, x):
        x = self._t(x)
        return (x > 0).to(x.dtype if x.is_floating_point() else self.dtype)

    @staticmethod
    def maximum(x, y):
        # clamp with a number (relu = maximum(0, z)) is one kernel and keeps the tensor's dtype
        if type(x) is not Tensor:
            return torch.clamp_min(y, x) if type(y) is Tensor else max(x, y)
        return torch.clamp_min(x, y) if type(y) is not Tensor else torch.maximum(x, y)

    @staticmethod
    def minimum(x, y):
        if type(x) is not Tensor:
            return torch.clamp_max(y, x) if type(y) is Tensor else min(x, y)
        return torch.clamp_max(x, y) if type(y) is not Tensor else torch.minimum(x, y)

    @staticmethod
    def ge(x, y):
        return x >= y  # the operator accepts a number on either side

    @staticmethod
    def le(x, y):
        return x <= y

    @staticmethod
    def zero_where_le(g, a, b):
        """``g`` with zeros where ``a <= b`` (where ``a`` is NaN, ``g`` stays); shapes broadcast."""
        if isinstance(b, (int, float)) and type(a) is Tensor and a.shape == g.shape and a.dtype == g.dtype:
            # relu's VJP: torch's own relu backward kernel, ``a <= b ? 0 : g`` in one pass (a comparison
            # into a boolean tensor and a masked fill take two passes and four times as long on the CPU)
            return _threshold_backward(g, a, b)
        return TorchBackend.where(a <= b, 0.0, g)

    @staticmethod
    def where(cond, x, y):
        # where(cond, 0.0, g) (zero_where_le's general case): masked_fill is one kernel with no scalar tensor
        if type(cond) is not Tensor:
            if isinstance(cond, (bool, np.bool_)):  # a Python bool (x == 0 with a number x)
                return x if cond else y
            like = x if type(x) is Tensor else y
            cond = torch.as_tensor(np.asarray(cond, dtype=bool), device=like.device)  # a numpy mask
        if type(y) is Tensor and not isinstance(x, Tensor) and y.shape == cond.shape:
            return y.masked_fill(cond, x)
        return torch.where(cond, x, y)

    # ----- reductions and shapes -----
    @staticmethod
    def _dims(x, axis):
        # a repeated axis: numpy's ValueError and words, as on the numpy backend (torch: a RuntimeError, "dim 0
        # appears multiple times in the list of dims")
        if isinstance(axis, tuple) and len({int(a) % max(x.ndim, 1) for a in axis}) != len(axis):
            raise ValueError("duplicate value in 'axis'")
        return tuple(range(x.ndim)) if axis is None else axis

    @staticmethod
    def sum(x, axis=None, keepdims=False):
        if axis is None and not keepdims:
            return x.sum()
        if type(axis) is tuple and not axis:  # numpy's axis=(): nothing reduced (torch's dim=() reduces all)
            return x
        return torch.sum(x, dim=TorchBackend._dims(x, axis), keepdim=keepdims)

    @staticmethod
    def mean(x, axis=None, keepdims=False):
        if axis is None and not keepdims:
            return x.mean()
        if type(axis) is tuple and not axis:  # (as sum)
            return x
        return torch.mean(x, dim=TorchBackend._dims(x, axis), keepdim=keepdims)

    @staticmethod
    def logsumexp(x, axis=-1, keepdims=False):
        if type(axis) is tuple and not axis:  # over no axis: x itself (as scipy's)
            return x
        if axis is None:  # numpy's axis=None: over every element
            out = TorchBackend.logsumexp(x.reshape(-1), axis=0)
            return out.reshape((1,) * x.ndim) if keepdims else out
        # as the numpy namespace (namespace.log_sum_exp_shifted): shifted by the max, then log1p of the sum without
        # one maximal entry, so a row (0, -50) gives e^-50 (torch.logsumexp's log(1 + e^-50) rounds to 0)
        m = torch.amax(x, dim=axis, keepdim=True)
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        d = x - m
        top = d == 0
        rest = torch.where(top, torch.zeros_like(d), torch.exp(d)).sum(dim=axis, keepdim=True)
        out = torch.log1p(rest + (top.sum(dim=axis, keepdim=True).to(d.dtype) - 1.0)) + m
        return out if keepdims else out.squeeze(axis)

    def softmax(self, x, axis=-1):
        """exp(x - logsumexp(x)) along ``axis``: the softmax activation's composite, bit for bit (ops.SOFTMAX)."""
        x = self._t(x)
        return torch.exp(x - TorchBackend.logsumexp(x, axis=axis, keepdims=True))

    @staticmethod
    def reshape(x, shape):
        return x.reshape(shape)

    @staticmethod
    def swapaxes(x, a, b):
        return x.transpose(a, b)

    @staticmethod
    def expand_dims(x, axis):
        if type(axis) is int:
            return x.unsqueeze(axis)
        ndim = x.ndim + len(axis)
        for a in sorted(a % ndim for a in axis):
            x = x.unsqueeze(a)
        return x

    @staticmethod
    def outer(x, y):
        return torch.outer(x, y)

    @staticmethod
    def matmul(x, y, out=None):
        return torch.matmul(x, y, out=out)

    @staticmethod
    def copy_into(dst, x):
        """Write ``x`` into the tensor ``dst`` (broadcasting) and return ``dst``."""
        return dst.copy_(x) if type(x) is Tensor else dst.fill_(x)

    @staticmethod
    def numel(x) -> int:
        return x.numel() if type(x) is Tensor else int(np.size(x))

    @staticmethod
    def ones_like(x):
        return torch.ones_like(x)

    @staticmethod
    def zeros_like(x):
        return torch.zeros_like(x)

    def getitem(self, x, index):
        """``x[index]`` with numpy's semantics (negative steps and index arrays included)."""
        if _basic_index(index):
            return x[index]
        return x.reshape(-1)[self._flat_positions(x.shape, index)]

    def _flat_positions(self, shape, index):
        # numpy itself says which flat positions ``index`` selects, so every numpy index form works
        positions = np.arange(math.prod(shape)).reshape(tuple(shape))[index]
        return torch.as_tensor(np.ascontiguousarray(positions), device=self.device)

    @staticmethod
    def sum_to(g, like):
        """Undo broadcasting: sum ``g`` down to the shape of ``like`` (an array or a shape tuple)."""
        shape = like.shape if type(like) is Tensor else like if isinstance(like, tuple) else np.shape(like)
        if type(g) is not Tensor:
            return g  # a number: broadcasting a number is the caller's business (it stays a number)
        gshape = g.shape
        if gshape == shape:
            return g
        lead = len(gshape) - len(shape)
        if lead == 1 and gshape[1:] == shape:
            return g.sum(dim=0)
        if lead > 0:
            g = g.sum(dim=tuple(range(lead)))
        axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
        if axes:
            g = g.sum(dim=axes, keepdim=True)
        return g.reshape(tuple(shape))

    @staticmethod
    def sum_to_into(dst, g):
        """``sum_to(g, dst)`` written into the tensor ``dst``; returns ``dst``. (A bias: no temporary, no copy.)"""
        if type(g) is Tensor and g.ndim == dst.ndim + 1 and g.shape[1:] == dst.shape:
            return torch.sum(g, dim=0, out=dst)
        return TorchBackend.copy_into(dst, TorchBackend.sum_to(g, dst))

    @staticmethod
    def expand_to(g, like, axis, keepdims):
        """Broadcast a reduction's cotangent back to the input's shape (the VJP of sum); ``like``: the input
        or its shape."""
        if axis is not None and not keepdims:
            g = TorchBackend.expand_dims(g, axis)
        return g.expand(like if isinstance(like, tuple) else like.shape)

    def scatter(self, g, like, index):
        """Zeros shaped like ``like`` (an array or a shape) with ``g`` added at ``index`` (a repeated index gets
        every contribution)."""
        shape = like if isinstance(like, tuple) else like.shape
        out = torch.zeros(shape, dtype=g.dtype, device=g.device)
        if _basic_index(index):
            out[index] = g  # basic indexing selects every position at most once
            return out
        flat = out.view(-1)
        flat.index_add_(0, self._flat_positions(shape, index).reshape(-1), g.reshape(-1))
        return out

    # ----- the rest of the numpy subset (docs/language.md) -----
    def sqrt(self, x): return torch.sqrt(self._t(x))
    sqrt0 = sqrt  # (sqrt0's forward: see NumpyBackend.sqrt0)
    def sin(self, x): return torch.sin(self._t(x))
    def cos(self, x): return torch.cos(self._t(x))
    def tan(self, x): return torch.tan(self._t(x))
    def arcsin(self, x): return torch.asin(self._t(x))
    def arccos(self, x): return torch.acos(self._t(x))
    def arctan(self, x): return torch.atan(self._t(x))
    def arctan2(self, y, x): return torch.atan2(self._t(y), self._t(x))
    def hypot(self, y, x): return torch.hypot(self._t(y), self._t(x))
    def sinh(self, x): return torch.sinh(self._t(x))
    def cosh(self, x): return torch.cosh(self._t(x))
    def log1p(self, x): return torch.log1p(self._t(x))
    def expm1(self, x): return torch.expm1(self._t(x))
    def log2(self, x): return torch.log2(self._t(x))
    def log10(self, x): return torch.log10(self._t(x))
    def erf(self, x): return torch.erf(self._t(x))

    def softplus(self, x):
        # not torch.nn.functional.softplus: above its threshold (20) it returns x itself, 2e-9 off at x = 20
        x = self._t(x)
        return torch.clamp_min(x, 0.0) + torch.log1p(torch.exp(-torch.abs(x)))

    def log_sigmoid(self, x):
        return -self.softplus(-self._t(x))

    def expit(self, x):
        """sigmoid(x) to a few ulp everywhere, also where it is subnormal (x < -708), from u = exp(-|x|)."""
        x = self._t(x)
        u = torch.exp(-torch.abs(x))
        return torch.where(x >= 0, 1.0 / (1.0 + u), u / (1.0 + u))

    def dsigmoid(self, x):
        """sigmoid'(x) = u / (1 + u)^2 with u = exp(-|x|): no cancellation, no overflow, a few ulp everywhere."""
        u = torch.exp(-torch.abs(self._t(x)))
        v = 1.0 + u
        return u / (v * v)

    def one_minus_square(self, x):
        """1 - x^2 as (1 - x)(1 + x): exact near |x| = 1 (arcsin's and arccos's derivative)."""
        x = self._t(x)
        return (1.0 - x) * (1.0 + x)

    def exp_neg_square(self, x):
        """exp(-x^2) with x^2 split exactly into hi + lo (Dekker): correct to a few ulp even where x^2 is large."""
        x = self._t(x)
        c = x * (134217729.0 if x.dtype != torch.float32 else 4097.0)  # (Dekker's split: 2^ceil(p/2) + 1, p bits)
        xh = c - (c - x)
        xl = x - xh
        hi = x * x
        lo = ((xh * xh - hi) + 2.0 * xh * xl) + xl * xl
        return torch.where(torch.isfinite(hi), torch.exp(-hi) * (1.0 - lo), 0.0)

    @staticmethod
    def power(x, p):
        """x ** p (torch warns of nothing; the numpy backend's version silences 0 ** -1)."""
        return x ** p

    @staticmethod
    def strong(g, d):
        """g * d, and 0 where g == 0 even if d is inf or nan (an unselected branch's cotangent)."""
        return torch.where(g == 0, 0.0, g * d)

    @staticmethod
    def strong_to(g, d, like):
        """``sum_to(strong(g, d), like)`` (mul's VJPs; the numpy backend saves a call with it)."""
        return TorchBackend.sum_to(TorchBackend.strong(g, d), like)

    @staticmethod
    def strong_swap(g, x, y):
        """``(strong_to(g, y, x), strong_to(g, x, y))``: both of mul's VJPs (``Op.pair``)."""
        return TorchBackend.strong_to(g, y, x), TorchBackend.strong_to(g, x, y)

    @staticmethod
    def strong_div(g, d):
        """g / d, and 0 where g == 0 (also where d == 0)."""
        return torch.where(g == 0, 0.0, g / d)

    def mask(self, cond):
        """A boolean tensor on this device for ``where``."""
        if type(cond) is Tensor:
            return cond.to(device=self.device, dtype=torch.bool)
        return torch.as_tensor(np.asarray(cond, dtype=bool), device=self.device)

    @staticmethod
    def amax(x, axis=None, keepdims=False):
        return _reduce(torch.amax, x, axis, keepdims)

    @staticmethod
    def amin(x, axis=None, keepdims=False):
        return _reduce(torch.amin, x, axis, keepdims)

    @staticmethod
    def put_at_arg(g, x, axis, keepdims, largest):
        """Zeros shaped like ``x`` with ``g`` at the first maximal (``largest``) or minimal entry along ``axis``."""
        out = torch.zeros_like(x)
        arg = torch.argmax if largest else torch.argmin  # (both return the first extremal index)
        if axis is None:
            out.view(-1)[arg(x.reshape(-1))] = g.reshape(())
            return out
        idx = arg(x, dim=axis, keepdim=True)
        return out.scatter_(axis, idx, g if keepdims else g.unsqueeze(axis))

    @staticmethod
    def prod(x, axis=None, keepdims=False):
        return _reduce(torch.prod, x, axis, keepdims)

    @staticmethod
    def prod_of_others(x, axis):
        """For each entry, the product of the other entries along ``axis`` (all of them: None), without division."""
        if x.numel() == 0:  # no entries: nothing to multiply (the scans below would make a length-1 axis)
            return torch.zeros_like(x)
        if axis is None:
            return TorchBackend.prod_of_others(x.reshape(-1), 0).reshape(x.shape)
        m = x.movedim(axis, -1)
        ones = torch.ones(m.shape[:-1] + (1,), dtype=m.dtype, device=m.device)
        left = torch.cumprod(torch.cat([ones, m[..., :-1]], dim=-1), dim=-1)
        right = torch.cumprod(torch.cat([ones, m.flip(-1)[..., :-1]], dim=-1), dim=-1).flip(-1)
        return (left * right).movedim(-1, axis)

    @staticmethod
    def cumsum(x, axis):
        return torch.cumsum(x, dim=axis)

    @staticmethod
    def flip(x, axis):
        return torch.flip(x, dims=(axis,))

    @staticmethod
    def transpose(x, axes):
        return x.permute(tuple(axes))

    @staticmethod
    def broadcast_to(x, shape):
        return torch.broadcast_to(x, tuple(shape))

    @staticmethod
    def pad(x, pad_width, value):
        shape = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape, pad_width))
        out = torch.full(shape, float(value), dtype=x.dtype, device=x.device)
        out[tuple(slice(lo, lo + n) for n, (lo, _) in zip(x.shape, pad_width))] = x
        return out

    @staticmethod
    def concatenate(xs, axis):
        return torch.cat(xs, dim=axis)

    @staticmethod
    def einsum(spec, *xs):
        return torch.einsum(spec, *xs)

    @staticmethod
    def index(index):
        """An index as numpy reads it: torch tensors in it (masks from comparisons) become numpy arrays."""
        if type(index) is tuple:
            return tuple(TorchBackend.index(i) for i in index)
        return index.cpu().numpy() if type(index) is Tensor else index
