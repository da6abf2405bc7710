"""diffsuite: symbolic, numerical and reverse-mode differentiation of neural-network losses, compared.

    import diffsuite as ds
    model = ds.MLP(layers=(3, 2, 1), activation="sigmoid", output_activation="sigmoid")
    obj = ds.Objective(model, loss="quadratic", inputs=X, targets=Y)
    res = ds.get_differentiator("reverse").value_and_grad(obj)(model.init(seed=0))
"""
from importlib.metadata import PackageNotFoundError, version

from .differentiators import DIFFERENTIATORS, Gradient, get_differentiator
from .errors import BudgetExceeded
from .namespace import NUMPY, Namespace
from .nn import ACTIVATIONS, LOSSES, MLP
from .objective import Objective

try:
    __version__ = version("diffsuite")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"



def __getattr__(name):  # imported on first use: the reference pulls in SymPy and mpmath
    if name in ("reference_gradient", "reference_gradient_mp"):
        from . import reference
        return getattr(reference, name)
    raise AttributeError(f"module 'diffsuite' has no attribute {name!r}")


__all__ = ["reference_gradient", "reference_gradient_mp", "ACTIVATIONS", "BudgetExceeded", "DIFFERENTIATORS", "Gradient", "LOSSES", "MLP", "NUMPY", "Namespace",
           "Objective", "get_differentiator", "__version__"]
