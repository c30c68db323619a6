"""A table's conclusions as one picture, beside its bar chart: per comparison (a row of the
plot) our paired difference B - A with its 95 % CI, the paper's printed difference beside it,
the zero line, and the Holm verdict as the marker (filled: a difference after Holm's
correction; open: none shown). Comparisons without a test name their status instead."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from dedl_experiments.report.analysis.compare import ComparisonRow
from dedl_experiments.report.rendering.fmt import is_duration
from dedl_experiments.report.definition.spec import TableSpec

_OURS, _PAPER = "C0", "C3"


def to_forest_png(spec: TableSpec, rows: list[ComparisonRow], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    durations = any(is_duration(row.metric) for row in rows)
    scale = 1 / 60 if durations else 1.0  # times in minutes
    height = max(2.5, 1.4 + 0.28 * len(rows))
    figure = Figure(figsize=(8.5, height), layout="constrained")
    axes = figure.add_subplot()
    labels = []
    for y, row in enumerate(rows):
        labels.append(f"{row.comparison.name}: {row.pair.label}")
        result = row.result
        if result is not None and result.ci is not None and result.mean_diff is not None:
            low, high = (bound * scale for bound in result.ci)
            axes.hlines(y, low, high, color=_OURS, linewidth=1.6)
            significant = bool(row.reject and result.tested)
            axes.plot(result.mean_diff * scale, y, "o", color=_OURS, markersize=6,
                      markerfacecolor=_OURS if significant else "white")
        else:
            status = row.verdict if len(row.verdict) <= 40 else row.verdict[:39] + "…"
            axes.annotate(status, (0, y), xytext=(4, 0), textcoords="offset points", fontsize=6,
                          color="0.4", va="center")
        if row.paper_diff is not None:
            axes.plot(row.paper_diff * scale, y + 0.25, "D", color=_PAPER, markersize=4)
    axes.axvline(0, color="0.3", linewidth=0.8, linestyle="--")
    axes.set_yticks(range(len(rows)), labels, fontsize=7)
    axes.set_ylim(len(rows) - 0.4, -0.6)  # the first comparison on top
    unit = "minutes" if durations else " / ".join(dict.fromkeys(row.metric for row in rows)) or spec.metric
    axes.set_xlabel(f"B - A ({unit}); ours with 95 % CI, unit of replication the seed", fontsize=8)
    axes.set_title(f"{spec.name}: paired differences", fontsize=10)
    axes.grid(axis="x", color="0.9")
    axes.legend(handles=[
        Line2D([], [], color=_OURS, marker="o", label="ours: different after Holm"),
        Line2D([], [], color=_OURS, marker="o", markerfacecolor="white", label="ours: no difference shown"),
        Line2D([], [], color=_PAPER, marker="D", linestyle="", label="the paper's printed difference"),
    ], fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.savefig(path, dpi=110)
