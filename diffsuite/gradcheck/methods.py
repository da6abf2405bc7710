"""The methods a gradient check runs, and the problem they all see: one flat vector of named entries.

A method is given as an alias (``"reverse"``, ``"central"``, ``"complex_step"``, ...; see
``METHOD_ALIASES``) or as a configured differentiator (``get_differentiator("finite_diff", step=1e-4)``).
A problem is an ``Objective`` (entries named ``W0[1, 2]`` by the model) or a user's function
``f(xp, theta, *args)`` whose theta is an array, a dict of arrays or a scalar (entries named
``W[1, 2]`` after the dict key, ``theta[3]`` for a plain array, ``theta`` for a scalar).
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..differentiators import differentiator_class, get_differentiator
from ..differentiators.base import flatten_params
from ..namespace import NUMPY
from ..objective import Objective

#: alias -> (registry name, options). ``dtype=`` of the check is added where the differentiator has it.
METHOD_ALIASES: dict[str, tuple[str, dict]] = {
    "reverse": ("reverse", {}),
    "reverse_torch": ("reverse", {"backend": "torch"}),
    "forward_mode": ("forward", {}),  # forward-mode AD (the alias "forward" is the forward difference)
    "symbolic": ("symbolic", {}),
    "forward": ("finite_diff", {"scheme": "forward"}),
    "backward": ("finite_diff", {"scheme": "backward"}),
    "central": ("finite_diff", {"scheme": "central"}),
    "five_point": ("finite_diff", {"scheme": "five_point"}),
    "richardson": ("finite_diff", {"scheme": "richardson"}),
    "complex_step": ("finite_diff", {"scheme": "complex_step"}),
}

#: namespace functions that are not analytic: a function calling one is not checked by complex step by default
NON_ANALYTIC = frozenset({"abs", "step", "maximum", "minimum"})
#: numpy's ufuncs of the same kind, called on theta directly (Python's abs() is np.absolute)
NON_ANALYTIC_UFUNCS = frozenset({"absolute", "fabs", "maximum", "minimum", "fmax", "fmin", "sign", "heaviside",
                                 "floor", "ceil", "rint", "trunc"})


@dataclass
class Method:
    """A differentiator as a gradient check sees it: a label for tables, its kind and dtype for tolerances."""

    label: str
    differentiator: Any
    kind: str
    dtype: str
    auto: bool = False  # chosen by default, not by the user: dropped with a note if it cannot run
    default: bool = False  # chosen by the check (methods=None), not named by the user: a non-finite gradient
    #                        from it (an overflow inside the method) is "cannot evaluate here", not a failure


#: what a check's ``reference=`` accepts besides a method, for messages
REFERENCE_WORDS = ("auto", "exact")


def resolve_method(spec: Any, dtype: str = "float64", auto: bool = False, default: bool = False,
                   role: str = "method") -> Method:
    """An alias or a differentiator instance -> ``Method``; a clear error for anything else. ``role``: "method", or
    "reference" (then the error for an unknown word also lists ``"auto"`` and ``"exact"`` and a gradient of your
    own, which ``reference=`` accepts too)."""
    if isinstance(spec, str):
        if spec not in METHOD_ALIASES:
            if role == "reference":
                raise ValueError(f"unknown gradient-check reference {spec!r}; choose "
                                 f"{', '.join(map(repr, REFERENCE_WORDS))}, a method alias "
                                 f"({', '.join(METHOD_ALIASES)}), a differentiator from get_differentiator(...), or "
                                 "the gradient itself (in theta's structure)")
            raise ValueError(f"unknown gradient-check method {spec!r}; choose one of {', '.join(METHOD_ALIASES)}, "
                             "or pass a differentiator: get_differentiator('finite_diff', scheme=..., step=...)")
        name, options = METHOD_ALIASES[spec]
        fields = {f.name for f in dataclasses.fields(differentiator_class(name))}
        if "dtype" in fields:
            options = {**options, "dtype": dtype}
        d = get_differentiator(name, **options)
        label = spec if str(getattr(d, "dtype", "float64")) == "float64" else f"{spec}[{d.dtype}]"
    elif callable(getattr(spec, "value_and_grad", None)) and isinstance(getattr(spec, "name", None), str):
        d, label = spec, describe_differentiator(spec)
    else:
        raise TypeError(f"a gradient-check method must be an alias ({', '.join(METHOD_ALIASES)}) or a differentiator "
                        f"from get_differentiator(...); got {spec!r}")
    if _ours(d):
        kind = str(getattr(d, "scheme", d.name)) if d.name == "finite_diff" else d.name
        kind = "forward_mode" if kind == "forward" and d.name == "forward" else kind  # not the forward difference
    else:  # a user's own object: the strict tolerance of an unknown kind, whatever its name says
        kind = f"user:{d.name}"
    # a user's object that names no dtype computes in the check's (dtype="float32": a float32 gradient, held to
    # float32's tolerance; it was held to float64's and failed when correct)
    return Method(label, d, kind, str(getattr(d, "dtype", dtype)), auto, default or auto)


def choose_methods(problem: "Problem", methods: Any, dtype: str, defaults: tuple[str, ...]) -> list[Method]:
    """The methods a check runs: ``defaults`` (marked as chosen by the check) plus complex step where f is analytic,
    when ``methods`` is None; else the ones named, at least one and each once. Shared by the gradient and the
    Hessian check."""
    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32'; got {dtype!r}")
    if methods is None:
        chosen = [resolve_method(m, dtype, default=True) for m in defaults]
        if problem.is_analytic():
            chosen.append(resolve_method("complex_step", dtype, auto=True))
    else:
        if isinstance(methods, str):
            methods = [methods]
        chosen = [resolve_method(m, dtype) for m in methods]
        if not chosen:
            raise ValueError(f"methods must name at least one method, e.g. methods={tuple(defaults[:2])!r}; "
                             "methods=None runs the defaults")
    labels = [m.label for m in chosen]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ValueError(f"methods must be distinct; {', '.join(dupes)} given more than once")
    return chosen


def reference_advice(failed: str, tried_exact: bool, what: str = "gradient") -> str:
    """What to pass as ``reference=`` when the method ``failed`` could not run on f (``tried_exact``: the exact
    reference was tried first and could not be built either, so it is not suggested again)."""
    others = [a for a in ("central", "exact") if a != failed and not (a == "exact" and tried_exact)]
    return (f"Pass a reference that can evaluate this function: a method that runs on it (reference="
            f"{' or '.join(map(repr, others))}; finite differences need only f's values, so they run where reverse "
            f"mode has no rule for an operation), or the {what} itself as reference=")


def _ours(d: Any) -> bool:
    """Whether ``d`` is one of diffsuite's differentiators (its kind may then be read from its name)."""
    from ..differentiators import DIFFERENTIATORS, differentiator_class
    return d.name in DIFFERENTIATORS and isinstance(d, differentiator_class(d.name))


def without_reference(chosen: list[Method], reference: Method | None, notes: list[str], example: str) -> list[Method]:
    """``chosen`` less the method that is the reference (same label and kind: a user's object never shares them with
    one of diffsuite's, its kind being ``user:<name>``), with a note; a ValueError if nothing is left to check.
    ``example``: a methods tuple to suggest."""
    if reference is None:
        return chosen
    kept = [m for m in chosen if (m.label, m.kind) != (reference.label, reference.kind)]
    if len(kept) < len(chosen):
        notes.append(f"{reference.label} is the reference, so it is not also checked against itself")
    if not kept:
        raise ValueError(f"nothing to check: the only method, {reference.label}, is also the reference; add a method "
                         f"(methods={example}) or choose another reference")
    return kept


def describe_differentiator(d: Any) -> str:
    """A short label: the differentiator's own ``label`` if it has one, else name[non-default options]."""
    if isinstance(getattr(d, "label", None), str):
        return d.label
    opts = []
    if dataclasses.is_dataclass(d):
        for f in dataclasses.fields(d):
            if f.init and f.default is not dataclasses.MISSING and getattr(d, f.name) != f.default:
                opts.append(f"{f.name}={getattr(d, f.name)}")
    return f"{d.name}[{','.join(opts)}]" if opts else d.name


# ----- the problem -----
@dataclass
class Problem:
    """What is checked: ``target`` (an Objective or ``f``) at ``theta`` with ``args``, seen as named flat entries."""

    target: Any
    theta: Any
    args: tuple
    names: list[str]
    flat: np.ndarray
    label: str
    leaves: list = dataclasses.field(default_factory=list)
    rebuild: Callable | None = None
    value: float | None = None  # f(theta) in float64 numpy, from ``build``'s one evaluation (None: not a plain number)

    @classmethod
    def build(cls, target: Any, theta: Any, args: tuple) -> "Problem":
        if isinstance(target, Objective):
            if args:
                raise TypeError(f"an Objective carries its own data; check_gradients got {len(args)} extra "
                                "argument(s). Pass only (objective, theta).")
            flat = target.check_theta(theta)
            return cls(target, flat, (), target.param_names(), flat, target.describe())
        if not callable(target):
            raise TypeError("check_gradients needs an Objective or a function f(xp, theta, *args) -> scalar; "
                            f"got {type(target).__name__}")
        _require_supported_theta(theta)
        leaves, rebuild = flatten_params(theta)
        names = []
        keys = list(theta) if isinstance(theta, dict) else ["theta"]
        for key, leaf in zip(keys, leaves):
            names += ([str(key)] if leaf.ndim == 0
                      else [f"{key}[{', '.join(map(str, i))}]" for i in np.ndindex(*leaf.shape)])
        flat = np.concatenate([leaf.ravel() for leaf in leaves]) if leaves else np.zeros(0)
        label = getattr(target, "__name__", type(target).__name__)
        problem = cls(target, theta, tuple(args), names, flat, label, leaves, rebuild)
        problem.value = problem.require_scalar_value()
        return problem

    @property
    def is_objective(self) -> bool:
        return isinstance(self.target, Objective)

    def gradient(self, d: Any) -> tuple[float | None, np.ndarray, dict]:
        """Run differentiator ``d``: (value, flat float64 gradient, stats)."""
        if self.is_objective:
            res = d.value_and_grad(self.target)(self.flat)
            return res.value, np.asarray(res.grad, dtype=np.float64).ravel(), dict(res.stats)
        if hasattr(d, "value_and_grad_fn"):
            res = d.value_and_grad_fn(self.target)(self.theta, *self.args)
            value, grad, stats = res.value, res.grad, dict(res.stats)
        else:
            value, grad, stats = None, d.grad(self.target)(self.theta, *self.args), {}
        return value, self.flatten_like_theta(grad, f"the gradient of {describe_differentiator(d)}"), stats

    def flatten_like_theta(self, grad: Any, what: str = "the gradient") -> np.ndarray:
        """A gradient in theta's structure -> the flat float64 vector of entries. Every leaf must have its
        theta leaf's shape (a flat vector only where theta itself is one) and a dict exactly theta's keys;
        a ValueError names the leaf, what was required and what was given."""
        if self.is_objective or not isinstance(self.theta, dict):
            shape = self.flat.shape if self.is_objective else np.shape(self.theta)
            if isinstance(grad, dict):
                raise ValueError(f"{what} must be an array of shape {shape}, like theta; got a dict with keys "
                                 f"{list(grad)}")
            g = _as_float_array(grad, what)
            if g.shape != shape:
                raise ValueError(f"{what} must have theta's shape {shape}; got shape {g.shape}"
                                 + _transposed_hint(g.shape, shape))
            return g.ravel()
        keys = list(self.theta)
        if not isinstance(grad, dict):
            raise ValueError(f"{what} must be a dict with theta's keys ({_describe_shapes(self.theta)}); got "
                             f"{_describe(grad)}")
        missing = [k for k in keys if k not in grad]
        extra = [k for k in grad if k not in self.theta]
        if missing or extra:
            parts = ([f"missing {missing}"] if missing else []) + ([f"extra {extra}"] if extra else [])
            raise ValueError(f"{what} must have exactly theta's keys ({', '.join(map(repr, keys))}); "
                             f"{'; '.join(parts)}")
        flats = []
        for k in keys:
            g = _as_float_array(grad[k], f"{what}[{k!r}]")
            shape = np.shape(self.theta[k])
            if g.shape != shape:
                raise ValueError(f"{what}[{k!r}] must have the shape of theta[{k!r}], {shape}; got shape "
                                 f"{g.shape}" + _transposed_hint(g.shape, shape))
            flats.append(g.ravel())
        flat = np.concatenate(flats) if flats else np.zeros(0)
        return flat

    def flat_function(self) -> Callable:
        """``(xp, flat_theta) -> scalar``: the same function of the flat vector (for flat-only tools)."""
        if self.is_objective:
            return self.target
        f, args, leaves, rebuild = self.target, self.args, self.leaves, self.rebuild
        if len(leaves) == 1 and leaves[0].ndim == 1 and not isinstance(self.theta, dict):
            return lambda xp, flat: f(xp, flat, *args)

        def flat_f(xp, flat):
            parts, start = [], 0
            for leaf in leaves:
                parts.append(xp.reshape(flat[start:start + leaf.size], leaf.shape))
                start += leaf.size
            return f(xp, rebuild(parts), *args)

        flat_f.__name__ = self.label
        return flat_f

    def require_scalar_value(self) -> float | None:
        """Evaluate ``f`` once in numpy at theta, before any method runs: an error there (theta or an argument of
        a shape ``f`` cannot take, say) or a result that is not one number is the function's or its inputs'
        fault, and is reported as such, not as the failure of whichever method happens to run first. Returns
        f(theta) as a float (kept as ``self.value``), or None where it is not a plain number."""
        call = f"{self.label}(xp, theta{', *args' if self.args else ''})"
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = self.flat_function()(NUMPY, self.flat.copy())
        except Exception as e:  # noqa: BLE001 - re-raised with what was given
            error = TypeError if isinstance(e, TypeError) else ValueError
            raise error(f"{call} raised {type(e).__name__}: {e}; evaluated once in numpy at theta, before any "
                        f"gradient was taken, with {self.inputs()}. The function and its inputs do not fit: give "
                        "theta and the arguments the shapes the function expects (or fix the function); no choice "
                        "of method or reference changes this") from e
        if out is None:
            raise TypeError(f"{call} returned None; a gradient check needs a function that returns a scalar. "
                            "Is a return statement missing?")
        shape = tuple(np.shape(out))
        if int(np.prod(shape)) != 1:
            raise TypeError(f"{call} must return a scalar (the gradient check compares gradients of one number); it "
                            f"returned shape {shape} with {self.inputs()}. Reduce it to a scalar (xp.sum, xp.mean), or "
                            "check each output as its own function")
        try:
            return float(np.reshape(np.asarray(out, dtype=np.float64), ()))
        except (TypeError, ValueError):
            return None

    def inputs(self) -> str:
        """``theta: shape (3,); args: shapes (5, 3), (5,)``, for messages."""
        theta = (f"{{{_describe_shapes(self.theta)}}}" if isinstance(self.theta, dict)
                 else f"shape {np.shape(self.theta)}")
        args = ", ".join(str(np.shape(a)) if _is_array_like(a) else type(a).__name__ for a in self.args)
        return f"theta: {theta}" + (f"; args: shapes {args}" if self.args else "; no args")

    def is_analytic(self) -> bool:
        """Whether evaluating the function calls no non-analytic namespace function (abs, step, maximum, minimum)."""
        probe = _RecordingNamespace()
        _RecordingArray.called = set()
        try:
            # theta as a recording array too: Python's abs(), np.maximum(...) on it (or on anything computed from
            # it) bypass the namespace, and the complex step through them would be as wrong as through xp.abs
            self.flat_function()(probe, self.flat.copy().view(_RecordingArray))
        except Exception:  # a function the probe cannot run is not one to trust complex step with
            return False
        return not (probe.called & NON_ANALYTIC) and not (_RecordingArray.called & NON_ANALYTIC_UFUNCS)


def checked_problem(target: Any, theta: Any, args: tuple, check: str) -> "Problem":
    """``Problem.build`` and the checks every check (``check``: "check_gradients", "check_hessian") makes before any
    method runs: theta has at least one entry, and f(theta) is finite."""
    problem = Problem.build(target, theta, args)
    if problem.flat.size == 0:
        raise ValueError(f"nothing to check: theta has no entries ({problem.label} at an empty theta); {check} "
                         "needs at least one parameter")
    require_finite_value(problem, check)
    return problem


def require_finite_value(problem: "Problem", check: str = "check_gradients") -> float | None:
    """f(theta) in float64 numpy (``Problem.build`` evaluated it once), or None if it is not a plain number (left to
    the methods, which report it themselves). A ValueError when it is NaN or inf: no derivative to check there, and
    every method (and any fallback reference) would disagree for that reason alone."""
    value = problem.value
    if value is None:
        return None
    if np.isfinite(value):
        return value
    point = np.array2string(problem.flat, threshold=8, precision=6)
    raise ValueError(f"{check} needs a finite function value at theta; {problem.label}(theta) = {value} at "
                     f"theta = {point} ({', '.join(problem.names[:8])}{' ...' if len(problem.names) > 8 else ''}), "
                     "so there is no derivative to compare (every method and reference would be NaN or inf). Move "
                     "theta into the function's domain (log and sqrt of positive numbers, no division by zero, no "
                     "overflow) or fix the function.")


def _require_supported_theta(theta: Any) -> None:
    """theta must be an array, a flat dict of arrays or numbers, or a number: say so up front (not as the failure
    of a method deep inside)."""
    supported = "theta must be an array, a dict of arrays (or numbers) or a scalar"
    if isinstance(theta, dict):
        for k, v in theta.items():
            if isinstance(v, (dict, list, tuple)) or not _is_numeric(v):
                raise TypeError(f"{supported}; got a dict whose entry {k!r} is {_describe(v)}. Flatten it into one "
                                "dict of arrays, e.g. {'l1.W': W1, 'l1.b': b1, ...}")
        return
    if isinstance(theta, (list, tuple)):
        raise TypeError(f"{supported}; got a {type(theta).__name__}. Pass np.asarray(theta) for one vector, or a "
                        "dict {'W': W, 'b': b} for several arrays")
    if not _is_numeric(theta):
        raise TypeError(f"{supported}; got {_describe(theta)}")


def _is_array_like(v: Any) -> bool:
    try:
        np.shape(v)
    except Exception:  # noqa: BLE001 - ragged lists and the like: named by type instead
        return False
    return isinstance(v, (int, float, complex, np.number, np.ndarray, list, tuple)) or hasattr(v, "shape")


def _is_numeric(v: Any) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return False
    if isinstance(v, (int, float, np.number)):
        return True
    return isinstance(v, np.ndarray) and (np.issubdtype(v.dtype, np.number) and not np.issubdtype(v.dtype, np.bool_))


def _describe(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return f"an array of shape {v.shape}"
    if isinstance(v, dict):
        return f"a dict with keys {list(v)}"
    return f"a {type(v).__name__}"


def _describe_shapes(theta: dict) -> str:
    return ", ".join(f"{k!r}: {np.shape(v)}" for k, v in theta.items())


def _as_float_array(g: Any, what: str) -> np.ndarray:
    if isinstance(g, (dict, list, tuple)) and not (isinstance(g, (list, tuple)) and _is_flat_numbers(g)):
        raise ValueError(f"{what} must be an array; got {_describe(g)}")
    try:
        return np.asarray(g, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} must be an array of numbers; got {_describe(g)} ({e})") from None


def _is_flat_numbers(g: Any) -> bool:
    return all(isinstance(x, (int, float, np.number)) for x in g)


def _transposed_hint(given: tuple, shape: tuple) -> str:
    if len(given) == 2 and tuple(reversed(given)) == tuple(shape) and given != tuple(shape):
        return " (transposed?)"
    if int(np.prod(given)) == int(np.prod(shape)):
        return " (same number of entries, different shape)"
    return ""


class _RecordingArray(np.ndarray):
    """An ndarray that records the ufuncs run on it (and on arrays computed from it) in ``called``. One probe at a
    time: ``is_analytic`` clears it first."""

    called: set = set()

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _RecordingArray.called.add(ufunc.__name__)
        plain = [x.view(np.ndarray) if isinstance(x, _RecordingArray) else x for x in inputs]
        out = getattr(ufunc, method)(*plain, **kwargs)
        return out.view(_RecordingArray) if isinstance(out, np.ndarray) else out


class _RecordingNamespace:
    """numpy evaluation that records which namespace functions were called."""

    name = "numpy"

    def __init__(self):
        self.called: set[str] = set()

    def __getattr__(self, name: str):
        fn = getattr(NUMPY, name)
        self.called.add(name)
        return fn
