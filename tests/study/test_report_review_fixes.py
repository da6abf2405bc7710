"""Review fixes in the agreement, rounding_error and training reports: no sentence contradicts the table beside
it, counts agree with what the table prints, captions name only what was run, and figure legends sit below the
panels without covering tick labels or axis labels."""
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from diffsuite.study.report import Figure, fmt
from diffsuite.study.studies import agreement as ag
from diffsuite.study.studies import rounding_error as re_
from diffsuite.study.studies import training as tr
from report_text import report_text


_text = report_text


# ----- agreement: "within class on every problem" -----
def _agreement_rows():
    """central misses its class only where its stencil straddles a kink; reverse mode never misses."""
    base = {"seed": 0, "activation": "relu", "loss": "quadratic", "reg": "none", "layers": "1-2-1", "batch": 1,
            "scale": 1.0, "kinks": "", "reference": "arb", "status": "ok"}
    rows = []
    for i, (e, kink) in enumerate(((1e-11, False), (1.67e5, True), (3.0, True))):
        rows.append({**base, "problem": i, "on_kink": kink, "method": "finite_diff[central]", "tolerance": 1e-5,
                     "error": e, "beyond": e > 1e-5, "explained": kink, "straddles_kink": kink})
        rows.append({**base, "problem": i, "on_kink": kink, "method": "reverse[numpy]", "tolerance": 1e-12,
                     "error": 1e-16, "beyond": False, "explained": False, "straddles_kink": False})
    return pd.DataFrame(rows)


def test_agreement_every_problem_lists_only_methods_whose_max_error_is_within_class(tmp_path):
    rep = ag.report(_agreement_rows(), {"config": {"seed": 0}}, tmp_path)
    lines = _text(rep).splitlines()
    line = next(b for b in lines if b.startswith("Within their accuracy class on every problem:"))
    assert "`reverse[numpy]`" in line and "finite_diff[central]" not in line  # its max error 1.67e5 > 1e-5
    kink = next(b for b in lines if "except those where their stencil straddles a kink" in b)
    assert "`finite_diff[central]`" in kink and "reverse[numpy]" not in kink
    counted = next(b for b in lines if b.startswith("`finite_diff[central]`: **2**"))
    assert fmt(1.67e5) in counted and " more " not in counted  # nothing to be "more" than: no unexplained miss


# ----- rounding_error: rows whose h* equals the automatic step -----
def _mlp_rows():
    """The MLP: scaling-rule h* = eps^(1/(p+1)); float32's automatic step ~1e-6 relative off it (made exact in
    float32), float64's equal to it; Richardson's automatic step is 2.8x its h*."""
    rows = []
    for scheme, dtype, rel in (("central", "float64", 6e-13), ("central", "float32", -7.4e-7),
                               ("forward", "float32", 1.1e-6), ("richardson", "float64", 1.83)):
        m = f"finite_diff[{scheme}]"
        h_star, _ = re_.optimum(scheme, dtype, 4, "mlp")
        for h, e in ((1e-2, 1e-6), (1e-4, 1e-9)):
            rows.append({"problem": "mlp", "method": m, "dtype": dtype, "h": h, "step_kind": "sweep",
                         "rel_error": e, "status": "ok", "reference": "arb"})
        rows.append({"problem": "mlp", "method": m, "dtype": dtype, "h": h_star * (1 + rel), "step_kind": "auto",
                     "rel_error": 1e-8, "status": "ok", "reference": "arb"})
    return pd.DataFrame(rows)


def test_rounding_error_counts_every_row_whose_h_star_the_table_prints_equal_to_the_automatic_step(tmp_path):
    rep = re_.report(_mlp_rows(), {"config": {"richardson_levels": 4}}, tmp_path)
    best = re_.best_table(_mlp_rows(), 4)
    printed_equal = sum(fmt(a) == fmt(b) for a, b in zip(best["h*"], best["auto h (median)"]))
    assert printed_equal == 3
    assert rep.findings["scaling_rule_rows_equal_to_auto_step"] == 3
    assert "In 3 rows it equals the automatic step" in _text(rep)


# ----- training: caption and legends -----
def _training_rows(regs=("none", "l1"), problems=("digits", "moons")):
    methods = (("reverse[numpy]", "float64"), ("reverse[numpy]", "float32"), ("finite_diff[central]", "float64"))
    rows = []
    for p in problems:
        for reg in regs:
            for m, d in methods:
                for k, step in enumerate((0, 10, 20)):
                    rows.append({"problem": p, "activation": "tanh", "reg": reg, "method": m, "dtype": d,
                                 "step": step, "wall_s": 0.01 * k, "train_loss": 1.0 / (k + 1),
                                 "test_acc": 0.5 + 0.2 * k, "dist_to_reverse": 0.0 if d == "float64" else 1e-7 * k,
                                 "first_grad_error": 1e-8, "setup_s": 0.0, "underflow_zeroed": 0, "diverged_at": 0,
                                 "near_zero_1e-3": 0.01 * k, "near_zero_1e-2": 0.02 * k, "status": "ok"})
    return pd.DataFrame(rows)


def _caption(rep, name):
    return next(b.caption for b in rep.blocks if isinstance(b, Figure) and b.file == name)


@pytest.mark.parametrize("regs, named, absent", [(("none", "l1"), "for no regulariser and L1 (0.002).", "L2"),
                                                 (("none", "l2"), "for no regulariser and L2 (0.003).", "L1")])
def test_training_sparsity_caption_names_only_the_regularisers_run(tmp_path, regs, named, absent):
    rep = tr.report(_training_rows(regs, ("moons",)), {"config": {"l1": 0.002, "l2": 0.003, "target_acc": 0.9}}, tmp_path)
    caption = _caption(rep, "sparsity.png")
    assert caption.endswith(named) and absent not in caption


def test_training_legends_cover_no_tick_label_axis_label_or_panel(tmp_path, monkeypatch):
    figures = {}
    real_save = tr.save

    def keep(fig, path):
        figures[path.name] = fig
        return real_save(fig, path)

    monkeypatch.setattr(tr, "save", keep)
    tr.report(_training_rows(), {"config": {"l1": 0.002, "l2": 0.002, "target_acc": 0.9}}, tmp_path)
    assert {"loss_vs_step.png", "accuracy_vs_time.png", "distance.png", "sparsity.png"} <= set(figures)
    for name, fig in figures.items():
        renderer = FigureCanvasAgg(fig).get_renderer()  # save closed the figure: draw it again, same layout
        fig.draw(renderer)
        (legend,) = fig.legends
        box = legend.get_window_extent(renderer)
        labels = [t.get_text() for t in legend.get_texts()]
        if name != "sparsity.png":  # every method of every panel, once
            assert sorted(labels) == sorted({"finite_diff[central]", "reverse[numpy]", "reverse[numpy],float32"}
                                            - ({"reverse[numpy]"} if name == "distance.png" else set()))
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(renderer)), (name, "panel")
            for axis in (ax.xaxis, ax.yaxis):  # its tick labels and axis label
                assert not box.overlaps(axis.get_tightbbox(renderer)), (name, axis.get_label_text())
            assert box.y1 <= ax.xaxis.get_tightbbox(renderer).y0, name  # below the panels
        assert box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y0 >= 0, name  # inside the picture
