"""Per-parameter step control for the real finite-difference schemes.

The automatic step h_i = c max(1, |theta_i|) assumes that f varies on the scale max(1, |theta_i|).
Where it does not, one entry's stencil can leave f's domain (log near 0), jump a pole, straddle a kink
near theta, or truncate far more than it rounds (log'(0.001), a logsumexp of inputs near 1e3). After
the first pass over all entries each entry's own evaluations are checked, and an entry whose step does
not fit is evaluated again at another step of its own (the others keep theirs):

- ``domain``: a stencil value is NaN or inf while f(theta) is finite: the step is divided by 8 and the
  entry re-evaluated, until every value is finite (or the step reaches 256 ulps of theta_i: reported).
- ``kink``: a stencil evaluation took another branch of a kink op than f(theta): the step is divided by
  16, at most ``KINK_TRIES`` times. A kink that persists sits at theta_i itself (or closer than the
  smallest step tried): the first result stands and the entry is reported (``kink_params``).
- ``truncation``: the entry's own values show truncation ``TRUNCATION_RATIO`` times its rounding
  (``Rule.combine``'s model; forward and backward evaluate one more point, at h/2, for theirs; central its
  quotient at h/2 where its values show no curvature), or truncation above rounding as large as the result,
  or Richardson's check point disagrees with its tableau (``Entry.needs_shorter``): the step
  is divided by 4 while the difference between the results at successive steps shows truncation clearly
  above their rounding, and the result at the smaller step is taken. Results that stop converging at the
  order's rate go on being shrunk (a step still long next to f's scale converges later); if they never
  converge again (``unsettled``: f's float evaluation is rough on that scale, or the tries run out), the
  result that agreed best with the next shorter step's is taken, its spread kept as its truncation, and the
  caller reports it with no error bound. A search that stops (smallest step, tries run out) while still
  converging, with truncation above rounding and above half the scheme's usual digits, or with Richardson's
  check still failing, is ``unsettled`` too.
- ``underflow`` (automatic steps only): the change of f over the stencil is lost in f's rounding
  although f changes at a larger probe step (a gradient entry tiny next to |f|, or float32): the step
  is enlarged towards one at which the change would clear the rounding of f by 2^10 if f were linear (at
  most 256 times the probe), but no further than the entry's own truncation allows: a step is taken only
  if its values show no more truncation than rounding and its result agrees with the step 4 times shorter
  (``StepControl.enlarge``). A saturated tanh (derivative 1e-13 at -10.7) had its step grown to 25.3,
  across the whole transition: -0.557.

- one side (``one_sided``, after the caller found f smooth across a kink op that still straddles theta): a
  symmetric stencil across a join where f' is continuous and f'' jumps (Huber) truncates like h, so the
  entry is evaluated by ``OneSidedRule`` on the side that lies on one piece of f, and refined as above.

An entry that ends ``unsettled`` has no error bound; the caller lists it in ``stats["unsettled_params"]``,
warns (``UnsettledStepWarning``) and reports Richardson's ``error_estimate`` for it as inf.

The models are computed on values scaled by a power of two to |f| ~ 1 (``Rule.combine``): they square
differences of f, and on f's own scale that underflowed for |f| below ~1e-154.

Each try costs the scheme's evaluations for that entry; the caller counts them.

Rounding model: one evaluation of f is off by at most ``NOISE * eps * max|f|`` over the entry's values
(eps of the evaluation dtype; at least ``NOISE`` times its smallest subnormal); a quotient's rounding error
is that times the sum of the absolute weights of its values over the step (``Rule.combine``'s ``rweight``;
Richardson: each level's weight scaled by that level's own max|f|).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .steps import STENCILS, scheme_order

#: the schemes whose stencil lies on one side of theta
ONE_SIDED = ("forward", "backward")

#: rounding of one evaluation of f, in units of eps * max|f| (sums over a batch round more than one op)
NOISE = 8.0
#: truncation that exceeds rounding by this factor triggers a smaller step (a false alarm costs one retry)
TRUNCATION_RATIO = 100.0
#: the reported Richardson error estimate: this factor times (the tableau's truncation estimate + rounding)
RICHARDSON_SAFETY = 2.0
#: the smallest gap, relative to the derivative's scale, that Richardson's check counts as a disagreement
RICHARDSON_GAP_FRACTION = 1e-6
KINK_TRIES, DOMAIN_TRIES, TRUNCATION_TRIES = 3, 12, 8
#: shorter steps an enlarged (``underflow``) entry may try, each 4 times shorter than the last: from the target
#: (at most 256 probes) past the probe, down to where the stencil sees no change of f
ENLARGE_TRIES = 12
#: the smallest step tried, in ulps of theta_i (below it the difference quotient is mostly rounding)
MIN_STEP_ULPS = 256.0
#: Richardson's check step over its finest level: not a power of 2 (irrational, so that no period of f that the
#: levels h, h/2, h/4, ... alias is aliased by it too, short of a multiple of ~5 periods per step or more)
CHECK_RATIO = float(np.sqrt(2.0))


def _unit_scale(values: np.ndarray, centre: float) -> np.ndarray:
    """Per row of values, the power of two that brings max |f| over the row and the centre to [0.5, 1)
    (1 where all are 0; NaN and inf are left out). Clipped to 2^+-1000 so that it stays a normal float."""
    top = np.max(np.where(np.isfinite(values), np.abs(values), 0.0), axis=1, initial=0.0)
    top = np.maximum(top, abs(centre) if np.isfinite(centre) else 0.0)
    return np.ldexp(1.0, np.clip(-np.frexp(top)[1], -1000, 1000))


def _lagrange_weights(nodes: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per row, the weights w_j with p(x) = sum_j w_j y_j for the polynomial p through (nodes[j], y_j)."""
    eye = np.eye(nodes.shape[1], dtype=bool)
    num = np.where(eye, 1.0, (np.asarray(x, dtype=np.float64)[:, None] - nodes)[:, None, :])  # (n, j, k): x - x_k
    den = np.where(eye, 1.0, nodes[:, :, None] - nodes[:, None, :])  # x_j - x_k
    return np.prod(num / den, axis=2)


def _tableau_weights(levels: int, base: int = 4) -> np.ndarray:
    """c_l with R[L-1, L-1] = sum_l c_l Q_l for the level quotients Q_l (ratio 2): its rounding amplification.
    ``base`` 4 for central quotients (even powers of h), 2 for one-sided ones (every power)."""
    rows = [np.eye(levels)[l] for l in range(levels)]
    for m in range(1, levels):
        rows = [rows[l] + (rows[l] - rows[l - 1]) / (base ** m - 1) for l in range(1, len(rows))]
    return rows[-1]


def _exact_step(t0: np.ndarray, h: np.ndarray) -> np.ndarray:
    """(t0 + h) - t0 in t0's dtype, as float64: the distance between the points really evaluated."""
    return ((t0 + np.asarray(h, dtype=np.float64).astype(t0.dtype)) - t0).astype(np.float64)


@dataclass(frozen=True)
class Rule:
    """The geometry of a real scheme: where it evaluates (in units of the step) and how it combines."""

    scheme: str
    levels: int = 1
    #: forward and backward with automatic steps: also evaluate f at the half step, on the same side, so that
    #: the truncation of the quotient at h can be measured (their two values alone carry no curvature)
    check: bool = False

    @property
    def order(self) -> int:
        return scheme_order(self.scheme, self.levels)

    @property
    def one_sided_check(self) -> bool:
        return self.check and self.scheme in ONE_SIDED

    @property
    def richardson_check(self) -> bool:
        """Richardson with automatic steps: one more point, f(theta + h_c) at a step off the ratio-2 grid
        (``CHECK_RATIO`` times the finest level), checked against the polynomial the tableau extrapolates."""
        return self.check and self.scheme == "richardson"

    @property
    def n_levels(self) -> int:
        if self.scheme == "richardson":
            return self.levels
        return 2 if self.one_sided_check else 1  # level 1: the half step h/2, made exact like h

    @property
    def n_steps(self) -> int:
        """Columns of ``steps``: the levels, then Richardson's check step."""
        return self.n_levels + (1 if self.richardson_check else 0)

    @property
    def n_points(self) -> int:
        if self.scheme == "richardson":
            return 2 * self.levels + (1 if self.richardson_check else 0)
        return len(STENCILS[self.scheme].offsets) * self.n_levels

    def steps(self, t0: np.ndarray, coarse: np.ndarray) -> np.ndarray:
        """(n, n_steps) exact steps: level l's nominal coarse / 2^l made exact, (t + h) - t in t0's dtype (then
        Richardson's check step, made exact the same way)."""
        out = np.empty((t0.size, self.n_steps))
        for l in range(self.n_steps):
            h = np.asarray(coarse, dtype=np.float64) * 0.5 ** min(l, self.n_levels - 1)
            if l == self.n_levels:  # the check: sqrt(2) times the finest level (one level: inside it, / sqrt(2))
                h = h * CHECK_RATIO if self.levels > 1 else h / CHECK_RATIO
            out[:, l] = _exact_step(t0, h)
        return out

    def points(self, t0: np.ndarray, steps: np.ndarray) -> list[np.ndarray]:
        """The stencil's points, one (n,) array per evaluation, in the order ``combine`` expects."""
        real = t0.dtype
        if self.scheme == "richardson":
            out = [t0 + (sign * steps[:, l]).astype(real) for l in range(self.levels) for sign in (1.0, -1.0)]
            return out + ([t0 + steps[:, -1].astype(real)] if self.richardson_check else [])
        offsets = STENCILS[self.scheme].offsets
        return [t0 + (o * steps[:, l]).astype(real) for l in range(self.n_levels) for o in offsets]

    def combine(self, values: np.ndarray, centre: float, steps: np.ndarray, noise: np.ndarray | None = None):
        """(grad, truncation, rweight, mismatch) per entry from values (n, n_points), exact steps (n, n_steps)
        and (Richardson's check) the rounding of one evaluation, ``noise_of`` the values.

        ``truncation``: a model of the truncation error from these values alone, used to decide whether a
        smaller step is worth trying. Central: with A = (f+ - f-) / 2 and B = f+ - 2 f0 + f-, the slope
        changes by B / A across the stencil, and a function whose derivatives grow like f^(k+1) / f^(k) ~
        f'' / f' truncates B^2 / (6 |A| h). Five-point: the same model one order up from the central
        quotients at h and 2h. Forward and backward (with ``check``): their quotients q(h) = f' + h f'' / 2
        + ... at h and at the half step h1 differ by (h - h1) f'' / 2, so q(h) truncates |q(h) - q(h1)|
        h / (h - h1) (without ``check``: 0, no model). Richardson: the tableau's |R[L,L] - R[L,L-1]|.
        ``rweight``: the sum of the absolute weights of the values divided by the steps (rounding = noise x it,
        noise from the row's largest |f|: every level is taken to round like the largest value. A level's own
        |f| would be sharper where values span decades (exp(t) at 50 in float32), but it understates the rounding
        of an f whose values are not rounded relative to themselves (log cosh t near 0, rounded to eps, not to
        eps |f|), which then read as truncation and sent its step down to worse results: measured, not kept;
        the retry when truncation reaches the result itself covers exp's case.)
        ``mismatch`` (Richardson with ``richardson_check``): f(theta + h_c) disagrees with the polynomial through
        the other values (whose slope at theta is the tableau's result) by more than the tableau's error estimate
        and the check's rounding. For a smooth f they differ by about half the tableau's error; for levels that
        alias a period of f (all of them h, h/2, h/4 ...: sin(2925 t) at 0.3, every quotient near 0, the tableau
        at 1e-12 "accuracy") by f's own variation. The gap over h_c also enters ``truncation``.

        The models square differences of f. Computed on f's own scale they underflowed to 0 for |f| below
        about 1e-154 (exp at -700: no truncation seen, no step control) and overflowed above about 1e154,
        so every row is first scaled by the power of two that brings its largest |f| to [0.5, 1). That is
        exact, leaves grad bit for bit as it was in between, and makes the models scale-invariant.
        """
        scale = _unit_scale(values, centre)
        values, centre = values * scale[:, None], centre * scale
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            mismatch = np.zeros(values.shape[0], dtype=bool)
            if self.scheme == "richardson":
                noise = np.zeros(values.shape[0]) if noise is None else np.asarray(noise) * scale
                grad, trunc, rweight, mismatch = self._richardson(values, centre, steps, noise)
            else:
                grad, trunc, rweight = self._stencil(values, centre, steps)
            return grad / scale, np.where(np.isnan(trunc), np.inf, trunc / scale), rweight, mismatch

    def _stencil(self, values, centre, steps):
        stencil = STENCILS[self.scheme]
        weights, m = np.array(stencil.weights), len(stencil.offsets)
        h = steps[:, 0]
        grad = (values[:, :m] @ weights + stencil.center_weight * centre) / h
        rweight = (np.sum(np.abs(weights)) + abs(stencil.center_weight)) / h
        if self.scheme == "central":
            a, b = (values[:, 0] - values[:, 1]) / 2, values[:, 0] - 2 * centre + values[:, 1]
            trunc = np.where(b == 0, 0.0, b * b / (6 * np.abs(a) * h))  # no curvature seen: nothing to fix
        elif self.scheme == "five_point":
            near = (values[:, 1] - values[:, 2]) / (2 * h)
            far = (values[:, 0] - values[:, 3]) / (4 * h)
            trunc = np.where(far == near, 0.0, (far - near) ** 2 / (2 * np.abs(grad)))
        elif self.one_sided_check:
            h1 = steps[:, 1]
            half = (values[:, m:] @ weights + stencil.center_weight * centre) / h1
            trunc = np.where(half == grad, 0.0, np.abs(grad - half) * (h / (h - h1)))
        else:
            trunc = np.zeros_like(grad)
        return grad, trunc, rweight

    def _richardson(self, values, centre, steps, noise):
        levels = self.levels
        column = [(values[:, 2 * l] - values[:, 2 * l + 1]) / (2 * steps[:, l]) for l in range(levels)]
        last_row = [column[-1]]
        for m in range(1, levels):  # ratio 2: R[l, m] = R[l, m-1] + (R[l, m-1] - R[l-1, m-1]) / (4^m - 1)
            column = [column[l] + (column[l] - column[l - 1]) / (4 ** m - 1) for l in range(1, len(column))]
            last_row.append(column[-1])
        grad = last_row[-1]
        if levels > 1:
            trunc = np.abs(grad - last_row[-2])
        else:
            trunc = np.zeros_like(grad)
        centre = np.broadcast_to(centre, grad.shape)  # (scaled per row by ``combine``)
        rweight = np.abs(_tableau_weights(levels)) @ (1.0 / steps[:, :levels].T)
        mismatch = np.zeros(grad.shape, dtype=bool)
        if self.richardson_check:
            nodes = np.concatenate([np.zeros((grad.size, 1))] + [sign * steps[:, l:l + 1] for l in range(levels)
                                                                for sign in (1.0, -1.0)], axis=1)
            known = np.concatenate([centre[:, None], values[:, :2 * levels]], axis=1)
            hc = steps[:, -1]
            weights = _lagrange_weights(nodes, hc)
            gap = np.abs(values[:, -1] - np.sum(weights * known, axis=1)) / hc
            gap = np.where(np.isnan(gap), np.inf, gap)
            rcheck = noise * (1.0 + np.sum(np.abs(weights), axis=1)) / hc  # f(theta + h_c) and the prediction
            if levels == 1:  # no tableau estimate: the gap is the truncation's (h^2 f^(3) / 12 of / 6)
                trunc = 2 * gap
            else:
                # (and only a gap that matters next to the derivative's scale: an aliased period makes it of that
                # order; a gap below RICHARDSON_GAP_FRACTION of it is rounding the noise model missed, as for log
                # cosh near 0, whose values are rounded to eps, not to eps |f|)
                scale = np.maximum(np.abs(grad), np.max(np.abs(known - centre[:, None]), axis=1) / hc)
                mismatch = ~(gap <= RICHARDSON_SAFETY * (trunc + noise * rweight) + 2 * rcheck) \
                    & (gap > RICHARDSON_GAP_FRACTION * scale)
                trunc = np.maximum(trunc, gap)
        return grad, trunc, rweight, mismatch


#: how often ``one_sided`` shortens a side's steps 16-fold looking for one piece of f (down to 256 ulps of theta_i
#: at most): a join 1e-6 from theta inside Richardson's first one-sided step of 18 needs six
ONE_SIDED_KINK_TRIES = 8
#: the highest order of a one-sided tableau (``OneSidedRule``): Richardson's 2 * levels above it adds rounding
#: (the tableau's weights grow like 2^(K^2 / 2)) for truncation the balanced step already keeps below it
ONE_SIDED_MAX_ORDER = 8


@dataclass(frozen=True)
class OneSidedRule:
    """One side of theta, to order K = ``levels``: the quotients Q_l = (f(theta + s h_l) - f(theta)) / (s h_l) at
    h_l = h / 2^l (s = ``side``, +1 or -1), extrapolated by a ratio-2 tableau that removes one more power of h
    per level (Q_l = f' + c_1 s h_l + c_2 h_l^2 + ...). The same interface as ``Rule``, so that ``StepControl``
    refines it like any scheme.

    What it is for: a symmetric stencil (central, five-point, Richardson) that straddles a join of f's pieces
    at which f is smooth (Huber's |r| = delta, where f' is continuous and f'' jumps) averages two pieces whose
    higher derivatives differ, so its truncation is O(h), whatever its order: Richardson gave 0.99901 for
    Huber'(1 + 1e-9) = 1, with an error estimate of 1.8e-4. The side whose points take theta's own branches
    sees one smooth piece, and its tableau converges at its order (``one_sided``). The attributes a ``Rule`` has
    and this one does not use (``richardson_check``, ``n_steps``, ...) keep the two interchangeable."""

    side: int
    levels: int
    scheme = "one_sided"
    richardson_check = False
    one_sided_check = False

    @property
    def order(self) -> int:
        return self.levels

    n_levels = n_steps = n_points = order

    def steps(self, t0: np.ndarray, coarse: np.ndarray) -> np.ndarray:
        """(n, levels) exact steps coarse / 2^l."""
        return np.stack([_exact_step(t0, np.asarray(coarse, dtype=np.float64) * 0.5 ** l)
                         for l in range(self.levels)], axis=1)

    def points(self, t0: np.ndarray, steps: np.ndarray) -> list[np.ndarray]:
        return [t0 + (self.side * steps[:, l]).astype(t0.dtype) for l in range(self.levels)]

    def combine(self, values: np.ndarray, centre: float, steps: np.ndarray, noise: np.ndarray | None = None):
        """(grad, truncation, rweight, mismatch) as ``Rule.combine``: truncation |T[K,K] - T[K,K-1]| (the
        tableau's last two results), rweight the sum of the absolute weights of the values (f(theta)'s
        included, as it enters every quotient) over the steps; mismatch always False."""
        scale = _unit_scale(values, centre)
        values, centre = values * scale[:, None], centre * scale
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            column = [self.side * (values[:, l] - centre) / steps[:, l] for l in range(self.levels)]
            last_row = [column[-1]]
            for m in range(1, self.levels):  # ratio 2, every power of h: R[l, m] = R[l, m-1] + diff / (2^m - 1)
                column = [column[l] + (column[l] - column[l - 1]) / (2 ** m - 1) for l in range(1, len(column))]
                last_row.append(column[-1])
            grad = last_row[-1]
            trunc = np.abs(grad - last_row[-2]) if self.levels > 1 else np.zeros_like(grad)
            per_value = _tableau_weights(self.levels, base=2)[None, :] / steps
            rweight = np.sum(np.abs(per_value), axis=1) + np.abs(np.sum(per_value, axis=1))
            return grad / scale, np.where(np.isnan(trunc), np.inf, trunc / scale), rweight, \
                np.zeros(values.shape[0], dtype=bool)


@dataclass
class Entry:
    """One entry's evaluation at one coarse step: what ``combine`` made of it, and its flags."""

    coarse: float           # the nominal coarse step (float64)
    steps: np.ndarray       # (n_levels,) exact steps
    values: np.ndarray      # (n_points,)
    grad: float
    trunc: float
    rweight: float
    noise: float            # rounding of one evaluation: NOISE * eps * max|f|
    kink: bool
    mismatch: bool = False  # Richardson's check disagreed with its tableau (``Rule.combine``): accept no such step

    @property
    def finite(self) -> bool:
        return bool(np.all(np.isfinite(self.values)))

    @property
    def rounding(self) -> float:
        return self.noise * self.rweight

    def changes_nothing(self, centre: float) -> bool:
        """Every stencil value equals f(theta) exactly: the change over the stencil is lost in f's rounding."""
        return bool(np.all(self.values == centre))

    @property
    def truncation_dominates(self) -> bool:
        return self.trunc > TRUNCATION_RATIO * self.rounding

    @property
    def needs_shorter(self) -> bool:
        """Whether a first-pass result calls for a shorter step: truncation ``TRUNCATION_RATIO`` times its
        rounding; or truncation above rounding that is as large as the result itself (not one correct digit:
        Richardson on exp(t) at 50 in float32 gave -1.06e27 for 5.18e21, truncation 14 times rounding); or
        Richardson's check disagreed with its tableau."""
        return bool(self.mismatch or self.truncation_dominates
                    or (self.trunc > self.rounding and self.trunc >= abs(self.grad)))


def noise_of(values: np.ndarray, centre: float, eps: float, subnormal: float = 0.0) -> np.ndarray:
    """NOISE * eps * max|f| over each row of values and the centre, and at least NOISE * ``subnormal`` (the
    smallest subnormal of the evaluation dtype): a value near underflow is rounded to a multiple of it, so
    that eps |f| understates its rounding (exp at -740 is 85 of them)."""
    with np.errstate(invalid="ignore"):
        top = np.maximum(np.nanmax(np.abs(np.where(np.isfinite(values), values, np.nan)), axis=1, initial=0.0),
                         abs(centre))
    return NOISE * np.maximum(eps * top, subnormal)


class StepControl:
    """Re-evaluates single entries at steps of their own (see the module docstring).

    ``evaluate(i, points)``: f at theta with entry i set to each of ``points`` (float in the evaluation
    dtype), returning (values, kink), kink True if some evaluation took another kink-op branch than f(theta).
    """

    def __init__(self, rule: Rule, t0: np.ndarray, centre: float, evaluate, noise_floor: float = 0.0):
        self.rule, self.t0, self.centre, self.evaluate = rule, t0, centre, evaluate
        #: the least rounding of one evaluation of f taken (``cancellation_floor``; 0: the noise model alone)
        self.noise_floor = noise_floor
        self.eps, self.subnormal = float(np.finfo(t0.dtype).eps), float(np.finfo(t0.dtype).smallest_subnormal)
        #: half the digits of the scheme's usual relative accuracy at its balanced step eps^(p / (p + 1)): a search
        #: that stops with more truncation than this (and than rounding) has not settled
        self.half_digits = self.eps ** (rule.order / (rule.order + 1.0) / 2)

    def entry(self, i: int, coarse: float) -> Entry:
        t = self.t0[i:i + 1]
        steps = self.rule.steps(t, np.array([coarse]))
        points = [float(p[0]) for p in self.rule.points(t, steps)]
        values, kink = self.evaluate(i, points)
        values = np.asarray(values, dtype=np.float64)[None, :]
        noise = np.maximum(noise_of(values, self.centre, self.eps, self.subnormal), self.noise_floor)
        grad, trunc, rweight, mismatch = self.rule.combine(values, self.centre, steps, noise)
        return Entry(coarse, steps[0], values[0], float(grad[0]), float(trunc[0]), float(rweight[0]),
                     float(noise[0]), bool(kink), bool(mismatch[0]))

    def smallest_step(self, i: int) -> float:
        t = self.t0[i]
        return MIN_STEP_ULPS * float(np.spacing(np.abs(t))) * 2.0 ** (self.rule.n_levels - 1)

    def refine(self, i: int, cur: Entry, kink_tries: int = KINK_TRIES) -> tuple[Entry, list[str]]:
        """The entry at the best step found, and the reasons the step changed ([] if it did not); a stencil that
        sees another kink-op branch is shortened 16-fold at most ``kink_tries`` times."""
        reasons: list[str] = []
        floor = self.smallest_step(i)
        for _ in range(DOMAIN_TRIES):  # leave no NaN or inf in the stencil: shrink towards theta_i
            if cur.finite or cur.coarse / 8 < floor:
                break
            cur = self.entry(i, cur.coarse / 8)
            reasons = ["domain"]
        if not cur.finite:
            return cur, reasons
        if cur.kink:  # a kink near theta_i: a step short of it sees one side only
            trial = cur
            for _ in range(kink_tries):
                if trial.coarse / 16 < floor:
                    break
                trial = self.entry(i, trial.coarse / 16)
                if not trial.finite or not trial.kink:
                    break
            if not (trial.finite and not trial.kink):
                return cur, reasons  # the kink is at theta_i (or very near): reported by the caller
            cur, reasons = trial, reasons + ["kink"]
        p, previous, seen = self.rule.order, None, [cur.grad]
        # successive differences of an order-p result shrink 4^p-fold per step once the step resolves f's scale;
        # a shrink by at least `rate` counts as converging (4, or 2 for order 1, leaves room for the next terms).
        # Once convergence was lost, it counts as regained only at a rate no lower order gives (8: not the 4 of a
        # central quotient converging like h next to a kink that kink_check=False does not see)
        rate, regain = min(4.0, 4.0 ** p / 2), min(8.0, 4.0 ** p / 2)
        lost, ever_lost, settled, pairs = False, False, False, []
        for _ in range(TRUNCATION_TRIES):  # the step is long for f's own scale: shrink while that pays
            # the first shrink needs ``Entry.needs_shorter`` (a model, the tableau's estimate, Richardson's check);
            # once a shrink has paid, the next one is tried while the measured truncation exceeds rounding at all,
            # and while the results are not converging (``lost``) or Richardson's check fails, whatever the
            # estimates say
            if not (lost or cur.mismatch or (cur.needs_shorter if previous is None else cur.trunc > cur.rounding)):
                settled = True
                break
            if cur.coarse / 4 < floor:
                break  # (still truncating: unsettled, below)
            new = self.entry(i, cur.coarse / 4)
            if not new.finite or new.kink:
                break
            if new.changes_nothing(self.centre):
                # f does not change at all over the shorter stencil. A smooth f whose quotient at the longer step
                # stood out of the rounding model (tens of ulps of change) would still change by several ulps
                # here: f's float values are a staircase on this scale (1 - sigmoid near 1: rounding far above
                # eps |f|), and the longer step's result is rounding too, not a converged one
                ever_lost = ever_lost or abs(cur.grad) > 2 * cur.rounding
                settled = not ever_lost
                break
            delta = abs(cur.grad - new.grad)
            seen.append(new.grad)
            pairs.append((delta, cur))
            if not delta > 2 * (cur.rounding + new.rounding) and not (cur.mismatch or new.mismatch):
                settled = not lost  # (results that agree only after converging too slowly have not settled)
                break  # no truncation visible above rounding: the longer step stands (less rounding)
            lost = previous is not None and delta > previous / (regain if lost else rate)
            if lost:
                # not converging at the order's rate. Either the step still jumps across f's own scale (tanh(1e4 t)
                # at a step of 1e-3: the results move by their own size until the step resolves that scale, then
                # converge), or f's float evaluation is rough on this scale (rounding far above eps |f|, e.g.
                # 1 - sigmoid near 1: they never converge). Only shorter steps tell: keep shrinking
                ever_lost = True
            else:
                new.trunc = max(new.trunc, delta / (4.0 ** p - 1)) if self.rule.scheme == "richardson" \
                    else delta / (4.0 ** p - 1)
            cur, previous = new, delta
            if "truncation" not in reasons:
                reasons.append("truncation")
        if ever_lost and not settled:
            # no step settled: take the result that agreed best with the next shorter step's (the longer of the
            # two: less rounding), and keep the spread of all results seen. It is no bound on the error (the
            # caller reports the entry with no error bound: ``unsettled``)
            cur = min(pairs, key=lambda pair: pair[0])[1] if pairs else cur
            cur.trunc = max(cur.trunc, max(abs(g - cur.grad) for g in seen))
            reasons.append("unsettled")
        elif not settled and (cur.mismatch or max(cur.rounding, self.half_digits * abs(cur.grad)) < cur.trunc
                              < abs(cur.grad)):
            # converging, but the search stopped (smallest step, tries run out, a shorter stencil off f's domain)
            # with truncation still above rounding and above half the digits the scheme normally gets (forward on
            # (1e10 t)^2 at 1e-10: 2.0023e10 for 2e10 after 8 tries, 1e-3 off), or Richardson's check still
            # failing: the last result, with no bound claimed. (An f that is 0 at theta and odd, tanh(1e4 t) at 0,
            # rounds so little that its truncation stays above rounding at every step: after 8 tries it is off by
            # 1e-12, settled; forward on log at 1e-8 ends 1.1e-5 off, within forward's half digits, 1.2e-4. A result no
            # larger than its truncation has no digit to lose: at a stationary point it goes to 0 with the step,
            # and 0 within that truncation is the answer, settled, as at (t - 1)^2's minimum.)
            reasons.append("unsettled")
        return cur, reasons

    def enlarge(self, i: int, probe: float, change: float, noise: float) -> tuple[Entry, list[str]]:
        """An entry whose change over the stencil fell below f's rounding although f changes by ``change``
        over +-``probe``: a longer step of its own, no longer than its own truncation allows.

        The target is the step at which the finest level's change would clear ``noise`` (the rounding of
        f) by 2^10 under a *linear* model, at most 256 times the probe. A linear model says nothing about
        f's curvature on that scale (a tanh saturated at -10: its derivative 1e-13 grows e^2-fold per unit,
        and a step of 25 jumps the whole transition), so the step is accepted only where the entry's own
        values show no more truncation than rounding (``Rule.combine``'s model) and its result agrees, to
        within their rounding, with the result at a step 4 times shorter. Otherwise the step is divided by
        4, down to the smallest step whose stencil still sees f change. If no step passes, the step with the
        smallest error estimate (truncation and disagreement plus rounding) is taken, that estimate becomes
        its truncation, and the entry is ``unsettled``; the caller reports it with no error bound."""
        scale = 2.0 ** (self.rule.n_levels - 1) * 1024.0 * noise / change
        cur = self.entry(i, probe * float(np.clip(scale, 1.0, 256.0)))
        if not cur.finite or cur.changes_nothing(self.centre):
            return cur, ["underflow"]  # flat even there (the caller's trap), or off f's domain (``refine``)
        floor, tried = self.smallest_step(i), []
        for _ in range(ENLARGE_TRIES):
            new = self.entry(i, cur.coarse / 4) if cur.coarse / 4 >= floor else None
            usable = new is not None and new.finite and not new.kink and not new.changes_nothing(self.centre)
            gap = abs(cur.grad - new.grad) if usable else 0.0
            if not cur.kink:  # (a stencil past a kink: a shorter step; every later one is finite, kink-free)
                if cur.trunc <= cur.rounding and gap <= 2 * (cur.rounding + (new.rounding if usable else 0.0)) \
                        and not cur.mismatch:
                    return cur, ["underflow"]
                tried.append((max(cur.trunc, gap) + cur.rounding, cur))
            if not usable:
                break
            cur = new
        else:
            tried.append((cur.trunc + cur.rounding, cur))
        if not tried:
            return cur, ["underflow"]
        estimate, best = min(tried, key=lambda t: t[0])
        best.trunc = estimate - best.rounding
        return best, ["underflow", "unsettled"]


def cancellation_floor(eps: float, t: float, slope: float, centre: float) -> float:
    """The least rounding of one evaluation of f taken where a step is far from f's own scale: ``NOISE`` eps
    |theta_i| max(|f'_i|, min(1, |f|)), what an ulp of a value of theta_i's size makes of f where f cancels such
    values (t0 - logsumexp(t) at 1e8 is O(1) but rounded to eps 1e8; Huber of 2 t - 2846.474 at t = 1423.7 is
    rounded to eps 2846). The slope of f in the cancelled value is f'_i, or f itself for exp(t0 - logsumexp(t)),
    capped at 1 so that a large f is not charged twice."""
    return NOISE * eps * abs(t) * max(abs(slope), min(1.0, abs(centre)))


def one_sided(i: int, t0: np.ndarray, centre: float, evaluate, levels: int, coarse: float, noise_floor: float = 0.0):
    """Entry i from one side of theta (``OneSidedRule``), refined by ``StepControl`` like any entry: (entry,
    reasons, side), or None where no side lies on a single piece of f even at the shortest steps ``refine`` tries.

    The caller has found f smooth across theta (its one-sided derivatives agree). Taken is a side whose points
    take f(theta)'s own kink-op branches (the piece theta lies on: its derivative is f'(theta) to the last digit),
    first at ``coarse``, then at the shorter steps of ``refine``'s kink rule (a kink op further along theta's own
    side, say a relu 0.01 away, is stepped short of). Only where neither side does even then is theta itself a
    tie of the branches (an exact join, where a guard such as ``minimum(t, 0)`` inside the unselected branch takes
    a third one), and a side whose points all take the branches of a point ``MIN_STEP_ULPS`` ulps along it
    (``evaluate(..., within=True)``) is the smooth piece next to theta, continuous there, whose one-sided
    derivative is f'(theta). At the given step the side evaluated first (+1) is taken when both qualify; at shorter
    steps both are searched and the one whose result rounds and truncates less is taken. Costs ``levels``
    evaluations per side, step and criterion tried (one more, the reference point, with ``within``), plus step
    control's."""
    # the within criterion's reference: the point MIN_STEP_ULPS ulps of theta_i along the side, on the piece next
    # to theta (the first point of a long step may lie beyond another join: Huber at r = 0, whose |r| is a branch of
    # its own at 0, took the linear piece past delta for the quadratic one, 0.06 for 0)
    near = MIN_STEP_ULPS * float(np.spacing(np.abs(t0[i])))

    def along(side):
        def ev(j, points):
            reference = float(t0[j] + t0.dtype.type(side * near))
            values, kink = evaluate(j, [reference] + list(points), within=True)
            return values[1:], kink
        return ev

    for within in (False, True):
        controls = [(side, StepControl(OneSidedRule(side, levels), t0, centre, along(side) if within else evaluate,
                                       noise_floor)) for side in (1, -1)]
        first = []
        for side, control in controls:  # at the given step
            e = control.entry(i, coarse)
            if e.finite and not e.kink:
                return (*control.refine(i, e), side)
            first.append(e)
        # shorter steps (``refine``'s kink rule): both sides, and the one whose result rounds and truncates less
        # (Huber 1e-6 inside its join, + 1e4: the side away from the join is one piece at a step 100 times longer)
        found = [(e, why, side) for (side, control), e in zip(controls, first)
                 for e, why in [control.refine(i, e, ONE_SIDED_KINK_TRIES)] if e.finite and not e.kink]
        if found:
            return min(found, key=lambda got: got[0].trunc + got[0].rounding)
    return None
