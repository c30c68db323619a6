"""Group tracked runs into the cells of a paper table and summarise each cell.

Pure functions over plain records, so that they can be tested without MLflow.
"""

from __future__ import annotations

import functools
import statistics
from dataclasses import dataclass, field

from dedl_experiments.report.spec import Published, TableSpec
from dedl_experiments.tracking.run_tags import FOLD_TAG, SEED_TAG
from dedl_experiments.tracking.cells import recipe_params

# Runs that ended without a result; RUNNING runs are neither values nor failures yet.
_UNFINISHED_STATUSES = frozenset({"FAILED", "KILLED"})


@dataclass
class RunRecord:
    run_id: str
    status: str  # "FINISHED" | "FAILED" | "KILLED" | "RUNNING"
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str] = field(default_factory=dict)
    experiment_id: str = ""
    start_time: int = 0  # ms since the epoch, as MLflow records it

    @functools.cached_property
    def settings(self) -> dict[str, str]:
        """Its params that define its cell, seed and fold aside (as a job's cell key reads them)."""
        return recipe_params(self.params)


@dataclass
class Cell:
    """One table cell (a row and a view of a column): our runs' summary beside the paper's value.

    status: "ok" (at least one finished value), "failed" (no finished value but at
    least one failed or killed run), "not_logged" (finished runs, none of which logged the
    view's metric, e.g. runs older than the metric), "missing" (no run at all: never shown as
    zero) or "reference" (a published-only row such as prior work, which no run can fill).
    """

    row: str
    column: str  # the view's label
    n: int
    mean: float | None
    std: float | None  # sample std (ddof=1); None when n < 2
    values: list[float]
    failed: int
    published: Published | None
    status: str
    metric: str = ""
    sources: list[RunRecord] = field(default_factory=list)  # the run behind each value, in order
    runs: list[RunRecord] = field(default_factory=list)  # every run of the cell, failed ones too


def matches(selector: dict[str, str], params: dict[str, str]) -> bool:
    """True when every selector item equals the run's param of the same name."""
    return all(params.get(key) == value for key, value in selector.items())


def pair_key(run: RunRecord) -> tuple[str, str]:
    """What pairs runs of two cells: the seed, and in a cell with folds the fold, as the job
    recorded them (runs without the tags: as logged params)."""
    seed = run.tags.get(SEED_TAG) or run.params.get("seed", "")
    fold = run.tags.get(FOLD_TAG) or run.params.get("fold", "")
    return seed, "" if fold in ("None", "null") else fold


def aggregate(spec: TableSpec, runs: list[RunRecord]) -> list[Cell]:
    """One cell per (row, view) in table order. Classification callers pass one
    record per fold per seed; the cell summarises all of them together."""
    table_runs = [run for run in runs if matches(spec.fixed, run.params)]
    cells = []
    for row in spec.rows:
        for view in spec.views():
            published = spec.published_for(row.label, view)
            if row.match is None:
                cells.append(Cell(row.label, view.label, 0, None, None, [], 0, published, "reference", view.metric))
                continue
            cell_runs = [
                run for run in table_runs
                if matches(row.match, run.params) and matches(view.column.match, run.params)
            ]
            finished = [run for run in cell_runs if run.status == "FINISHED"]
            sources = [run for run in finished if view.metric in run.metrics]
            values = [run.metrics[view.metric] * view.scale for run in sources]
            failed = sum(run.status in _UNFINISHED_STATUSES for run in cell_runs)
            cell = _summarise(row.label, view.label, values, failed, published, bool(finished))
            cell.metric, cell.sources, cell.runs = view.metric, sources, cell_runs
            cells.append(cell)
    return cells


def _summarise(row: str, column: str, values: list[float], failed: int, published: Published | None,
               finished: bool = False) -> Cell:
    if values:
        std = statistics.stdev(values) if len(values) > 1 else None
        return Cell(row, column, len(values), statistics.fmean(values), std, values, failed, published, "ok")
    status = "not_logged" if finished else "failed" if failed else "missing"
    return Cell(row, column, 0, None, None, [], failed, published, status)
