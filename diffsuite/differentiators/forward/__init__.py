"""Forward-mode automatic differentiation: dual values pushed through a JVP table, on numpy or torch.

Cost model: one JVP (a forward pass carrying a tangent) gives the derivative along one direction,
so a gradient of n parameters costs n JVPs, where reverse mode pays one backward pass: the
lecture's argument for backpropagation. Here the n directions travel together (a tangent with a
leading axis of up to ``directions_per_pass`` directions), so the n JVPs cost few passes of wider
arithmetic; the arithmetic still grows with n. Error model: rounding only, as in reverse mode.

Files: ``jvps.py`` (one JVP per primitive, keyed by the op names of ``reverse/ops.py``), ``dual.py``
(dual values, the forward trace, the xp namespace), ``second_order.py`` (forward-over-reverse and
forward-over-forward). Forward mode is built on the reverse *engine*: its primitives' forwards
(``reverse/ops.py``), backends (``reverse/backends``), the lifted backend that nests traces
(``reverse/lifted.py``) and, for forward-over-reverse, the tape. The dependency is one-way: the reverse
package never imports this one. docs/higher_order.md has the methods, costs and comparisons.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np

from ...objective import Objective
from ...structure import Structure, output_value
from ..base import (Gradient, WithStats, check_dtype, call_checked, positional_only, scalar_check, structured,
                    with_argnums_of)
from ..reverse.backends import check_placement, load_backend
from .dual import Dual, DualNamespace, ForwardTrace
from .jvps import JVPS, defjvp
from .second_order import SECOND_ORDER, basis, over_forward, over_reverse

DTYPES = ("float64", "float32")
#: a returned function keeps its basis tangents (built once per theta shape) while they have at most this many
#: entries (n^2), for at most this many distinct shapes
CACHED_BASIS_ENTRIES, CACHED_BASIS_SHAPES = 1 << 22, 8


@dataclass(frozen=True)
class Forward:
    """``get_differentiator("forward", backend="numpy"|"torch", device="cpu"|"cuda", dtype=..., directions_per_pass=256)``.

    ``grad`` costs n JVPs (n = number of parameters), evaluated ``directions_per_pass`` at a time.
    ``stats``: ``jvps`` (directions pushed), ``passes`` (forward passes), ``jvp_rules`` (primitive
    JVPs evaluated, summed over passes).
    """

    backend: str = "numpy"
    device: str = "cpu"
    dtype: str = "float64"
    directions_per_pass: int = 256
    second_order: str = "forward_over_reverse"
    name: ClassVar[str] = "forward"

    def __post_init__(self):
        check_placement(self.backend, self.device)  # refused here, not at the first call
        check_dtype(self, DTYPES)
        if not (isinstance(self.directions_per_pass, int) and self.directions_per_pass >= 1):
            raise ValueError(f"directions_per_pass must be an int >= 1; got {self.directions_per_pass!r}")
        if self.second_order not in SECOND_ORDER:
            raise ValueError(f"second_order must be one of {', '.join(SECOND_ORDER)}; got {self.second_order!r}")

    @property
    def label(self) -> str:
        where = self.backend if self.backend == "numpy" else f"{self.backend}-{self.device}"
        return f"forward[{where}{'' if self.dtype == 'float64' else ',' + self.dtype}]"

    def load(self):
        return load_backend(self.backend, device=self.device, dtype=self.dtype)

    # ----- the engine: push tangents through f -----
    @staticmethod
    def _push(trace: ForwardTrace, f: Callable, structure: Structure, primals: list, tangents: list,
              args: tuple) -> tuple[Any, Any]:
        """(output primal, output tangent or None) of ``f`` at ``primals`` moving along ``tangents``."""
        duals = [trace.dual(p, t) for p, t in zip(primals, tangents)]
        out = call_checked(f, getattr(f, "__name__", "f"), DualNamespace(trace), structure.rebuild(duals), *args)
        if type(out) is Dual and out.tape is trace:
            return out.primal, out.tangent
        if type(out) is Dual:
            trace._constant(out)  # raises for a value kept from an earlier call (nested: an outer level's constant)
        return out, None

    def _jacobian_flat(self, B, f: Callable, structure: Structure, args: tuple, stats: dict,
                       directions: list | None = None) -> tuple[Any, np.ndarray]:
        """(value as numpy, J with shape out.shape + (n,)), by n JVPs, ``directions_per_pass`` at a time.
        ``directions``: the basis tangents of each pass, if already built (an objective's: built once)."""
        primals = [B.asarray(leaf) for leaf in structure.leaves]
        n = structure.n
        passes = directions if directions is not None else self._basis_passes(B, structure)
        cols, value, rules = [], None, 0
        for tangents in passes:
            trace = ForwardTrace(B)
            out, t = self._push(trace, f, structure, primals, tangents, args)
            value = np.asarray(B.to_numpy(B.constant(out)))
            k = tangents[0].shape[0] if tangents else 0
            # a copy: the output tangent may be an input's (f(t) = t[0]), which is the kept basis itself
            cols.append(np.zeros((k,) + value.shape) if t is None else np.array(B.to_numpy(t)))
            rules += trace.n_jvps
        T = cols[0] if len(cols) == 1 else np.concatenate(cols, axis=0) if cols else np.zeros((0,) + value.shape)
        stats.update(jvps=n, passes=len(passes), jvp_rules=rules)
        return value, (T if T.ndim == 1 else np.moveaxis(T, 0, -1))

    def _cached_basis(self, B, structure: Structure, cache: dict) -> list[list] | None:
        """``_basis_passes`` kept in ``cache`` (one per returned function) by the leaves' shapes, at most
        ``CACHED_BASIS_SHAPES`` shapes and ``CACHED_BASIS_ENTRIES`` entries (n^2) in all; None for a theta above that
        (built per call). The JVP rules never write into a tangent they are given (numpy's float64 basis is
        read-only, so one that did would raise), and results are copies (``_jacobian_flat``): no caller can
        reach a kept tangent."""
        if structure.n ** 2 > CACHED_BASIS_ENTRIES:
            return None
        key = tuple(leaf.shape for leaf in structure.leaves)
        passes = cache.get(key)
        if passes is None:
            kept = sum(sum(math.prod(shape) for shape in shapes) ** 2 for shapes in cache)  # entries held now
            if len(cache) >= CACHED_BASIS_SHAPES or kept + structure.n ** 2 > CACHED_BASIS_ENTRIES:
                cache.clear()  # (at most 2^22 entries in all: 32 MB of float64, on the GPU for torch-CUDA)
            passes = cache[key] = self._basis_passes(B, structure)
        return passes

    def _basis_passes(self, B, structure: Structure) -> list[list]:
        """Per pass, the tangents of ``directions_per_pass`` basis directions (per leaf: ``(k,) + leaf.shape``)."""
        n, k = structure.n, self.directions_per_pass
        return [basis(B, structure, start, min(n, start + k)) for start in range(0, max(n, 1), k)]

    # ----- objectives and gradients -----
    def value_and_grad(self, objective: Objective | Callable) -> Callable[[np.ndarray], Gradient]:
        """``(theta, batch=None) -> Gradient`` for an ``Objective`` (or ``f(xp, theta)`` of a flat theta), by n JVPs;
        ``batch=(X, y)`` evaluates on that minibatch instead of the objective's data (checked, no re-setup)."""
        if isinstance(objective, Objective):
            B = self.load()
            inputs, targets = (B.asarray(a) for a in objective.data(np.float64))
            names = list(objective.model.layout)

            def f(xp, params_list, x, y):
                return objective.evaluate(xp, dict(zip(names, params_list)), x, y)

            layout = [spec for spec in objective.model.layout.values()]
            shape_only = Structure([np.empty(shape) for _, _, shape in layout], lambda new: new, None)
            # the basis tangents are the same every call: built once, when they are small (n^2 entries)
            directions = self._cached_basis(B, shape_only, {})

            def value_and_grad_fn(theta: np.ndarray, batch: tuple | None = None) -> Gradient:
                flat = objective.check_theta(theta)
                data = (inputs, targets) if batch is None else tuple(B.asarray(a) for a in objective.batch_data(batch))
                structure = Structure([flat[a:b].reshape(shape) for a, b, shape in layout], lambda new: new, None)
                stats: dict = {}
                value, J = self._jacobian_flat(B, f, structure, data, stats, directions)
                scalar_check(value.shape, objective.describe())
                return Gradient(float(value.reshape(())), J.reshape(-1), stats)

            return value_and_grad_fn
        vg = self.value_and_grad_fn(objective)
        return lambda theta, *args: vg(theta, *args)  # (f's own arguments after theta, as value_and_grad_fn)

    def value_and_grad_fn(self, f: Callable) -> Callable[..., Gradient]:
        """``(theta, *args) -> Gradient`` for ``f(xp, theta, *args) -> scalar``; grad has theta's structure."""
        B, bases = self.load(), {}

        def value_and_grad_fn(theta: Any, *args: Any, **kwargs: Any) -> Gradient:
            if kwargs:
                positional_only(kwargs)
            structure, fn = structured(f, theta)
            stats: dict = {}
            value, J = self._jacobian_flat(B, fn, structure, args, stats, self._cached_basis(B, structure, bases))
            scalar_check(value.shape, getattr(f, "__name__", "f"))
            return Gradient(float(value.reshape(())), structure.jacobian(J.reshape(-1), ()), stats)

        return value_and_grad_fn

    def grad(self, f: Callable, argnums: int | tuple[int, ...] = 0) -> Callable[..., Any]:
        """``(theta, *args) -> gradient`` of ``f(xp, theta, *args)``, in theta's structure (n JVPs; ``argnums``:
        see ``diffsuite.pytree.with_argnums``, as for the other differentiators)."""
        return with_argnums_of(self, f, argnums)

    # ----- higher order -----
    def jvp(self, f: Callable) -> WithStats:
        """``(theta, tangent, *args) -> (value, jvp)``: one forward pass carrying one tangent."""
        B = self.load()

        def jvp_fn(stats, theta, tangent, *args):
            structure, fn = structured(f, theta)
            t = structure.flatten_like(tangent, "tangent")
            trace = ForwardTrace(B)
            out, dt = self._push(trace, fn, structure, [B.asarray(leaf) for leaf in structure.leaves],
                                 [B.asarray(p) for p in structure.split(t)], args)
            value = np.asarray(B.to_numpy(B.constant(out)))
            stats.update(jvps=1, passes=1, jvp_rules=trace.n_jvps)
            return output_value(value), output_value(np.zeros(value.shape) if dt is None else B.to_numpy(dt))

        return WithStats(jvp_fn, "jvp", self.label)

    def jacobian(self, f: Callable) -> WithStats:
        """``(theta, *args) -> J`` (``out.shape + theta.shape``, or a dict of those): n JVPs."""
        B, bases = self.load(), {}

        def jacobian_fn(stats, theta, *args):
            structure, fn = structured(f, theta)
            value, J = self._jacobian_flat(B, fn, structure, args, stats, self._cached_basis(B, structure, bases))
            return structure.jacobian(J, value.shape)

        return WithStats(jacobian_fn, "jacobian", self.label)

    def vjp(self, f: Callable) -> WithStats:
        """``(theta, *args) -> (value, pullback)``. Forward mode has no cheap VJP: the Jacobian is built first
        (n JVPs), and ``pullback(u)`` contracts it with ``u``. Reverse mode gives a VJP for one backward pass."""
        B, bases = self.load(), {}

        def vjp_fn(stats, theta, *args):
            structure, fn = structured(f, theta)
            value, J = self._jacobian_flat(B, fn, structure, args, stats, self._cached_basis(B, structure, bases))
            stats["note"] = "forward mode builds the whole Jacobian (n JVPs) for a VJP"

            def pullback(u):
                u = np.asarray(u, dtype=np.float64)
                if u.shape != value.shape:
                    raise ValueError(f"the cotangent u must be shaped like f's output {value.shape}; got {u.shape}")
                return structure.tree(np.tensordot(u, J, axes=u.ndim))

            return output_value(value), pullback

        return WithStats(vjp_fn, "vjp", self.label)

    def hessian(self, f: Callable) -> WithStats:
        """``(theta, *args) -> H`` of a scalar ``f``: n directions (``directions_per_pass`` at a time) through the
        recorded gradient (forward-over-reverse), or n x n JVP-of-JVPs (forward-over-forward)."""
        B = self.load()

        def hessian_fn(stats, theta, *args):
            structure, fn = structured(f, theta)
            n, k = structure.n, self.directions_per_pass
            if self.second_order == "forward_over_forward":
                eye = [B.asarray(p) for p in structure.split(np.eye(n), (n,))]
                value, H = over_forward(B, fn, structure, eye, (n,), args, stats, k)
            else:
                rows = []
                for start in range(0, max(n, 1), k):  # (n = 0: one pass with no direction, for the value)
                    value, rows_k = over_reverse(B, fn, structure, basis(B, structure, start, min(n, start + k)),
                                                 (min(n, start + k) - start,), args, stats)
                    rows.append(rows_k)
                    stats["passes"] = stats.get("passes", 0) + 1
                H = np.concatenate(rows, axis=0) if rows else np.zeros((0, 0))
            stats.update(method=self.second_order.replace("_", "-"), hvps=n, value=value)
            return structure.hessian(H)

        return WithStats(hessian_fn, "hessian", self.label)

    def hvp(self, f: Callable) -> WithStats:
        """``(theta, v, *args) -> H v``: forward-over-reverse (one pass through the recorded gradient: a few
        gradients' cost), or forward-over-forward (n JVP-of-JVPs: forward mode alone has no cheap HVP)."""
        B = self.load()

        def hvp_fn(stats, theta, v, *args):
            structure, fn = structured(f, theta)
            direction = [B.asarray(p) for p in structure.split(structure.flatten_like(v, "v"))]
            if self.second_order == "forward_over_forward":
                value, Hv = over_forward(B, fn, structure, direction, (), args, stats, self.directions_per_pass)
            else:
                value, Hv = over_reverse(B, fn, structure, direction, (), args, stats)
                stats["passes"] = 1
            stats.update(method=self.second_order.replace("_", "-"), value=value)
            return structure.tree(Hv)

        return WithStats(hvp_fn, "hvp", self.label)


__all__ = ["Dual", "DualNamespace", "Forward", "ForwardTrace", "JVPS", "defjvp"]
