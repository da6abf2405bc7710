"""The speed, second_order, accuracy and expression_growth reports built from small hand-made row tables: each
sentence and caption states what the rows show (memory only when the rows carry it, budget rows as estimated or
measured or not attempted, rounds as timed, wrong HVPs flagged, hollow markers only when drawn, where CSE is
cheaper than the tape), never a claim typed in ahead of the data."""
import numpy as np
import pandas as pd
import pytest

from diffsuite.study.report import Figure, Table, fmt
from diffsuite.study.studies import accuracy as acc
from diffsuite.study.studies import expression_growth as eg
from diffsuite.study.studies import second_order as so
from diffsuite.study.studies import speed as sp
from report_text import report_text


def _captions(rep) -> str:
    return "\n".join(b.caption for b in rep.blocks if isinstance(b, (Figure, Table)))


def _line(text: str, *words: str) -> str:
    """The one sentence line of ``text`` holding every word of ``words``."""
    lines = [b for b in text.splitlines() if all(w in b for w in words)]
    assert len(lines) == 1, (words, lines)
    return lines[0]


# ----- speed -----
SPEED_RATIOS = {"reverse[numpy]": (2.05, 5.28, 3.05, 2.87), "finite_diff[central]": (74.6, 63.3, 165.0, 423.0)}


def _speed_rows(memory: bool) -> pd.DataFrame:
    rows = []
    for m, ratios in SPEED_RATIOS.items():
        for k, (w, r) in enumerate(zip((2, 4, 8, 16), ratios)):
            n = 30 * 3 ** k
            row = {"method": m, "width": w, "n_params": n, "device": "cpu", "status": "ok", "forward_s": 1e-4,
                   "grad_s": r * 1e-4, "grad_q1_s": r * 0.9e-4, "grad_q3_s": r * 1.1e-4, "setup_s": 1e-4,
                   "grad_over_forward": r, "rel_error_vs_reverse_numpy": 1e-16}
            if memory:
                row.update(grad_peak_bytes=8.0 * n + 4096, grad_minor_faults=0.2)
            rows.append(row)
    # central differences: estimated over the budget at width 32 and not run, width 64 then not attempted
    rows.append({"method": "finite_diff[central]", "width": 32, "n_params": 2000, "status": "budget",
                 "forward_s": 0.01, "estimated_grad_s": 40.1,
                 "message": "estimated 40.1 s per gradient (4001 forward passes) exceeds the 20 s budget"})
    rows.append({"method": "finite_diff[central]", "width": 64, "status": "budget",
                 "message": "not attempted: width 32 already exceeded the 20 s budget"})
    # symbolic: its setup ran and went over the budget at width 2, width 4 not attempted
    rows.append({"method": "symbolic[cse]", "width": 2, "status": "budget",
                 "message": "cse exceeded its budget of 20 s (got as far as joint CSE); raise the budget"})
    rows.append({"method": "symbolic[cse]", "width": 4, "status": "budget",
                 "message": "not attempted: width 2 already exceeded the 20 s budget"})
    return pd.DataFrame(rows)


SPEED_META = {"config": {"budget_s": 20.0, "threads": 1}}


def test_speed_states_memory_only_when_the_rows_carry_it(tmp_path):
    rep = sp.report(_speed_rows(memory=False), SPEED_META, tmp_path)
    text = report_text(rep)
    assert "Memory, measured after timing" not in text and "getrusage" not in text
    line = _line(text, "Memory")
    assert "none of these 8 measured rows records it" in line and "before the study recorded memory" in line
    assert not (tmp_path / "memory_vs_params.png").exists() and "memory_vs_params.png" not in _captions(rep) + \
        " ".join(b.file for b in rep.blocks if isinstance(b, Figure))
    assert rep.findings["rows_with_memory"] == 0

    with_memory = sp.report(_speed_rows(memory=True), SPEED_META, tmp_path / "m")
    line = _line(report_text(with_memory), "Memory")
    assert "Memory, measured after timing" in line and "getrusage" in line and "none of" not in line
    assert any(isinstance(b, Figure) and b.file == "memory_vs_params.png" for b in with_memory.blocks)


def test_speed_tells_estimated_from_measured_budget_overruns_and_names_what_was_not_attempted(tmp_path):
    rep = sp.report(_speed_rows(memory=False), SPEED_META, tmp_path)
    text = report_text(rep)
    assert "budget from width" not in text  # the old sentence: every budget row as an overrun from that width on
    fd = _line(text, "`finite_diff[central]`", "budget")
    assert "was estimated to exceed the 20 s budget at width 32" in fd and "was not run" in fd
    assert f"**{fmt(40.1)} s**" in fd and "width 64 was not attempted" in fd
    assert "ran and went over" not in fd
    sym = _line(text, "`symbolic[cse]`", "budget")
    assert "ran and went over the 20 s budget at width 2" in sym and "cse exceeded its budget" in sym
    assert "estimated" not in sym and "width 4 was not attempted" in sym
    assert rep.findings["finite_diff[central]_estimated_over_budget_widths"] == [32]
    assert rep.findings["finite_diff[central]_not_attempted_widths"] == [64]
    assert rep.findings["symbolic[cse]_measured_over_budget_widths"] == [2]


def test_speed_ratio_caption_describes_the_plotted_ratios_not_a_trend(tmp_path):
    rep = sp.report(_speed_rows(memory=False), SPEED_META, tmp_path)
    caption = next(b.caption for b in rep.blocks if isinstance(b, Figure) and b.file == "grad_over_forward.png")
    assert "small constant" not in caption and "grow with n" not in caption
    for m, ratios in SPEED_RATIOS.items():  # range, and the values at the smallest and the largest size
        part = caption.split(f"`{m}`")[1].split(";")[0]
        assert part.startswith(f" {fmt(min(ratios))} to {fmt(max(ratios))}")
        assert f"{fmt(ratios[0])} at n = 30" in part and f"{fmt(ratios[-1])} at n = 810" in part
        assert rep.findings[f"{m}_grad_over_forward_min"] == min(ratios)


# ----- second_order -----
def _second_order_rows() -> pd.DataFrame:
    rows = []
    for m, errs in (("forward[fwd-rev]", (0.0, 2e-16)), ("finite_diff[central]", (3e-8, 6e-8))):
        for seed, e in enumerate(errs):
            rows.append({"kind": "accuracy", "case": "relu/hinge", "seed": seed, "method": m, "status": "ok",
                         "n_params": 17, "hessian_rel_err": e, "hvp_rel_err": e, "asymmetry": 0.0})
    cost = [("forward[fwd-rev]", "8x8x2", 90, 3.4, 3, 0.0), ("forward[fwd-rev]", "32x32x10", 1386, 3.2, 3, 0.0),
            ("forward[fwd-fwd]", "8x8x2", 90, 4.8, 3, 3e-16), ("forward[fwd-fwd]", "32x32x10", 1386, 990.0, 1, 2e-16),
            ("finite_diff[central]", "8x8x2", 90, 700.0, 3, 5e-8),
            ("finite_diff[central]", "32x32x10", 1386, 2.0e4, 1, 3.7)]
    for m, net, n, ratio, rounds, diff in cost:
        rows.append({"kind": "cost", "method": m, "net": net, "batch": 16, "n_params": n, "status": "ok",
                     "grad_s": 1e-4, "hvp_s": ratio * 1e-4, "ratio": ratio, "rounds": rounds,
                     "ratio_spread": 0.0 if rounds == 1 else 0.3, "rel_diff_from_fwd_rev": diff})
    return pd.DataFrame(rows)


SO_META = {"config": {"growth_width": 2}}


def test_second_order_says_how_many_rounds_each_cost_row_ran(tmp_path):
    rep = so.report(_second_order_rows(), SO_META, tmp_path)
    line = _line(report_text(rep), "rounds")
    assert "three rounds" not in line
    assert "4 of the 6 cost rows ran 3 rounds" in line
    assert "2 of the 6 cost rows ran 1 round (finite_diff[central] 32x32x10, forward[fwd-fwd] 32x32x10)" in line
    assert "first HVP call took 1 s or more" in line
    table = next(b.df for b in rep.blocks if isinstance(b, Table) and b.caption.startswith("HVP cost"))
    assert sorted(table["rounds"]) == [1, 1, 3, 3, 3, 3]
    # every row timed in three rounds: said so, and no word about single rounds
    three = _second_order_rows().assign(rounds=3)
    line = _line(report_text(so.report(three, SO_META, tmp_path)), "rounds")
    assert "every cost row here ran 3 rounds" in line and "one round" not in line


def test_second_order_states_fitted_exponents_and_flags_hvps_that_disagree(tmp_path):
    rows = _second_order_rows()
    rep = so.report(rows, SO_META, tmp_path)
    text = report_text(rep)
    assert "O(n)" not in text
    c = rows[(rows["kind"] == "cost") & (rows["method"] == "forward[fwd-fwd]")]
    slope = np.polyfit(np.log10(c["n_params"]), np.log10(c["ratio"]), 1)[0]
    fwd = _line(text, "forward[fwd-fwd]:", "slope")
    assert f"log-log slope of **{fmt(slope)}**" in fwd and "a line through its 2 sizes, not a fit" in fwd
    assert rep.findings["forward[fwd-fwd]_ratio_slope"] == pytest.approx(slope)
    flag = _line(text, "timed HVPs differ")
    assert "1 of 6 timed HVPs differs" in flag and "finite_diff[central] at 32x32x10" in flag and "**3.7**" in flag
    assert rep.findings["cost_hvp_disagreements"] == 1
    table = next(b for b in rep.blocks if isinstance(b, Table) and b.caption.startswith("HVP cost"))
    assert table.df.set_index(["method", "net"]).loc[("finite_diff[central]", "32x32x10"), "HVP check"] == "differs"
    assert (table.df["HVP check"] == "differs").sum() == 1
    assert "circled" in next(b.caption for b in rep.blocks if isinstance(b, Figure) and b.file == "hvp_cost.png")
    # no disagreement: said so, nothing circled
    fine = rows.assign(rel_diff_from_fwd_rev=rows["rel_diff_from_fwd_rev"].clip(upper=1e-7))
    rep = so.report(fine, SO_META, tmp_path)
    assert "Every timed HVP agrees with forward-over-reverse's" in report_text(rep)
    assert "circled" not in _captions(rep)


def test_second_order_captions_say_how_zeros_are_drawn_and_what_the_hvp_reference_is(tmp_path):
    rep = so.report(_second_order_rows(), SO_META, tmp_path)
    caption = next(b.caption for b in rep.blocks if isinstance(b, Figure) and b.file == "hessian_error.png")
    assert "errors below 1e-17 are drawn at 1e-17" in caption and "1 error of exactly 0" in caption
    assert rep.findings["hessian_errors_zero"] == 1
    title = next(b.caption for b in rep.blocks if isinstance(b, Table) and "HVP errors" in b.caption)
    assert "times v" in title and "HVP errors against the exact reference" not in title
    assert "H_ref v being the product of that rounded Hessian with v in float64" in report_text(rep)


# ----- accuracy -----
def _accuracy_rows(near_kink: bool) -> pd.DataFrame:
    rows = []
    for seed, act in enumerate(("relu", "tanh")):
        for m, e in (("finite_diff[central]", 1e-10), ("reverse[numpy]", 1e-16), ("reverse[torch-cpu]", 2e-16)):
            k = near_kink and act == "relu" and m.startswith("finite_diff")
            rows.append({"activation": act, "loss": "quadratic", "reg": "none", "seed": seed, "method": m,
                         "dtype": "float64", "rel_error": e * (100 if k else 1), "near_kink": k,
                         "problem_near_kink": near_kink and act == "relu", "has_kink": act == "relu",
                         "status": "ok", "reference": "diffsuite.reference (certified)", "reference_bits": 200})
    return pd.DataFrame(rows)


def test_accuracy_mentions_hollow_markers_only_when_a_stencil_straddled_a_kink(tmp_path):
    rep = acc.report(_accuracy_rows(near_kink=False), {"config": {}}, tmp_path)
    text = report_text(rep)
    assert "ollow" not in _captions(rep)
    line = _line(text, "No finite-difference stencil straddled a kink")
    assert "none of the 2 finite-difference rows" in line and "1 of the 2 problems contain a kink" in line
    assert "reverse mode's median" not in text and "`reverse[numpy]`'s median error is" in text

    kinked = acc.report(_accuracy_rows(near_kink=True), {"config": {}}, tmp_path / "k")
    assert "Hollow markers: a finite-difference stencil straddled a kink." in _captions(kinked)
    assert "No finite-difference stencil straddled" not in report_text(kinked)


# ----- expression_growth -----
def _growth_rows(ratios: dict) -> pd.DataFrame:
    """Symbolic and tape rows whose CSE'd ops / tape ops are ``ratios[width]`` at depths 1, 2, ..."""
    rows = []
    for w, rs in ratios.items():
        for d, r in enumerate(rs, 1):
            tape = 40 * d
            rows.append({"kind": "tape", "engine": "-", "width": w, "depth": d, "status": "ok", "n_params": 9 * d,
                         "tape_scalar_ops": tape, "tape_records": 10 * d})
            rows.append({"kind": "symbolic", "engine": "symengine", "width": w, "depth": d, "status": "ok",
                         "n_params": 9 * d, "cse_all_ops": r * tape, "grad_tree_nodes": 600 * 4 ** d,
                         "grad_dag_nodes": 40 * d, "cse_one_ops": 20 * d, "loss_tree_nodes": 40 * d,
                         "cse_all_nodes": 80 * d, "build_s": 0.01 * d, "message": None})
    return pd.DataFrame(rows)


def test_expression_growth_says_per_width_where_cse_is_cheaper_than_the_tape(tmp_path):
    rep = eg.report(_growth_rows({2: (0.9, 1.3, 5.0), 3: (0.95, 1.6, 10.0)}), {"config": {}}, tmp_path)
    verdict = report_text(rep).splitlines()[0]
    assert "as cheap as reverse mode at any" not in verdict and "shallowest depth" not in verdict
    for w, (d1, d2, d3) in ((2, (0.9, 1.3, 5.0)), (3, (0.95, 1.6, 10.0))):
        part = verdict.split(f"At width {w} ")[1].split(". ")[0]
        assert f"cheaper than the tape at depth 1 ({fmt(d1)} times the tape's scalar operations)" in part
        assert f"costlier from depth 2 on ({fmt(d2)} times the tape's scalar operations at depth 2, {fmt(d3)} at " \
               "depth 3)" in part
        assert "crosses 1 between depths 1 and 2" in part
        assert rep.findings[f"w{w}_cheaper_depths"] == [1] and rep.findings[f"w{w}_first_costlier_depth"] == 2
    # costlier everywhere: then (and only then) CSE is said not to be as cheap as reverse mode at any depth
    rep = eg.report(_growth_rows({2: (1.1, 2.0, 3.0)}), {"config": {}}, tmp_path / "c")
    verdict = report_text(rep).splitlines()[0]
    assert "as cheap as reverse mode at any measured depth" in verdict and "cheaper than the tape" not in verdict
    assert "costlier than the tape at every measured depth" in verdict
