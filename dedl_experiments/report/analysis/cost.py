"""What a table cost: device-hours per cell and per table from what its runs logged, and for a
partly run table the projected time of the runs still missing.

A run's time is `train_time_s` + `test_time_s` (runs without `test_time_s`: `wall_time_s` -
`train_time_s`), on the device kind of its tag `dedl.device` ("cuda:0": GPU, "cpu": CPU) named by
`dedl.device_name`. A cell here is a row and a column's runs (the views of a column, e.g. the
tiling table's accuracy and IoU of the same runs, are one cell). A full cell has one finished
run per seed of the paper (and per fold where the task has folds: as many as the runs recorded,
`dedl.folds`, else as the table's sweep has); each missing run is projected at
the mean time per run of, in this order: the cell's own timed runs, the same row's (encoder's),
the same column's, the whole table's; of those, only the runs of the device kind most of them
used (GPU and CPU seconds are never averaged together).
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field

from dedl_experiments.report.cells.aggregate import Cell, RunRecord, pair_key
from dedl_experiments.report.definition.spec import TableSpec
from dedl_experiments.tracking.run_tags import DEVICE_NAME_TAG, DEVICE_TAG, FOLDS_TAG

BASES = ("the cell's own runs", "the same row", "the same column", "the table")


def device_kind(run: RunRecord) -> str:
    device = run.tags.get(DEVICE_TAG, "")
    if device.startswith(("cuda", "mps")):
        return "GPU"
    if device.startswith("cpu"):
        return "CPU"
    return "unknown-device"


def run_seconds(run: RunRecord) -> float | None:
    """Training plus test time of one run, None when it logged no time."""
    metrics = run.metrics
    train, wall, test = metrics.get("train_time_s"), metrics.get("wall_time_s"), metrics.get("test_time_s")
    if train is None:
        return wall
    if test is None and wall is not None:
        test = max(0.0, wall - train)
    return train + (test or 0.0)


@dataclass
class CellCost:
    row: str
    column: str  # the label of the column's runs (shared prefix of its views' labels)
    views: list[str]  # the view labels the runs fill
    runs: list[RunRecord]
    seconds: dict[str, float] = field(default_factory=dict)  # by device kind
    timed: int = 0
    missing: int = 0  # runs a full sweep still needs
    projected: float = 0.0  # seconds, for the missing runs
    projected_kind: str = ""
    basis: str = ""  # one of BASES

    def timed_runs(self) -> list[tuple[RunRecord, float]]:
        timed = [(run, run_seconds(run)) for run in self.runs]
        return [(run, seconds) for run, seconds in timed if seconds is not None]


@dataclass
class TableCost:
    cells: list[CellCost]
    expected: int  # runs per full cell
    measured: dict[str, float] = field(default_factory=dict)  # seconds by device kind
    devices: dict[str, set[str]] = field(default_factory=dict)  # device names by kind
    runs: int = 0
    missing: int = 0
    projected: dict[str, float] = field(default_factory=dict)
    bases: Counter = field(default_factory=Counter)  # basis -> cells projected from it


def table_cost(spec: TableSpec, cells: list[Cell]) -> TableCost:
    by_position = {(cell.row, cell.column): cell for cell in cells}
    groups: dict[tuple[str, frozenset], CellCost] = {}
    for row in spec.rows:
        if row.match is None:
            continue
        for view in spec.views():
            key = (row.label, frozenset(view.column.match.items()))
            group = groups.setdefault(key, CellCost(row.label, "", [], by_position[(row.label, view.label)].runs))
            group.views.append(view.label)
    table_runs = {run.run_id: run for group in groups.values() for run in group.runs}
    expected = len(spec.seeds) * _folds(spec, table_runs.values())
    cost = TableCost(list(groups.values()), expected)
    for group in cost.cells:
        group.column = _shared_label(group.views)
        for run, seconds in group.timed_runs():
            group.seconds[device_kind(run)] = group.seconds.get(device_kind(run), 0.0) + seconds
            group.timed += 1
        finished = {pair_key(run) for run in group.runs if run.status == "FINISHED"}
        group.missing = max(0, expected - len(finished))
    for run in table_runs.values():
        seconds = run_seconds(run)
        if seconds is not None:
            kind = device_kind(run)
            cost.measured[kind] = cost.measured.get(kind, 0.0) + seconds
            cost.devices.setdefault(kind, set()).add(run.tags.get(DEVICE_NAME_TAG, "device name not logged"))
            cost.runs += 1
    _project(cost)
    return cost


def per_run(cost: TableCost, group: CellCost) -> tuple[float, str, str] | None:
    """What one more run of the cell is projected to take: (seconds, device kind, basis), at the
    mean time per run of the first of BASES with timed runs; None when no run was timed."""
    same_column = [g for g in cost.cells if g.column == group.column]
    same_row = [g for g in cost.cells if g.row == group.row]
    for basis, groups in zip(BASES, ([group], same_row, same_column, cost.cells)):
        found = [pair for g in groups for pair in g.timed_runs()]
        if found:
            # Seconds of one device kind only (a GPU's and a CPU's never averaged together): the
            # kind most of the basis's runs used.
            kind = Counter(device_kind(run) for run, _ in found).most_common(1)[0][0]
            seconds = statistics.fmean(seconds for run, seconds in found if device_kind(run) == kind)
            return seconds, kind, basis
    return None


def _project(cost: TableCost) -> None:
    for group in cost.cells:
        if not group.missing:
            continue
        cost.missing += group.missing
        projected = per_run(cost, group)
        if projected is not None:
            seconds, group.projected_kind, group.basis = projected
            group.projected = group.missing * seconds
            cost.projected[group.projected_kind] = cost.projected.get(group.projected_kind, 0.0) + group.projected
            cost.bases[group.basis] += 1


def _folds(spec: TableSpec, runs) -> int:
    """Runs per seed of a full cell: the fold count its runs recorded, or for runs recorded before
    that tag the table's own (its task's folds); 1 without folds."""
    folds = Counter(run.tags[FOLDS_TAG] for run in runs if run.tags.get(FOLDS_TAG, "").isdigit())
    return int(folds.most_common(1)[0][0]) if folds else spec.folds or 1


def _shared_label(labels: list[str]) -> str:
    """What the views of one column's runs share: "256 px" of "256 px accuracy, ..." and
    "256 px IoU, ..."; "Without APP" of "Without APP" and "Without APP, 50 × epoch"."""
    if len(labels) == 1:
        return labels[0]
    prefix = labels[0]
    for label in labels[1:]:
        while not label.startswith(prefix):
            prefix = prefix[:-1]
    prefix = prefix.rstrip(" ,/:(")
    return prefix or labels[0]
