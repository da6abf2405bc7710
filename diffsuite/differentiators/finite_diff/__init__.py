"""Finite differences: forward, backward, central, five-point, Richardson and complex-step gradients.

``get_differentiator("finite_diff", scheme="central", step="auto", dtype="float64")``.

Cost model (objective evaluations per gradient, the value included; n parameters): forward/backward n + 1
(2n + 1 with automatic steps: a point at h/2 measures their truncation), central 2n + 1, five_point 4n + 1,
richardson 2n * levels + 1 (2n * levels + n + 1 with automatic steps: a check point per entry off its ratio-2
grid), complex_step n + 1 (n of them in complex arithmetic, about 2-4 times a real evaluation), plus the
evaluations of entries that step control tries again or checks (``stats["n_retry_evals"]``: central's quotient
at h/2 where its values show no curvature, two one-sided points where a kink persists; complex step: an entry
whose Im f came out subnormal, or one at theta_i == 0 with a tiny derivative). An f(theta) that is NaN or inf
costs 1: no derivative, every entry NaN (``DomainWarning``). With ``batch=k`` an objective evaluates k stencil
points per call (``batched``): same evaluations, less overhead.

Error model: truncation C h^p (p = 1, 1, 2, 4, 2 * levels; complex step h^2 with no subtraction) plus
rounding about eps |f| / h for the real schemes. The automatic step h_i = eps^(1/(p+1)) max(1, |theta_i|)
balances the two, and is made exactly representable, (theta_i + h_i) - theta_i, in the evaluation dtype.
The complex step's is 1e-20, relative for 0 < |theta_i| < 1 (1e-20 |theta_i| rounded down to a power of
two, at least the smallest normal float) so that log, sqrt or 1/x next to 0 stay exact; an entry whose
Im f comes out subnormal is tried again at a longer step (``steps.complex_steps``, docs/finite_diff.md).
Step control (``control``) then evaluates again, at a step of its own, each entry whose stencil left f's
domain, straddled a kink near theta_i, truncated far more than it rounded, or lost f's change in f's rounding,
or (steps of 8 times or more the one balanced for the scale 1: |theta_i| from about 10 to 64, by scheme)
disagrees with a probe at that step (f varies on the scale 1, not |theta_i|: a log-sum-exp at 1000)
(``stats["step_changes"]``); an enlarged step never goes past what the entry's own truncation estimate allows.
An entry whose step control does not settle (results that keep changing beyond their rounding without
converging, or a search that stops, at its smallest step or out of tries, still truncating) is listed in
``stats["unsettled_params"]`` and named by an ``UnsettledStepWarning``, with no error bound. Richardson's
``stats["error_estimate"]`` is 2 (|R[L,L] - R[L,L-1]| + rounding), inf for an unsettled entry.

Kinks (relu, max, min, abs, hinge, step): a real difference quotient whose evaluations straddle a
kink averages two one-sided derivatives. With ``kink_check`` the objective runs under a namespace
that records each kink op's branch; parameters whose stencil changes a branch, and whose two one-sided
derivatives differ (relu(t) - relu(-t) is smooth: not reported), are listed in ``stats["kink_params"]`` and
named by a ``KinkWarning``. Where f is smooth across such a join (Huber at |r| = delta: f' continuous, f''
jumping), a symmetric stencil across it truncates like h; with automatic steps that entry is evaluated on one
side of theta instead (``control.OneSidedRule``, ``stats["step_changes"]``: forward or backward). The complex
step evaluates kink ops on the real part, so it returns the conventional subgradient (docs/architecture.md)
(relu'(0) = 0) exactly; parameters whose perturbation passes through an exact tie are listed in
``stats["kink_tie_params"]`` (no warning). theta is bound as ``RealOrdered`` (comparisons, of its scalars too,
on the real part); a numpy ufunc that is not analytic (np.abs, np.sign, np.conj) on it is refused with a
TypeError.

The float32 trap: a step below the spacing of floats at theta_i leaves theta_i + h == theta_i and
the quotient exactly 0. With automatic steps such an entry gets a longer step; an explicit step (or an f
flat to rounding even then) raises ``StepUnderflowError`` naming the parameters (``zero_step="warn"``:
a ``StepUnderflowWarning`` and NaN for those entries, listed in ``stats["zero_step_params"]``). A stencil
that stays off f's domain gives NaN and a ``DomainWarning`` naming the parameter.

Files: ``__init__`` the ``FiniteDiff`` differentiator (schemes, kink and underflow checks); ``steps``
stencils, orders, automatic and exactly representable steps; ``control`` per-entry step control (scheme
geometry, Richardson's tableau and error model, retries); ``namespaces``
the complex-step namespace and the kink-recording ``KinkTracker``; ``batched`` k stencil points per
objective call; ``higher`` Hessians, HVPs, JVPs and Jacobians by differences (their step rules).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, ClassVar

import numpy as np

from ... import pytree
from ...errors import RefusedByDesign, user_stacklevel
from ...namespace import NUMPY
from ...objective import Objective
from ..base import (Gradient, HigherOrder, check_dtype, check_flags, check_result, flatten_params, grad_leaf,
                    param_entry_names, positional_only, scalar_check, with_argnums_of)
from . import higher
from .batched import bind_objective_batched, evaluate_batched
from .control import (KINK_TRIES, MIN_STEP_ULPS, ONE_SIDED, ONE_SIDED_MAX_ORDER, RICHARDSON_SAFETY, TRUNCATION_RATIO,
                      Entry, OneSidedRule, Rule, StepControl, cancellation_floor, noise_of, one_sided)
from .namespaces import COMPLEX, KinkTracker, NotAnalyticError, RealOrdered
from .steps import COMPLEX_DTYPES, COMPLEX_STEP, DTYPES, SCHEMES, auto_steps, complex_steps, scheme_order

MAX_LEVELS = 10
#: a one-sided result that rounds this many times more than the symmetric stencil (and more than half the scheme's
#: digits) is reported ``unsettled``: its side of one piece lies too close to theta for the scheme's accuracy
ONE_SIDED_ROUNDING_RATIO = 1e6
#: an automatic step this many times the step balanced for f's scale 1 is checked against that step
#: (``FiniteDiff._scale_probe``)
SCALE_PROBE_RATIO = 8.0
DEFAULT_LEVELS = 4  # FiniteDiff.levels' default; another value with a scheme other than richardson is an error


def _quiet():
    """Stencil points off f's domain are found and reported (``DomainWarning``), not left to numpy's warnings."""
    return np.errstate(invalid="ignore", divide="ignore", over="ignore")


class KinkWarning(UserWarning):
    """A difference quotient straddled a kink: that entry averages two one-sided derivatives."""


class StepUnderflowWarning(UserWarning):
    """theta_i + h == theta_i in the evaluation dtype: the quotient would be exactly 0 (set to NaN)."""


class DomainWarning(UserWarning):
    """f(theta) is finite but a stencil point of some entry gives NaN or inf at every step tried (entry NaN)."""


class UnsettledStepWarning(UserWarning):
    """Step control found no step at which an entry's results stop changing beyond their rounding: the entry
    is the best of the steps tried, with its error estimate in the message (``stats["unsettled_params"]``)."""


class StepUnderflowError(RefusedByDesign):
    """theta_i + h == theta_i in the evaluation dtype: the quotient would be exactly 0 (refused by design)."""


def _is_int(value: Any) -> bool:
    """An int option's value: an int or numpy integer, never a bool (True would read as 1)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _name_list(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


@dataclass(frozen=True)
class FiniteDiff(HigherOrder):
    """Difference-quotient gradients; every option is a field and appears in reports.

    Args:
        scheme: ``forward``, ``backward``, ``central``, ``five_point``, ``richardson``, ``complex_step``.
        step: ``"auto"``, a positive float (the same absolute step for every parameter), or a sequence
            with one positive step per parameter. Richardson's step is its coarsest level's.
        dtype: ``float64`` or ``float32``: parameters *and* data are evaluated in it.
        levels: Richardson's number of central differences (h, h/2, ...); order 2 * levels. Only for
            ``scheme="richardson"``: another scheme with levels other than the default 4 is a ValueError.
        kink_check: record kink-op branches to detect steps straddling a kink (see module docstring).
        warn: emit a ``KinkWarning`` when kinks are found, and an ``UnsettledStepWarning`` when step control
            finds no step at which an entry settles (both are in stats either way: ``kink_params``,
            ``unsettled_params``).
        zero_step: ``"raise"`` (default) or ``"warn"`` when theta_i + h == theta_i.
        batch: stencil points evaluated per objective call (real schemes, ``Objective`` only; see
            ``batched``). Same evaluations, same count; less per-call overhead. 1 = one point per call.
    """

    scheme: str = "central"
    step: Any = "auto"
    dtype: str = "float64"
    levels: int = DEFAULT_LEVELS
    kink_check: bool = True
    warn: bool = True
    zero_step: str = "raise"
    batch: int = 1
    name: ClassVar[str] = "finite_diff"
    higher: ClassVar = higher  # jvp/vjp/jacobian/hessian/hvp by differences and their step rules (higher.py)

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown finite-difference scheme {self.scheme!r}; choose one of {', '.join(SCHEMES)}")
        check_dtype(self, DTYPES)
        if not (_is_int(self.levels) and 1 <= self.levels <= MAX_LEVELS):
            raise ValueError(f"levels (Richardson's number of central differences h, h/2, ...) must be an int from 1 "
                             f"to {MAX_LEVELS} (not a bool); got {self.levels!r}")
        if self.scheme != "richardson" and self.levels != DEFAULT_LEVELS:
            raise ValueError(f"levels applies only to scheme='richardson' (its number of central differences); "
                             f"scheme={self.scheme!r} would ignore levels={self.levels!r}: leave levels at its "
                             f"default ({DEFAULT_LEVELS}) or use scheme='richardson'")
        if not (_is_int(self.batch) and self.batch >= 1):
            raise ValueError(f"batch (stencil points per objective call) must be an int >= 1 (not a bool: batch=True "
                             f"is not a batch size); got {self.batch!r}")
        check_flags(self, "kink_check", "warn")
        if self.batch > 1 and self.scheme == "complex_step":
            raise ValueError("batch > 1 applies to the real schemes; complex_step evaluates one point per call: "
                             "use batch=1")
        if self.zero_step not in ("raise", "warn"):
            raise ValueError(f"zero_step must be 'raise' or 'warn'; got {self.zero_step!r}")
        if not isinstance(self.step, str):
            try:
                # a bool (step=True) is not a step of 1: refused like any other non-number
                raw = np.asarray(self.step, dtype=object).ravel()
                bad = any(isinstance(v, (bool, np.bool_, complex, np.complexfloating)) for v in raw)
                step = np.asarray(np.nan) if bad else np.asarray(self.step, dtype=np.float64)
            except (TypeError, ValueError):
                step = np.asarray(np.nan)
            if step.ndim > 1 or step.size == 0 or not np.all(np.isfinite(step) & (step > 0)):
                raise ValueError(f"step must be 'auto', a positive float, or a 1-D sequence of positive floats (one "
                                 f"per parameter); got {self.step!r}")
            object.__setattr__(self, "step", float(step) if step.ndim == 0 else tuple(step.tolist()))
        elif self.step != "auto":
            raise ValueError(f"step must be 'auto', a positive float or one positive float per parameter; "
                             f"got {self.step!r}")

    @property
    def order(self) -> int:
        """The order p of the truncation error O(h^p)."""
        return scheme_order(self.scheme, self.levels)

    @property
    def label(self) -> str:
        """A legend label: ``finite_diff[central]``, ``finite_diff[richardson3,float32]``."""
        scheme = f"richardson{self.levels}" if self.scheme == "richardson" else self.scheme
        return f"finite_diff[{scheme}{'' if self.dtype == 'float64' else ',' + self.dtype}]"

    # ----- objectives -----
    def value_and_grad(self, objective: Objective | Callable) -> Callable[[np.ndarray], Gradient]:
        """``(theta, batch=None) -> Gradient`` for an ``Objective`` (or a function ``f(xp, theta)`` of a flat
        theta); ``batch=(X, y)`` evaluates on that minibatch instead of the objective's data."""
        if not isinstance(objective, Objective):
            vg = self.value_and_grad_fn(objective)
            return lambda theta, *args: vg(theta, *args)  # (f's own arguments after theta, as value_and_grad_fn)
        real = DTYPES[self.dtype]
        inputs, targets = objective.data(real)  # cast once; a float32 run sees float32 data
        names = objective.param_names()
        model = objective.model

        def value_and_grad_fn(theta: np.ndarray, batch: tuple | None = None) -> Gradient:
            theta = objective.check_theta(theta)
            # ``batch=(X, y)``: this call's data instead of the objective's, checked and cast like them
            x, y = (inputs, targets) if batch is None else objective.batch_data(batch, real)
            return self._differentiate(theta, lambda t: model.unpack(t, NUMPY),
                                       lambda xp, p: objective.evaluate(xp, p, x, y), names,
                                       objective.describe(), partial(bind_objective_batched, objective))

        return value_and_grad_fn

    # ----- users' functions -----
    def value_and_grad_fn(self, f: Callable) -> Callable[..., Gradient]:
        """``(theta, *args) -> Gradient`` for ``f(xp, theta, *args) -> scalar``; grad has theta's structure.

        Floating-point array arguments are cast to ``dtype``, as an objective's data is.
        """
        real = DTYPES[self.dtype]

        def value_and_grad_fn(theta: Any, *args: Any, **kwargs: Any) -> Gradient:
            if kwargs:
                positional_only(kwargs)
            leaves, rebuild = flatten_params(theta)
            shapes = [leaf.shape for leaf in leaves]
            bounds = np.cumsum([0] + [leaf.size for leaf in leaves])
            flat = np.concatenate([leaf.ravel() for leaf in leaves]) if leaves else np.zeros(0)
            cast = tuple(a.astype(real) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in args)

            def bind(t):
                return rebuild([t[a:b].reshape(s) for a, b, s in zip(bounds[:-1], bounds[1:], shapes)])

            who = getattr(f, "__name__", "f")
            res = self._differentiate(flat, bind, lambda xp, p: check_result(f(xp, p, *cast), who),
                                      _leaf_names(theta, leaves), who)
            res.grad = rebuild([grad_leaf(res.grad[a:b].reshape(s))
                                for a, b, s in zip(bounds[:-1], bounds[1:], shapes)])
            return res

        return value_and_grad_fn

    def grad(self, f: Callable, argnums: int | tuple[int, ...] = 0) -> Callable[..., Any]:
        """``(theta, *args) -> gradient`` of ``f(xp, theta, *args)``, in theta's structure (``argnums``: see
        ``diffsuite.pytree.with_argnums``)."""
        return with_argnums_of(self, f, argnums)

    # ----- the engine -----
    def _nominal_steps(self, theta: np.ndarray) -> np.ndarray:
        n = theta.size
        if self.step == "auto":
            if self.scheme == "complex_step":
                return complex_steps(theta, self.dtype)
            steps = auto_steps(theta, self.order, self.dtype)
            # Richardson: rounding grows with the finest level h / 2^(levels-1), truncation with the coarsest;
            # centring the balanced step between them (x 2^((levels-1)/2)) was the most robust on our MLPs
            return steps * 2.0 ** ((self.levels - 1) / 2) if self.scheme == "richardson" else steps
        steps = np.broadcast_to(np.asarray(self.step, dtype=np.float64), (n,)) if np.ndim(self.step) == 0 \
            else np.asarray(self.step, dtype=np.float64)
        if steps.shape != (n,):
            raise ValueError(f"step must give one step per parameter: {n} values; got {steps.size}. "
                             "Pass a single float to use the same step everywhere, or 'auto'.")
        return steps.copy()

    def _differentiate(self, theta: np.ndarray, bind: Callable, call: Callable, names: list[str],
                       who: str, bind_batched: Callable | None = None) -> Gradient:
        """theta: flat float64. ``bind(t)`` makes the parameter structure from a flat buffer (views, so
        that writing ``t[i]`` perturbs it); ``call(xp, params)`` evaluates the function;
        ``bind_batched(stack)`` does the same for a (k, n) stack, where the function allows it."""
        if self.batch > 1 and bind_batched is None:
            raise ValueError(f"batch={self.batch} needs an Objective (its batched evaluation is known); {who} is "
                             "a plain function, evaluated one point per call: use batch=1")
        real = DTYPES[self.dtype]
        self._check_fits(theta, names)
        nominal = self._nominal_steps(theta)
        t0 = theta.astype(real)
        tracker = KinkTracker(NUMPY) if self.kink_check else None
        xp = tracker or NUMPY
        buffer = t0.copy()
        params = _bind_views(bind, buffer)
        if tracker:
            tracker.start()
        with _quiet():  # (a value that is NaN or inf is reported below, not by numpy's warnings)
            center = call(xp, params)
        scalar_check(np.shape(center), who)
        center_sig = tracker.record() if tracker else None
        if center_sig == b"":  # no kink op on the path at all (a smooth network): track nothing, pay nothing
            tracker, xp = None, NUMPY
        value = float(np.asarray(center).reshape(()))
        stats: dict[str, Any] = {"scheme": self.scheme, "dtype": self.dtype, "kink_tie_params": [],
                                 "zero_quotient_params": [], "nominal_steps": nominal, "step_changes": {},
                                 "nonfinite_params": [], "unsettled_params": [],
                                 "n_retry_evals": 0}  # the same keys for every scheme

        if not np.isfinite(value):
            return self._no_derivative(value, theta, nominal, names, who, stats)
        if self.scheme == "complex_step":
            grad, kinks, steps, zero, n_probes, n_retry, changes = self._complex(theta, nominal, bind, call, names,
                                                                                 who, value)
            stats["kink_tie_params"] = [names[i] for i in np.flatnonzero(kinks)]
            kinks = np.zeros(theta.size, dtype=bool)
            stats.update(n_evals=theta.size + 1 + n_probes + n_retry, n_retry_evals=n_retry, step_changes=changes)
        else:
            grad, kinks, steps, zero = self._real(theta, t0, nominal, buffer, params, call, xp, tracker,
                                                  center_sig, np.ndim(center), value, names, who, bind_batched,
                                                  stats)
        grad = np.where(zero, np.nan, grad)
        kink_idx = np.flatnonzero(kinks)
        stats.update(steps=steps, kink_params=[names[i] for i in kink_idx], kink_indices=kink_idx,
                     zero_step_params=[names[i] for i in np.flatnonzero(zero)], kink_check=self.kink_check,
                     batch=self.batch)
        if len(kink_idx) and self.warn:
            warnings.warn(KinkWarning(
                f"{self.label}: the step of {len(kink_idx)} parameter(s) straddles a kink (relu/max/min/abs/hinge/"
                f"step) of {who}, so those entries average two one-sided derivatives: {_name_list(stats['kink_params'])}."
                " Compare with a reverse or symbolic gradient, which use the conventions relu'(0) = 0 etc."),
                stacklevel=user_stacklevel())
        return Gradient(value, grad.astype(np.float64), stats)

    def _check_fits(self, theta: np.ndarray, names: list[str]) -> None:
        """Refuse finite entries of theta that overflow the evaluation dtype (float32: |theta_i| > 3.4e38)."""
        with np.errstate(over="ignore"):
            bad = np.flatnonzero(np.isfinite(theta) & ~np.isfinite(theta.astype(DTYPES[self.dtype])))
        if len(bad):
            detail = ", ".join(f"{names[i]} = {theta[i]:.6g}" for i in bad[:6]) + (" ..." if len(bad) > 6 else "")
            raise ValueError(f"{self.label}: {len(bad)} parameter(s) do not fit {self.dtype} (largest finite "
                             f"{float(np.finfo(DTYPES[self.dtype]).max):.3g}): {detail}. They would become inf, "
                             "and f and every difference of f with them. Use dtype='float64' or rescale theta.")

    def _no_derivative(self, value, theta, nominal, names, who, stats) -> Gradient:
        """f(theta) is NaN or +-inf: no derivative exists there. Every entry is NaN (as central's differences of
        NaN or inf give), nothing more is evaluated, and a ``DomainWarning`` says so (``nonfinite_params``: all).
        Complex step used to return finite nonsense there: sqrt(t0 - 1) + t1 at (0, 2) gave (1e20, 1e20)."""
        n = theta.size
        stats.update(n_evals=1, steps=nominal.astype(np.float64), kink_params=[], kink_indices=np.zeros(0, int),
                     zero_step_params=[], kink_check=self.kink_check, batch=self.batch, nonfinite_params=list(names))
        if self.scheme == "richardson":
            stats.update(levels=self.levels, error_estimate=np.full(n, np.inf))
        warnings.warn(DomainWarning(
            f"{self.label}: f(theta) of {who} is {value} at this theta, so it has no derivative there: all "
            f"{n} entries are NaN (stats['nonfinite_params']). theta lies outside f's domain (log or sqrt of a "
            "negative number, 0 / 0) or f overflows there."), stacklevel=user_stacklevel())
        return Gradient(value, np.full(n, np.nan), stats)

    def _real(self, theta, t0, nominal, buffer, params, call, xp, tracker, center_sig, out_ndim, value, names, who,
              bind_batched, stats):
        """The real schemes: every entry at its nominal step, then (automatic steps) each entry whose step
        does not fit evaluated again at a step of its own (``control``). Returns (grad, kink flags, coarse
        exact steps, zero-step flags); fills ``stats``."""
        # automatic steps: forward and backward also evaluate at the half step, for their truncation model
        rule = Rule(self.scheme, self.levels if self.scheme == "richardson" else 1, check=self.step == "auto")
        level_steps = rule.steps(t0, nominal)
        zero = np.any(level_steps == 0, axis=1)
        self._trap(zero, names, theta, nominal, "step")
        points = rule.points(t0, level_steps)
        with _quiet():
            if self.batch > 1:  # the centre then comes from the same batched arithmetic as the stencil
                values, kinks, centre = evaluate_batched(t0, points, bind_batched, call, self.batch,
                                                         tracker is not None, value, who)
            else:
                values, kinks = _evaluate_stencil(buffer, params, points, call, xp, tracker, center_sig, out_ndim)
                centre = value
        noise = noise_of(values, centre, float(np.finfo(t0.dtype).eps), float(np.finfo(t0.dtype).smallest_subnormal))
        grad, trunc, rweight, mismatch = rule.combine(values, centre, level_steps, noise)
        retried = [0]

        def evaluate(i, pts, within=False):
            retried[0] += len(pts)
            with _quiet():
                return _evaluate_entry(buffer, params, i, pts, call, xp, tracker, center_sig, out_ndim, within)

        control, auto = StepControl(rule, t0, centre, evaluate), self.step == "auto"
        changes: dict[str, str] = {}

        def take(i, e, why):
            grad[i], trunc[i], rweight[i], noise[i], kinks[i] = e.grad, e.trunc, e.rweight, e.noise, e.kink
            level_steps[i], values[i], mismatch[i] = e.steps, e.values, e.mismatch
            changes[names[i]] = "+".join(why)

        def first(i):
            return Entry(float(nominal[i]), level_steps[i], values[i], float(grad[i]), float(trunc[i]),
                         float(rweight[i]), float(noise[i]), bool(kinks[i]), bool(mismatch[i]))

        lost, probe, change, f_noise, n_probes = self._zero_quotients(values, centre, zero, buffer, params, call, t0,
                                                                      level_steps[:, 0])
        for i in np.flatnonzero(lost) if auto else ():  # lost in f's rounding: a longer step of its own
            e, why = control.enlarge(i, probe[i], change[i], f_noise)
            if not np.all(e.values == centre):
                lost[i] = False
                e, more = control.refine(i, e) if "unsettled" not in why else (e, [])
                take(i, e, why + more)
        self._trap(lost, names, theta, level_steps[:, 0], "quotient")
        finite = np.all(np.isfinite(values), axis=1)
        if auto and self.scheme == "central":
            self._odd_truncation(values, centre, level_steps, trunc, ~finite | kinks | zero | lost, t0, evaluate)
        if auto and np.isfinite(centre):
            rounding = noise * rweight
            suspect = ~finite | kinks | mismatch | (trunc > TRUNCATION_RATIO * rounding) | \
                ((trunc > rounding) & (trunc >= np.abs(grad)))  # (``Entry.needs_shorter``)
            for i in np.flatnonzero(suspect & ~zero & ~lost):
                if names[i] not in changes:
                    e, why = control.refine(i, first(i))
                    if why:
                        take(i, e, why)
            finite = np.all(np.isfinite(values), axis=1)
            probe = _probe_steps(nominal, t0, grad, centre, rule.order)
            for i in np.flatnonzero(finite & ~kinks & ~zero & ~lost & (level_steps[:, 0] >= probe)):
                unsettled = "unsettled" in changes.get(names[i], "").split("+")
                # f may cancel values of theta_i's size (t0 - logsumexp(t) at 1e7 is O(1), rounded to eps 1e7): the
                # probe's comparisons take f's rounding to be at least eps |theta_i| through a slope of f'_i, or of
                # |f| up to 1 (exp(t0 - logsumexp(t)): f's slope in the cancelled value is f itself)
                floor = cancellation_floor(control.eps, float(t0[i]), float(grad[i]), centre)
                e = self._scale_probe(control, i, first(i), float(probe[i]), unsettled, floor)
                if e is None:
                    continue
                # the step did not resolve f: step control from the probe's step, and its result confirmed at 4
                # times that step (a probe whose rounding the noise model understates moves by that rounding)
                e, more = control.refine(i, e)
                e.noise = max(e.noise, floor)
                longer = control.entry(i, 4 * e.coarse)
                longer.noise = max(longer.noise, floor)
                confirmed = "unsettled" not in more and longer.finite and not longer.kink and abs(
                    longer.grad - e.grad) <= 2 * (e.rounding + longer.rounding) + e.trunc + longer.trunc
                before = [r for r in changes.get(names[i], "").split("+") if r and r != "unsettled"]
                if confirmed:
                    take(i, e, before + ["scale"] + more)
                elif not unsettled:  # the doubt stays: the first result, reported with no error bound
                    trunc[i] = max(trunc[i], abs(e.grad - grad[i]))
                    changes[names[i]] = "+".join(before + ["scale", "unsettled"])
        if kinks.any():  # a kink that persists: f may still be smooth there (relu(t) - relu(-t), |t| |t|)
            smooth, sides = self._smooth_across(np.flatnonzero(kinks & ~zero & ~lost), rule, values, centre,
                                                level_steps, noise, t0, evaluate,
                                                retest=auto and rule.scheme not in ONE_SIDED)
            kinks &= ~smooth
            if auto and rule.scheme not in ONE_SIDED:  # ... but a symmetric stencil across the join is O(h) there
                order = min(rule.order, ONE_SIDED_MAX_ORDER)
                for i in np.flatnonzero(smooth):
                    if i in sides and max(abs(sides[i][0] - grad[i]), abs(sides[i][1] - grad[i])) <= sides[i][2]:
                        continue  # it agrees with both sides' extrapolations: analytic there (Huber's abs at 0)
                    floor = cancellation_floor(control.eps, float(t0[i]), float(grad[i]), centre)
                    found = one_sided(i, t0, centre, evaluate, order,
                                      self._one_sided_step(t0[i:i + 1], centre, float(grad[i]), order), floor)
                    if found is None:
                        # no side of one piece, and the symmetric result disagrees with the sides' extrapolations:
                        # it may average several joins (Huber with delta = 1e-3, 1e-6 inside its join, whose
                        # Richardson stencil spanned both: 1.9e-7 for 1e-3): reported as a kink
                        kinks[i] = True
                        continue
                    e, why, side = found
                    gap, symmetric = abs(e.grad - grad[i]), max(noise[i], floor) * rweight[i]
                    if gap <= 2 * symmetric + min(e.trunc, trunc[i]):
                        # the symmetric result agrees with the one-sided one within its own rounding and the smaller
                        # truncation estimate: f is analytic across the join (a stable softplus written with
                        # where), or f's rounding outweighs the join's truncation (Huber + 1e7, central); it keeps
                        # its lower rounding. (Not within the one-sided rounding model, which may be far above its
                        # error: 4.9e-5 for 1.9e-7 on five-point's Huber + 1e7, whose symmetric result was 1.2e-4
                        # off; nor within either truncation estimate alone: the tableau's is the error of its
                        # lower-order result, h / 4 for Huber at 1, exactly the symmetric quotient's error there,
                        # and five-point's sees its two quotients disagree across the join, 250 where it was 250 off.)
                        trunc[i] = max(trunc[i], gap)
                        # (found smooth only at the retest's short steps, its own stencil failed the test: agreeing
                        # only within a truncation estimate, the average stays reported, as two smooth relus 1e-3
                        # wide at 1e4, 8.3e-3 off, were)
                        kinks[i] = i not in sides and gap > 2 * symmetric
                        continue
                    if e.rounding > max(control.half_digits * abs(e.grad), ONE_SIDED_ROUNDING_RATIO * symmetric) \
                            and "unsettled" not in why:
                        # the side of one piece lies so close to theta that its steps round far beyond the scheme's
                        # (joins 3e-8 and 5e-8 either side of theta ~ 1e3: five-point 2.8e-3 off, its rounding 9e9
                        # times the symmetric stencil's; sides 1e-6 and more away measured 34 to 5e4): no bound
                        why = why + ["unsettled"]
                    grad[i], trunc[i], rweight[i], noise[i] = e.grad, e.trunc, e.rweight, e.noise
                    level_steps[i, 0] = e.steps[0]  # (reported as the entry's step)
                    before = [changes[names[i]]] if names[i] in changes else []
                    changes[names[i]] = "+".join(before + ["forward" if side > 0 else "backward"] + why)
        off_domain = np.isfinite(centre) & ~np.all(np.isfinite(values), axis=1) & ~zero
        grad = np.where(lost | off_domain, np.nan, grad)
        if off_domain.any():
            self._off_domain(off_domain, names, theta, level_steps[:, rule.n_levels - 1], who)
        stats["zero_quotient_params"] = [names[i] for i in np.flatnonzero(lost)]
        unsettled = [i for i, name in enumerate(names) if "unsettled" in changes.get(name, "").split("+")
                     and not (lost[i] or off_domain[i])]
        stats["unsettled_params"] = [names[i] for i in unsettled]
        if unsettled and self.warn:  # (their trunc: the spread of the results tried, no bound on the error)
            self._unsettled(unsettled, names, theta, grad, trunc, level_steps[:, 0], who)
        stats.update(n_evals=theta.size * rule.n_points + 1 + n_probes + retried[0], n_retry_evals=retried[0],
                     nominal_steps=nominal,
                     step_changes=changes, nonfinite_params=[names[i] for i in np.flatnonzero(off_domain)])
        if self.scheme == "richardson":
            stats["levels"] = self.levels
            estimate = RICHARDSON_SAFETY * (trunc + noise * rweight)
            # an entry that never settled has no bound: its spread understated the error of a step still too long
            # for f's scale (tanh(1e4 t): 4.5e3 against 8.4e3), so it is reported as unbounded, not as that spread
            estimate[unsettled] = np.inf
            stats["error_estimate"] = estimate
        return grad, kinks, level_steps[:, 0], zero

    def _one_sided_step(self, t, centre, slope, order):
        """The one-sided tableau's first step: the automatic step of its order, or the step that balances its
        truncation against f's rounding on the scale 1, (eps |f| / |f'|)^(1/(K+1)), if longer (Huber + 1e7: at
        the automatic step the tableau's rounding, 3 eps |f| / h, was 6e-4)."""
        rounding_step = (float(np.finfo(t.dtype).eps) * abs(centre) / abs(slope)) ** (1 / (order + 1)) \
            if slope and np.isfinite(centre) else 0.0
        return max(float(auto_steps(t, order, self.dtype)[0]), rounding_step)

    @staticmethod
    def _scale_probe(control, i, cur, probe, unsettled=False, floor=0.0):
        """The entry at ``probe``, a step on f's own scale (``_probe_steps``), where that is far shorter than the
        step used, if the two results disagree; else None.

        The automatic step assumes that f varies on the scale |theta_i|. A function of differences of its inputs
        (a log-sum-exp, a softmax, a distance) varies on the scale 1 wherever theta is: at theta = [1000, 999.3,
        1000.3] in float32 five-point's step of 41 crossed the whole transition, its values looked linear on that
        scale (no curvature, no truncation seen), and it gave 0.478 for 0.174 unreported; float64 at 1e7 gave
        0.49999 for 0.47423 (step 7400). So where the step used is at least ``SCALE_PROBE_RATIO`` times the probe's,
        the entry is evaluated there once more (the scheme's points, counted as retries); a result that differs
        from the first by more than both rounding and truncation estimates (or whose own values call for a shorter
        step) means the first step did not resolve f, and step control starts from the probe. A function that does
        vary on the scale |theta_i| (t^2 at 1e7) agrees within the probe's rounding, and keeps its first result.
        An ``unsettled`` entry (step control from the first step ran out of tries before its step resolved f:
        five-point at 1e7 ended 0.49995 for 0.35132) gets the probe whenever it is shorter than its step, whatever
        the results; the caller keeps the new result only if step control settles from there. The caller also
        confirms the new result at 4 times its step (a probe lost in rounding the noise model does not see moves
        by that rounding). f's rounding is taken to be at least ``floor`` (``control.cancellation_floor``)."""
        if not cur.steps[0] >= (1.0 if unsettled else SCALE_PROBE_RATIO) * probe or not np.isfinite(probe):
            return None
        e = control.entry(i, probe)
        if not e.finite or e.kink or e.changes_nothing(control.centre):  # (f flat to its rounding there: no result)
            return None
        e.noise = max(e.noise, floor)
        rounding = max(cur.noise, floor) * cur.rweight
        if unsettled or e.needs_shorter \
                or abs(e.grad - cur.grad) > 2 * (e.rounding + rounding) + e.trunc + cur.trunc:
            return e
        return None

    @staticmethod
    def _odd_truncation(values, centre, steps, trunc, skip, t0, evaluate) -> None:
        """Central: its model B^2 / (6 |A| h) (A = (f+ - f-) / 2, B = f+ - 2 f0 + f-) sees the curvature of f, not
        its third derivative, so it misses truncation that is odd about theta: tanh(1e4 t) at 0 (B = 0) gave
        9987.8 for 1e4 unnoticed, (1e12 t)^3 at 1e-12 gave 3.7e25 for 3e12. Where the three values show less
        curvature than f's assumed scale max(1, |theta_i|) (|B| max(1, |theta_i|) < |A| h) and f changes across
        the stencil by more than |f(theta)| (f varies on the step's scale, or crosses 0 at theta), the quotient at
        the half step h1 is evaluated (two more evaluations, counted as retries) and the truncation at h measured,
        |q(h) - q(h1)| h^2 / (h^2 - h1^2), as forward and backward measure theirs. ``trunc`` is updated in place."""
        a, b = (values[:, 0] - values[:, 1]) / 2, values[:, 0] - 2 * centre + values[:, 1]
        h = steps[:, 0]
        with np.errstate(invalid="ignore", over="ignore"):
            flat = (np.abs(b) * np.maximum(1.0, np.abs(t0.astype(np.float64))) < np.abs(a) * h) & \
                (np.abs(a) > abs(centre))
        if not np.isfinite(centre):
            return
        for i in np.flatnonzero(flat & ~skip):
            half = float(((t0[i] + t0.dtype.type(h[i] / 2)) - t0[i]))
            if not 0 < half < h[i]:
                continue
            up, down = (t0[i] + t0.dtype.type(half)), (t0[i] - t0.dtype.type(half))
            (f_up, f_down), kink = evaluate(i, [up, down])
            if kink or not (np.isfinite(f_up) and np.isfinite(f_down)):
                trunc[i] = np.inf  # (inside the stencil: let step control look)
                continue
            q, q1 = (values[i, 0] - values[i, 1]) / (2 * h[i]), (f_up - f_down) / (2 * half)
            trunc[i] = max(trunc[i], abs(q - q1) * h[i] ** 2 / (h[i] ** 2 - half ** 2))

    @staticmethod
    def _smooth_across(idx, rule, values, centre, steps, noise, t0, evaluate, retest=False) -> tuple[np.ndarray, dict]:
        """Flags (all entries) of those in ``idx`` whose kink is no kink of f, and for those found so at the scheme's
        own steps {entry: (right, left, gap)}, the two extrapolated one-sided derivatives and |right - left| (the
        caller's check of the symmetric result: smooth there if it lies that close to both). The one-sided
        derivatives at theta,
        each extrapolated from the one-sided quotients at two steps a > b, e = (a q(b) - b q(a)) / (a - b), agree
        to within a quarter of their first-order terms |e - q(b)| (about b |f^(2)| / 2, far above the difference of
        a smooth f's two sides, O(a b h f^(4))) plus rounding. f is then smooth there although built from
        kinked pieces (relu(t) - relu(-t) = t, |t| |t| = t^2) and its quotient averaged nothing. Central,
        five-point and Richardson reuse their values (central: two more evaluations, at +-h/2); forward and backward
        evaluate the other side (two, or three with an explicit step).

        ``retest`` (automatic steps, the symmetric schemes: forward and backward have no one-sided result to take
        instead of theirs, which would then stand unreported): an entry not found smooth is tested again at the
        kink rule's shortest step (the finest step / 16^``KINK_TRIES``), as above (four more evaluations), then by
        one-sided tableaus of order 3 (``_sides_agree``; six more). The scheme's own steps may reach past a second
        join: Huber with delta = 1e-3 at its join delta, whose Richardson steps (2.3e-3 and up) also crossed the
        join at -delta, was reported as a kink, and its average, 1.9e-4 for 1e-3, kept. And a join where f'' is
        continuous too (t^3 for t >= 0, 0 below) leaves the two-step extrapolation an error (a b f^(3) / 6) as
        large as its first-order term, which the test above reads as a kink at every step; an order-3 tableau
        removes it. A true kink fails at every step."""
        smooth, sides = np.zeros(values.shape[0], dtype=bool), {}
        real = t0.dtype.type
        for i in idx:
            # the two steps and the values the entry already has at theta + offset
            known = dict(zip((float(p[0]) for p in rule.points(t0[i:i + 1], steps[i:i + 1])), values[i]))
            if rule.scheme == "five_point":
                a, b = steps[i, 0] * 2, steps[i, 0]
            elif rule.scheme == "richardson" and rule.levels > 1:
                a, b = steps[i, rule.levels - 2], steps[i, rule.levels - 1]
            elif rule.one_sided_check:  # (forward, backward: their half step)
                a, b = steps[i, 0], steps[i, 1]
            else:
                a, b = steps[i, 0], float((t0[i] + real(steps[i, 0] / 2)) - t0[i])
            smooth[i], right, left = _agree_across(i, a, b, known, centre, noise[i], t0, evaluate)
            if smooth[i]:
                sides[i] = (right, left, abs(right - left))
            short = float((t0[i] + real(steps[i, rule.n_levels - 1] / 16.0 ** KINK_TRIES)) - t0[i])
            if retest and not smooth[i] and short >= MIN_STEP_ULPS * float(np.spacing(np.abs(t0[i]))):
                twice = float((t0[i] + real(2 * short)) - t0[i])
                smooth[i] = _agree_across(i, twice, short, {}, centre, noise[i], t0, evaluate)[0] \
                    or _sides_agree(i, 4 * short, centre, t0, evaluate)
        return smooth, sides

    def _unsettled(self, idx, names, theta, grad, spread, steps, who) -> None:
        """An ``UnsettledStepWarning`` naming the entries whose step control did not settle. It states no error
        bound: results that never converge bound nothing (their spread is shown as what it is)."""
        detail = ", ".join(f"{names[i]} = {theta[i]:.6g} (gradient {grad[i]:.3g}, error up to inf: no bound is "
                           f"known, the results at the steps tried spread by {spread[i]:.2g}; step {steps[i]:.3g})"
                           for i in idx[:6]) + (" ..." if len(idx) > 6 else "")
        warnings.warn(UnsettledStepWarning(
            f"{self.label}: step control did not settle for {len(idx)} parameter(s) of {who}: the results at "
            f"successive steps kept changing by more than their rounding without converging, so the result taken "
            f"is the one that agreed best with the next shorter step's, and its error may be far larger than this "
            f"scheme's usual accuracy, or than that spread: {detail}. They are listed in stats['unsettled_params']"
            + (" (stats['error_estimate'] is inf for them)" if self.scheme == "richardson" else "")
            + ". Compare with complex_step or reverse mode."),
            stacklevel=user_stacklevel())

    def _off_domain(self, where, names, theta, steps, who) -> None:
        """A DomainWarning naming the entries whose stencil met NaN or inf at every step tried."""
        idx = np.flatnonzero(where)
        detail = ", ".join(f"{names[i]} = {theta[i]:.6g}" for i in idx[:6]) + (" ..." if len(idx) > 6 else "")
        tried = ("down to a step of " + ", ".join(f"{steps[i]:.3g}" for i in idx[:6])) if self.step == "auto" \
            else "at the given step"
        warnings.warn(DomainWarning(
            f"{self.label}: f(theta) of {who} is finite, but its stencil meets NaN or inf for {len(idx)} "
            f"parameter(s) {tried}: {detail}. theta sits on the edge of f's domain (log or sqrt at 0, a pole) "
            f"or f overflows next to it; those entries are NaN. "
            + ("Use step='auto' (it shrinks such steps) or a smaller step." if self.step != "auto" else
               "Use a one-sided scheme (forward/backward) pointing into the domain, or reverse mode.")),
            stacklevel=user_stacklevel())

    def _zero_quotients(self, values, value, zero, buffer, params, call, t0, steps) -> tuple:
        """Entries whose stencil values all equal f(theta) exactly, although at a larger step H (16 h, at
        least max(1, |theta_i|) / 16) f(theta + H) - f(theta - H) clearly exceeds the rounding of f
        while the change it implies at h, (f(theta + H) - f(theta - H)) h / H, does not: the first-order
        change at h fell below the spacing of floats at f. Truly flat entries (an unused input, a dead
        relu), symmetric ones (a minimum) and ones flat at h but not at H (a kink between h and H) stay
        as computed. Costs two evaluations per entry whose stencil values were all equal.
        Returns (lost flags, probe steps, |f(theta + H) - f(theta - H)| per entry, the rounding of f, evaluations)."""
        idx = np.flatnonzero(~zero & np.all(values == value, axis=1))
        lost, changes = np.zeros(zero.shape, dtype=bool), np.zeros(zero.shape)
        probe = np.maximum(16 * steps, np.maximum(1.0, np.abs(t0)) / 16).astype(t0.dtype)
        noise = 4 * float(np.spacing(np.abs(t0.dtype.type(value))))
        if not len(idx):
            return lost, probe, changes, noise, 0
        for i in idx:
            x = buffer[i]
            buffer[i] = t0[i] + probe[i]
            up = float(np.reshape(call(NUMPY, params), ()))
            buffer[i] = t0[i] - probe[i]
            down = float(np.reshape(call(NUMPY, params), ()))
            buffer[i] = x
            changes[i] = change = abs(up - down)
            lost[i] = noise < change and change * steps[i] / float(probe[i]) <= noise
        return lost, probe.astype(np.float64), changes, noise, 2 * len(idx)

    def _trap(self, where: np.ndarray, names: list[str], theta: np.ndarray, steps: np.ndarray, kind: str) -> None:
        """The float32 trap: raise (or warn, ``zero_step="warn"``) naming the parameters; their entries become NaN."""
        if not where.any():
            return
        idx = np.flatnonzero(where)
        spacing = np.spacing(np.abs(theta[idx]).astype(DTYPES[self.dtype]))
        detail = ", ".join(f"{names[i]} = {theta[i]:.6g} (step {steps[i]:.3g}, float spacing there {s:.3g})"
                           for i, s in list(zip(idx, spacing))[:6])
        what = {"step": "the step vanishes: theta_i + h == theta_i, so the difference quotient would be exactly 0",
                "complex": "the complex step h underflows to 0 in this dtype, so Im f(theta + ih) / h is undefined",
                "quotient": "f(theta_i +- h) == f(theta) exactly although f changes at a larger step: the change is "
                            "below the rounding of f, so the difference quotient would be exactly 0"}[kind]
        msg = (f"{self.label}: in {self.dtype}, for {len(idx)} parameter(s) {what}. {detail}"
               f"{' ...' if len(idx) > 6 else ''}. {self._trap_advice(kind)}")
        if self.zero_step == "raise":
            raise StepUnderflowError(msg)
        warnings.warn(StepUnderflowWarning(msg + " Those entries are NaN."), stacklevel=user_stacklevel())

    def _trap_advice(self, kind: str) -> str:
        """What to do, only what applies to this configuration."""
        wider = " or dtype='float64' (its floats are 2^29 times finer)" if self.dtype == "float32" else ""
        if kind == "complex":
            return (f"Use a step that {self.dtype} can hold (step='auto' is {COMPLEX_STEP:g}){wider}.")
        if self.step != "auto":
            return ("Use step='auto' (it enlarges such a parameter's step and reports it in stats['step_changes']) "
                    f"or a larger step{wider}.")
        return ("Even a step enlarged 256-fold shows no change of f beyond its rounding: f is flatter in this "
                "parameter than differences of f can resolve. Use complex_step or reverse mode for it" + wider + ".")

    def _complex(self, theta, nominal, bind, call, names, who, value):
        """``_complex_entries`` with comparisons on theta reporting exact ties to the kink tracker (``RealOrdered``)."""
        tracker = KinkTracker(COMPLEX) if self.kink_check else None
        with RealOrdered.reporting_ties(tracker):
            return self._complex_entries(theta, nominal, bind, call, names, who, value, tracker)

    def _complex_entries(self, theta, nominal, bind, call, names, who, value, tracker):
        """(grad, tie flags, steps, zero-step flags, probe evaluations, retry evaluations, step changes).

        A real output from a complex theta is either a function that does not depend on theta (gradient 0)
        or one that dropped the imaginary part (a TypeError); ``_constant_in`` tells them apart. An exactly
        zero imaginary part while f changes on the real axis is either an h f' that underflowed (0, or with a
        relative step a retry at ``_safe_step``) or a dropped imaginary part (a TypeError): a step of the real
        probe's size along the imaginary axis tells them apart (``_carries``). With automatic steps, an
        entry whose Im f came out subnormal is evaluated again at a longer step, and an entry at theta_i == 0
        whose derivative is small enough for the h^2 f''' / 6 term to show is extrapolated from h and 2h."""
        real_t = DTYPES[self.dtype]
        t = theta.astype(COMPLEX_DTYPES[self.dtype])
        h = nominal.astype(real_t)
        zero = h == 0
        self._trap(zero, names, theta, nominal, "complex")
        xp = tracker or COMPLEX
        buffer = t.view(RealOrdered)  # comparisons of theta (masks for xp.where) look at the real point
        params = _bind_views(bind, buffer)
        grad = np.empty(theta.size)
        ties = np.zeros(theta.size, dtype=bool)
        steps = h.astype(np.float64)  # the step each entry's result was divided by
        auto, cap = self.step == "auto", real_t(COMPLEX_STEP)
        tiny, eps = float(np.finfo(real_t).tiny), float(np.finfo(real_t).eps)
        subnormal = float(np.finfo(real_t).smallest_subnormal)
        t0 = theta.astype(real_t)
        changes: dict[str, str] = {}
        n_probes, n_retry, real = 0, 0, None

        def imag_at(i, step):
            """Im f(theta + i step e_i) on the complex namespace (NaN if f returned a real number)."""
            x = buffer[i]
            buffer[i] = x + 1j * real_t(step)
            try:
                with _quiet():
                    out = np.array(call(COMPLEX, params))
            finally:
                buffer[i] = x
            return float(np.imag(out).reshape(())) if np.iscomplexobj(out) else np.nan

        for i in range(theta.size):
            x = buffer[i]
            buffer[i] = x + 1j * h[i]
            if tracker:
                tracker.start()
            try:
                with _quiet():
                    out = np.array(call(xp, params))  # a copy: f may return a view of the buffer (identity, p["a"])
            except NotAnalyticError as e:
                raise TypeError(f"complex_step needs {who} to carry complex numbers through analytically; its "
                                f"imaginary part does not move with {names[i]} as the derivative does: it called "
                                f"np.{e.name} on theta, which is not analytic (np.abs and np.conj drop the "
                                "perturbation, np.sign turns it into another). Write it with xp functions only "
                                "(xp.abs, xp.sign, xp.maximum, ...), or use scheme='central'.") from None
            if tracker:
                ties[i] = tracker.record()
            buffer[i] = x
            if not np.iscomplexobj(out):
                # a real result: f does not depend on theta_i (0), or it dropped the imaginary part (refused)
                constant, probes = _constant_in(i, out, value, buffer, params, call, theta, self.dtype)
                n_probes += probes
                if not constant:
                    raise TypeError(f"complex_step needs {who} to carry complex numbers through; it returned "
                                    f"{np.asarray(out).dtype} from a complex theta although its value depends on "
                                    f"{names[i]}. Write it with xp functions only (no float(), np.real, np.abs or "
                                    "other np.* calls or comparisons on theta), or use scheme='central'.")
                grad[i] = 0.0 if not zero[i] else np.nan
                continue
            if zero[i]:
                grad[i] = np.nan
                continue
            im = float(np.imag(out).reshape(()))
            grad[i] = im / float(h[i])
            if im == 0 and not ties[i]:  # exactly 0: flat, even, a zero-slope branch, an underflow, or dropped
                if real is None:  # (its own evaluation at theta records the kink branches there)
                    real, n_probes = _RealProbe(theta.astype(real_t), bind, call, value), n_probes + 1
                n_probes += 2
                probe = 16 * float(auto_steps(theta[i:i + 1], 2, self.dtype)[0])
                if not real.odd_change(i, probe):
                    continue
                # f moves on the real axis: h f' underflowed, or some np.* call dropped the imaginary part
                n_probes += 1
                if not _carries(imag_at(i, probe), probe, real.slope):
                    raise TypeError(
                        f"complex_step needs {who} to carry complex numbers through; its imaginary part does "
                        f"not move with {names[i]}, but its value does (f(theta_i + H) - f(theta_i - H) clearly "
                        "nonzero on the real axis, with no kink in between, and Im f(theta_i + iH) / H is not that "
                        f"slope, {real.slope:.6g}): some np.* call (np.abs, np.real, np.conj, float(), a comparison) "
                        "dropped the imaginary part or is not analytic. "
                        "Write it with xp functions only, or use scheme='central'.")
                safe = _safe_step(t0[i], cap)
                if auto and safe > h[i]:  # a relative step: a longer one that is still small next to theta_i
                    n_retry += 1
                    im = imag_at(i, safe)
                    if np.isfinite(im) and im != 0:
                        grad[i], steps[i], changes[names[i]] = im / float(safe), float(safe), "underflow"
                continue  # else h f' is below the smallest float: 0, as documented
            if not auto:
                continue
            if 0 < abs(im) < tiny and h[i] < cap:
                # Im f subnormal: h f' lost bits. Again at a longer step, h times a power of two that lifts Im f
                # to tiny / eps where it has all its bits, at most 1e-20: first at most 2^-27 |theta_i|
                # (truncation below rounding even for log, sqrt or 1/x at 0); where Im f is still subnormal
                # there (below |theta_i| ~ 3e-300 the floor h = tiny already exceeds it), the full lift is taken
                # only if it agrees with the shorter step's result to the resolution of that subnormal Im f
                lift = int(np.ceil(np.log2(tiny / eps / abs(im))))
                target = real_t(min(float(cap), float(np.ldexp(float(h[i]), lift))))
                safe = real_t(min(float(target), float(_safe_step(t0[i], cap))))
                cur_h, cur_im = h[i], im
                for longer, checked in ((safe, False), (target, True)):
                    if not (longer > cur_h and 0 < abs(cur_im) < tiny):
                        continue
                    n_retry += 1
                    im2 = imag_at(i, longer)
                    if not (np.isfinite(im2) and im2 != 0):
                        break
                    if checked and abs(im2 * (float(cur_h) / float(longer)) - cur_im) > 4 * subnormal:
                        break  # the longer step truncates visibly: keep the shorter one's
                    cur_h, cur_im = longer, im2
                if cur_h != h[i]:
                    grad[i], steps[i], changes[names[i]] = cur_im / float(cur_h), float(cur_h), "underflow"
            elif theta[i] == 0 and np.isfinite(value) and \
                    abs(grad[i]) <= float(h[i]) ** 2 * max(1.0, abs(value)) / eps:
                # at 0 the step cannot be relative: D(h) = f' - h^2 f''' / 6 + O(h^4), and where |D(h)| is below
                # h^2 max(1, |f|) / eps, an f''' of the size of f shows. Richardson on h and 2h removes that term
                n_retry += 1
                d2 = imag_at(i, 2 * float(h[i])) / (2 * float(h[i]))
                if np.isfinite(d2) and d2 != grad[i]:
                    grad[i], changes[names[i]] = (4 * grad[i] - d2) / 3, "truncation"
        return grad, ties, steps, zero, n_probes, n_retry, changes


def _safe_step(x, cap) -> Any:
    """The longest complex step still small next to x: min(cap, 2^-27 |x|) rounded down to a power of two, in
    x's dtype (0 at x == 0). Its truncation, (h / x)^2 / 3 relative for log at 0, stays below eps / 2."""
    limit = min(float(cap), 2.0 ** -27 * abs(float(x)))
    return type(cap)(np.ldexp(1.0, int(np.frexp(limit)[1]) - 1) if limit > 0 else 0.0)


def _carries(im: float, step: float, slope: float) -> bool:
    """Whether Im f(theta + iH e_i), at the real probe's step H, shows that f carries the imaginary part: Im f / H
    must be the slope f shows on the real axis over +-H (Cauchy-Riemann), to within half of it. Nonzero is not
    enough: sum(t * np.conj(t)) leaves a fused multiply-add's residue, Im f = 5e-21 at H = 1e-4 (Im f / H = 5e-17
    for a slope of 1.4), which read as carried, and its gradient as an underflowed 0."""
    return bool(np.isfinite(im) and abs(im / step - slope) <= 0.5 * abs(slope))


class _RealProbe:
    """f on the real axis, with kink tracking: tells an exactly-zero complex-step entry that is right (f flat or
    even in theta_i there, or a kink branch between) from one whose imaginary part some np.* call dropped."""

    def __init__(self, t0, bind, call, value):
        self.buffer, self.call, self.value = t0.copy(), call, value
        self.params = _bind_views(bind, self.buffer)
        self.xp = KinkTracker(NUMPY)
        self.xp.start()
        with _quiet():
            call(self.xp, self.params)
        self.centre = self.xp.record()
        self.slope = 0.0  # (f(theta_i + H) - f(theta_i - H)) / 2H of the last ``odd_change``

    def odd_change(self, i: int, probe: float) -> bool:
        """True if f(theta_i +- probe) differ by more than the rounding of f and than their even part, with
        no kink-op branch changed: a derivative of that size that the complex step did not see."""
        x, out = self.buffer[i], []
        try:
            for sign in (1.0, -1.0):
                self.buffer[i] = x + sign * probe
                self.xp.start()
                with _quiet():
                    out.append(float(np.reshape(self.call(self.xp, self.params), ())))
                if self.xp.record() != self.centre:
                    return False
        finally:
            self.buffer[i] = x
        up, down = out
        self.slope = (up - down) / (2 * probe)
        odd, even = abs(up - down), abs(up + down - 2 * self.value)
        noise = 8 * float(np.finfo(self.buffer.dtype).eps) * max(abs(up), abs(down), abs(self.value))
        return bool(odd > 4 * noise and odd > even)


def _same(a: float, b: float) -> bool:
    return a == b or (np.isnan(a) and np.isnan(b))


def _constant_in(i, out, value, buffer, params, call, theta, dtype) -> tuple[bool, int]:
    """(whether f, which returned the real ``out`` at theta + i h e_i, does not depend on theta_i; evaluations).
    It does not when ``out`` equals f(theta) and f is unchanged, bit for bit, at theta_i +- H on the real axis
    (H: 16 times the central auto step, as ``_zero_quotients`` probes). A function that dropped the imaginary
    part (float(), np.real, np.abs on theta) also returns f(theta) there, but changes with the real probe."""
    if not _same(float(np.real(np.reshape(out, ()))), value):
        return False, 0
    probe = 16 * float(auto_steps(theta[i:i + 1], 2, dtype)[0])
    x = buffer[i]
    changed, n = False, 0
    try:
        for sign in (1.0, -1.0):
            buffer[i] = x + sign * probe
            with _quiet():
                moved = call(COMPLEX, params)
            n += 1
            if not _same(float(np.real(np.reshape(moved, ()))), value):
                changed = True
                break
    finally:
        buffer[i] = x
    return not changed, n


def _bind_views(bind: Callable, buffer: np.ndarray) -> Any:
    """``bind(buffer)``, checked to be views on it: writing ``buffer[i]`` must perturb what f sees."""
    params = bind(buffer)
    leaves = pytree.leaves_of(params)
    # (a zero-size leaf shares no memory with anything, and needs none: nothing perturbs it)
    if not all(isinstance(leaf, np.ndarray) and (leaf.size == 0 or np.shares_memory(leaf, buffer)) for leaf in leaves):
        raise RuntimeError("finite differences need the parameters as views of one flat buffer; bind() copied them")
    return params


def _evaluate_stencil(buffer, params, points, call, xp, tracker, center_sig, out_ndim):
    """values[i, k] = f(theta with entry i set to points[k][i]); kinks[i]: a branch differed from the center."""
    stencil = np.stack(points, axis=1)  # (n, m): entry i's points in a row
    values = np.empty(stencil.shape)
    kinks = np.zeros(buffer.size, dtype=bool)
    for i in range(buffer.size):
        values[i], kinks[i] = _evaluate_entry(buffer, params, i, stencil[i], call, xp, tracker, center_sig, out_ndim)
    return values, kinks


def _probe_steps(nominal: np.ndarray, t0: np.ndarray, grad: np.ndarray, centre: float, order: int) -> np.ndarray:
    """Per entry, the scale probe's step (``FiniteDiff._scale_probe``): the automatic step balanced for f's scale 1
    instead of max(1, |theta_i|), c max(1, |f| / |f'_i|, |theta_i|)^(1/(p+1)) with c the scheme's own constant
    (``nominal`` / max(1, |theta_i|): eps^(1/(p+1)), Richardson's coarser one). |f| / |f'_i| weighs f's rounding
    against the slope's size; |theta_i| keeps the step off the ulps of theta_i, where f may cancel values of
    theta's size (at one ulp of theta_i, log-softmax's forward quotients at 1e8 snapped to 1 and 1/2 and were
    taken, 21% off, unreported). The probe is tried where the step used is ``SCALE_PROBE_RATIO`` times longer:
    from |theta_i| ~ 8^((p+1)/p) (forward 64, central 23, five-point 14, Richardson with 4 levels 10)."""
    scale = np.maximum(1.0, np.abs(t0.astype(np.float64)))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.maximum(np.where(grad != 0, abs(centre) / np.abs(grad), np.inf), scale)
    return nominal / scale * ratio ** (1 / (order + 1))


def _sides_agree(i, coarse, centre, t0, evaluate) -> bool:
    """Whether f's one-sided derivatives at theta agree: each side's order-3 tableau (``OneSidedRule``, evaluated
    by ``StepControl.entry``) at steps coarse, coarse / 2, coarse / 4, within the sum of their truncation
    estimates and twice their rounding."""
    sides = []
    for side in (1, -1):
        e = StepControl(OneSidedRule(side, 3), t0, centre, evaluate).entry(i, coarse)
        if not e.finite or not np.all(e.steps > 0):
            return False
        sides.append(e)
    right, left = sides
    return abs(right.grad - left.grad) <= right.trunc + left.trunc + 2 * (right.rounding + left.rounding)


def _agree_across(i, a, b, known, centre, noise, t0, evaluate) -> tuple[bool, float, float]:
    """``FiniteDiff._smooth_across``'s test at steps a > b: whether the one-sided derivatives extrapolated from each
    side's quotients at a and b agree within a quarter of their first-order terms plus rounding (``known``: values
    already evaluated, by point; the others are evaluated); then the two derivatives."""
    real = t0.dtype.type
    points = [float(t0[i] + real(o)) for o in (a, b, -a, -b)]
    missing = [p for p in points if p not in known]
    if missing:
        got, _ = evaluate(i, missing)
        known = {**known, **dict(zip(missing, got))}
    fa, fb, ga, gb = (known[p] for p in points)
    if not (0 < b < a) or not np.all(np.isfinite([fa, fb, ga, gb])):
        return False, np.nan, np.nan
    qa, qb = (fa - centre) / a, (fb - centre) / b   # right
    ra, rb = (centre - ga) / a, (centre - gb) / b   # left
    right, left = (a * qb - b * qa) / (a - b), (a * rb - b * ra) / (a - b)
    rounding = noise * 2 * (a / b + b / a) / (a - b)
    # smooth: e+ - e- = O(a b h f^(4)) while each first-order term |e - q(b)| ~ b |f^(2)| / 2; a kink between
    # theta and the points of one side (not at theta) leaves a 1/s term there that the extrapolation keeps
    return bool(abs(right - left) <= (abs(right - qb) + abs(left - rb)) / 4 + 4 * rounding), right, left


def _evaluate_entry(buffer, params, i, points, call, xp, tracker, center_sig, out_ndim, within=False):
    """(f at theta with entry i set to each of ``points``, whether a kink-op branch differed from the centre's;
    ``within``: from the first point's instead, i.e. whether the points lie on more than one piece of f).
    Callers wrap it in ``_quiet()``: a point off f's domain is found from the values, not from numpy's warnings."""
    x, values, kink = buffer[i], np.empty(len(points)), False
    try:
        for k, point in enumerate(points):
            buffer[i] = point
            if tracker is not None:
                tracker.start()
            out = call(xp, params)
            values[k] = out if out_ndim == 0 else np.reshape(out, ())
            if tracker is not None:
                record = tracker.record()
                if within and k == 0:
                    center_sig = record
                elif record != center_sig:
                    kink = True
    finally:
        buffer[i] = x
    return values, kink


def _leaf_names(theta: Any, leaves: list[np.ndarray]) -> list[str]:
    """Printable names per flat entry of a user's theta: ``theta[3]``, ``W[0, 1]``, ``b``, ``theta[0]['W'][1, 2]``."""
    return param_entry_names(theta)
