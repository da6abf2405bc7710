"""The result of a gradient check: every method's gradient against the reference, entry by entry.

``str(report)`` is a summary table; ``report.to_frame()`` the long table (one row per method and
entry); ``report.failure_message()`` what ``assert_gradients_close`` raises: the worst entries, each
with every method's value, its absolute and relative error, the tolerance applied, and whether a
finite-difference step straddled a kink there.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .methods import Method

ON_KINK = ("skip", "fail")


@dataclass
class MethodResult:
    """One method's gradient (flat, float64) and the tolerance it is held to; ``error`` if it raised."""

    method: Method
    grad: np.ndarray | None
    rtol: float
    atol: float | np.ndarray  # one number, or one per entry (the default floors are per leaf)
    kinks: frozenset = frozenset()  # flat indices where a finite-difference step straddled a kink
    value: float | None = None
    stats: dict = field(default_factory=dict)
    error: str | None = None
    rtol_why: str = ""  # where the rtol came from ("given", "default for reverse, float64", ...)
    atol_why: str = ""
    #: flat indices where a method the check chose itself gave a non-finite value (an overflow inside it)
    #: while the reference is finite: "cannot evaluate here", not counted
    unevaluable: frozenset = frozenset()

    @property
    def max_atol(self) -> float:
        return float(np.max(self.atol)) if np.size(self.atol) else 0.0

    @property
    def label(self) -> str:
        return self.method.label


def split_name(name: str) -> tuple[str, str]:
    """``'W0[1, 2]'`` -> ``('W0', '1, 2')``; ``'lr'`` -> ``('lr', '')``."""
    param, _, rest = name.partition("[")
    return param, rest[:-1] if rest.endswith("]") else rest


@dataclass
class GradcheckReport:
    """Every method's gradient of one problem, compared entry by entry with the reference.

    An entry passes when ``|g - ref| <= atol + rtol * |ref|``. With ``on_kink="skip"`` (the default)
    an entry where a finite-difference step straddled a kink is reported but not counted: there the
    difference quotient averages two one-sided slopes and no single gradient can match it.
    """

    problem: str
    names: list[str]
    reference: np.ndarray
    reference_label: str
    results: list[MethodResult]
    value: float | None = None
    notes: list[str] = field(default_factory=list)
    on_kink: str = "skip"
    kind: str = "gradient"  # what is checked: "gradient", or "Hessian" (gradcheck/hessian.py)
    #: when no method agrees with a reference that is not the exact one: (agrees with the exact gradient?, detail)
    reference_vs_exact: tuple[bool, str] | None = None
    #: whether the reference is the exact (certified) one: then it is never blamed as "the odd one out"
    reference_exact: bool = False

    # ----- per method, per entry -----
    def abs_err(self, r: MethodResult) -> np.ndarray:
        return np.abs(r.grad - self.reference)

    def rel_err(self, r: MethodResult) -> np.ndarray:
        err, ref = self.abs_err(r), np.abs(self.reference)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(err == 0, 0.0, err / ref)

    def tol(self, r: MethodResult) -> np.ndarray:
        """atol + rtol * |ref|, with |ref| taken as 0 where the reference is not finite (so that an infinite
        reference entry does not make its tolerance infinite: |g - ref| is then inf or NaN, and fails)."""
        ref = np.abs(self.reference)
        return r.atol + r.rtol * np.where(np.isfinite(ref), ref, 0.0)

    def kink_mask(self, r: MethodResult) -> np.ndarray:
        mask = np.zeros(len(self.names), dtype=bool)
        mask[[i for i in r.kinks if 0 <= i < len(mask)]] = True
        return mask

    def failing(self, r: MethodResult) -> np.ndarray:
        """Entries counted as failures: a non-finite method entry always (NaN or inf, also against a non-finite
        reference entry, and at a kink); otherwise |g - ref| > tol, except kink-straddled entries with
        on_kink='skip'."""
        if r.grad is None:
            return np.ones(len(self.names), dtype=bool)
        with np.errstate(invalid="ignore"):
            bad = ~(self.abs_err(r) <= self.tol(r))  # NaN-safe: a NaN error fails
        bad = bad & ~self.kink_mask(r) if self.on_kink == "skip" else bad
        bad = bad | ~np.isfinite(r.grad)
        if r.unevaluable:
            bad[[i for i in r.unevaluable if 0 <= i < len(bad)]] = False
        return bad

    def unchecked(self) -> list[int]:
        """Entries that no method could evaluate (each method that ran was non-finite there, an overflow inside
        it): nothing checks the reference there, so the check does not pass."""
        ran = [r for r in self.results if r.grad is not None]
        if not ran or not any(r.unevaluable for r in ran):
            return []
        common = set.intersection(*(set(r.unevaluable) for r in ran))
        return sorted(common)

    @property
    def passed(self) -> bool:
        return not any(self.failing(r).any() for r in self.results) and not self.unchecked()

    @property
    def failed_methods(self) -> list[str]:
        return [r.label for r in self.results if self.failing(r).any()]

    # ----- tables -----
    def to_frame(self):
        """One row per (method, entry): entry, param, index, method, dtype, value, reference, abs_err,
        rel_err, rtol, atol, tol, kink, ok. Methods that raised contribute no rows (see ``summary()``)."""
        import pandas as pd
        params, indices = zip(*map(split_name, self.names)) if self.names else ((), ())
        frames = []
        for r in self.results:
            if r.grad is None:
                continue
            frames.append(pd.DataFrame({
                "entry": self.names, "param": params, "index": indices, "method": r.label, "dtype": r.method.dtype,
                "value": r.grad, "reference": self.reference, "abs_err": self.abs_err(r), "rel_err": self.rel_err(r),
                "rtol": r.rtol, "atol": np.broadcast_to(r.atol, (len(self.names),)), "tol": self.tol(r),
                "kink": self.kink_mask(r), "ok": ~self.failing(r)}))
        columns = ["entry", "param", "index", "method", "dtype", "value", "reference", "abs_err", "rel_err", "rtol",
                   "atol", "tol", "kink", "ok"]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)

    def summary(self) -> list[dict[str, Any]]:
        """One dict per method: label, dtype, max_abs_err, max_rel_err, rtol, atol (the largest where it is per
        entry), rtol_why, atol_why (where each came from), n_failed, n_kinks, n_unevaluable, error."""
        rows = []
        for r in self.results:
            row = {"method": r.label, "dtype": r.method.dtype, "rtol": r.rtol, "atol": r.max_atol, "error": r.error,
                   "rtol_why": r.rtol_why, "atol_why": r.atol_why, "n_unevaluable": len(r.unevaluable),
                   "n_entries": len(self.names), "n_failed": int(self.failing(r).sum()), "n_kinks": len(r.kinks)}
            if r.grad is not None and len(self.names):
                with np.errstate(invalid="ignore"):
                    row["max_abs_err"] = float(np.max(self.abs_err(r)))
                    row["max_rel_err"] = float(np.max(self.rel_err(r)))
            rows.append(row)
        return rows

    def summary_table(self) -> str:
        head = (f"{'method':<22} {'dtype':<8} {'max abs err':>11} {'max rel err':>11} {'rtol':>8} {'atol':>8}"
                "  failed  kinks")
        lines = [head]
        for row in self.summary():
            if row["error"]:
                lines.append(f"{row['method']:<22} {row['dtype']:<8} error: {row['error']}")
                continue
            kinks = str(row["n_kinks"]) if row["method"] in self._fd_labels() else "-"
            lines.append(f"{row['method']:<22} {row['dtype']:<8} {row.get('max_abs_err', 0):>11.2e} "
                         f"{row.get('max_rel_err', 0):>11.2e} {row['rtol']:>8.1e} {row['atol']:>8.1e}  "
                         f"{row['n_failed']:>2}/{row['n_entries']:<3}  {kinks}")
        return "\n".join(lines)

    def tolerance_lines(self) -> list[str]:
        """One line per method: its rtol and atol and where each came from."""
        lines = []
        for r in self.results:
            if not (r.rtol_why or r.atol_why):
                continue
            per_entry = np.size(r.atol) > 1 and np.ptp(r.atol) > 0
            atol = f"atol {'up to ' if per_entry else ''}{r.max_atol:.1e}"
            lines.append(f"tolerance {r.label}: rtol {r.rtol:.1e} ({r.rtol_why or 'given'}); {atol} "
                         f"({r.atol_why or 'given'})")
        return lines

    def _fd_labels(self) -> set[str]:
        """The methods whose kinks were looked for: finite differences of a gradient (a Hessian's second
        differences detect none, so its report shows '-' rather than a 0 or a 'no' it never tested)."""
        if self.kind != "gradient":
            return set()
        return {r.label for r in self.results if r.method.differentiator.name == "finite_diff"}

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        head = (f"{self.kind} check {verdict}: {self.problem} ({len(self.names)} entries; reference: "
                f"{self.reference_label})")
        return "\n".join([head, self.summary_table(), *self.tolerance_lines(), *self._unchecked_lines(),
                          *[f"note: {n}" for n in self.notes]])

    def _unchecked_lines(self) -> list[str]:
        missing = self.unchecked()
        if not missing:
            return []
        names = [self.names[i] for i in missing]
        return [f"unchecked: no method could evaluate the gradient at {len(names)} entr"
                f"{'y' if len(names) == 1 else 'ies'} ({', '.join(names[:8])}{' ...' if len(names) > 8 else ''}): "
                "each was non-finite there (an overflow inside it), so nothing checks the reference at those entries. "
                "Name a method that can (e.g. methods=('central',)) or move theta away from the overflow."]

    def __repr__(self) -> str:
        verdict = "passed" if self.passed else "FAILED " + ", ".join(self.failed_methods)
        return f"<GradcheckReport {self.problem}: {verdict}>"

    # ----- the failure message -----
    def worst_entries(self, n: int = 5) -> list[int]:
        """Flat indices of the failing entries, worst first (largest error / tolerance over failing methods)."""
        score = np.zeros(len(self.names))
        for r in self.results:
            if r.grad is None:
                continue
            bad = self.failing(r)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(bad, np.nan_to_num(self.abs_err(r) / self.tol(r), nan=np.inf, posinf=np.inf), 0.0)
            score = np.maximum(score, ratio)
        order = [int(i) for i in np.argsort(-score, kind="stable") if score[i] > 0]
        return order[:n]

    def describe_entry(self, i: int) -> str:
        lines = [f"  {self.names[i]}: reference {self.reference[i]:.12g}"]
        width = max(len(r.label) for r in self.results)
        for r in self.results:
            if r.grad is None:
                continue
            kink = bool(self.kink_mask(r)[i])
            failing = bool(self.failing(r)[i])
            verdict = "FAIL" if failing else ("kink, not counted" if kink and not (self.abs_err(r)[i] <= self.tol(r)[i])
                                              else "ok")
            straddle = (f"step straddles kink: {'yes' if kink else 'no':<3}" if r.label in self._fd_labels()
                        else " " * 24)
            lines.append(f"    {r.label:<{width}}  {r.grad[i]:>+20.12e}  abs err {self.abs_err(r)[i]:.2e}  "
                         f"rel err {self.rel_err(r)[i]:.2e}  tol {self.tol(r)[i]:.2e}  {straddle}  {verdict}")
        return "\n".join(lines)

    def failure_message(self, n_worst: int = 5) -> str:
        if self.passed:
            return str(self)
        failed = self.failed_methods
        if not failed:
            lines = [f"{self.kind} check failed for {self.problem}: no method could evaluate it at some entries",
                     self.summary_table(), *self.tolerance_lines(), *self._unchecked_lines()]
            return "\n".join(lines + [f"note: {n}" for n in self.notes])
        if self.reference_is_odd_one_out():
            headline = (f"{self.kind} check failed for {self.problem}: the reference, {self.reference_label}, is the odd "
                        f"one out: {', '.join(failed)} agree with each other and all disagree with it; check the "
                        "reference first")
        elif self.reference_exact and self.methods_agree():
            headline = (f"{self.kind} check failed for {self.problem}: {', '.join(failed)} agree with each other but "
                        f"not with the exact reference, {self.reference_label}: they may share an error (the same "
                        "wrong derivative rule, or the same rounding where f cancels), or evaluate f at another "
                        "point than the reference (theta or the data rounded or changed on the way)")
        else:
            headline = (f"{self.kind} check failed for {self.problem}: {', '.join(failed)} disagree"
                        f"{'s' if len(failed) == 1 else ''} with the reference, {self.reference_label}")
        lines = [headline, self.summary_table(), *self.tolerance_lines()]
        worst = self.worst_entries(n_worst)
        n_bad = int(np.any([self.failing(r) for r in self.results], axis=0).sum())
        if worst:
            lines.append(f"worst entries ({len(worst)} of {n_bad} failing; |g - ref| <= atol + rtol*|ref| to pass):")
            lines += [self.describe_entry(i) for i in worst]
        for r in self.results:
            if r.error:
                lines.append(f"{r.label} raised: {r.error}")
        skipped = {r.label: [self.names[i] for i in sorted(r.kinks)] for r in self.results
                   if r.kinks and self.on_kink == "skip"}
        for label, names in skipped.items():
            more = f" and {len(names) - 5} more" if len(names) > 5 else ""
            lines.append(f"not counted: the {label} step straddled a kink at {', '.join(names[:5])}{more} "
                         "(pass on_kink='fail' to count them)")
        ok = [r.label for r in self.results if r.grad is not None and not self.failing(r).any()]
        if not ok and self.reference_vs_exact is not None:
            agrees, detail = self.reference_vs_exact
            if agrees:
                lines.append(f"hint: every method disagrees with the reference, but the reference ({self.reference_label}) "
                             f"agrees with the exact gradient (certified) {detail}, so it is not the culprit: "
                             "the methods lose accuracy to the function's conditioning at theta (cancellation or "
                             "overflow in floating point, e.g. log(1 - p) with p near 1, or a loss near 0). Rewrite "
                             "f in a stable form (log1p, logaddexp, ...) or loosen rtol for the affected methods.")
            else:
                lines.append(f"hint: every method disagrees with the reference, and the reference "
                             f"({self.reference_label}) disagrees with the exact gradient (certified) too "
                             f"({detail}): the reference is likely wrong.")
        elif not ok and len(self.results) > 1 and not self.reference_exact:
            lines.append(f"hint: every method disagrees with the reference; the reference ({self.reference_label}) "
                         "may itself be wrong. Try reference='exact' or a different reference method.")
        elif ok:
            lines.append(f"agree with the reference: {', '.join(ok)}")
            if self.reference_vs_exact is not None and not self.reference_vs_exact[0]:
                lines.append(f"hint: the reference ({self.reference_label}) disagrees with the exact gradient "
                             f"(certified) ({self.reference_vs_exact[1]}): the reference is likely wrong; "
                             f"{', '.join(ok)} agree{'s' if len(ok) == 1 else ''} with it only within "
                             f"{'its' if len(ok) == 1 else 'their'} looser tolerance.")
        lines += self._unchecked_lines()
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def reference_is_odd_one_out(self) -> bool:
        """True when the reference is not the exact one (nor agrees with it) and ``methods_agree()``: then the
        reference, not the methods, is the likely culprit. The exact (certified) reference is never blamed: methods
        that agree with each other against it share an error, or evaluate at another point."""
        if self.reference_exact:
            return False
        if self.reference_vs_exact is not None and self.reference_vs_exact[0]:
            return False  # the reference agrees with the exact gradient: it is not the odd one out
        return self.methods_agree()

    def methods_agree(self) -> bool:
        """True when at least two methods ran, every one fails against the reference, and they agree with each
        other within their own tolerances (``|g_a - g_b| <= atol_a + atol_b + max(rtol) * max(|g_a|, |g_b|)`` at
        every entry not straddling a kink)."""
        ran = [r for r in self.results if r.grad is not None]
        if len(ran) < 2 or len(ran) != len(self.results) or any(not self.failing(r).any() for r in ran):
            return False
        for i, a in enumerate(ran):
            for b in ran[i + 1:]:
                skip = self.kink_mask(a) | self.kink_mask(b)
                with np.errstate(invalid="ignore"):
                    tol = a.atol + b.atol + max(a.rtol, b.rtol) * np.maximum(np.abs(a.grad), np.abs(b.grad))
                    close = np.abs(a.grad - b.grad) <= tol
                if not np.all(close | skip):
                    return False
        return True

    def raise_if_failed(self, n_worst: int = 5) -> "GradcheckReport":
        if not self.passed:
            raise AssertionError(self.failure_message(n_worst))
        return self
