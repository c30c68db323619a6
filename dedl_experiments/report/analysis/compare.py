"""A table's paired comparisons (its ablation axes, spec.comparisons) over its cells.

Runs of cell A and cell B are paired by seed; in cells with folds, by seed and fold, and then the
per-seed means over those folds are the pairs (units.py: the seed is the replication unit). Per
(seed, fold) the newest run counts. Each pair of cells is one paired t-test of B - A; Holm's
correction runs across every test of the table, and the verdict of a test reads its corrected
p-value. A pair with a NaN or infinite value is "invalid", never tested, never in Holm's family.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dedl_experiments.report.cells import units
from dedl_experiments.report.cells.aggregate import Cell
from dedl_experiments.report.definition.spec import Comparison, Pair, Published, TableSpec
from dedl_experiments.report.analysis.stats import ALPHA, TestResult, holm, paired

Key = tuple[str, str]
_UNUSABLE = (("failed", "failed"), ("not_logged", "not logged"), ("missing", "missing"))


@dataclass
class ComparisonRow:
    comparison: Comparison
    pair: Pair
    metric: str  # "test_iou", or "a_metric vs b_metric" where the two sides differ
    status: str  # "ok" (a result, maybe too few pairs), "failed", "not_logged", "missing", "invalid",
    # "not_comparable" (times of runs on other devices or with other speed settings only)
    sides: str = ""  # for the unusable statuses: which side(s), by name ("invalid": how many runs)
    result: TestResult | None = None
    keys: list[Key] = field(default_factory=list)  # the pairs' units: (seed, "")
    fold_keys: list[Key] = field(default_factory=list)  # the (seed, fold) runs paired within them
    differing: list[str] = field(default_factory=list)  # times: device/settings of runs left unpaired
    differences: list[float] = field(default_factory=list)  # B - A per pair, in key order: what was tested
    mean_a: float | None = None  # over the paired runs only
    mean_b: float | None = None
    p_holm: float | None = None
    reject: bool = False
    paper_a: Published | None = None
    paper_b: Published | None = None

    @property
    def a_name(self) -> str:
        return self.comparison.a_name

    @property
    def b_name(self) -> str:
        return self.comparison.b_name

    @property
    def paper_diff(self) -> float | None:
        if self.paper_a is None or self.paper_b is None:
            return None
        return self.paper_b.mean - self.paper_a.mean

    @property
    def direction(self) -> int | None:
        """+1 (B > A) or -1 (B < A) where the Holm-corrected test says so, 0 where runs were
        compared without such evidence (not significant, identical, zero variance), None where
        there is nothing to compare (missing, failed, not logged, fewer than 2 pairs)."""
        if self.result is None or self.result.kind == "too_few":
            return None
        if self.result.tested and self.reject:
            return 1 if self.result.mean_diff > 0 else -1
        return 0

    @property
    def verdict(self) -> str:
        if self.status == "invalid":
            return f"invalid value in {self.sides}"
        if self.status == "not_comparable":
            return f"not comparable (device/settings differ: {'; '.join(self.differing)})"
        return self._verdict() + (f" (runs left out, device/settings differ: {'; '.join(self.differing)})"
                                  if self.differing else "")

    def _verdict(self) -> str:
        a, b, result = self.a_name, self.b_name, self.result
        if result is None:
            return f"{dict(_UNUSABLE)[self.status]} ({self.sides})"
        if result.kind == "too_few":
            return f"not enough runs ({result.n} pair{'s' * (result.n != 1)})"
        if result.kind == "identical":
            return "no difference (identical results)"
        sign = ">" if result.mean_diff > 0 else "<"
        if result.kind == "constant":
            return f"{b} {sign} {a} in every pair (zero variance: test undefined)"
        return f"{b} {sign} {a}" if self.reject else "no evidence of a difference"


def paired_values(a: Cell, b: Cell) -> tuple[list[Key], list[float], list[float]]:
    """The two cells' values per replication unit (seed), in seed order."""
    return units.paired_units(a, b)


def compare_table(spec: TableSpec, cells: list[Cell]) -> list[ComparisonRow]:
    by_position = {(cell.row, cell.column): cell for cell in cells}
    rows = [_compare(comparison, pair, by_position[pair.a], by_position[pair.b])
            for comparison in spec.comparisons for pair in comparison.pairs]
    tested = [row for row in rows if row.result is not None and row.result.tested]
    reject, corrected = holm([row.result.p for row in tested], ALPHA)
    for row, rejected, p in zip(tested, reject, corrected):
        row.reject, row.p_holm = rejected, p
    return rows


def _compare(comparison: Comparison, pair: Pair, a: Cell, b: Cell) -> ComparisonRow:
    metric = a.metric if a.metric == b.metric else f"{a.metric} vs {b.metric}"
    row = ComparisonRow(comparison, pair, metric, "ok", paper_a=a.published, paper_b=b.published)
    for status, _ in _UNUSABLE:
        sides = [name for name, cell in ((comparison.a_name, a), (comparison.b_name, b)) if cell.status == status]
        if sides:
            row.status, row.sides = status, ", ".join(sides)
            return row
    invalid = units.invalid_runs(a, b)
    if invalid:
        row.status, row.sides = "invalid", f"{invalid} run{'s' * (invalid != 1)}"
        return row
    row.keys, a_values, b_values = paired_values(a, b)
    row.fold_keys = units.fold_pairs(a, b)
    row.differing = units.not_comparable(a, b)
    if row.differing and not row.keys:
        row.status = "not_comparable"
        return row
    row.result = paired(a_values, b_values)
    row.differences = [b - a for a, b in zip(a_values, b_values)]
    if a_values:
        row.mean_a, row.mean_b = sum(a_values) / len(a_values), sum(b_values) / len(b_values)
    return row
