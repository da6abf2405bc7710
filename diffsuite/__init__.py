"""diffsuite: symbolic, numerical and reverse-mode differentiation of neural-network losses, compared.

    import diffsuite as ds
    model = ds.MLP(layers=(3, 2, 1), activation="sigmoid", output_activation="sigmoid")
    obj = ds.Objective(model, loss="quadratic", inputs=X, targets=Y)
    res = ds.get_differentiator("reverse").value_and_grad(obj)(model.init(seed=0))
"""
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("diffsuite")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

# Every name is imported on first use (PEP 562): `import diffsuite` itself loads nothing heavy, which matters to
# the pytest plugin (diffsuite.pytest_plugin), loaded in every pytest session of every project where diffsuite is
# installed; and the reference pulls in SymPy and mpmath only when it is asked for.
_EXPORTS = {
    "DIFFERENTIATORS": ".differentiators", "Gradient": ".differentiators", "get_differentiator": ".differentiators",
    "BudgetExceeded": ".errors", "NUMPY": ".namespace", "Namespace": ".namespace",
    "ACTIVATIONS": ".nn", "LOSSES": ".nn", "MLP": ".nn", "Objective": ".objective",
    "reference_gradient": ".reference", "reference_gradient_mp": ".reference",
}


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(import_module(module, __name__), name)
    elif not name.startswith("__"):
        try:  # a subpackage or module: ds.nn, ds.data, ds.testing, ...
            value = import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module 'diffsuite' has no attribute {name!r}") from None
    else:
        raise AttributeError(f"module 'diffsuite' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = ["reference_gradient", "reference_gradient_mp", "ACTIVATIONS", "BudgetExceeded", "DIFFERENTIATORS",
           "Gradient", "LOSSES", "MLP", "NUMPY", "Namespace", "Objective", "get_differentiator", "__version__"]
