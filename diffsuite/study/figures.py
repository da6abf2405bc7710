"""Figures: one colour and one marker per differentiator, the same in every figure; PNG, reproducible bytes.

``STYLE`` is the single source of truth for how a method looks. Method labels are
``symbolic[cse]``, ``symbolic[no-cse]``, ``finite_diff[<scheme>]``, ``reverse[numpy]``,
``reverse[torch-cpu]``, ``reverse[torch-cuda]``; float32 rows of a method keep its colour and marker
and are drawn hollow (or in their own panel). Conventions: log-log for cost against size, log-y for
errors, axes labelled with their units, a legend in every axes with data, no timestamps anywhere.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter  # noqa: E402

#: method label -> (colour, marker)
STYLE: dict[str, tuple[str, str]] = {
    "symbolic[cse]": ("#7b3294", "D"),
    "symbolic[no-cse]": ("#c2a5cf", "d"),
    "finite_diff[forward]": ("#e66101", "^"),
    "finite_diff[backward]": ("#a6611a", "v"),
    "finite_diff[central]": ("#d7191c", "o"),
    "finite_diff[five_point]": ("#f1a340", "s"),
    "finite_diff[richardson]": ("#808000", "P"),
    "finite_diff[complex_step]": ("#0099a8", "X"),
    "reverse[numpy]": ("#2c7bb6", "*"),
    "reverse[torch-cpu]": ("#1a9641", "h"),
    "reverse[torch-cuda]": ("#000000", "p"),
}
FALLBACK = ("#777777", "o")
FD_SCHEMES = ("forward", "backward", "central", "five_point", "richardson", "complex_step")


def style(method: str) -> tuple[str, str]:
    """(colour, marker) of a method label; methods not in STYLE are grey circles."""
    return STYLE.get(method, FALLBACK)


def method_order(methods) -> list[str]:
    """Methods in STYLE's order (so legends list them the same way everywhere), unknown ones last."""
    known = [m for m in STYLE if m in set(methods)]
    return known + sorted(set(methods) - set(STYLE))


def plot_kwargs(method: str, *, hollow: bool = False, **extra) -> dict:
    colour, marker = style(method)
    kw = dict(color=colour, marker=marker, markersize=6, linewidth=1.4)
    if hollow:
        kw.update(markerfacecolor="none")
    kw.update(extra)
    return kw


def subplots(nrows: int = 1, ncols: int = 1, *, width: float = 5.2, height: float = 3.9, **kw):
    """Panels under matplotlib's constrained layout: labels, rotated ticks and outside legends get the room they
    need (fixed margins clipped a long legend)."""
    plt.rcParams.update({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3, "legend.fontsize": 7.5,
                         "svg.hashsalt": "diffsuite"})
    kw.setdefault("layout", "constrained")
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kw)
    return fig, axes


def figure_legend(fig, ax=None, ncol: int = 4) -> None:
    """One legend for the whole figure, below the panels, outside them (the layout makes room). Its entries are
    ``ax``'s, or with ``ax=None`` those of every panel (each label once, in the order first drawn)."""
    entries = {}
    for a in ([ax] if ax is not None else fig.axes):
        for handle, label in zip(*a.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncol=ncol, frameon=False)


def _legends_outside(fig) -> None:
    """A legend drawn inside an axes (``ax.legend()``) may cover the curves: move it to the right of the axes."""
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None:
            continue
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)


def _is_count(values) -> bool:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    return len(v) > 0 and bool(np.all(v == np.round(v)))


def _ticks(fig) -> None:
    """Integer ticks on a linear axis whose data are all whole numbers (depth, width, counts: never 1.5 layers);
    no minor labels on a log axis spanning a decade or more (they overlapped the major ones)."""
    for ax in fig.axes:
        lines = [ln for ln in ax.get_lines() if len(ln.get_xdata())]
        for axis, data in ((ax.xaxis, [x for ln in lines for x in np.asarray(ln.get_xdata(), dtype=float)]),
                           (ax.yaxis, [y for ln in lines for y in np.asarray(ln.get_ydata(), dtype=float)])):
            if axis.get_scale() == "linear" and data and _is_count(data):
                if not isinstance(axis.get_major_locator(), FixedLocator):  # ticks set by hand (categories) stay
                    axis.set_major_locator(MaxNLocator(integer=True))
            elif axis.get_scale() == "log":
                lo, hi = sorted(abs(v) for v in axis.get_view_interval())
                if lo > 0 and hi / lo >= 10:
                    axis.set_minor_formatter(NullFormatter())
                elif lo > 0:  # under a decade matplotlib labels minor ticks as 2.6x10^-1: plain numbers read better
                    plain = FuncFormatter(lambda v, _: f"{v:.2g}")
                    axis.set_major_formatter(plain)
                    axis.set_minor_formatter(plain)


def _fit_figure_legends(fig) -> None:
    """Fewer columns for a figure legend wider than the figure (its entries would be cut off at the edges)."""
    legends = list(fig.legends)
    if not legends:
        return
    fig.canvas.draw()  # the layout and the text sizes are known only after a draw
    width = fig.bbox.width
    for legend in legends:
        ncol = legend._ncols
        while ncol > 1 and legend.get_window_extent().width > width:
            ncol -= 1
            handles, labels = legend.legend_handles, [t.get_text() for t in legend.get_texts()]
            legend.remove()
            legend = fig.legend(handles, labels, loc="outside lower center", ncol=ncol, frameon=False)
            fig.canvas.draw()


def save(fig, path: Path | str) -> Path:
    """Write a PNG without a software/date tag (same data -> same bytes) and close the figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _legends_outside(fig)
    _ticks(fig)
    _fit_figure_legends(fig)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path
