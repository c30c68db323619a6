"""Run just the seeds that are needed: the planning rule, and a simulation of whole sweeps
through it and the final Holm-corrected tests.

The rule (`planned_seeds`), from a pilot of k seeds per cell: pool the variance of the paired
differences over the table's tested comparisons (the mean of their pilot variances: one estimate
with m (k - 1) degrees of freedom), and give each comparison the seeds a paired t-test at Holm's
first level (alpha / m) needs to detect its effect of interest with 80 % power at that spread,
at least k. A comparison that would need more than max_seeds keeps the pilot's k (more seeds
would not settle it; the report says how many it needs). A cell runs the most seeds any of its
comparisons plans. The rule reads the pilot's variance only, never its differences or p-values,
so the number of seeds does not depend on how a comparison is going (no optional stopping). The
variance is pooled because a comparison's own pilot variance, with 2 degrees of freedom, would
tie its seeds to its own noise: comparisons whose pilot spread happened to be small would stop
at k seeds with a small spread in their final test, which lifts the family-wise error above
alpha (simulated: 0.08-0.12 with m = 24 disjoint comparisons). Pooled, the false-positive rate
stays at alpha (`simulate`; tests/unit/report/test_planning.py); the price is that a comparison much
noisier than the table's others gets fewer seeds than it needs.

Seeds come from the seed sequence (`seed_sequence`): the table's seeds, then 1000, 1001, ...
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from dedl_experiments.report.analysis.power import holm_first_level, seeds_needed
from dedl_experiments.report.analysis.stats import holm_step_down

PILOT = 3
MAX_SEEDS = 10
FIRST_EXTRA_SEED = 1000


def seed_sequence(table_seeds: tuple[int, ...], count: int) -> list[int]:
    """The first `count` seeds of a table: its own, then FIRST_EXTRA_SEED, +1, ... (skipping its own)."""
    seeds = list(dict.fromkeys(table_seeds))
    extra = FIRST_EXTRA_SEED
    while len(seeds) < count:
        if extra not in seeds:
            seeds.append(extra)
        extra += 1
    return seeds[:count]


def pooled_sd(pilot_sd: np.ndarray) -> np.ndarray:
    """The root of the mean pilot variance over the last axis (the table's comparisons)."""
    return np.sqrt(np.mean(np.square(pilot_sd), axis=-1, keepdims=True))


def planned_seeds(pilot_sd: np.ndarray, effect: np.ndarray, pilot: int, max_seeds: int) -> np.ndarray:
    """Seeds per comparison (the last axis: a table's tested comparisons) from their pilot sds
    and effects of interest: see the module's rule. Without an effect of interest (nan) or
    without spread in the pilot (sd 0) a comparison keeps the pilot."""
    pilot_sd, effect = np.asarray(pilot_sd, dtype=float), np.asarray(effect, dtype=float)
    sd = pooled_sd(pilot_sd)
    with np.errstate(divide="ignore", invalid="ignore"):
        standardised = np.where((sd > 0) & np.isfinite(effect), effect / sd, np.inf)
    needed = seeds_needed(standardised, holm_first_level(pilot_sd.shape[-1]), most=max_seeds)
    return np.clip(np.where(needed > max_seeds, pilot, needed), pilot, max_seeds)


@dataclass
class Simulated:
    runs: float  # mean runs (seeds summed over cells) per sweep
    rejected: float  # mean comparisons Holm rejects per sweep
    any_rejected: float  # share of sweeps with at least one rejection (FWER when effects are 0)
    power: float  # share of comparisons rejected, over sweeps
    sweeps: int
    detected: np.ndarray  # per comparison: the share of sweeps that reject it

    @property
    def runs_per_settled(self) -> float:
        return self.runs / self.rejected if self.rejected else float("inf")


def simulate(true_diff: np.ndarray, sd: np.ndarray, effect: np.ndarray, cells: np.ndarray, *, sweeps: int = 2000,
             pilot: int = PILOT, max_seeds: int = MAX_SEEDS, fixed: int | None = None,
             seed: int = 0) -> Simulated:
    """`sweeps` sweeps of a table at once: comparison i has paired differences ~ N(true_diff[i],
    sd[i]) between cells cells[i] = (a, b); the plan (or `fixed` seeds per cell) sets each cell's
    seeds, a comparison gets the seeds both its cells ran, and Holm's correction runs over the
    comparisons of each sweep. Comparisons sharing a cell are simulated independently (Holm
    holds under any dependence)."""
    rng = np.random.default_rng(seed)
    true_diff, sd, effect = (np.asarray(x, dtype=float) for x in (true_diff, sd, effect))
    cells = np.asarray(cells, dtype=int)
    tests, most = len(true_diff), max(max_seeds, fixed or 0)
    diffs = true_diff[:, None] + sd[:, None] * rng.standard_normal((sweeps, tests, most))
    if fixed is not None:
        per_cell = np.full((sweeps, cells.max() + 1), fixed)
    else:
        pilot_sd = diffs[:, :, :pilot].std(axis=-1, ddof=1)
        planned = planned_seeds(pilot_sd, np.broadcast_to(effect, pilot_sd.shape), pilot, max_seeds)
        per_cell = np.zeros((sweeps, cells.max() + 1), dtype=int)
        for side in (0, 1):
            for i in range(tests):
                np.maximum(per_cell[:, cells[i, side]], planned[:, i], out=per_cell[:, cells[i, side]])
    n = np.minimum(per_cell[:, cells[:, 0]], per_cell[:, cells[:, 1]])
    pvalues = np.empty(n.shape)
    for count in np.unique(n):  # one vectorised t-test per number of seeds
        ran = n == count
        pvalues[ran] = stats.ttest_1samp(diffs[ran][:, :count], 0.0, axis=-1).pvalue
    reject, _ = holm_step_down(pvalues)
    return Simulated(float(per_cell.sum(axis=1).mean()), float(reject.sum(axis=1).mean()),
                     float(reject.any(axis=1).mean()), float(reject.mean()), sweeps, reject.mean(axis=0))


def monte_carlo_error(rate: float, sweeps: int) -> float:
    """Two standard errors of a rate estimated from `sweeps` independent sweeps."""
    return 2 * float(np.sqrt(rate * (1 - rate) / sweeps))
