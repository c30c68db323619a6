"""Render aggregated cells in the paper's layout: Markdown, CSV and a bar chart."""

from __future__ import annotations

import csv
from pathlib import Path

from matplotlib.figure import Figure

from dedl_experiments.report.cells.aggregate import Cell, RunRecord
from dedl_experiments.report.analysis.cost import CellCost, TableCost, device_kind
from dedl_experiments.report.rendering.fmt import format_duration, hours, is_duration
from dedl_experiments.report.definition.spec import Published, TableSpec
from dedl_experiments.tracking.run_tags import DEVICE_NAME_TAG

__all__ = ["format_duration", "is_duration", "run_link", "to_csv", "to_markdown", "to_png"]

_BAR_WIDTH = 0.4  # in x-axis units; rows are laid out in bar-width slots


def _format_mean(metric: str, value: float) -> str:
    return format_duration(value) if is_duration(metric) else f"{value:.4f}"


def _format_std(metric: str, value: float) -> str:
    return format_duration(value) if is_duration(metric) else f"{value:#.2g}"


def _format_published(metric: str, published: Published | None) -> str:
    if published is None:
        return "—"
    # ":g" keeps the printed digits (0.82765, 0.00074) without padding.
    mean = format_duration(published.mean) if is_duration(metric) else f"{published.mean:g}"
    if published.std is None:
        return mean
    std = format_duration(published.std) if is_duration(metric) else f"{published.std:g}"
    return f"{mean} ± {std}"


def _format_ours(metric: str, cell: Cell) -> str:
    if cell.status == "reference":
        return "—"
    if cell.status in ("missing", "not_logged"):
        return cell.status.replace("_", " ")
    if cell.status == "failed":
        return f"failed ({cell.failed})"
    if cell.status == "invalid":
        return f"invalid value in {cell.invalid} run{'s' * (cell.invalid != 1)}"
    assert cell.mean is not None
    text = _format_mean(metric, cell.mean)
    if cell.std is not None:
        text += f" ± {_format_std(metric, cell.std)}"
    counts = (f"n={cell.n}" + (f", {cell.failed} failed" if cell.failed else "")
              + (f", invalid value in {cell.invalid}" if cell.invalid else ""))
    return f"{text} ({counts})"


def _metrics_shown(spec: TableSpec) -> list[str]:
    return list(dict.fromkeys(view.metric for view in spec.views()))


def _cells_by_position(cells: list[Cell]) -> dict[tuple[str, str], Cell]:
    return {(cell.row, cell.column): cell for cell in cells}


def to_markdown(spec: TableSpec, cells: list[Cell]) -> str:
    """The paper's rows x views, each view as "ours" and, where the paper printed values for
    it, "paper"."""
    by_position = _cells_by_position(cells)
    views = list(spec.views())
    printed = {view.label for view in views if any(spec.published_for(row.label, view) for row in spec.rows)}
    header = ["Model"]
    for view in views:
        header += [f"{view.label} (ours)"] + ([f"{view.label} (paper)"] if view.label in printed else [])
    lines = [
        f"### {spec.name}: {spec.title}",
        "",
        "Metric " + ", ".join(f"`{metric}`" for metric in _metrics_shown(spec)) + "; fixed settings: "
        + (", ".join(f"`{key}={value}`" for key, value in spec.fixed.items()) or "none")
        + ".",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in spec.rows:
        entries = [row.label]
        for view in views:
            cell = by_position[(row.label, view.label)]
            entries.append(_format_ours(view.metric, cell))
            if view.label in printed:
                entries.append(_format_published(view.metric, cell.published))
        lines.append("| " + " | ".join(entries) + " |")
    if spec.timed:
        lines += ["", spec.timed]
    if spec.note:
        lines += ["", f"Note: {spec.note}"]
    return "\n".join(lines) + "\n"


def _number(value: float | None) -> str:
    return "" if value is None else repr(value)


def run_link(uri: str, run: RunRecord) -> str:
    """The MLflow UI page of a run, for a tracking server (http, https); "" otherwise."""
    if not uri.startswith(("http://", "https://")) or not run.experiment_id:
        return ""
    return f"{uri.rstrip('/')}/#/experiments/{run.experiment_id}/runs/{run.run_id}"


def to_csv(spec: TableSpec, cells: list[Cell], path: str | Path, cost: TableCost | None = None,
           uri: str = "") -> None:
    """One line per cell, numbers unformatted (times in seconds); empty where absent. With
    `cost`, the cost of the cell's runs (shared by the views of one column)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    costs: dict[tuple[str, str], CellCost] = {
        (group.row, view): group for group in (cost.cells if cost else []) for view in group.views}
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "table", "row", "column", "metric", "status", "n", "failed",
                "mean", "std", "paper_mean", "paper_std", "values", "run_ids", "run_links",
                "device", "device_name", "runs_timed", "device_hours", "missing_runs",
                "projected_device_hours", "projection_basis",
            ]
        )
        for cell in cells:
            published = cell.published
            group = costs.get((cell.row, cell.column))
            writer.writerow(
                [
                    spec.name,
                    cell.row,
                    cell.column,
                    cell.metric,
                    cell.status,
                    cell.n,
                    cell.failed,
                    _number(cell.mean),
                    _number(cell.std),
                    _number(published.mean if published else None),
                    _number(published.std if published else None),
                    ";".join(repr(value) for value in cell.values),
                    ";".join(run.run_id for run in cell.runs),
                    ";".join(filter(None, (run_link(uri, run) for run in cell.runs))),
                    *(_cost_fields(group) if group else [""] * 7),
                ]
            )


def _cost_fields(group: CellCost) -> list[str]:
    kinds = ";".join(sorted(group.seconds))
    names = ";".join(sorted({run.tags.get(DEVICE_NAME_TAG, "") for run in group.runs
                             if device_kind(run) in group.seconds} - {""}))
    measured = ";".join(f"{kind}={hours(seconds)}" for kind, seconds in sorted(group.seconds.items()))
    projected = f"{group.projected_kind}={hours(group.projected)}" if group.basis else ""
    return [kinds, names, str(group.timed), measured, str(group.missing), projected, group.basis]


def to_png(spec: TableSpec, cells: list[Cell], path: str | Path) -> None:
    """Grouped bars per row: for each view ours (solid) beside the paper (hatched),
    with std error bars. Cells without a value get no bar."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    by_position = _cells_by_position(cells)
    views = list(spec.views())
    durations = is_duration(spec.metric)
    scale = 1 / 3600 if durations else 1.0  # times are plotted in hours
    slots_per_row = 2 * len(views) + 1  # ours and paper per view, then a gap
    # Constrained layout keeps the legend, placed right of the bars, inside the image.
    width = max(6.0, 3.5 + 0.25 * slots_per_row * len(spec.rows))
    figure = Figure(figsize=(width, 4.5), layout="constrained")
    axes = figure.add_subplot()
    labelled: set[str] = set()  # each series gets one legend entry

    def draw(x: float, value: float, std: float | None, label: str, **style: object) -> None:
        axes.bar(
            x, value * scale, _BAR_WIDTH, yerr=None if std is None else std * scale, capsize=3,
            label=None if label in labelled else label, **style,
        )
        labelled.add(label)

    for row_index, row in enumerate(spec.rows):
        for view_index, view in enumerate(views):
            cell = by_position[(row.label, view.label)]
            colour = f"C{view_index % 10}"
            x = _BAR_WIDTH * (row_index * slots_per_row + 2 * view_index)
            if cell.mean is not None:
                draw(x, cell.mean, cell.std, f"{view.label} ours", color=colour)
            if cell.published is not None:
                draw(
                    x + _BAR_WIDTH, cell.published.mean, cell.published.std, f"{view.label} paper",
                    color="white", edgecolor=colour, hatch="//",
                )
    centre = _BAR_WIDTH * (len(views) - 0.5)
    axes.set_xticks([_BAR_WIDTH * index * slots_per_row + centre for index in range(len(spec.rows))])
    # Fixed limits, so that rows whose cells are all empty still get their slot.
    axes.set_xlim(-_BAR_WIDTH, _BAR_WIDTH * ((len(spec.rows) - 1) * slots_per_row + 2 * len(views)))
    rotate = len(spec.rows) > 6
    axes.set_xticklabels(
        [row.label for row in spec.rows],
        rotation=45 if rotate else 0, ha="right" if rotate else "center", rotation_mode="anchor",
    )
    axes.set_ylabel("training time (h)" if durations else " / ".join(_metrics_shown(spec)))
    axes.set_title(f"{spec.name}: {spec.title}", fontsize=10)
    if labelled:
        axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.savefig(path, dpi=100)
