"""What a table is, as data: rows x columns of runs, the printed numbers, the measures shown
per column, the paired comparisons (ablation axes) the report tests and the claims resting on
it. The report reads all of it from the table's experiment file (experiment.py).

A table is a grid of rows x columns. Each row and column selects runs by their flattened config
params (``encoder.name``, ``app.name``, ...); a run belongs to a cell when it matches the table's
``fixed`` settings, the row and the column. A column shows one metric of its runs, and may show
more measures of the same runs beside it (``ColumnSpec.also``: a timing table's time per epoch
x 50, the tiling table's metrics with padding excluded): each shown (column, measure) is a
*view* with its own label, and cells are per (row, view).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator


@dataclass(frozen=True)
class Published:
    """One printed number: "mean±std", or a bare mean (std None)."""

    mean: float
    std: float | None = None


@dataclass(frozen=True)
class RowSpec:
    """A table row. ``match=None`` marks a published-only row (prior work such as
    Van Buren et al.): no run of ours can belong to it. An empty dict would instead
    match every run, so it is never used for that purpose."""

    label: str
    match: dict[str, str] | None

    @property
    def published_only(self) -> bool:
        return self.match is None


@dataclass(frozen=True)
class Measure:
    """Another measure of a column's runs, shown beside it: ``metric`` x ``scale`` under
    ``label``; ``paper`` sets the column's printed value beside it too (the paper printed one
    number for what both measures estimate)."""

    label: str
    metric: str
    scale: float = 1.0
    paper: bool = False


@dataclass(frozen=True)
class ColumnSpec:
    """A table column; ``metric`` overrides the table's metric for this column
    (Section 5.1 sets accuracy and IoU side by side); ``also`` adds measures of its runs."""

    label: str
    match: dict[str, str]
    metric: str | None = None
    also: tuple[Measure, ...] = ()


@dataclass(frozen=True)
class View:
    """One shown column of the grid: a column's main metric or one of its ``also`` measures."""

    label: str
    column: ColumnSpec
    metric: str
    scale: float
    paper_label: str | None  # the column label whose printed value sits beside it


@dataclass(frozen=True)
class Pair:
    """One paired test: cell ``a`` against cell ``b``, each (row label, view label)."""

    label: str  # what the pair is within its comparison, e.g. the encoder "ResNet-18"
    a: tuple[str, str]
    b: tuple[str, str]


@dataclass(frozen=True)
class Comparison:
    """An ablation axis: B against A in each of its pairs (runs paired by seed; with folds, the
    per-seed means over the folds: units.py)."""

    name: str  # "UNet: none vs GELU"
    a_name: str  # "none"
    b_name: str  # "GELU"
    pairs: tuple[Pair, ...]


@dataclass(frozen=True, kw_only=True)
class Claim:
    """A claim of the paper that rests on a table; its kinds (claims.py) add what would show it."""

    id: str
    source: str  # where the paper says it
    text: str  # what it says (quoted where short, else close to its words)
    table: str  # the table it rests on
    note: str = ""  # how the text is read onto the table, where that needs saying
    readings: tuple = ()  # other reasonable readings of the text (claims.Reading)


# The settings that set a run's training-set size (a fraction of the training images, a number).
SIZE_KEYS = ("dataset.train_fraction", "dataset.train_count")


@dataclass(frozen=True)
class CurveSpec:
    """Learning curves of a table that sweeps the training-set size: the metric against the
    number of training images, one curve per variant; each variant is compared with the
    baseline at every size (runs paired by seed) and its fitted curve gives the fraction of the
    images it needs to reach the baseline's full-data score (report/analysis/curves.py)."""

    key: str  # the swept size setting: dataset.train_fraction or dataset.train_count
    sizes: tuple[RowSpec, ...]  # one per swept value, in the sweep's order
    values: tuple[float | None, ...]  # each size's swept value (None: the whole training set)
    variants: tuple[ColumnSpec, ...]
    baseline: str  # a variant's label
    resamples: int = 1000  # bootstrap resamples over seeds


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    metric: str  # MLflow metric key shown in the table
    rows: tuple[RowSpec, ...]
    columns: tuple[ColumnSpec, ...]
    published: dict[tuple[str, str], Published]  # (row label, column label) -> printed value
    fixed: dict[str, str] = field(default_factory=dict)  # settings every run of the table must match
    note: str = ""
    comparisons: tuple[Comparison, ...] = ()
    timed: str = ""  # for timing tables: one line saying exactly what is timed
    seeds: tuple[int, ...] = ()  # the seeds its sweep runs: a full cell has a run of each
    folds: int | None = None  # folds per seed of its task (Task.folds), None: one run per seed
    # The paper's recipe (Task.recipe_settings at the table's own values): runs of ablations
    # outside the tables are left out where the table neither fixes nor varies the setting.
    recipe: dict[str, str] = field(default_factory=dict)
    claims: tuple[Claim, ...] = ()  # the paper's claims that rest on the table
    effect: str | float = "paper"  # of interest, for the seeds a comparison needs (report/analysis/power.py)
    curve: CurveSpec | None = None  # learning curves, where the table sweeps the training-set size

    def metric_for(self, column: ColumnSpec) -> str:
        return column.metric or self.metric

    def views(self) -> Iterator[View]:
        for column in self.columns:
            yield View(column.label, column, self.metric_for(column), 1.0, column.label)
            for measure in column.also:
                yield View(measure.label, column, measure.metric, measure.scale,
                           column.label if measure.paper else None)

    def published_for(self, row: str, view: View) -> Published | None:
        return None if view.paper_label is None else self.published.get((row, view.paper_label))

    def comparison(self, name: str) -> Comparison:
        for comparison in self.comparisons:
            if comparison.name == name:
                return comparison
        raise KeyError(f"{self.name} has no comparison {name!r}")
