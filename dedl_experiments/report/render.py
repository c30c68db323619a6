"""Render aggregated cells in the paper's layout: Markdown, CSV and a bar chart."""

import csv
from pathlib import Path

from matplotlib.figure import Figure

from dedl_experiments.report.aggregate import Cell
from dedl_experiments.report.paper import Published, TableSpec

_BAR_WIDTH = 0.4  # in x-axis units; rows are laid out in bar-width slots


def is_duration(metric: str) -> bool:
    return metric.endswith("_time_s")


def format_duration(seconds: float) -> str:
    """Seconds as the paper prints times: "1h 24m 44s", "3m 07s", "6s"."""
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


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
    if cell.status == "missing":
        return "missing"
    if cell.status == "failed":
        return f"failed ({cell.failed})"
    assert cell.mean is not None
    text = _format_mean(metric, cell.mean)
    if cell.std is not None:
        text += f" ± {_format_std(metric, cell.std)}"
    counts = f"n={cell.n}" + (f", {cell.failed} failed" if cell.failed else "")
    return f"{text} ({counts})"


def _metrics_shown(spec: TableSpec) -> list[str]:
    return list(dict.fromkeys(spec.metric_for(column) for column in spec.columns))


def _cells_by_position(cells: list[Cell]) -> dict[tuple[str, str], Cell]:
    return {(cell.row, cell.column): cell for cell in cells}


def to_markdown(spec: TableSpec, cells: list[Cell]) -> str:
    """The paper's rows x columns, each column split into "ours" and "paper"."""
    by_position = _cells_by_position(cells)
    header = ["Model"]
    for column in spec.columns:
        header += [f"{column.label} (ours)", f"{column.label} (paper)"]
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
        for column in spec.columns:
            metric = spec.metric_for(column)
            cell = by_position[(row.label, column.label)]
            entries += [_format_ours(metric, cell), _format_published(metric, cell.published)]
        lines.append("| " + " | ".join(entries) + " |")
    if spec.note:
        lines += ["", f"Note: {spec.note}"]
    return "\n".join(lines) + "\n"


def _number(value: float | None) -> str:
    return "" if value is None else repr(value)


def to_csv(spec: TableSpec, cells: list[Cell], path: str | Path) -> None:
    """One line per cell, numbers unformatted (times in seconds); empty where absent."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {column.label: column for column in spec.columns}
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "table", "row", "column", "metric", "status", "n", "failed",
                "mean", "std", "paper_mean", "paper_std", "values",
            ]
        )
        for cell in cells:
            published = cell.published
            writer.writerow(
                [
                    spec.name,
                    cell.row,
                    cell.column,
                    spec.metric_for(columns[cell.column]),
                    cell.status,
                    cell.n,
                    cell.failed,
                    _number(cell.mean),
                    _number(cell.std),
                    _number(published.mean if published else None),
                    _number(published.std if published else None),
                    ";".join(repr(value) for value in cell.values),
                ]
            )


def to_png(spec: TableSpec, cells: list[Cell], path: str | Path) -> None:
    """Grouped bars per row: for each column ours (solid) beside the paper (hatched),
    with std error bars. Cells without a value get no bar."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    by_position = _cells_by_position(cells)
    durations = is_duration(spec.metric)
    scale = 1 / 3600 if durations else 1.0  # times are plotted in hours
    slots_per_row = 2 * len(spec.columns) + 1  # ours and paper per column, then a gap
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
        for column_index, column in enumerate(spec.columns):
            cell = by_position[(row.label, column.label)]
            colour = f"C{column_index % 10}"
            x = _BAR_WIDTH * (row_index * slots_per_row + 2 * column_index)
            if cell.mean is not None:
                draw(x, cell.mean, cell.std, f"{column.label} ours", color=colour)
            if cell.published is not None:
                draw(
                    x + _BAR_WIDTH, cell.published.mean, cell.published.std, f"{column.label} paper",
                    color="white", edgecolor=colour, hatch="//",
                )
    centre = _BAR_WIDTH * (len(spec.columns) - 0.5)
    axes.set_xticks([_BAR_WIDTH * index * slots_per_row + centre for index in range(len(spec.rows))])
    # Fixed limits, so that rows whose cells are all empty still get their slot.
    axes.set_xlim(-_BAR_WIDTH, _BAR_WIDTH * ((len(spec.rows) - 1) * slots_per_row + 2 * len(spec.columns)))
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
