"""What a paper table is, as data: rows x columns of runs, the printed numbers, the measures
shown per column, and the paired comparisons (ablation axes) the report tests.

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

from dedl_experiments.conf import label

SEEDS = (26, 77, 334, 517, 994)


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
    """An ablation axis: B against A in each of its pairs (runs paired by seed and fold)."""

    name: str  # "UNet: none vs GELU"
    a_name: str  # "none"
    b_name: str  # "GELU"
    pairs: tuple[Pair, ...]


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    task: str  # "segmentation" | "classification"
    metric: str  # MLflow metric key shown in the table
    rows: tuple[RowSpec, ...]
    columns: tuple[ColumnSpec, ...]
    published: dict[tuple[str, str], Published]  # (row label, column label) -> printed value
    fixed: dict[str, str] = field(default_factory=dict)  # settings every run of the table must match
    note: str = ""
    comparisons: tuple[Comparison, ...] = ()
    timed: str = ""  # for timing tables: one line saying exactly what is timed
    seeds: tuple[int, ...] = SEEDS  # the seeds its sweep runs: a full cell has a run of each

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


def duration(hours: int, minutes: int, seconds: int = 0) -> Published:
    """A training time printed as "1h 24m 44s", stored in seconds; no spread is printed."""
    return Published(float(hours * 3600 + minutes * 60 + seconds))


# (label of A, label of B, short name of A, short name of B): B against A in every row.
Axis = tuple[str, str, str, str]


def per_row(rows: tuple[RowSpec, ...], axis: Axis, prefix: str = "") -> Comparison:
    a, b, a_name, b_name = axis
    pairs = tuple(Pair(row.label, (row.label, a), (row.label, b)) for row in rows if row.match is not None)
    return Comparison(f"{prefix}{a_name} vs {b_name}", a_name, b_name, pairs)


def between_rows(column: str, a_row: str, b_row: str, a_name: str, b_name: str) -> Comparison:
    return Comparison(f"{a_name} vs {b_name}", a_name, b_name,
                      (Pair(column, (a_row, column), (b_row, column)),))


def encoder_table(
    printed: dict[str, tuple[Published | None, ...]],
    columns: tuple[ColumnSpec, ...],
    *,
    axes: tuple[Axis | tuple[Axis, str], ...] = (),
    **fields,
) -> TableSpec:
    """Rows keyed by encoder, in printed order, their printed values (None: not printed), and
    one comparison per axis over all rows (an axis may come with a name prefix). A row's label
    is its encoder's (`label:` in conf/encoder/<name>.yaml)."""
    rows: list[RowSpec] = []
    published: dict[tuple[str, str], Published] = {}
    for encoder, values in printed.items():
        if len(values) != len(columns):
            raise ValueError(f"{encoder}: {len(values)} values for {len(columns)} columns")
        row = RowSpec(label("encoder", encoder), {"encoder.name": encoder})
        rows.append(row)
        for column, value in zip(columns, values):
            if value is not None:
                published[(row.label, column.label)] = value
    comparisons = tuple(per_row(tuple(rows), *(axis if len(axis) == 2 else (axis,))) for axis in axes)
    return TableSpec(rows=tuple(rows), columns=columns, published=published, comparisons=comparisons, **fields)


# --- settings and columns shared by tables ----------------------------------------------------

# The paper's final segmentation setup: ImageNet weights, 480 px tiles, constant learning rate
# for the APP (Section 5.1 "Ablation Study").
SEGMENTATION = {
    "task.name": "segmentation",
    "init.name": "imagenet",
    "tiling.size": "480",
    "app_lr_schedule.name": "constant",
    "train.patience": "5",
}
# The timing tables' runs train every epoch (no early stopping), as the paper timed 50 epochs.
TIMED_RUNS = {"train.patience": "None"}
CLASSIFICATION = {"task.name": "classification", "init.name": "imagenet"}

EPOCHS = 50  # the paper's timing tables time 50 epochs
TIMED = (
    "Timed: `train_time_s` is the wall time of the training loop (every epoch run, training and "
    "validation, no test); '50 × epoch' is 50 × `train_epoch_time_mean_s`, the mean training "
    "phase of one epoch (no validation, no test). The paper prints training time for 50 epochs; "
    "both are set beside it."
)


def _timed(label: str, match: dict[str, str]) -> ColumnSpec:
    return ColumnSpec(label, match, also=(
        Measure(f"{label}, {EPOCHS} × epoch", "train_epoch_time_mean_s", EPOCHS, paper=True),))


APP_NONE_GELU = (
    ColumnSpec("Without APP", {"app.name": "none"}),
    ColumnSpec("With APP", {"app.name": "gelu"}),  # the paper's default APP activation
)
TIMED_APP_NONE_GELU = (_timed("Without APP", {"app.name": "none"}), _timed("With APP", {"app.name": "gelu"}))
NONE_VS_GELU: Axis = ("Without APP", "With APP", "none", "GELU APP")
TIMED_AXES: tuple[Axis, ...] = (
    ("Without APP", "With APP", "none", "GELU APP (wall)"),
    (f"Without APP, {EPOCHS} × epoch", f"With APP, {EPOCHS} × epoch", "none", f"GELU APP ({EPOCHS} × epoch)"),
)
APP_ACTIVATIONS = (
    ColumnSpec("Without AE", {"app.name": "none"}),
    ColumnSpec("With ReLU AE", {"app.name": "relu"}),
    ColumnSpec("With GELU AE", {"app.name": "gelu"}),
)
ACTIVATION_AXES: tuple[Axis, ...] = (
    ("Without AE", "With ReLU AE", "none", "ReLU"),
    ("Without AE", "With GELU AE", "none", "GELU"),
    ("With ReLU AE", "With GELU AE", "ReLU", "GELU"),
)
# Labelled by conf/architecture/<name>.yaml's `label:`.
ARCHITECTURES = tuple((label("architecture", name), name) for name in ("unet", "unetplusplus"))
F1_COLUMN = (ColumnSpec("Test F1-Score", {}),)


def per_architecture(columns: tuple[ColumnSpec, ...]) -> tuple[ColumnSpec, ...]:
    """UNet and UNet++ side by side, each with the given columns (Tables 2 and 3)."""
    return tuple(
        ColumnSpec(f"{arch_label} / {column.label}", {"architecture.name": arch, **column.match})
        for arch_label, arch in ARCHITECTURES
        for column in columns
    )


def per_architecture_axes(axes: tuple[Axis, ...]) -> tuple[tuple[Axis, str], ...]:
    """Each axis within each architecture, with the comparison's name prefix."""
    return tuple(
        ((f"{arch} / {a}", f"{arch} / {b}", a_name, b_name), f"{arch}: ")
        for arch, _ in ARCHITECTURES
        for a, b, a_name, b_name in axes
    )


def init_columns(noisy_label: str) -> tuple[ColumnSpec, ...]:
    return (
        ColumnSpec("ImageNet", {"init.name": "imagenet"}),
        ColumnSpec("Advprop", {"init.name": "advprop"}),
        ColumnSpec(noisy_label, {"init.name": "noisy_student"}),
    )


def init_axes(noisy_label: str) -> tuple[Axis, ...]:
    return (("ImageNet", "Advprop", "ImageNet", "AdvProp"),
            ("ImageNet", noisy_label, "ImageNet", "Noisy Student"))
