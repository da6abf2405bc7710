"""Figure and page layout: legends inside the picture, integer ticks for counts, no empty categories, tables that
scroll instead of widening the page. (scripts/screenshot_reports.py renders the pages in a browser for the eye.)"""
import numpy as np
import pandas as pd

from diffsuite.study import figures
from diffsuite.study.report import Report, Table, to_html_section


def test_a_count_axis_gets_integer_ticks(tmp_path):
    fig, axes = figures.subplots()
    ax = axes[0][0]
    ax.plot([1, 2, 3], [10.0, 30.0, 20.0], label="a")
    ax.set_xlabel("depth (hidden layers)")
    figures.save(fig, tmp_path / "f.png")
    ticks = [t for t in ax.get_xticks() if 1 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks)  # never 1.5 layers


def test_a_figure_legend_is_never_wider_than_the_figure(tmp_path):
    fig, axes = figures.subplots(width=4.0)
    labels = [f"a rather long method label number {i}" for i in range(6)]
    for i, label in enumerate(labels):
        axes[0][0].plot([1, 2], [i, i + 1], label=label)
    figures.figure_legend(fig, axes[0][0], ncol=5)  # five columns of these cannot fit in 4 inches
    figures.save(fig, tmp_path / "f.png")
    fig.canvas.draw()
    (legend,) = fig.legends
    box = legend.get_window_extent()
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width
    assert [t.get_text() for t in legend.get_texts()] == labels  # every entry is still there


def test_an_axes_legend_is_moved_off_the_curves(tmp_path):
    fig, axes = figures.subplots()
    ax = axes[0][0]
    ax.plot(np.arange(10), np.arange(10), label="curve")
    ax.legend()
    figures.save(fig, tmp_path / "f.png")
    fig.canvas.draw()
    assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1  # right of the axes


def test_wide_tables_scroll_inside_their_own_box():
    df = pd.DataFrame({f"column {i}": [1.0e-4 * i] for i in range(30)})
    html = to_html_section(Report("T", "Q?", [Table(df, "wide")]), "s")
    assert '<div class=scroll><table>' in html


def test_accuracy_draws_no_slot_for_a_method_without_rows_in_a_panel(tmp_path):
    from diffsuite.study.studies import accuracy
    rows = []
    for method, dtypes in (("symbolic[cse]", ("float64",)), ("reverse[numpy]", ("float64", "float32"))):
        for d in dtypes:
            rows.append({"activation": "tanh", "loss": "quadratic", "reg": "none", "seed": 0, "method": method,
                         "dtype": d, "status": "ok", "rel_error": 1e-16 if d == "float64" else 1e-7,
                         "near_kink": False, "problem_near_kink": False, "reference": "mpmath, 50 digits"})
    captured = {}
    real_save = accuracy.save

    def keep(fig, path):
        captured["fig"] = fig
        return real_save(fig, path)

    accuracy.save = keep
    try:
        accuracy.report(pd.DataFrame(rows), {}, tmp_path)
    finally:
        accuracy.save = real_save
    float64, float32 = captured["fig"].axes[:2]
    assert [t.get_text() for t in float64.get_xticklabels()] == ["symbolic[cse]", "reverse[numpy]"]
    assert [t.get_text() for t in float32.get_xticklabels()] == ["reverse[numpy]"]  # symbolic has no float32 slot
