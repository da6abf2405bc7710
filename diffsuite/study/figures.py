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
    plt.rcParams.update({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3, "legend.fontsize": 7.5,
                         "svg.hashsalt": "diffsuite"})
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kw)
    return fig, axes


def figure_legend(fig, ax, ncol: int = 4) -> None:
    """One legend for the whole figure, below the panels (``save`` leaves room for it)."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False)
    fig._diffsuite_legend_rows = (len(labels) + ncol - 1) // ncol


def _layout(fig) -> None:
    """Fixed margins in inches (tight_layout would draw the whole figure once more just to measure it)."""
    w, h = fig.get_size_inches()
    legend = 0.2 * getattr(fig, "_diffsuite_legend_rows", 0)
    bottom = 0.75 + (legend + 0.1 if legend else 0.0)
    if any(t.get_rotation() for ax in fig.axes for t in ax.get_xticklabels()):
        bottom += 0.6
    fig.subplots_adjust(left=0.85 / w, right=1 - 0.2 / w, top=1 - 0.4 / h, bottom=bottom / h, wspace=0.32,
                        hspace=0.45)


def save(fig, path: Path | str) -> Path:
    """Write a PNG without a software/date tag (same data -> same bytes) and close the figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _layout(fig)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path
