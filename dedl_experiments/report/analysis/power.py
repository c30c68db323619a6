"""How many seeds a question needs: the power of a table's paired t-tests (statsmodels'
TTestPower), the smallest difference each comparison can detect at its n, and the seeds that
would detect the effect of interest.

The level is Holm's first step, alpha / m with m the table's tested comparisons: a comparison
whose p-value falls below it is rejected by Holm whatever the others show, so a power computed
at alpha / m holds for Holm (whose later steps only test at larger levels). Power is the
upper tail's (B - A in the direction of the effect) at alpha / 2, the two-sided test's power but
for the wrong-sign rejections, which at these levels are negligible.

The effect of interest is `paper` (the absolute difference the paper printed for the pair) or a
fixed number in the metric's units; a table declares its own in its report block (`effect:`),
and the report's `effect=` option replaces it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from statsmodels.stats.power import TTestPower

from dedl_experiments.report.analysis.compare import ComparisonRow
from dedl_experiments.report.analysis.stats import ALPHA

POWER = 0.8
PAPER = "paper"
MOST_SEEDS = 100  # seeds needed beyond this read as "more than 100"
_LOG_EFFECT_RANGE = (-3.0, 4.0)  # standardised effects 0.001 .. 10,000
_BISECTIONS = 48


def parse_effect(value: object, where: str) -> str | float:
    """`paper` or a positive number; raises ValueError naming `where` otherwise."""
    if isinstance(value, str) and value.strip() == PAPER:
        return PAPER
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = float("nan")
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{where}: {value!r} is not an effect of interest; give `paper` (the paper's printed "
                         "difference) or a positive number in the metric's units, e.g. 0.02")
    return number


def holm_first_level(tests: int, alpha: float = ALPHA) -> float:
    return alpha / max(tests, 1)


@functools.lru_cache(maxsize=None)
def detectable_effect_sizes(level: float, most: int, power: float = POWER) -> np.ndarray:
    """For n = 2 .. most pairs: the smallest standardised effect (mean / sd of the differences)
    that a paired t-test at `level` detects with `power`; found by bisection on TTestPower's
    power, which is monotone in the effect."""
    nobs = np.arange(2, most + 1, dtype=float)
    low, high = np.full(nobs.shape, _LOG_EFFECT_RANGE[0]), np.full(nobs.shape, _LOG_EFFECT_RANGE[1])
    for _ in range(_BISECTIONS):
        middle = (low + high) / 2
        achieved = TTestPower().power(effect_size=10 ** middle, nobs=nobs, alpha=level / 2, alternative="larger")
        # scipy's noncentral t gives nan far in its upper tail, where the power is 1.
        enough = np.isnan(achieved) | (achieved >= power)
        high, low = np.where(enough, middle, high), np.where(enough, low, middle)
    return 10 ** high


def seeds_needed(effect_size: np.ndarray | float, level: float, most: int = MOST_SEEDS,
                 power: float = POWER) -> np.ndarray:
    """Pairs (seeds) a paired t-test at `level` needs to detect each standardised effect with
    `power`: the smallest n in 2 .. most, most + 1 where even `most` is not enough."""
    thresholds = detectable_effect_sizes(level, most, power)  # decreasing in n
    effect = np.abs(np.asarray(effect_size, dtype=float))
    reached = effect[..., None] >= thresholds
    return np.where(reached.any(-1), 2 + reached.argmax(-1), most + 1)


@dataclass
class PowerRow:
    row: ComparisonRow
    sd: float  # of the paired differences
    level: float
    detectable: float  # smallest |B - A| detected with POWER at the current n
    effect: float | None  # effect of interest (absolute), None where there is none
    needed: int | None  # seeds (pairs) to detect it; MOST_SEEDS + 1: more than that


def effect_of_interest(row: ComparisonRow, effect: str | float) -> float | None:
    if effect != PAPER:
        return float(effect)
    diff = row.paper_diff
    return abs(diff) if diff else None


def power_rows(rows: list[ComparisonRow], effect: str | float) -> list[PowerRow]:
    """One per tested comparison (a p-value: at least 2 pairs with spread)."""
    tested = [row for row in rows if row.result is not None and row.result.tested]
    level = holm_first_level(len(tested))
    found = []
    for row in tested:
        n, sd = row.result.n, float(np.std(row.differences, ddof=1))
        detectable = float(detectable_effect_sizes(level, max(n, 2))[n - 2]) * sd
        wanted = effect_of_interest(row, effect)
        needed = int(seeds_needed(wanted / sd, level)) if wanted is not None else None
        found.append(PowerRow(row, sd, level, detectable, wanted, needed))
    return found
