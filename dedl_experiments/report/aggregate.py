"""Group tracked runs into the cells of a paper table and summarise each cell.

Pure functions over plain records, so that they can be tested without MLflow.
"""

import statistics
from dataclasses import dataclass, field

from dedl_experiments.report.paper import Published, TableSpec

# Runs that ended without a result; RUNNING runs are neither values nor failures yet.
_UNFINISHED_STATUSES = frozenset({"FAILED", "KILLED"})


@dataclass
class RunRecord:
    run_id: str
    status: str  # "FINISHED" | "FAILED" | "KILLED" | "RUNNING"
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Cell:
    """One table cell: our runs' summary beside the paper's value.

    status: "ok" (at least one finished value), "failed" (no finished value but at
    least one failed or killed run), "missing" (no run at all: never shown as zero) or
    "reference" (a published-only row such as prior work, which no run can fill).
    """

    row: str
    column: str
    n: int
    mean: float | None
    std: float | None  # sample std (ddof=1); None when n < 2
    values: list[float]
    failed: int
    published: Published | None
    status: str


def matches(selector: dict[str, str], params: dict[str, str]) -> bool:
    """True when every selector item equals the run's param of the same name."""
    return all(params.get(key) == value for key, value in selector.items())


def aggregate(spec: TableSpec, runs: list[RunRecord]) -> list[Cell]:
    """One cell per (row, column) in table order. Classification callers pass one
    record per fold per seed; the cell summarises all of them together."""
    table_runs = [run for run in runs if matches(spec.fixed, run.params)]
    cells = []
    for row in spec.rows:
        for column in spec.columns:
            published = spec.published.get((row.label, column.label))
            if row.match is None:
                cells.append(Cell(row.label, column.label, 0, None, None, [], 0, published, "reference"))
                continue
            cell_runs = [
                run for run in table_runs
                if matches(row.match, run.params) and matches(column.match, run.params)
            ]
            metric = spec.metric_for(column)
            values = [
                run.metrics[metric] for run in cell_runs
                if run.status == "FINISHED" and metric in run.metrics
            ]
            failed = sum(run.status in _UNFINISHED_STATUSES for run in cell_runs)
            cells.append(_summarise(row.label, column.label, values, failed, published))
    return cells


def _summarise(row: str, column: str, values: list[float], failed: int, published: Published | None) -> Cell:
    if values:
        std = statistics.stdev(values) if len(values) > 1 else None
        return Cell(row, column, len(values), statistics.fmean(values), std, values, failed, published, "ok")
    status = "failed" if failed else "missing"
    return Cell(row, column, 0, None, None, [], failed, published, status)
