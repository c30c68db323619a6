"""Group tracked runs into the cells of a paper table and summarise each cell.

Pure functions over plain records, so that they can be tested without MLflow.
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass, field

from dedl_experiments.report.definition.spec import Published, TableSpec
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
    zero), "invalid" (every value NaN or infinite) or "reference" (a published-only row such as prior work, which no run can fill).
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
    invalid: int = 0  # values that are NaN or infinite (left out of n, mean and std)


def matches(selector: dict[str, str], params: dict[str, str]) -> bool:
    """True when every selector item equals the run's param of the same name."""
    return all(params.get(key) == value for key, value in selector.items())


def pair_key(run: RunRecord) -> tuple[str, str]:
    """What pairs runs of two cells: the seed, and in a cell with folds the fold, as the job
    recorded them (runs without the tags: as logged params)."""
    seed = run.tags.get(SEED_TAG) or run.params.get("seed", "")
    fold = run.tags.get(FOLD_TAG) or run.params.get("fold", "")
    return seed, "" if fold in ("None", "null") else fold


def newest(runs: list[RunRecord], values: list[float]) -> dict[tuple[str, str], tuple[RunRecord, float]]:
    """Per (seed, fold), the newest run and its value: a rerun replaces the run it repeats."""
    found: dict[tuple[str, str], tuple[RunRecord, float]] = {}
    for run, value in zip(runs, values):
        key = pair_key(run)
        if key not in found or run.start_time >= found[key][0].start_time:
            found[key] = (run, value)
    return found


def aggregate(spec: TableSpec, runs: list[RunRecord]) -> list[Cell]:
    """One cell per (row, view) in table order, of the newest finished run per seed (and fold):
    a classification cell summarises every fold of every seed together."""
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
            logged = [run for run in finished if view.metric in run.metrics]
            kept = newest(logged, [run.metrics[view.metric] * view.scale for run in logged])
            sources, values = [run for run, _ in kept.values()], [value for _, value in kept.values()]
            failed = sum(run.status in _UNFINISHED_STATUSES for run in cell_runs)
            cell = _summarise(row.label, view.label, values, failed, published, bool(finished))
            cell.metric, cell.sources, cell.runs = view.metric, sources, cell_runs
            cells.append(cell)
    return cells


def _summarise(row: str, column: str, values: list[float], failed: int, published: Published | None,
               finished: bool = False) -> Cell:
    """n, mean and std over the finite values; NaN or infinite ones are counted as `invalid`."""
    finite = [value for value in values if math.isfinite(value)]
    invalid = len(values) - len(finite)
    if finite:
        std = statistics.stdev(finite) if len(finite) > 1 else None
        return Cell(row, column, len(finite), statistics.fmean(finite), std, values, failed, published, "ok",
                    invalid=invalid)
    status = "invalid" if invalid else "not_logged" if finished else "failed" if failed else "missing"
    return Cell(row, column, 0, None, None, values, failed, published, status, invalid=invalid)
