"""Study reports built from small hand-made result tables: every sentence states what the rows show, and
findings.json holds the numbers the text quotes."""
import re

import numpy as np
import pandas as pd
import pytest

from diffsuite.study.report import Bullets, fmt
from diffsuite.study.studies import agreement as ag
from report_text import report_text


_text = report_text


def _agreement_rows():
    rows = []
    base = {"seed": 0, "activation": "relu", "loss": "quadratic", "reg": "none", "layers": "1-2-1", "batch": 1,
            "scale": 1.0, "kinks": "", "reference": "arb", "status": "ok"}
    central = [(0, 1e-11, False, False), (1, 0.067, True, False),      # one unexplained disagreement: 0.067
               (2, 1.67e5, True, True), (3, 2.5, True, True)]         # two explained by a kink, worst 1.67e5
    for i, e, beyond, expl in central:
        rows.append({**base, "problem": i, "on_kink": expl, "method": "finite_diff[central]", "tolerance": 1e-5,
                     "error": e, "beyond": beyond, "explained": expl, "straddles_kink": expl})
        rows.append({**base, "problem": i, "on_kink": expl, "method": "reverse[numpy]", "tolerance": 1e-12,
                     "error": 1e-16, "beyond": False, "explained": False, "straddles_kink": False})
    return pd.DataFrame(rows)


def test_agreement_worst_error_is_over_the_unexplained_disagreements(tmp_path):
    rep = ag.report(_agreement_rows(), {"config": {"seed": 0}}, tmp_path)
    text, f = _text(rep), rep.findings
    line = next(b for b in text.splitlines() if "disagrees beyond its class" in b)
    assert "**1** of 4" in line and fmt(0.067) in line and fmt(1.67e5) not in line
    kink = next(b for b in text.splitlines() if "straddles a kink" in b)
    assert "**2**" in kink and fmt(1.67e5) in kink
    assert f["finite_diff_central_worst_disagreement"] == 0.067
    assert f["finite_diff_central_explained_by_kink"] == 2 and f["finite_diff_central_worst_explained"] == 1.67e5
    assert f["finite_diff_central_max"] == 1.67e5  # the max over all rows is still stored, under its own name


def _numbers(text: str) -> set[str]:
    """The numbers a report sentence prints (fmt's forms), without those inside `code` or names."""
    text = re.sub(r"`[^`]*`", "", text)
    return set(re.findall(r"(?<![\w.^-])-?\d+(?:\.\d+)?(?:e[+-]\d+)?", text))


def _findings_numbers(findings: dict) -> set[str]:
    out = set()
    for v in findings.values():
        if isinstance(v, bool) or v is None or isinstance(v, str) or isinstance(v, (list, dict)):
            continue
        out.add(fmt(v))
        out.add(str(v))
    return out


def test_agreement_text_numbers_are_all_in_findings(tmp_path):
    rep = ag.report(_agreement_rows(), {"config": {"seed": 0}}, tmp_path)
    bullets = next(b for b in rep.blocks if isinstance(b, Bullets))
    missing = set().union(*(_numbers(i) for i in bullets.items)) - _findings_numbers(rep.findings)
    assert not missing, missing


# ----- rounding_error -----
from diffsuite.study.studies import rounding_error as re_  # noqa: E402


def _rounding_rows(levels_scheme="richardson"):
    rows = []
    for m, sweep, auto in (("finite_diff[central]", {1e-4: 1e-9, 1e-6: 1.44e-11, 1e-8: 1e-9}, (6.06e-6, 3.12e-13)),
                           (f"finite_diff[{levels_scheme}]", {1e-1: 1e-12, 1e-2: 2e-12}, (5e-2, 5e-12))):
        for h, e in sweep.items():
            rows.append({"problem": "scalar", "method": m, "dtype": "float64", "h": h, "step_kind": "sweep",
                         "rel_error": e, "status": "ok", "reference": "closed form"})
        rows.append({"problem": "scalar", "method": m, "dtype": "float64", "h": auto[0], "step_kind": "auto",
                     "rel_error": auto[1], "status": "ok", "reference": "closed form"})
    return pd.DataFrame(rows)


def test_rounding_error_smallest_error_includes_the_automatic_step(tmp_path):
    rep = re_.report(_rounding_rows(), {"config": {"richardson_levels": 4}}, tmp_path)
    f, text = rep.findings, _text(rep)
    assert f["scalar_float64_central_best_sweep_error"] == 1.44e-11
    assert f["scalar_float64_central_smallest_error"] == 3.12e-13 and f["scalar_float64_central_smallest_at"] == "auto"
    line = next(b for b in text.splitlines() if "central differences" in b)
    assert "over the swept steps" in line and "automatic step is the smallest error measured" in line
    assert f["scalar_float64_best_scheme"] == "finite_diff[central]" and f["scalar_float64_best_scheme_error"] == 3.12e-13


def test_rounding_error_richardson_order_follows_its_levels(tmp_path):
    rep = re_.report(_rounding_rows(), {"config": {"richardson_levels": 2}}, tmp_path)
    text = _text(rep)
    assert "uses 2 levels (order 4)" in text and "order 8" not in text
    assert rep.findings["richardson_order"] == 4
    assert rep.findings["scalar_float64_richardson_h_star"] == pytest.approx(np.finfo(np.float64).eps ** (1 / 5))
    assert rep.findings["scalar_float64_richardson_h_star_from"] == "scaling rule"
    assert re_.best_table(_rounding_rows(), 3)["order p"].tolist() == [2, 6]


def test_rounding_error_model_optimum_uses_the_exact_derivatives():
    import mpmath
    mpmath.mp.dps = 40
    f = lambda x: mpmath.tanh(x) * mpmath.exp(x / 2)  # noqa: E731 - the scalar problem, written out here
    x0 = mpmath.mpf(re_.X0)
    eps = np.finfo(np.float64).eps
    fv, f2, f3 = (abs(float(mpmath.diff(f, x0, k))) for k in (0, 2, 3))
    h_central, how = re_.optimum("central", "float64", 4, "scalar")
    assert how == "model" and h_central == pytest.approx((eps * fv / (2 * f3 / 6)) ** (1 / 3), rel=1e-9)
    h_forward, _ = re_.optimum("forward", "float64", 4, "scalar")
    assert h_forward == pytest.approx((2 * eps * fv / f2) ** 0.5, rel=1e-9)  # the review's 1.2e-7
    assert re_.optimum("central", "float64", 4, "mlp") == (pytest.approx(eps ** (1 / 3)), "scaling rule")


def test_rounding_error_arms_match_the_inverted_axis(tmp_path):
    text = _text(re_.report(_rounding_rows(), {"config": {}}, tmp_path))
    assert "to the left" not in text and "no left arm" not in text
    assert "rounding error grows as eps/h on the right" in text


# ----- claims computed from the rows -----
from diffsuite.study.studies import accuracy as acc  # noqa: E402
from diffsuite.study.studies import expression_growth as eg  # noqa: E402
from diffsuite.study.studies import speed as sp  # noqa: E402
from diffsuite.study.studies import training as tr  # noqa: E402


def test_expression_growth_says_the_gap_widens_only_when_it_does():
    r = lambda *v: pd.DataFrame({"width": 2, "depth": range(1, len(v) + 1), "ratio": v})  # noqa: E731
    assert eg.ratio_trend(r(0.9, 1.4, 2.0)) == "widens"
    assert eg.ratio_trend(r(0.9, 3.0, 2.0)) == "mixed"  # the largest ratio is not at the deepest depth
    assert eg.ratio_trend(r(3.0, 2.0, 1.6)) == "narrows"
    assert eg.ratio_trend(r(2.0)) == "single"
    both = pd.concat([r(1.0, 2.0), r(2.0, 1.0).assign(width=3)])
    assert eg.ratio_trend(both) == "mixed"  # widens at one width, narrows at the other


def _acc_rows(errors):
    """accuracy rows: (method, dtype, near_kink, error)."""
    return pd.DataFrame([{"activation": "relu", "loss": "quadratic", "reg": "none", "seed": i, "method": m,
                          "dtype": d, "rel_error": e, "near_kink": k, "problem_near_kink": k, "status": "ok",
                          "reference": "diffsuite.reference (certified)"}
                         for i, (m, d, k, e) in enumerate(errors)])


def test_accuracy_names_the_scheme_kinks_hurt_most_from_the_rows(tmp_path):
    rows = _acc_rows([("finite_diff[forward]", "float64", True, 1e-2), ("finite_diff[forward]", "float64", False, 1e-8),
                      ("finite_diff[central]", "float64", True, 1e-9), ("finite_diff[central]", "float64", False, 1e-10),
                      ("finite_diff[five_point]", "float64", True, 1e-12), ("finite_diff[five_point]", "float64", False, 1e-12)])
    rep = acc.report(rows, {"config": {}}, tmp_path)
    text = _text(rep)
    assert "wide stencils" not in text
    assert "Kinks hurt `finite_diff[forward]` (float64) most" in text and rep.findings["worst_kink_method"] == \
        "finite_diff[forward]"
    assert rep.findings["central_float64_kink_problems"] == 1 and rep.findings["central_float64_problems"] == 2
    # no scheme worse near a kink: the report says so instead
    calm = _acc_rows([("finite_diff[central]", "float64", True, 1e-11), ("finite_diff[central]", "float64", False, 1e-10)])
    assert "No scheme is less accurate where its stencil straddles a kink" in _text(acc.report(calm, {"config": {}}, tmp_path))


def test_speed_says_what_its_slope_is_fitted_over():
    assert "upper 3 of its 6 sizes" in sp.slope_sentence(1.0, 6, 3)
    assert "upper half" not in sp.slope_sentence(1.0, 3, 3) and "all 3 of its sizes" in sp.slope_sentence(1.0, 3, 3)
    assert "2 sizes, not a fit" in sp.slope_sentence(2.0, 2, 2)
    assert "does not grow" in sp.slope_sentence(-0.159, 3, 3) and "n^" not in sp.slope_sentence(-0.159, 3, 3)
    rows = pd.DataFrame({"method": "reverse[numpy]", "n_params": [10, 100, 1000], "grad_s": [1e-4, 2e-4, 4e-4],
                         "grad_over_forward": 3.0, "status": "ok"})
    t = sp.slope_table(rows)
    assert t["fitted sizes"].tolist() == [3] and "slope (upper half)" not in t


def test_training_describes_only_the_methods_in_its_rows():
    quick = pd.DataFrame([{"problem": p, "reg": r, "method": m, "dtype": d, "status": "ok"}
                          for p in ("digits", "moons") for r in ("none", "l1") for m, d in tr.Config().quick().methods
                          if tr._runs(tr.Config(), p, r, m)])
    note = tr.method_notes(quick, {"fd_steps": 4})
    assert "float32" not in note and "ymbolic" not in note and "4 steps only" in note
    full = pd.DataFrame([{"problem": p, "reg": r, "method": m, "dtype": d, "status": "ok"}
                         for p in ("digits", "moons") for r in ("none", "l1") for m, d in tr.Config().methods
                         if tr._runs(tr.Config(), p, r, m)])
    note = tr.method_notes(full, {"fd_steps": 60})
    assert "Finite differences in float32" in note and "Symbolic runs on moons only" in note
