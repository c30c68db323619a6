"""The table of an experiment file that has no hand-written spec (report/paper.py), derived
from the file itself, so that a new table is one file in conf/experiment/ (the package's or a
user folder on the search path):

- rows: the choices of the first swept key other than `seed` (say `encoder`), labelled by each
  choice's YAML `label:`;
- columns: every combination of the other swept keys' values (say architecture x app, labelled
  "UNet / gelu"); one column when nothing else is swept;
- fixed: the task, every other config group's choice (init, loss, tiling, ...), early stopping
  and the experiment file's own settings, as the experiment composes them;
- comparisons: each column against the first, per row (runs paired by seed);
- the metric, title and published numbers from the file's optional `report:` block:

      report:
        title: My encoder against ResNet-18
        metric: test_iou     # default: the task's main metric (task.monitor, on the test set)
        published:           # per row choice, one value per column in order:
          resnet18: [0.4347]   # a mean, [mean, std] or null (not printed)

The block is part of the composed job config but not of a cell's identity (tracking.NOT_CELL_KEYS).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dedl_experiments import conf, sweeps
from dedl_experiments.report.spec import ColumnSpec, Published, RowSpec, TableSpec, per_row
from dedl_experiments.tracking import flatten

# Groups that do not define a table's cells: the report picks the dataset by content and the
# budget by option; tracking is where runs go.
_NOT_FIXED = ("dataset", "budget", "tracking", "experiment", "task")
_NOT_OWN = ("defaults", "hydra", "table", "report")


class ExperimentError(ValueError):
    """An experiment file the report cannot turn into a table; the message names the file."""


def _choices(key: str, values: list[Any], extra: tuple[str, ...]) -> list[tuple[str, dict[str, str]]]:
    """Each swept value's label and the params that select its runs: a config group's choice by
    its `name`, else by the plain values in which its file differs from the other choices'; any
    other key by its value as logged."""
    paths = [conf.option_file(key, str(value), extra) for value in values]
    if None in paths:
        return [(str(value), {key: str(value)}) for value in values]
    data = [conf.read(path) for path in paths]
    if all("name" in d for d in data):
        matches = [{f"{key}.name": str(d["name"])} for d in data]
    else:
        plain = [{k: v for k, v in flatten(d, f"{key}.").items()
                  if "${" not in v and k != f"{key}.{conf.DISPLAY_KEY}"} for d in data]
        differ = {k for k in set().union(*plain) if len({p.get(k) for p in plain}) > 1}
        matches = [{k: v for k, v in p.items() if k in differ or len(plain) == 1} for p in plain]
    return [(conf.label(key, str(value), extra), match) for value, match in zip(values, matches)]


def _fixed(cfg: DictConfig, name: str, swept: Iterable[str], extra: tuple[str, ...]) -> dict[str, str]:
    job = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])  # what a job logs
    logged = flatten(OmegaConf.to_container(job, resolve=True))
    fixed = {"task.name": logged["task.name"], "train.patience": logged["train.patience"]}
    for group in cfg.hydra.runtime.choices:
        if "/" not in group and group not in (*_NOT_FIXED, *swept) and f"{group}.name" in logged:
            fixed[f"{group}.name"] = logged[f"{group}.name"]
    own = flatten({k: v for k, v in conf.read(conf.option_file("experiment", name, extra)).items()
                   if k not in _NOT_OWN})
    for key in own:
        if key in logged and not key.startswith(tuple(f"{group}." for group in swept)):
            fixed[key] = logged[key]
    return fixed


def _published(block: dict, rows: dict[str, RowSpec], columns: tuple[ColumnSpec, ...],
               where: str) -> dict[tuple[str, str], Published]:
    published: dict[tuple[str, str], Published] = {}
    for choice, values in (block.get("published") or {}).items():
        if str(choice) not in rows:
            raise ExperimentError(f"{where}: report.published.{choice} is not one of its rows ({', '.join(rows)})")
        if not isinstance(values, list) or len(values) != len(columns):
            raise ExperimentError(f"{where}: report.published.{choice} must list {len(columns)} value(s), "
                                  f"one per column ({'; '.join(c.label for c in columns)})")
        for column, value in zip(columns, values):
            if value is None:
                continue
            mean, std = (value[0], value[1] if len(value) > 1 else None) if isinstance(value, list) else (value, None)
            published[(rows[str(choice)].label, column.label)] = Published(
                float(mean), None if std is None else float(std))
    return published


def experiment_spec(name: str, extra: Iterable[str] = ()) -> TableSpec:
    """The table of conf/experiment/<name>.yaml, found in the package or in `extra` (Hydra
    search path entries or folders)."""
    extra = tuple(extra)
    path = conf.option_file("experiment", name, extra)
    if path is None:
        raise ExperimentError(f"no experiment file experiment/{name}.yaml in {', '.join(map(str, conf.folders(extra)))}")
    cfg = sweeps.compose_config([f"+experiment={name}", *sweeps.searchpath_override(extra)], hydra=True)
    params = {key: sweeps.values(key, str(value)) for key, value in (cfg.hydra.sweeper.params or {}).items()}
    seeds = tuple(int(seed) for seed in params.pop("seed", [cfg.seed]))
    swept = params
    block = OmegaConf.to_container(cfg.report, resolve=True) if "report" in cfg else {}
    metric = block.get("metric") or str(cfg.task.monitor).replace("val_", "test_", 1)

    row_key, *column_keys = swept or [None]
    rows = {str(value): RowSpec(label, match) for value, (label, match)
            in zip(swept.get(row_key, []), _choices(row_key, swept.get(row_key, []), extra))}
    if not rows:  # only seeds are swept: one row of every run
        rows[name] = RowSpec(name, {})
    columns = tuple(
        ColumnSpec(" / ".join(label for label, _ in combo) or metric,
                   {k: v for _, match in combo for k, v in match.items()})
        for combo in itertools.product(*(_choices(key, swept[key], extra) for key in column_keys)))
    row_specs = tuple(rows.values())
    comparisons = tuple(per_row(row_specs, (columns[0].label, other.label, columns[0].label, other.label))
                        for other in columns[1:])
    what = f"rows: {row_key or 'all runs'}" + (f"; columns: {' x '.join(column_keys)}" if column_keys else "")
    return TableSpec(
        name=name, title=block.get("title") or f"{name}: {metric} by {row_key or 'seed'}",
        task=str(cfg.task.name), metric=metric, rows=row_specs, columns=columns,
        published=_published(block, rows, columns, str(path)),
        fixed=_fixed(cfg, name, swept, extra), comparisons=comparisons, seeds=seeds,
        note=f"Derived from {path} ({what}); no hand-written spec.",
    )
