"""MLflow: the tracking store, cell identity, and everything a job records.

A *cell* is one configuration of one paper table (one seed included). Its key is a hash of
the config values that define it, so the same cell run from another folder or launcher finds
its earlier runs: a FINISHED run means the job is skipped, an interrupted one is resumed.
Paths, launchers, tracking settings and speed switches do not define a cell.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import urllib.parse
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from dedl_experiments.retry import retry_on_locked, sqlite_store_lock

log = logging.getLogger(__name__)

DEFAULT_URI = "sqlite:///mlflow.db"
# Top-level config keys that do not change what a cell computes.
NOT_CELL_KEYS = ("tracking", "force", "resume", "device", "data_dir", "loader", "speed", "table",
                 "hydra")
NOT_CELL_PATHS = ("dataset.root", "train.checkpoint_every")
TAG = "dedl."


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message names the URI."""


def tracking_uri(cfg: DictConfig) -> str:
    return cfg.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def experiment_name(cfg: DictConfig) -> str:
    if cfg.tracking.experiment:
        return cfg.tracking.experiment
    return f"dedl-{cfg.table}" if cfg.table else "dedl"


def cell_values(cfg: DictConfig) -> dict[str, Any]:
    values = OmegaConf.to_container(cfg, resolve=True)
    for key in NOT_CELL_KEYS:
        values.pop(key, None)
    for path in NOT_CELL_PATHS:
        head, _, leaf = path.partition(".")
        values.get(head, {}).pop(leaf, None)
    return values


def cell_key(cfg: DictConfig) -> str:
    canonical = json.dumps(cell_values(cfg), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def run_name(cfg: DictConfig) -> str:
    """Spells out the cell, e.g. seg-unet-resnet18-app_gelu-cosine-imagenet-s26 or
    cls-swin_base-imagenet-s26-f3 (fold 3)."""
    if cfg.task.name == "classification":
        parts = ["cls", cfg.encoder.name, cfg.init.name]
        if cfg.budget.name != "paper":
            parts.append(cfg.budget.name)
        parts.append(f"s{cfg.seed}")
        if cfg.fold is not None:
            parts.append(f"f{cfg.fold}")
        return "-".join(parts)
    parts = ["seg", cfg.architecture.name, cfg.encoder.name, f"app_{cfg.app.name}"]
    if cfg.app.name != "none" and cfg.app_lr_schedule.name != "constant":
        parts.append(f"applr_{cfg.app_lr_schedule.name}")
    parts += [cfg.lr_schedule.name, cfg.init.name]
    if cfg.tiling.size != 480:
        parts.append(f"t{cfg.tiling.size}")
    if cfg.budget.name != "paper":
        parts.append(cfg.budget.name)
    parts.append(f"s{cfg.seed}")
    return "-".join(parts)


def flatten(values: dict, prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return flat


def _check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail in seconds, before any training, when a tracking server does not answer."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            pass
    except OSError as err:
        raise TrackingError(f"MLflow tracking server {uri} is unreachable: {err}") from err


class Tracker:
    """One MLflow store and experiment; finds, starts and records the runs of cells."""

    def __init__(self, uri: str, experiment: str):
        self.uri = uri
        _check_reachable(uri)
        mlflow.set_tracking_uri(uri)
        # A new SQLite store is built by MLflow's migrations, which break when several jobs
        # run them at once: jobs take turns opening it (held only for these two lines).
        with sqlite_store_lock(uri):
            self.client = MlflowClient(uri)
            self.experiment_id = self._experiment_id(experiment)

    @classmethod
    def from_config(cls, cfg: DictConfig) -> Tracker:
        return cls(tracking_uri(cfg), experiment_name(cfg))

    def _experiment_id(self, name: str) -> str:
        # Another job may create it between our lookup and create: look it up again then.
        for _ in range(5):
            found = self.client.get_experiment_by_name(name)
            if found is not None:
                return found.experiment_id
            try:
                return self.client.create_experiment(name)
            except mlflow.exceptions.MlflowException:
                time.sleep(0.5)
        raise TrackingError(f"cannot create MLflow experiment {name!r} in {self.uri}")

    def runs_of_cell(self, key: str) -> list[Run]:
        """All top-level runs of this cell, in every dedl experiment, newest first."""
        experiments = [e.experiment_id for e in self.client.search_experiments()
                       if e.name == "dedl" or e.name.startswith("dedl-")]
        return self.client.search_runs(
            experiments, filter_string=f"tags.`{TAG}cell_key` = '{key}'",
            order_by=["attributes.start_time DESC"], max_results=1000)

    def start(self, name: str, tags: dict[str, str], run_id: str | None = None) -> Run:
        if run_id is not None:
            self.client.update_run(run_id, status="RUNNING")
            return self.client.get_run(run_id)
        return retry_on_locked(self.client.create_run, self.experiment_id, run_name=name,
                               tags=tags)

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        items = [mlflow.entities.Param(k, v[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
            retry_on_locked(self.client.log_batch, run_id, params=items[i:i + 100])

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
        now = int(time.time() * 1000)
        items = [mlflow.entities.Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        retry_on_locked(self.client.log_batch, run_id, metrics=items)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        retry_on_locked(self.client.log_batch, run_id,
                        tags=[mlflow.entities.RunTag(k, str(v)[:5000]) for k, v in tags.items()])

    def log_artifact(self, run_id: str, path: Path, folder: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), folder)

    def end(self, run_id: str, status: str) -> None:
        retry_on_locked(self.client.set_terminated, run_id, status=status)
