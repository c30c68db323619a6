"""The replication unit of the report's tests: the seed.

Each cell keeps the newest finished run per (seed, fold) (a rerun replaces the run it repeats).
The fold models of one seed share its test set and most of their training images, so they are
not independent replicates: a comparison pairs the two cells' runs by (seed, fold), then takes,
per seed, the mean over the folds both cells have (n = seeds); a cell without folds has one run
per seed. One-sample tests and claims use the same per-seed values. The per-fold values stay in
the CSVs as detail.

Times (train_time_s, ...) pair only runs on the same device (its name) with the same speed
settings (`speed.*`: precision, compile, TF32, jobs per GPU): a run on another GPU or with
compile off times something else. The pairs left out are named (`not_comparable`).
"""

from __future__ import annotations

import math
import statistics

from dedl_experiments.report.cells.aggregate import Cell, RunRecord, newest
from dedl_experiments.report.rendering.fmt import is_duration
from dedl_experiments.tracking.run_tags import DEVICE_NAME_TAG

UNIT = "seed"
Key = tuple[str, str]  # (seed, fold); fold "" without folds


def by_key(cell: Cell) -> dict[Key, float]:
    return {key: value for key, (_, value) in newest(cell.sources, cell.values).items()}


def sortable(key: Key) -> tuple:
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in key)


def _per_seed(keys: list[Key], *columns: dict[Key, float]) -> tuple[list[Key], list[list[float]]]:
    seeds = sorted({seed for seed, _ in keys}, key=lambda seed: sortable((seed,)))
    means = [[statistics.fmean(column[k] for k in keys if k[0] == seed) for seed in seeds] for column in columns]
    return [(seed, "") for seed in seeds], means


def timing_settings(run: RunRecord) -> dict[str, str]:
    """What a time depends on besides the cell: the device's name and the speed switches."""
    return {"device": run.tags.get(DEVICE_NAME_TAG, "not logged"),
            **{key: value for key, value in run.params.items()
               if key.startswith("speed.") and key != "speed.compile_cache"}}


def not_comparable(a: Cell, b: Cell) -> list[str]:
    """For times: how the runs of each (seed, fold) both cells have differ in device or speed
    settings ("device: NVIDIA H100 vs NVIDIA H200"), one entry per difference; [] otherwise."""
    if not (is_duration(a.metric) or is_duration(b.metric)):
        return []
    a_runs, b_runs = newest(a.sources, a.values), newest(b.sources, b.values)
    found: dict[str, None] = {}
    for key in set(a_runs) & set(b_runs):
        x, y = timing_settings(a_runs[key][0]), timing_settings(b_runs[key][0])
        for name in sorted(set(x) | set(y)):
            if x.get(name) != y.get(name):
                found[f"{name}: {x.get(name, 'not logged')} vs {y.get(name, 'not logged')}"] = None
    return sorted(found)


def fold_pairs(a: Cell, b: Cell) -> list[Key]:
    """The (seed, fold) keys both cells have, in order; for times, only those whose two runs
    ran on the same device with the same speed settings."""
    keys = set(by_key(a)) & set(by_key(b))
    if is_duration(a.metric) or is_duration(b.metric):
        a_runs, b_runs = newest(a.sources, a.values), newest(b.sources, b.values)
        keys = {key for key in keys if timing_settings(a_runs[key][0]) == timing_settings(b_runs[key][0])}
    return sorted(keys, key=sortable)


def paired_units(a: Cell, b: Cell) -> tuple[list[Key], list[float], list[float]]:
    """Per seed both cells have: (seed, ""), the mean of A and of B over the folds both have
    (times: of runs comparable in device and settings)."""
    a_by_key, b_by_key = by_key(a), by_key(b)
    keys, (a_means, b_means) = _per_seed(fold_pairs(a, b), a_by_key, b_by_key)
    return keys, a_means, b_means


def paired_differences(a: Cell, b: Cell) -> list[float]:
    """B - A per replication unit (per seed); n is its length."""
    _, a_means, b_means = paired_units(a, b)
    return [y - x for x, y in zip(a_means, b_means)]


def by_seed(cell: Cell) -> dict[Key, float]:
    """The cell's value per seed, (seed, ""): the mean over its folds."""
    values = by_key(cell)
    keys, (means,) = _per_seed(sorted(values, key=sortable), values)
    return dict(zip(keys, means))


def seed_values(cell: Cell) -> list[float]:
    """The cell's value per seed (the mean over its folds), in seed order."""
    return list(by_seed(cell).values())


def invalid_runs(*cells: Cell) -> int:
    """Runs whose value is NaN or infinite, among the newest runs per (seed, fold)."""
    return sum(not math.isfinite(value) for cell in cells for value in by_key(cell).values())
