"""Render a table's learning curves (curves.py): the data-saving figures first (the headline),
the metric per variant and size (mean and 95 % CI), the paired comparisons with the baseline at
every size, the fitted curves; and a PNG of the curves (log2 x axis)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from dedl_experiments.report.rendering import fmt
from dedl_experiments.report.analysis.curve_fit import value_at
from dedl_experiments.report.analysis.curves import FRACTION, CurveReport
from dedl_experiments.report.rendering.render_analysis import comparisons_markdown
from dedl_experiments.report.analysis.stats import CONFIDENCE, mean_ci

_PERCENT = f"{100 * CONFIDENCE:g} %"


def _size(report: CurveReport, label: str) -> str:
    x = report.x[label]
    if x is None:
        return label
    return label if report.unit == FRACTION else f"{label} ({x:g} images)"


def _point(metric: str, values: list[float]) -> str:
    if not values:
        return "—"
    ci = mean_ci(values)
    interval = f" [{fmt.value(metric, ci[0])}, {fmt.value(metric, ci[1])}]" if ci else ""
    return f"{fmt.value(metric, float(np.mean(values)))}{interval} (n={len(values)})"


def _cells_table(report: CurveReport) -> list[str]:
    metric, variants = report.table.metric, [v.label for v in report.spec.variants]
    by_position = {(c.row, c.column): c for c in report.cells}
    lines = [f"| {report.spec.key} | " + " | ".join(variants) + " |", "|" + "---|" * (len(variants) + 1)]
    for size in report.spec.sizes:
        entries = [_point(metric, by_position[(size.label, v)].values) for v in variants]
        lines.append(f"| {_size(report, size.label)} | " + " | ".join(entries) + " |")
    return lines


def _fits_table(report: CurveReport) -> list[str]:
    form = report.form
    if form is None:
        return [f"No curves fitted: {report.curves[0].why}." if report.curves else "No curves fitted."]
    full = report.full
    unit = "of the training images" if report.unit == FRACTION else f"images, N = {full:g}"
    lines = [f"Fitted curves ({form.name}, scipy.optimize.curve_fit on the means; n {unit}): "
             f"{report.table.metric} = {form.formula}; {_PERCENT} bootstrap CIs over seeds.", "",
             "| Variant | " + " | ".join(form.parameters) + " | at the full data | at the smallest size |",
             "|" + "---|" * (len(form.parameters) + 3)]
    for curve in report.curves:
        if curve.params is None:
            lines.append(f"| {curve.variant} | " + " | ".join(["—"] * (len(form.parameters) + 2)) + f" ({curve.why}) |")
            continue
        shown = [f"{p:.4g}" + (f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "")
                 for p, ci in zip(curve.params, curve.params_ci or [None] * len(curve.params))]
        smallest = min(curve.x)
        lines.append(f"| {curve.variant} | " + " | ".join(shown) + f" | {value_at(form, curve.params, 1.0):.4f} | "
                     f"{value_at(form, curve.params, smallest):.4f} |")
    return lines


def markdown(report: CurveReport) -> str:
    spec, metric = report.spec, report.table.metric
    lines = [f"#### Learning curves: {metric} against the training-set size ({spec.key}), baseline {spec.baseline}", ""]
    if not any(cell.values for cell in report.cells):
        return "\n".join(lines) + "\nNo finished run of its sizes and variants yet: no curves.\n"
    lines += ["How much data each variant saves: the fraction of the training images it needs to reach the "
              f"baseline's full-data score, read off its fitted curve ({_PERCENT} bootstrap CI over "
              f"{report.seeds} seeds):", ""]
    lines += [f"- {saving.text}" for saving in report.savings] or ["- (no variant besides the baseline)"]
    lines += ["", f"Mean and {_PERCENT} CI (t) per size and variant:", "", *_cells_table(report), ""]
    lines += [*_fits_table(report), ""]
    lines += [f"Note: {note}" for note in report.notes]
    comparisons = comparisons_markdown(report.comparisons, by_fold=report.table.folds is not None,
                                       family="the learning curves'")
    return "\n".join(lines).rstrip() + "\n" + (f"\n{comparisons}" if comparisons else "")


def to_png(report: CurveReport, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure(report).savefig(path, dpi=100)


def figure(report: CurveReport) -> Figure:
    """The metric against the training-set size (log2 axis): per variant its means with 95 % CI
    error bars and its fitted curve (dashed); the baseline's full-data score (dotted), where a
    variant's curve crosses it is its data-saving figure."""
    drawn = Figure(figsize=(7.5, 4.5), layout="constrained")
    axes = drawn.add_subplot()
    by_position = {(c.row, c.column): c for c in report.cells}
    full, sizes, fitted = report.full, set(), False
    for index, variant in enumerate(report.spec.variants):
        colour = f"C{index % 10}"
        points = [(report.x[size.label], by_position[(size.label, variant.label)].values)
                  for size in report.spec.sizes if report.x[size.label] is not None]
        points = sorted((x, values) for x, values in points if values)
        if not points:
            continue
        xs = np.array([x for x, _ in points])
        means = np.array([np.mean(values) for _, values in points])
        cis = [mean_ci(values) or (mean, mean) for (_, values), mean in zip(points, means)]
        errors = np.array([[mean - ci[0] for ci, mean in zip(cis, means)], [ci[1] - mean for ci, mean in zip(cis, means)]])
        # Each variant's points a little apart on the axis, so that CIs at one size do not hide each other.
        dodge = 2.0 ** (0.02 * (index - (len(report.spec.variants) - 1) / 2))
        axes.errorbar(xs * dodge, means, yerr=errors, fmt="o", color=colour, capsize=4, label=variant.label)
        sizes.update(xs)
        curve = next(c for c in report.curves if c.variant == variant.label)
        if curve.params is not None and full:
            grid = np.geomspace(xs.min(), xs.max(), 100)
            axes.plot(grid, [value_at(report.form, curve.params, x / full) for x in grid], "--", color=colour)
            fitted = True
    if report.target is not None:
        axes.axhline(report.target, color="grey", linestyle=":", linewidth=1)
    axes.set_xscale("log", base=2)
    axes.set_xticks(sorted(sizes), [f"{x:g}" for x in sorted(sizes)])
    axes.minorticks_off()
    handles, labels = axes.get_legend_handles_labels()
    extra = [(Line2D([], [], color="black", marker="o", linestyle="none"), f"mean, {_PERCENT} CI over seeds")]
    if fitted:
        extra.append((Line2D([], [], color="black", linestyle="--"), f"fitted {report.form.name}"))
    if report.target is not None:
        extra.append((Line2D([], [], color="grey", linestyle=":"), f"{report.spec.baseline}: full-data score"))
    axes.set_xlabel(f"{report.unit} (log2 scale)" if report.unit == FRACTION else f"number of {report.unit} (log2 scale)")
    axes.set_ylabel(report.table.metric)
    axes.set_title(f"{report.table.name}: learning curves, baseline {report.spec.baseline}", fontsize=10)
    if handles:
        axes.legend(handles + [h for h, _ in extra], labels + [label for _, label in extra], fontsize=7,
                    loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return drawn
