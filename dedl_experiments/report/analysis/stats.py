"""The report's statistics: paired t-tests (scipy.stats.ttest_rel, with its confidence
interval), a one-sample t-test against a printed reference value (scipy.stats.ttest_1samp), the
Wilcoxon signed-rank test beside them (scipy.stats.wilcoxon) and Holm's correction across a
table's tests. Holm's is the one formula written out here (`holm_step_down`, checked in the tests
against statsmodels' multipletests): that takes one family per call and runs a full garbage
collection at each (0.35 s per family measured in the report's process, which holds torch and
MLflow), at every family of every report and for each of the planner's thousands of sweeps.

Differences are always B - A. Cases where a test says nothing are named, never computed:
a NaN or infinite value ("invalid": never tested, never in Holm's family), fewer than 2 pairs
("too_few"), every pair equal ("identical": no difference), the same
nonzero difference in every pair ("constant": zero variance, the t statistic is undefined).
"""

from __future__ import annotations

import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05
CONFIDENCE = 0.95
# Differences within this fraction of the values' magnitude are float noise, not spread.
_RELATIVE_TOLERANCE = 1e-12


@dataclass(frozen=True)
class TestResult:
    """One test of B - A. kind: "test" (a p-value and a CI), "identical", "constant" (CI of
    zero width, no p), "too_few" (n < 2: no numbers at all) or "invalid" (a NaN or infinite
    value among them: no numbers at all)."""

    kind: str
    n: int
    mean_diff: float | None = None
    ci: tuple[float, float] | None = None
    p: float | None = None
    p_wilcoxon: float | None = None

    @property
    def tested(self) -> bool:
        return self.kind == "test"


def paired(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> TestResult:
    """Paired t-test of b against a (same order: pair i is a[i], b[i])."""
    if len(a) != len(b):
        raise ValueError(f"{len(a)} values of A for {len(b)} of B")
    a_values, b_values = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diffs = b_values - a_values
    degenerate = _degenerate(diffs, np.concatenate([a_values, b_values]))
    if degenerate is not None:
        return degenerate
    result = stats.ttest_rel(b_values, a_values)
    low, high = result.confidence_interval(confidence)
    return TestResult("test", len(diffs), statistics.fmean(diffs), (float(low), float(high)),
                      float(result.pvalue), _wilcoxon(diffs))


def versus(values: Sequence[float], reference: float, confidence: float = CONFIDENCE) -> TestResult:
    """One-sample t-test of values against a fixed reference (a printed number of prior work):
    the difference is values - reference."""
    array = np.asarray(values, dtype=float)
    diffs = array - reference
    degenerate = _degenerate(diffs, np.append(array, reference))
    if degenerate is not None:
        return degenerate
    result = stats.ttest_1samp(array, reference)
    low, high = result.confidence_interval(confidence)
    return TestResult("test", len(diffs), statistics.fmean(diffs),
                      (float(low) - reference, float(high) - reference), float(result.pvalue), _wilcoxon(diffs))


def holm(pvalues: Sequence[float], alpha: float = ALPHA) -> tuple[list[bool], list[float]]:
    """Holm's step-down correction across one family of tests: (reject, corrected p)."""
    if not pvalues:
        return [], []
    reject, corrected = holm_step_down(np.asarray(pvalues, dtype=float), alpha)
    return [bool(r) for r in reject], [float(p) for p in corrected]


def holm_step_down(pvalues: np.ndarray, alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Holm's correction of each row of `pvalues` (one family per row, the last axis) at once:
    (reject, corrected p). Sorted, p_(i) is rejected while every p_(j), j <= i, passes
    p_(j) <= alpha / (m - j); its corrected value is the running maximum of (m - j) p_(j), at most
    1. The same float operations as statsmodels' multipletests(method="holm")."""
    m = pvalues.shape[-1]
    order = np.argsort(pvalues, axis=-1)
    ranked = np.take_along_axis(pvalues, order, axis=-1)
    factors = np.arange(m, 0, -1)
    passes = ranked <= alpha / factors
    reject, corrected = np.empty_like(passes), np.empty_like(ranked)
    np.put_along_axis(reject, order, np.cumprod(passes, axis=-1).astype(bool), axis=-1)
    np.put_along_axis(corrected, order, np.minimum(np.maximum.accumulate(ranked * factors, axis=-1), 1.0),
                      axis=-1)
    return reject, corrected


def _degenerate(diffs: np.ndarray, values: np.ndarray) -> TestResult | None:
    n = len(diffs)
    if not np.all(np.isfinite(values)):
        return TestResult("invalid", n)
    if n < 2:
        return TestResult("too_few", n)
    tolerance = _RELATIVE_TOLERANCE * max(1.0, float(np.max(np.abs(values))))
    if float(np.max(np.abs(diffs))) <= tolerance:
        return TestResult("identical", n, 0.0, (0.0, 0.0))
    if float(np.ptp(diffs)) <= tolerance:
        mean = statistics.fmean(diffs)
        return TestResult("constant", n, mean, (mean, mean))
    return None


def _wilcoxon(diffs: np.ndarray) -> float | None:
    """Wilcoxon signed-rank p-value (exact for small n), None where it is undefined."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = float(stats.wilcoxon(diffs).pvalue)
    except ValueError:
        return None
    return None if np.isnan(p) else p


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The t confidence interval of the values' mean (scipy.stats.ttest_1samp's); None for
    fewer than 2 values, a zero-width interval for identical ones."""
    array = np.asarray(values, dtype=float)
    if len(array) < 2:
        return None
    if float(np.ptp(array)) <= _RELATIVE_TOLERANCE * max(1.0, float(np.max(np.abs(array)))):
        return float(array.mean()), float(array.mean())
    low, high = stats.ttest_1samp(array, 0.0).confidence_interval(confidence)
    return float(low), float(high)
