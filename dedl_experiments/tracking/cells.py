"""Cell identity: what makes two runs the same cell of a table.

A *cell* is one configuration of one paper table (one seed included) on one dataset. Its key
is a hash of the config values that define it and of the dataset's content digest, so the same
cell run from another folder or launcher finds its earlier runs (a FINISHED run means the job
is skipped, an interrupted one is resumed), while the same config on other data is another
cell. Paths, launchers, tracking settings and speed switches do not define a cell. The report
reads runs back through the same lists (`recipe_params`), so the two never disagree.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dedl_experiments.config.components import without_instantiate_keys
from dedl_experiments.config.config_files import DISPLAY_KEY, PAPER_OPTIMIZER

# Top-level config keys that do not change what a cell computes.
# `report` is an experiment file's report block (title, metric, published numbers): how a table
# shows its cells, not what they compute.
# `n_train_images`, `n_train_tiles`: params logged beside the config, counts that its training
# subset and the data decide.
NOT_CELL_KEYS = ("tracking", "force", "resume", "device", "data_dir", "loader", "speed", "table",
                 "hydra", "claim", "adopt_legacy_runs", "report", "n_train_images", "n_train_tiles")
# The data's identity is its content digest, not where it lies.
# `dataset.non_finite`: with `error` a job on data holding NaN trains nothing, so `zero` never
# gives a second result for the same data and config.
NOT_CELL_PATHS = ("dataset.root", "train.checkpoint_every", "dataset.non_finite")
# Choices added after runs were keyed by their data digest, at the value those runs trained
# with: every key (with a digest or not) leaves them out at that value, so cells recorded before
# keep their keys; another value is part of the key.
# The training subset's settings at their defaults (every training sample) likewise.
ADDED_CHOICES = {"optimizer.name": PAPER_OPTIMIZER, "dataset.train_fraction": 1.0,
                 "dataset.train_count": None}
# Settings added after runs were recorded without them, at the value that reproduces what those
# runs did. A legacy key (no digest) leaves them out at that value, as those runs' keys did.
ADDED_SETTINGS = {"loss.reduction": "mean", "loss.epsilon": None, "tiling.padding_label": "ignore",
                  "augment.rotation_fill": "ignore", "augment.perspective_p": 1.0,
                  "task.folds_method": "multilabel_stratified", "task.drop_last": False,
                  "lr_schedule.interval": "epoch", "app_lr_schedule.interval": "epoch",
                  **ADDED_CHOICES}


def _pop_path(values: dict, path: str, only_if: Any = ...) -> None:
    *heads, leaf = path.split(".")
    node = values
    for head in heads:
        node = node.get(head)
        if not isinstance(node, dict):
            return
    if leaf in node and (only_if is ... or node[leaf] == only_if):
        del node[leaf]


def cell_values(cfg: DictConfig, dataset_digest: str | None) -> dict[str, Any]:
    values = without_instantiate_keys(OmegaConf.to_container(cfg, resolve=True))
    for key in NOT_CELL_KEYS:
        values.pop(key, None)
    for path in NOT_CELL_PATHS:
        _pop_path(values, path)
    for path, default in ADDED_CHOICES.items():
        _pop_path(values, path, default)
    # A choice's display name (`label:` in its group's YAML): renaming it in the report's tables
    # must not make its runs another cell.
    for group in values.values():
        if isinstance(group, dict):
            group.pop(DISPLAY_KEY, None)
    if dataset_digest is not None:
        values["dataset_digest"] = dataset_digest
        return values
    # The key of runs recorded before data digests and the settings added since.
    for path, default in ADDED_SETTINGS.items():
        _pop_path(values, path, default)
    if values.get("augment") == {}:
        del values["augment"]
    return values


REPLICATE_KEYS = ("seed", "fold")  # the runs of one recipe: the report pairs them by these


def recipe_params(params: dict[str, str]) -> dict[str, str]:
    """Of a run's logged params (as `flatten` gives them), those that define its cell, seed and
    fold aside: `cell_values` applied to them, so that the report's "same settings" is a job's
    "same cell" (what is not a setting is left out by the same lists)."""
    return dict(_recipe_params(tuple(sorted((k, v) for k, v in params.items() if k not in REPLICATE_KEYS))))


@functools.lru_cache(maxsize=4096)  # the runs of one recipe share it (a report reads thousands)
def _recipe_params(params: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    nested: dict = {}
    for name, value in params:
        *heads, leaf = name.split(".")
        node = nested
        for head in heads:
            node = node.setdefault(head, {})
            if not isinstance(node, dict):  # a param under another param's name: not a config value
                break
        else:  # logged values are resolved: "${" is text, not an interpolation
            node[leaf] = node[leaf] if isinstance(node.get(leaf), dict) else value.replace("${", "\\${")
    for path, default in ADDED_CHOICES.items():  # logged as text: "1.0", "None"
        *heads, leaf = path.split(".")
        node = functools.reduce(lambda node, head: node.get(head, {}) if isinstance(node, dict) else {},
                                heads, nested)
        if isinstance(node, dict) and leaf in node and _logged_as(node[leaf], default):
            node[leaf] = default
    values = cell_values(OmegaConf.create(nested), dataset_digest="")
    del values["dataset_digest"]
    return tuple(flatten(values).items())


def _logged_as(logged: str, default: Any) -> bool:
    """Whether a logged param is a setting's default written as text (1.0 logged as "1")."""
    if isinstance(default, float):
        try:
            return float(logged) == default
        except ValueError:
            return False
    return logged == str(default)


def cell_key(cfg: DictConfig, dataset_digest: str | None) -> str:
    canonical = json.dumps(cell_values(cfg, dataset_digest), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def factor_tags(cfg: DictConfig, task_factors: dict[str, str]) -> dict[str, str]:
    """The settings a table varies, as short tags: the MLflow runs table shows them as columns
    and can "Group by" them without digging through every param. `task_factors`: the task's
    own (Task.factors)."""
    return task_factors | {"seed": str(cfg.seed), "budget": cfg.budget.name, "dataset": cfg.dataset.name}



def flatten(values: dict, prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return flat

