"""torch.autograd in float64 as an independent oracle: the same objectives, evaluated with torch ops.

``torch_objective(obj)`` is ``theta -> loss`` on torch tensors, through the project's own model and loss
definitions but with a namespace of plain torch functions, so torch.autograd (never our rule tables)
differentiates it. At ties torch splits max's gradient (ours routes it to the first argument): use it
at points away from kinks, and the exact reference at kinks.
"""
import numpy as np
import torch


def _t(x):
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=torch.float64)


class TorchXP:
    """The xp namespace (NAMESPACE_FUNCTIONS) as plain torch functions."""

    name = "torch-oracle"
    exp = staticmethod(torch.exp)
    log = staticmethod(torch.log)
    tanh = staticmethod(torch.tanh)
    sigmoid = staticmethod(torch.sigmoid)
    abs = staticmethod(torch.abs)

    @staticmethod
    def step(x):
        return (x > 0).to(torch.float64)

    @staticmethod
    def maximum(a, b):
        return torch.maximum(_t(a), _t(b))

    @staticmethod
    def minimum(a, b):
        return torch.minimum(_t(a), _t(b))

    @staticmethod
    def sum(x, axis=None, keepdims=False):
        return x.sum() if axis is None and not keepdims else torch.sum(x, dim=axis, keepdim=keepdims)

    @staticmethod
    def mean(x, axis=None, keepdims=False):
        return x.mean() if axis is None and not keepdims else torch.mean(x, dim=axis, keepdim=keepdims)

    @staticmethod
    def logsumexp(x, axis=-1, keepdims=False):
        return torch.logsumexp(x, dim=axis, keepdim=keepdims)

    @staticmethod
    def reshape(x, shape):
        return x.reshape(shape)

    @staticmethod
    def asarray(x):
        return _t(x)

    def __getattr__(self, name):
        # the rest of the namespace (expm1, log1p, sqrt, sin, ...): torch's function of the same name
        special = {"softplus": torch.nn.functional.softplus, "log_sigmoid": torch.nn.functional.logsigmoid}
        fn = special.get(name) or getattr(torch, name, None)
        if fn is None:
            raise AttributeError(f"the torch oracle has no {name!r}")
        return fn


TORCH_XP = TorchXP()


def torch_objective(obj):
    """theta (a float64 tensor) -> the objective's loss, computed by torch ops."""
    inputs, targets = (torch.as_tensor(a, dtype=torch.float64) for a in obj.data(np.float64))
    layout = list(obj.model.layout.items())

    def f(theta):
        params = {name: theta[a:b].reshape(shape) for name, (a, b, shape) in layout}
        return obj.evaluate(TORCH_XP, params, inputs, targets)

    return f


def torch_function(f, *args):
    """A user's ``f(xp, theta, *args)`` (flat theta) as ``theta -> f`` on torch tensors."""
    targs = [torch.as_tensor(a, dtype=torch.float64) if isinstance(a, np.ndarray) else a for a in args]
    return lambda theta: f(TORCH_XP, theta, *targs)


def hessian(f, theta):
    return torch.autograd.functional.hessian(f, torch.as_tensor(theta, dtype=torch.float64)).numpy()


def jacobian(f, theta):
    return torch.autograd.functional.jacobian(f, torch.as_tensor(theta, dtype=torch.float64)).numpy()


def jvp(f, theta, v):
    value, out = torch.autograd.functional.jvp(f, torch.as_tensor(theta, dtype=torch.float64),
                                               torch.as_tensor(v, dtype=torch.float64))
    return value.detach().numpy(), out.numpy()


def vjp(f, theta, u):
    value, out = torch.autograd.functional.vjp(f, torch.as_tensor(theta, dtype=torch.float64),
                                               torch.as_tensor(u, dtype=torch.float64))
    return value.detach().numpy(), out.numpy()


def hvp(f, theta, v):
    return torch.autograd.functional.hvp(f, torch.as_tensor(theta, dtype=torch.float64),
                                         torch.as_tensor(v, dtype=torch.float64))[1].numpy()
