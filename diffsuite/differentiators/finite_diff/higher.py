"""Finite differences of second order and of vector functions: Hessians, HVPs, JVPs, VJPs, Jacobians.

Step rules (eps: the dtype's machine epsilon; each step is made exactly representable, x + h - x == h). A step
along a direction t is scaled by the entries t touches, max(1, max_{i: t_i != 0} |x_i|) / |t|_inf, as ``grad``'s
automatic steps are per parameter: one scale for all of theta, max(1, |x|_inf), stepped exp(t0) by 6e3 when
another entry was 1e8 (f = exp(t0) + 1e-16 t1^2 at (0.5, 1e8): jvp along e0 1.3e260 for 1.6487, Hessian inf/NaN).

- first differences along a direction t (``jvp``, ``jacobian`` columns): central h ~ eps^(1/3) (error
  ~ eps^(2/3)), forward/backward h ~ eps^(1/2) (error ~ eps^(1/2)), five-point h ~ eps^(1/5); complex step
  Im f(x + i h t) / h with a tiny h: no subtraction, error ~ eps.
- second differences (``hessian``, ``hvp``, every real scheme): the four-point central formula
  [f(x+a+b) - f(x+a-b) - f(x-a+b) + f(x-a-b)] / (4 |a| |b|), whose truncation error is O(h^2) and rounding
  error O(eps |f| / h^2): the optimum is h ~ eps^(1/4), the error then ~ eps^(1/2) (1e-8 in float64) times
  the function's scale: squared rounding error, the price of a second difference.
- complex step (``scheme="complex_step"``), the mixed first order: Im f(x + i h v + d e_i) is d/dv f at
  x + d e_i with no rounding loss, and a central difference in d of that gives (H v)_i with d ~ eps^(1/3):
  error ~ eps^(2/3) (4e-11), the imaginary direction costing nothing in accuracy. The function must be
  analytic along v (the complex namespace decides branches on real parts, as for gradients).

Costs (function evaluations, central differences): jvp 2 (complex: 1), jacobian 2n (n), hvp 4n (complex: 2n),
hessian 2n(n+1) (complex: 2n^2); each also evaluates f(x) once, for the value (forward and backward differences'
own f(x): a Jacobian by forward differences costs n + 1), except the complex step's jvp, whose value is the real
part of its one evaluation. No kink detection for second differences: a step that straddles a kink gives a
garbage curvature (a Dirac mass smeared over h); check them at points away from kinks.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np

from ... import pytree
from ...errors import user_stacklevel
from ...namespace import NUMPY
from ...objective import Objective
from ...structure import Structure, output_value
from ..base import WithStats, check_result, no_extra_arguments, scalar_check, unavailable
from .namespaces import COMPLEX, KinkTracker, NotAnalyticError, RealOrdered

FIRST_ORDER_SCHEMES = ("forward", "backward", "central", "five_point", "complex_step")


class _Evaluator:
    """f at flat points of theta's structure, in the differentiator's dtype (complex for the complex step).

    With ``kink_check`` (first differences: jvp, jacobian, vjp) the real evaluations run under a ``KinkTracker``,
    as ``grad`` does: the first evaluation (at theta) records the centre's kink branches, and ``straddled`` turns
    True when a later point took another branch (its stencil straddles a kink). A function with no kink op on its
    path tracks nothing after the centre."""

    def __init__(self, f: Callable, theta: Any, args: tuple, dtype: str, kink_check: bool = False):
        self.dtype = np.dtype(dtype)
        self.n_evals = 0
        self.tracker = KinkTracker(NUMPY) if kink_check else None
        self.center_sig: bytes | None = None
        self.straddled = False
        self.f_size = 0.0  # |f(x)| (the first evaluation is at theta): its rounding bounds how short a step may be
        if isinstance(f, Objective):
            no_extra_arguments(f, args)
            layout = list(f.model.layout.items())
            self.structure = Structure.blocks(f.check_theta(theta), [spec for _, spec in layout])
            names = [name for name, _ in layout]
            inputs, targets = f.data(self.dtype)
            self.call = lambda xp, parts: f.evaluate(xp, dict(zip(names, parts)), inputs, targets)
        else:
            self.structure = Structure.of(theta)
            cast = tuple(np.asarray(a, dtype=self.dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
                         for a in args)
            self.call = lambda xp, parts: check_result(f(xp, self.structure.rebuild(parts), *cast),
                                                       getattr(f, "__name__", "f"))
        self.x = self.structure.flat().astype(self.dtype)
        self.eps = float(np.finfo(self.dtype).eps)

    def __call__(self, point: np.ndarray) -> np.ndarray:
        self.n_evals += 1
        complex_ = np.iscomplexobj(point)
        parts = self.structure.split(point)
        tracker = None if complex_ else self.tracker
        if tracker is not None:
            tracker.start()
        if complex_:  # comparisons of theta look at the real point, as grad's complex step (``RealOrdered``)
            parts = [part.view(RealOrdered) for part in parts]
        try:
            with np.errstate(all="ignore"):
                out = self.call(COMPLEX if complex_ else (tracker or NUMPY), parts)
        except NotAnalyticError as e:
            raise TypeError(str(e)) from None
        if tracker is not None:
            sig = tracker.record()
            if self.center_sig is None:  # the first evaluation is at theta (every caller evaluates f(x) first)
                self.center_sig = sig
                if sig == b"":  # no kink op on the path: track nothing, pay nothing
                    self.tracker = None
            elif sig != self.center_sig:
                self.straddled = True
        out = np.asarray(out, dtype=np.complex128 if complex_ else np.float64)
        if self.n_evals == 1 and not complex_ and out.size:
            self.f_size = float(np.max(np.abs(out))) if np.all(np.isfinite(out)) else 0.0
        return out

    def take_straddled(self) -> bool:
        """Whether a point since the last call took another kink branch than theta (and reset the flag)."""
        hit, self.straddled = self.straddled, False
        return hit

    def entry_names(self) -> list[str]:
        names = (pytree.entry_names(self.structure.leaves, self.structure.names)
                 if self.structure.names is not None else None)
        return names if names and len(names) == self.x.size else [f"theta[{i}]" for i in range(self.x.size)]

    def scale_of(self, t: np.ndarray) -> float:
        """max(1, |x_i|) over the entries the direction t touches (t_i != 0), raised towards |f(x)|^(1/4) but never
        past max(1, |x|_inf). The touched entries alone keep a huge entry elsewhere from stretching the step into
        an overflow (exp(t0) + 1e-16 t1^2 at (0.5, 1e8)); but a step that short makes a second difference of a
        large f all rounding (sum(t^3) at (1e3, 0.5, -2): eps |f| / h^2 ~ 1 along t1), and |f|^(1/4) is the
        scale at which a second difference's rounding, eps |f| / h^2, stays at sqrt(eps) for h = eps^(1/4) scale."""
        x = np.abs(np.asarray(self.x, dtype=np.float64))
        touched = x[np.asarray(t) != 0]
        own = max(1.0, float(np.max(touched))) if touched.size else 1.0
        whole = max(1.0, float(np.max(x))) if x.size else 1.0
        return max(own, min(self.f_size ** 0.25, whole))

    def step_along(self, t: np.ndarray, power: float) -> tuple[np.ndarray, float]:
        """(h t, h) with h ~ eps^power * scale / |t|_inf (``scale_of``), rounded so that x + h t is the point meant."""
        size = float(np.max(np.abs(t))) if t.size else 0.0
        if size == 0.0:
            return np.zeros_like(self.x), 0.0
        h = self.eps ** power * self.scale_of(t) / size
        h = float((self.x[np.argmax(np.abs(t))] + h) - self.x[np.argmax(np.abs(t))]) or h  # representable
        return (h * t).astype(self.dtype), h


def directional(ev: _Evaluator, t: np.ndarray, scheme: str, f0: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(f(x), d/dt f(x)) by ``scheme`` (first order). ``f0``: f(x) if already evaluated (a Jacobian's columns
    share it), so that only the stencil's own points are evaluated."""
    x = ev.x
    if scheme == "complex_step":
        size = float(np.max(np.abs(t))) if t.size else 0.0
        if size == 0.0:
            f0 = ev(x) if f0 is None else f0
            return f0, np.zeros_like(f0)
        h = 1e-20 * ev.scale_of(t) / size
        out = ev(x + 1j * h * t)
        return out.real, out.imag / h
    power = {"central": 1 / 3, "forward": 1 / 2, "backward": 1 / 2, "five_point": 1 / 5}[scheme]
    d, h = ev.step_along(t, power)
    f0 = ev(x) if f0 is None else f0
    if h == 0.0:
        return f0, np.zeros_like(f0)
    with np.errstate(all="ignore"):  # (an f that overflows there gives inf or NaN, not numpy's warnings)
        if scheme == "forward":
            return f0, (ev(x + d) - f0) / h
        if scheme == "backward":
            return f0, (f0 - ev(x - d)) / h
        if scheme == "central":
            return f0, (ev(x + d) - ev(x - d)) / (2 * h)
        return f0, (ev(x - 2 * d) - 8 * ev(x - d) + 8 * ev(x + d) - ev(x + 2 * d)) / (12 * h)


def second_along(ev: _Evaluator, a: np.ndarray, b: np.ndarray, complex_step: bool) -> float:
    """d^2 f / (da db) at x: the four-point central formula, or complex step along b over a central difference along a."""
    x = ev.x
    if complex_step:
        da, ha = ev.step_along(a, 1 / 3)
        size = float(np.max(np.abs(b)))
        if ha == 0.0 or size == 0.0:
            return 0.0
        hb = 1e-20 * ev.scale_of(b) / size
        up, down = ev(x + da + 1j * hb * b), ev(x - da + 1j * hb * b)
        with np.errstate(all="ignore"):
            return float(np.reshape((up.imag - down.imag) / (2 * ha * hb), ()))
    da, ha = ev.step_along(a, 1 / 4)
    db, hb = ev.step_along(b, 1 / 4)
    if ha == 0.0 or hb == 0.0:
        return 0.0
    with np.errstate(all="ignore"):  # (an f that overflows there gives inf or NaN, not numpy's warnings)
        v = ev(x + da + db) - ev(x + da - db) - ev(x - da + db) + ev(x - da - db)
        return float(np.reshape(v / (4 * ha * hb), ()))


def _scalar(ev: _Evaluator, f: Callable) -> float:
    value = ev(ev.x)
    scalar_check(np.shape(value), getattr(f, "__name__", "f"))
    return float(np.reshape(value, ()))


def _first_order_evaluator(d, f: Callable, theta: Any, args: tuple) -> _Evaluator:
    # the complex step evaluates kink ops on real parts (a tie is its own convention, as in grad): no tracking
    return _Evaluator(f, theta, args, d.dtype, kink_check=d.kink_check and d.scheme != "complex_step")


def _kink_report(d, f: Callable, stats: dict, what: str, names: list[str]) -> None:
    """``stats["kink_params"]`` and, if any and ``d.warn``, a ``KinkWarning`` (grad's, for directional stencils)."""
    from . import KinkWarning, _name_list
    stats["kink_params"] = names
    if names and d.warn:
        warnings.warn(KinkWarning(
            f"{d.label}: the step of {what} straddles a kink (relu/max/min/abs/hinge/step) of "
            f"{getattr(f, '__name__', 'f')}, so those derivatives average two one-sided derivatives"
            f"{': ' + _name_list(names) if names != ['tangent'] else ''}. Compare with a forward or reverse "
            "method, which use the conventions relu'(0) = 0 etc."), stacklevel=user_stacklevel())


def jvp(d, f: Callable) -> WithStats:
    def jvp_fn(stats, theta, tangent, *args):
        _first_order_scheme(d, "jvp")
        ev = _first_order_evaluator(d, f, theta, args)
        value, dv = directional(ev, ev.structure.flatten_like(tangent, "tangent").astype(ev.dtype), d.scheme)
        stats.update(evaluations=ev.n_evals, scheme=d.scheme)
        _kink_report(d, f, stats, "the tangent direction", ["tangent"] if ev.take_straddled() else [])
        return output_value(value), output_value(dv)

    return WithStats(jvp_fn, "jvp", d.label)


def _jacobian_flat(d, ev: _Evaluator) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(f(x), the flat Jacobian, the names of the parameters whose column's stencil straddled a kink)."""
    n = ev.x.size
    cols, value, kinks = [], ev(ev.x), []
    for i in range(n):
        e = np.zeros(n, dtype=ev.dtype)
        e[i] = 1.0
        cols.append(directional(ev, e, d.scheme, f0=value)[1])  # (f(x) once, not once per column)
        if ev.take_straddled():
            kinks.append(i)
    J = np.stack(cols, axis=-1) if cols else np.zeros(np.shape(value) + (0,))
    names = ev.entry_names() if kinks else []
    return np.asarray(value, dtype=np.float64), J, [names[i] for i in kinks]


def jacobian(d, f: Callable) -> WithStats:
    def jacobian_fn(stats, theta, *args):
        _first_order_scheme(d, "jacobian")
        ev = _first_order_evaluator(d, f, theta, args)
        value, J, kinks = _jacobian_flat(d, ev)
        stats.update(evaluations=ev.n_evals, scheme=d.scheme)
        _kink_report(d, f, stats, f"{len(kinks)} parameter(s)", kinks)
        return ev.structure.jacobian(J, value.shape)

    return WithStats(jacobian_fn, "jacobian", d.label)


def vjp(d, f: Callable) -> WithStats:
    def vjp_fn(stats, theta, *args):
        _first_order_scheme(d, "vjp")
        ev = _first_order_evaluator(d, f, theta, args)
        value, J, kinks = _jacobian_flat(d, ev)
        stats.update(evaluations=ev.n_evals, scheme=d.scheme,
                     note="finite differences build the whole Jacobian (n directional differences) for a VJP")
        _kink_report(d, f, stats, f"{len(kinks)} parameter(s)", kinks)

        def pullback(u):
            u = np.asarray(u, dtype=np.float64)
            if u.shape != value.shape:
                raise ValueError(f"the cotangent u must be shaped like f's output {value.shape}; got {u.shape}")
            return ev.structure.tree(np.tensordot(u, J, axes=u.ndim))

        return output_value(value), pullback

    return WithStats(vjp_fn, "vjp", d.label)


def hessian(d, f: Callable) -> WithStats:
    def hessian_fn(stats, theta, *args):
        ev = _Evaluator(f, theta, args, d.dtype)
        stats["value"] = _scalar(ev, f)
        n = ev.x.size
        eye = np.eye(n, dtype=ev.dtype)
        H = np.zeros((n, n))
        complex_step = d.scheme == "complex_step"
        for i in range(n):
            for j in range(n if complex_step else i + 1):
                H[i, j] = second_along(ev, eye[i], eye[j], complex_step)
                if not complex_step:
                    H[j, i] = H[i, j]
        stats.update(evaluations=ev.n_evals, method=_method(d))
        return ev.structure.hessian(H)

    return WithStats(hessian_fn, "hessian", d.label)


def hvp(d, f: Callable) -> WithStats:
    def hvp_fn(stats, theta, v, *args):
        ev = _Evaluator(f, theta, args, d.dtype)
        stats["value"] = _scalar(ev, f)
        vf = ev.structure.flatten_like(v, "v").astype(ev.dtype)
        n = ev.x.size
        eye = np.eye(n, dtype=ev.dtype)
        Hv = np.array([second_along(ev, eye[i], vf, d.scheme == "complex_step") for i in range(n)])
        stats.update(evaluations=ev.n_evals, method=_method(d))
        return ev.structure.tree(Hv)

    return WithStats(hvp_fn, "hvp", d.label)


def _method(d) -> str:
    return ("complex step over a central difference (d ~ eps^(1/3))" if d.scheme == "complex_step"
            else "central second differences (h ~ eps^(1/4))")


def _first_order_scheme(d, method: str) -> None:
    if d.scheme not in FIRST_ORDER_SCHEMES:
        raise unavailable(d.label, method, f"scheme {d.scheme!r} is a gradient extrapolation, not defined here for "
                          "directional derivatives", f"Use get_differentiator('finite_diff', scheme='central') or "
                          "'complex_step' (or 'five_point'), or an AD method (forward, reverse).")
