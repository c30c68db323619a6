"""Hand-made run records for the report's tests: runs placed in a table's cells as jobs record
them (params, metrics, tags), and a table's evidence (cells and comparisons) built from them;
the package's tables and claims."""

from __future__ import annotations

import itertools

from dedl_experiments.report.definition import tables
from dedl_experiments.report.cells.aggregate import RunRecord, aggregate
from dedl_experiments.report.analysis.compare import compare_table
from dedl_experiments.report.definition.spec import TableSpec
from dedl_experiments.report.analysis.verdicts import Evidence

# The package's tables, each read from its experiment file, and the claims resting on them.
TABLES: dict[str, TableSpec] = {name: tables.spec(name) for name in tables.names()}
CLAIMS = tables.claims()
SEEDS = (26, 77, 334, 517, 994)  # the paper's seeds, which its tables sweep

_ids = itertools.count()


def run_in(spec: TableSpec, row: str, column: str, metrics: dict[str, float] | float | None = None, *,
           seed: int = 26, fold: int | None = None, status: str = "FINISHED", tags: dict[str, str] | None = None,
           start: int = 0, experiment_id: str = "1", **params: str) -> RunRecord:
    """A run in (row, column) of spec; a bare number is the table's metric. Tagged as a job tags
    it: its seed, and in a cell with folds its fold and the cell's fold count (spec.folds)."""
    row_match = next(r.match for r in spec.rows if r.label == row)
    column_match = next(c.match for c in spec.columns if c.label == column)
    if isinstance(metrics, (int, float)):
        metrics = {spec.metric_for(next(c for c in spec.columns if c.label == column)): float(metrics)}
    all_params = {**spec.fixed, **row_match, **column_match, "seed": str(seed), **params}
    all_tags = {"dedl.seed": str(seed), **(tags or {})}
    if fold is not None:
        all_params["fold"] = all_tags["dedl.fold"] = str(fold)
        all_tags.setdefault("dedl.folds", str(spec.folds))
    return RunRecord(f"run{next(_ids)}", status, all_params, dict(metrics or {}), all_tags, experiment_id, start)


def seeds(spec: TableSpec, row: str, column: str, values: list[float], **kwargs) -> list[RunRecord]:
    """One run per value, seeds 1, 2, 3, ... in order (the pairing key)."""
    return [run_in(spec, row, column, value, seed=i + 1, **kwargs) for i, value in enumerate(values)]


def evidence(spec: TableSpec, runs: list[RunRecord]) -> Evidence:
    cells = aggregate(spec, runs)
    return Evidence(spec, cells, compare_table(spec, cells))
