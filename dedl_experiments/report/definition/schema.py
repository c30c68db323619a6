"""The schema of an experiment file's `report:` block: how a table shows its sweep's cells, its
printed numbers and the paper's claims on it. Every key is optional; a block may be as small as a
title. The report checks a block when it reads it: a key that is not in the schema fails with one
line naming the file, the key and the valid keys (`check`).

    report:
      title: Test IoU by encoder         # default: "<table>: <metric> by <row key>"
      metric: test_iou                   # default: the task's main metric on the test set
      fixed: {task.name: segmentation}   # params every run has (as logged); default: the sweep's
      rows: encoder                      # a swept key (default: the first), or a list of RowBlock
      columns:                           # swept keys -> their choices (labels from the choices'
        app: {none: Without AE, gelu: With GELU AE}   # YAML `label:`, or given), or ColumnBlocks
      also: [{label: "{column}, 50 × epoch", metric: train_epoch_time_mean_s, scale: 50}]
      published:                         # row -> one value per column, as printed:
        resnet18: [0.4347±0.0006, 1h 24m 44s, [0.47, 0.01], 0.43, null]
      comparisons:                       # default: each column against the first, per row
        - {name: none vs GELU, columns: [Without AE, With GELU AE]}
      timed: what the timing columns time
      note: where the paper contradicts itself
      effect: paper                      # effect of interest for the seeds needed: paper
                                         # (each pair's printed difference) or a number, 0.02
      claims: [...]                      # the paper's claims on the table (report/analysis/claims.py)
      curve:                             # learning curves (report/analysis/curves.py); derived where the
        size: dataset.train_fraction     # sweep varies dataset.train_fraction or train_count
        variants: {app: {none: No APP, gelu: GELU APP}}   # as `columns`; default: the other swept keys
        baseline: No APP                 # default: the first variant

A row's key (in `published`, in claims and row comparisons) is its choice (`resnet18`) for rows
of a swept key, else its `label`, else its match's values joined by spaces.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Optional, Union


class ExperimentError(ValueError):
    """An experiment file the report cannot turn into a table; the message names the file."""


@dataclass
class MeasureBlock:
    """Another measure of a column's runs, shown beside it; in a block's `also`, "{column}" in
    the label stands for the column's label. `paper`: the column's printed value sits beside it."""

    label: str
    metric: str
    scale: float = 1.0
    paper: bool = False


@dataclass
class ColumnBlock:
    label: str
    match: dict = field(default_factory=dict)  # params of its runs; {}: every run of the table
    metric: Optional[str] = None  # instead of the table's
    also: list[MeasureBlock] = field(default_factory=list)


@dataclass
class RowBlock:
    """A row; without `match` a printed-only row (prior work), without `label` its match's
    choices' labels joined by spaces."""

    label: Optional[str] = None
    match: Optional[dict] = None


@dataclass
class ComparisonBlock:
    """B against A: in every row between two columns (view labels), or between two rows (keys)
    in one column."""

    name: str  # "A vs B", optionally after a prefix "...: "
    columns: Optional[list[str]] = None
    rows: Optional[list[str]] = None
    column: Optional[str] = None


@dataclass
class CurveBlock:
    """Learning curves: the metric against the training-set size (a swept key), one curve per
    variant (combinations of other swept keys, given as a block's `columns`), each variant
    compared with the baseline at every size; `resamples`: bootstrap resamples over seeds."""

    size: Optional[str] = None
    variants: Optional[dict] = None
    baseline: Optional[str] = None
    resamples: int = 1000


@dataclass
class ReportBlock:
    title: Optional[str] = None
    metric: Optional[str] = None
    fixed: Optional[dict] = None
    rows: Union[str, list[RowBlock], None] = None
    columns: Union[dict, list[ColumnBlock], None] = None
    also: list[MeasureBlock] = field(default_factory=list)
    published: dict = field(default_factory=dict)
    comparisons: Optional[list[ComparisonBlock]] = None
    timed: str = ""
    note: str = ""
    effect: Union[str, float, None] = None  # of interest, for the seeds needed: "paper" (default) or a number
    claims: list[dict] = field(default_factory=list)  # checked by report/analysis/claims.py, by kind
    curve: Optional[CurveBlock] = None


@dataclass
class ItemsBlock:
    """Pairs of cells of a claim: each comparison x row (row keys; default: every pair of the
    comparison), expecting B > A (">") or B < A ("<"), or left out of the claim ("exempt"). A
    later block's pair replaces an earlier's."""

    comparisons: list[str]
    rows: Optional[list] = None
    expect: str = ">"


@dataclass
class CellsBlock:
    """Cells of a claim: each row (keys; default every row with runs) x view label (default all)."""

    rows: Optional[list] = None
    columns: Optional[list[str]] = None


def _dataclass_in(annotation: Any, container: type | None) -> type | None:
    """The dataclass an annotation holds directly (container None) or in a list (container list)."""
    for arg in (annotation, *typing.get_args(annotation)):
        origin = typing.get_origin(arg)
        if container is None and dataclasses.is_dataclass(arg):
            return arg
        if container is list and origin is list and dataclasses.is_dataclass(typing.get_args(arg)[0]):
            return typing.get_args(arg)[0]
    return None


def _container(annotation: Any) -> type | None:
    """dict or list where the annotation allows only that (besides None), else None."""
    union = typing.get_origin(annotation) is Union
    kinds = {typing.get_origin(arg) or arg for arg in (typing.get_args(annotation) if union else (annotation,))}
    kinds -= {type(None)}
    return next(iter(kinds)) if len(kinds) == 1 and kinds <= {dict, list} else None


def keys(data: Any, valid: list[str], required: list[str], where: str, path: str) -> None:
    if not isinstance(data, dict):
        raise ExperimentError(f"{where}: {path} must be a mapping of {', '.join(valid)}")
    for key in data:
        if key not in valid:
            raise ExperimentError(f"{where}: unknown key {path}.{key}; valid keys: {', '.join(valid)}")
    for key in required:
        if key not in data:
            raise ExperimentError(f"{where}: {path} needs {key}; keys: {', '.join(valid)}")


def check(data: Any, schema: type, where: str, path: str = "report") -> Any:
    """`data` against the dataclass `schema`, recursively; returns an instance of it."""
    fields = dataclasses.fields(schema)
    hints = typing.get_type_hints(schema)
    required = [f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    keys(data, [f.name for f in fields], required, where, path)
    values = {}
    for name, value in data.items():
        one, many = _dataclass_in(hints[name], None), _dataclass_in(hints[name], list)
        container = _container(hints[name])
        if container is not None and value is not None and not isinstance(value, container):
            raise ExperimentError(f"{where}: {path}.{name} must be a {'mapping' if container is dict else 'list'}")
        if isinstance(value, dict) and one is not None:
            value = check(value, one, where, f"{path}.{name}")
        elif isinstance(value, list) and many is not None:
            value = [check(item, many, where, f"{path}.{name}[{i}]") for i, item in enumerate(value)]
        values[name] = value
    return schema(**values)
