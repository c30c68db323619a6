"""A table is its experiment file, conf/experiment/<table>.yaml (the package's or one in a user
folder on the search path): its sweep gives the cells, its `report:` block (schema.py) how to show
them, the numbers the paper printed, the comparisons to test and the claims resting on it. What
the block leaves out is derived from the sweep:

- rows: the choices of the first swept key other than `seed` (say `encoder`), labelled by each
  choice's YAML `label:`;
- columns: every combination of the other swept keys' values (say architecture x app, labelled
  "UNet / gelu"); one column when nothing else is swept;
- fixed: the task, every other config group's choice (init, loss, tiling, ...), early stopping
  and the experiment file's own settings that define a cell (tracking.recipe_params), as the
  experiment composes them;
- recipe: the task's `recipe_settings` at the composed values; folds: the task's folds per seed;
- comparisons: each column against the first, per row (runs paired by seed);
- metric: the task's main metric (task.monitor, on the test set); seeds: the sweep's;
- curve: where the sweep varies the training-set size (spec.SIZE_KEYS), learning curves of the
  metric against it, one per combination of the other swept keys (the block's `curve:` may name
  the size key, the variants in the form of `columns` and the baseline; default: the first).

The block is part of the composed job config but neither of a cell's identity
(tracking.NOT_CELL_KEYS) nor of a run's params.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import re
from collections.abc import Iterable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dedl_experiments.config import config_files, sweeps
from dedl_experiments.report.analysis import claims, power
from dedl_experiments.report.definition.schema import CurveBlock, ExperimentError, ReportBlock, check
from dedl_experiments.report.definition.spec import (
    SIZE_KEYS, ColumnSpec, Comparison, CurveSpec, Measure, Pair, Published, RowSpec, TableSpec,
)
from dedl_experiments.tasks import task_class
from dedl_experiments.tracking.cells import REPLICATE_KEYS, flatten, recipe_params

# Groups whose choice the report selects otherwise: the dataset by content, the budget by option,
# the task by its name (fixed on its own).
_NOT_FIXED = ("dataset", "budget", "experiment", "task")
_DURATION = re.compile(r"(\d+)h(?: (\d+)m)?(?: (\d+)s)?")


def _choices(key: str, values: list[Any], extra: tuple[str, ...]) -> list[tuple[str, dict[str, str]]]:
    """Each swept value's label and the params that select its runs: a config group's choice by
    its `name`, else by the plain values in which its file differs from the other choices'; any
    other key by its value as logged."""
    paths = [config_files.option_file(key, str(value), extra) for value in values]
    if None in paths:
        return [(str(value), {key: str(value)}) for value in values]
    data = [config_files.read(path) for path in paths]
    if all("name" in d for d in data):
        matches = [{f"{key}.name": str(d["name"])} for d in data]
    else:
        plain = [{k: v for k, v in flatten(d, f"{key}.").items()
                  if "${" not in v and k != f"{key}.{config_files.DISPLAY_KEY}"} for d in data]
        differ = {k for k in set().union(*plain) if len({p.get(k) for p in plain}) > 1}
        matches = [{k: v for k, v in p.items() if k in differ or len(plain) == 1} for p in plain]
    return [(config_files.label(key, str(value), extra), match) for value, match in zip(values, matches)]


def _logged(cfg: DictConfig) -> dict[str, str]:
    """The params a job of this config logs."""
    job = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    return flatten(OmegaConf.to_container(job, resolve=True))


def _fixed(cfg: DictConfig, name: str, swept: Iterable[str], extra: tuple[str, ...]) -> dict[str, str]:
    logged = _logged(cfg)
    # What defines a cell (not `table`, `tracking`, ...): an experiment file that sets a seed keeps it.
    settings = {*recipe_params(logged), *REPLICATE_KEYS}
    fixed = {"task.name": logged["task.name"], "train.patience": logged["train.patience"]}
    for group in cfg.hydra.runtime.choices:
        if "/" not in group and group not in (*_NOT_FIXED, *swept) and f"{group}.name" in settings:
            fixed[f"{group}.name"] = logged[f"{group}.name"]
    own = flatten(config_files.read(config_files.option_file("experiment", name, extra)))
    for key in own:
        if key in settings and not key.startswith(tuple(f"{group}." for group in swept)):
            fixed[key] = logged[key]
    return fixed


def printed(value: Any, where: str) -> Published | None:
    """A number as printed: 0.4347, "0.4347±0.0006", [0.4347, 0.0006], "1h 24m 44s" (stored in
    seconds, no spread) or null (not printed)."""
    try:
        if value is None:
            return None
        if isinstance(value, list):
            return Published(float(value[0]), float(value[1]) if len(value) > 1 and value[1] is not None else None)
        duration = _DURATION.fullmatch(str(value).strip())
        if duration:
            hours, minutes, seconds = (int(part or 0) for part in duration.groups())
            return Published(float(hours * 3600 + minutes * 60 + seconds))
        mean, _, std = str(value).partition("±")
        return Published(float(mean), float(std) if std.strip() else None)
    except (ValueError, IndexError, TypeError):
        raise ExperimentError(f"{where}: {value!r} is not a number as printed (0.43, 0.43±0.01, [0.43, 0.01], "
                              "1h 24m 44s or null)") from None


class _Table:
    """One experiment file's table, read from its composed config."""

    def __init__(self, name: str, extra: tuple[str, ...]):
        self.name, self.extra = name, extra
        path = config_files.option_file("experiment", name, extra)
        if path is None:
            raise ExperimentError(f"no experiment file experiment/{name}.yaml in "
                                  f"{', '.join(map(str, config_files.folders(extra)))}")
        self.where = str(path)
        self.cfg = sweeps.compose_config([f"+experiment={name}", *sweeps.searchpath_override(extra)], hydra=True)
        params = {key: sweeps.values(key, str(value)) for key, value in (self.cfg.hydra.sweeper.params or {}).items()}
        self.seeds = tuple(int(seed) for seed in params.pop("seed", [self.cfg.seed]))
        self.swept = params
        raw = OmegaConf.to_container(self.cfg.report, resolve=True) if "report" in self.cfg else {}
        self.block = check(raw or {}, ReportBlock, self.where)
        self.metric = self.block.metric or str(self.cfg.task.monitor).replace("val_", "test_", 1)

    def rows(self) -> tuple[str | None, dict[str, RowSpec]]:
        """The swept key the rows are (None: listed rows) and the rows by key."""
        rows = self.block.rows
        if isinstance(rows, list):
            listed = {}
            for row in rows:
                match = None if row.match is None else {str(k): str(v) for k, v in row.match.items()}
                label = row.label or " ".join(config_files.label(k.removesuffix(".name"), v, self.extra) if k.endswith(".name")
                                              else v for k, v in (match or {}).items())
                listed[row.label or " ".join((match or {}).values())] = RowSpec(label, match)
            return None, listed
        key = rows if rows is not None else next(iter(self.swept), None)
        if key is not None and key not in self.swept:
            raise ExperimentError(f"{self.where}: report.rows: {key} is not swept; swept: {', '.join(self.swept)}")
        values = self.swept.get(key, [])
        by_key = {str(value): RowSpec(label, match) for value, (label, match) in zip(values, _choices(key, values, self.extra))}
        return key, by_key or {self.name: RowSpec(self.name, {})}  # only seeds swept: one row of every run

    def columns(self, row_key: str | None) -> tuple[ColumnSpec, ...]:
        given = self.block.columns
        if isinstance(given, list):
            columns = [ColumnSpec(c.label, {str(k): str(v) for k, v in c.match.items()}, c.metric,
                                  tuple(Measure(m.label, m.metric, m.scale, m.paper) for m in c.also)) for c in given]
        else:
            columns = self.combinations(given if given is not None else {key: None for key in self.swept if key != row_key})
        also = tuple(Measure(m.label.replace("{column}", c.label), m.metric, m.scale, m.paper) for c in columns
                     for m in self.block.also)
        per_column = len(self.block.also)
        return tuple(ColumnSpec(c.label, c.match, c.metric, c.also + also[i * per_column:(i + 1) * per_column])
                     for i, c in enumerate(columns))

    def combinations(self, axes: dict) -> list[ColumnSpec]:
        """A column per combination of the axes' values: swept keys -> None (all their choices,
        labelled by their YAML) or their chosen values (a mapping: value -> label)."""
        labelled = []
        for key, chosen in axes.items():
            values = self.swept.get(key, []) if chosen is None else list(chosen)
            choices = _choices(key, values, self.extra)
            if isinstance(chosen, dict):
                choices = [(str(chosen[value]), match) for value, (_, match) in zip(values, choices)]
            labelled.append(choices)
        return [ColumnSpec(" / ".join(label for label, _ in combo) or self.metric,
                           {k: v for _, match in combo for k, v in match.items()})
                for combo in itertools.product(*labelled)]

    def curve(self) -> CurveSpec | None:
        """The learning curves of a sweep over the training-set size (None where it has none)."""
        block = self.block.curve or CurveBlock()
        key = block.size or next((key for key in self.swept if key in SIZE_KEYS), None)
        if key is None:
            return None
        where = f"{self.where}: report.curve"
        if key not in self.swept:
            raise ExperimentError(f"{where}.size: {key} is not swept; swept: {', '.join(self.swept)}")
        values = self.swept[key]
        sizes = tuple(RowSpec(label, match) for label, match in _choices(key, values, self.extra))
        # By default one variant per combination of the other keys swept over several values
        # (the table's runs already share the single ones).
        axes = {k: None for k, v in self.swept.items() if k != key and len(v) > 1}
        variants = tuple(self.combinations(block.variants if block.variants is not None else axes))
        labels = [variant.label for variant in variants]
        baseline = block.baseline if block.baseline is not None else labels[0]
        if baseline not in labels:
            raise ExperimentError(f"{where}.baseline: no variant {baseline!r}; variants: {'; '.join(labels)}")
        numbers = tuple(None if value is None or str(value) in ("None", "null") else float(value) for value in values)
        return CurveSpec(key, sizes, numbers, variants, baseline, block.resamples)

    def published(self, rows: dict[str, RowSpec], columns: tuple[ColumnSpec, ...]) -> dict[tuple[str, str], Published]:
        published: dict[tuple[str, str], Published] = {}
        for key, values in self.block.published.items():
            if str(key) not in rows:
                raise ExperimentError(f"{self.where}: report.published.{key} is not one of its rows ({', '.join(rows)})")
            if not isinstance(values, list) or len(values) != len(columns):
                raise ExperimentError(f"{self.where}: report.published.{key} must list {len(columns)} value(s), "
                                      f"one per column ({'; '.join(c.label for c in columns)})")
            for column, value in zip(columns, values):
                number = printed(value, f"{self.where}: report.published.{key}")
                if number is not None:
                    published[(rows[str(key)].label, column.label)] = number
        return published

    def comparisons(self, rows: dict[str, RowSpec], spec: TableSpec) -> tuple[Comparison, ...]:
        with_runs = [row for row in rows.values() if row.match is not None]
        if self.block.comparisons is None:
            first, *others = spec.columns
            return tuple(Comparison(f"{first.label} vs {other.label}", first.label, other.label,
                                    tuple(Pair(row.label, (row.label, first.label), (row.label, other.label))
                                          for row in with_runs)) for other in others)
        views = [view.label for view in spec.views()]
        found = []
        for i, block in enumerate(self.block.comparisons):
            where = f"{self.where}: report.comparisons[{i}]"
            a_name, _, b_name = block.name.rpartition(": ")[2].partition(" vs ")
            if block.columns is not None and len(block.columns) == 2 and set(block.columns) <= set(views):
                a, b = block.columns
                pairs = tuple(Pair(row.label, (row.label, a), (row.label, b)) for row in with_runs)
            elif block.rows is not None and len(block.rows) == 2 and set(map(str, block.rows)) <= set(rows) \
                    and block.column in views:
                a, b = (rows[str(key)].label for key in block.rows)
                pairs = (Pair(block.column, (a, block.column), (b, block.column)),)
            else:
                raise ExperimentError(f"{where}: give columns: [A, B] of {'; '.join(views)}, or rows: [A, B] of "
                                      f"{', '.join(rows)} and a column")
            if not b_name:
                raise ExperimentError(f"{where}: name {block.name!r} must read 'A vs B'")
            found.append(Comparison(block.name, a_name, b_name, pairs))
        return tuple(found)

    def effect(self) -> str | float:
        if self.block.effect is None:
            return power.PAPER
        try:
            return power.parse_effect(self.block.effect, f"{self.where}: report.effect")
        except ValueError as err:
            raise ExperimentError(str(err)) from None

    def spec(self) -> TableSpec:
        row_key, rows = self.rows()
        columns = self.columns(row_key)
        fixed = ({str(k): str(v) for k, v in self.block.fixed.items()} if self.block.fixed is not None
                 else _fixed(self.cfg, self.name, self.swept, self.extra))
        column_keys = [key for key in self.swept if key != row_key] if self.block.columns is None else []
        what = f"rows: {row_key or 'all runs'}" + (f"; columns: {' x '.join(column_keys)}" if column_keys else "")
        task, logged = task_class(self.cfg), _logged(self.cfg)
        folds = task.folds(self.cfg)
        spec = TableSpec(
            name=self.name, title=self.block.title or f"{self.name}: {self.metric} by {row_key or 'seed'}",
            metric=self.metric, rows=tuple(rows.values()), columns=columns,
            published=self.published(rows, columns), fixed=fixed, seeds=self.seeds, timed=self.block.timed,
            note=self.block.note or f"Derived from {self.where} ({what}).",
            folds=None if folds is None else len(folds),
            effect=self.effect(), curve=self.curve(),
            recipe={key: logged[key] for key in task.recipe_settings if key in logged})
        spec = dataclasses.replace(spec, comparisons=self.comparisons(rows, spec))
        keys = {key: row.label for key, row in rows.items()}
        return dataclasses.replace(spec, claims=claims.read(self.block.claims, spec, keys, self.where))


@functools.lru_cache(maxsize=None)
def _spec(name: str, extra: tuple[str, ...]) -> TableSpec:
    return _Table(name, extra).spec()


def experiment_spec(name: str, extra: Iterable[str] = ()) -> TableSpec:
    """The table of conf/experiment/<name>.yaml, found in the package or in `extra` (Hydra
    search path entries or folders)."""
    return _spec(name, tuple(extra))
