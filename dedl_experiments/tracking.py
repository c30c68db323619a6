"""MLflow: the tracking store, cell identity, and everything a job records.

A *cell* is one configuration of one paper table (one seed included) on one dataset. Its key
is a hash of the config values that define it and of the dataset's content digest, so the same
cell run from another folder or launcher finds its earlier runs (a FINISHED run means the job
is skipped, an interrupted one is resumed), while the same config on other data is another
cell. Paths, launchers, tracking settings and speed switches do not define a cell.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from dedl_experiments.conf import DISPLAY_KEY
from dedl_experiments.folders import writable_folder_problem
from dedl_experiments.retry import is_duplicate_key_error, retry_on_locked, sqlite_path, sqlite_store_lock
from dedl_experiments.tasks import task_class

log = logging.getLogger(__name__)

DEFAULT_URI = "sqlite:///mlflow.db"
# Top-level config keys that do not change what a cell computes.
# `report` is an experiment file's report block (title, metric, published numbers): how a table
# shows its cells, not what they compute.
NOT_CELL_KEYS = ("tracking", "force", "resume", "device", "data_dir", "loader", "speed", "table",
                 "hydra", "claim", "adopt_legacy_runs", "report")
# The data's identity is its content digest, not where it lies.
NOT_CELL_PATHS = ("dataset.root", "train.checkpoint_every")
# A choice's display name (`label:` in its group's YAML, e.g. encoder.label, conf.DISPLAY_KEY):
# renaming it in the report's tables must not make its runs another cell.
TAG = "dedl."
# Tags on the runs of cells, read by the report.
CELL_KEY_TAG = f"{TAG}cell_key"
PARENT_TAG = f"{TAG}parent"  # "1" on a run that only groups child runs (a seed's folds)
SEED_TAG, FOLD_TAG = f"{TAG}seed", f"{TAG}fold"
DATASET_NAME_TAG, DATASET_DIGEST_TAG = f"{TAG}dataset_name", f"{TAG}dataset_digest"
DEVICE_TAG, DEVICE_NAME_TAG = f"{TAG}device", f"{TAG}device_name"
# Experiments of the store that hold no cells: the reports, and the jobs' claims on cells.
REPORTS_EXPERIMENT = "dedl-reports"
CLAIMS_EXPERIMENT = "dedl.claims"
# MLflow's UI opens an experiment of this kind on its training-runs table (not GenAI traces).
EXPERIMENT_KIND_TAG, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
# Schemes MLflow can track to (a folder store is refused by MLflow >= 3.13).
STORE_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message names the URI."""


def tracking_uri(cfg: DictConfig) -> str:
    return cfg.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def experiment_name(cfg: DictConfig) -> str:
    if cfg.tracking.experiment:
        return cfg.tracking.experiment
    return f"dedl-{cfg.table}" if cfg.table else "dedl"


def describe_experiment(name: str) -> str:
    """The experiment's description in the MLflow UI."""
    if name == CLAIMS_EXPERIMENT:
        return "Jobs' claims on cells (one process trains a cell at a time); bookkeeping only."
    if name == REPORTS_EXPERIMENT:
        return "Reports of the paper's tables (Markdown, CSV, PNG as artifacts)."
    if name.startswith("dedl-"):
        return (f"Cells recorded by the sweep of {name.removeprefix('dedl-')}. Columns: the tags "
                "architecture, encoder, app, init, seed; Group by them to compare.")
    return "Cells of dedl_experiments jobs. Columns: the tags architecture, encoder, app, init, seed."


def is_cell_experiment(name: str) -> bool:
    """Experiments whose runs are cells: `dedl` and `dedl-<table>` (not the reports' or the
    claims' bookkeeping)."""
    return (name == "dedl" or name.startswith("dedl-")) and name not in (REPORTS_EXPERIMENT, CLAIMS_EXPERIMENT)


# Settings added after runs were recorded without them, at the value that reproduces what those
# runs did. A legacy key (no digest) leaves them out at that value, as those runs' keys did.
ADDED_SETTINGS = {"loss.reduction": "mean", "loss.epsilon": None, "tiling.padding_label": "ignore",
                  "augment.rotation_fill": "ignore", "augment.perspective_p": 1.0,
                  "task.folds_method": "multilabel_stratified", "task.drop_last": False,
                  "lr_schedule.interval": "epoch", "app_lr_schedule.interval": "epoch"}


def _pop_path(values: dict, path: str, only_if: Any = ...) -> None:
    *heads, leaf = path.split(".")
    node = values
    for head in heads:
        node = node.get(head)
        if not isinstance(node, dict):
            return
    if leaf in node and (only_if is ... or node[leaf] == only_if):
        del node[leaf]


def _without_instantiate_keys(values: Any) -> Any:
    """`_target_`, `_partial_`, ... name the code that builds a component, not what it computes:
    moving a class to another module must not make its runs another cell."""
    if isinstance(values, dict):
        return {k: _without_instantiate_keys(v) for k, v in values.items()
                if not (isinstance(k, str) and k.startswith("_") and k.endswith("_"))}
    if isinstance(values, list):
        return [_without_instantiate_keys(v) for v in values]
    return values


def cell_values(cfg: DictConfig, dataset_digest: str | None) -> dict[str, Any]:
    values = _without_instantiate_keys(OmegaConf.to_container(cfg, resolve=True))
    for key in NOT_CELL_KEYS:
        values.pop(key, None)
    for path in NOT_CELL_PATHS:
        _pop_path(values, path)
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


def cell_key(cfg: DictConfig, dataset_digest: str | None) -> str:
    canonical = json.dumps(cell_values(cfg, dataset_digest), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def run_name(cfg: DictConfig) -> str:
    """Spells out the cell (Task.run_name), e.g. seg-unet-resnet18-app_gelu-cosine-imagenet-s26
    or cls-swin_base-imagenet-s26-f3 (fold 3)."""
    return task_class(cfg).run_name(cfg)


def factor_tags(cfg: DictConfig) -> dict[str, str]:
    """The settings a table varies, as short tags: the MLflow runs table shows them as columns
    and can "Group by" them without digging through every param."""
    return task_class(cfg).factors(cfg) | {"seed": str(cfg.seed), "budget": cfg.budget.name,
                                           "dataset": cfg.dataset.name}


@functools.cache
def source_tags() -> dict[str, str]:
    """MLflow's source tags: the entry point and, in a git checkout, its commit."""
    tags = {"mlflow.source.name": "python -m dedl_experiments", "mlflow.source.type": "LOCAL"}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return tags
    if commit.returncode == 0 and commit.stdout.strip():
        tags["mlflow.source.git.commit"] = commit.stdout.strip()
    return tags


def flatten(values: dict, prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return flat


def check_store(uri: str, timeout: float = 5.0) -> None:
    """Fail in seconds, before any data or training work and without creating anything, when
    the tracking store cannot be used: an unknown scheme, a SQLite file that cannot be written,
    a server that does not answer or is not an MLflow tracking server."""
    scheme = urllib.parse.urlparse(uri).scheme.split("+", 1)[0]
    if scheme not in STORE_SCHEMES:
        raise TrackingError(
            f"tracking.uri={uri}: unknown scheme {scheme or '(none)'!r}; use sqlite:///path/to/mlflow.db, "
            "http(s)://host:port (an MLflow server) or a database URI (postgresql://, mysql://, mssql://)")
    if scheme == "sqlite":
        _check_sqlite_writable(uri)
    elif scheme in ("http", "https"):
        _check_mlflow_server(uri, timeout)


def _check_sqlite_writable(uri: str) -> None:
    path = sqlite_path(uri)
    if path is None:
        return
    problem = writable_folder_problem(path.parent, create=False)
    if problem is None and path.exists():
        try:
            open(path, "ab").close()  # opens for writing, changes nothing
        except OSError as err:
            problem = f"the database {path} cannot be written ({err.strerror})"
    if problem:
        raise TrackingError(f"tracking.uri={uri}: {problem}; MLflow must write there "
                            "(choose another tracking.uri or fix the permissions)")


def _check_mlflow_server(uri: str, timeout: float) -> None:
    parsed = urllib.parse.urlparse(uri)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            pass
    except OSError as err:
        raise TrackingError(f"MLflow tracking server {uri} is unreachable: {err}") from err
    # An MLflow server answers its REST API with JSON; another web server does not.
    probe = uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1"
    try:
        with urllib.request.urlopen(probe, timeout=timeout) as answer:
            json.loads(answer.read(1_000_000) or b"{}")
    except urllib.error.HTTPError as err:
        raise TrackingError(f"tracking.uri={uri} is not an MLflow tracking server: "
                            f"GET {probe} answered HTTP {err.code}") from err
    except (OSError, ValueError) as err:
        kind = "an answer that is not JSON" if isinstance(err, ValueError) else str(err)
        raise TrackingError(f"tracking.uri={uri} is not an MLflow tracking server: "
                            f"GET {probe} gave {kind}") from err


class Tracker:
    """One MLflow store and experiment; finds, starts and records the runs of cells."""

    def __init__(self, uri: str, experiment: str):
        self.uri = uri
        check_store(uri)
        mlflow.set_tracking_uri(uri)
        # A new SQLite store is built by MLflow's migrations, which break when several jobs
        # run them at once: jobs take turns opening it (held only for these two lines).
        try:
            with sqlite_store_lock(uri):
                self.client = MlflowClient(uri)
                self.experiment_id = self._experiment_id(experiment)
        except mlflow.exceptions.MlflowException as err:
            raise TrackingError(f"tracking.uri={uri} cannot be used: "
                                f"{str(err).splitlines()[0][:300]}") from err

    @classmethod
    def from_config(cls, cfg: DictConfig) -> Tracker:
        return cls(tracking_uri(cfg), experiment_name(cfg))

    def experiment_id_of(self, name: str) -> str:
        """Id of another experiment of this store (created if needed)."""
        with sqlite_store_lock(self.uri):
            return self._experiment_id(name)

    def _experiment_id(self, name: str) -> str:
        # Another job may create it between our lookup and create: look it up again then.
        for _ in range(5):
            found = self.client.get_experiment_by_name(name)
            if found is not None:
                if found.tags.get(EXPERIMENT_KIND_TAG) != TRAINING_KIND:
                    self.client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, TRAINING_KIND)
                return found.experiment_id
            try:
                return self.client.create_experiment(name, tags={
                    EXPERIMENT_KIND_TAG: TRAINING_KIND, "mlflow.note.content": describe_experiment(name)})
            except mlflow.exceptions.MlflowException:
                time.sleep(0.5)
        raise TrackingError(f"cannot create MLflow experiment {name!r} in {self.uri}")

    def runs_of_cell(self, key: str) -> list[Run]:
        """All top-level runs of this cell, in every dedl experiment, newest first."""
        experiments = [e.experiment_id for e in self.client.search_experiments()
                       if is_cell_experiment(e.name)]
        return self.client.search_runs(
            experiments, filter_string=f"tags.`{CELL_KEY_TAG}` = '{key}'",
            order_by=["attributes.start_time DESC"], max_results=1000)

    def start(self, name: str, tags: dict[str, str], run_id: str | None = None,
              experiment_id: str | None = None) -> Run:
        if run_id is not None:
            retry_on_locked(self.client.update_run, run_id, status="RUNNING")
            return self.client.get_run(run_id)
        return retry_on_locked(self.client.create_run, experiment_id or self.experiment_id,
                               run_name=name, tags=tags)

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

    def log_dataset(self, run_id: str, name: str, digest: str, source: str) -> None:
        """The prepared data as the run's MLflow dataset input (shown in the UI's Dataset column)."""
        dataset = mlflow.entities.Dataset(name=name, digest=digest[:36], source_type="local",
                                          source=json.dumps({"uri": source}))
        context = mlflow.entities.InputTag("mlflow.data.context", "training")
        inputs = [mlflow.entities.DatasetInput(dataset, [context])]
        try:
            retry_on_locked(self.client.log_inputs, run_id, datasets=inputs)
        except Exception as err:
            # Jobs starting together may both find the dataset new to the experiment and
            # insert it; the later insert fails on its unique key, and a second call links
            # the run to the dataset the other job recorded.
            if not is_duplicate_key_error(err):
                raise
            retry_on_locked(self.client.log_inputs, run_id, datasets=inputs)

    def log_artifact(self, run_id: str, path: Path, folder: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), folder)

    def end(self, run_id: str, status: str) -> None:
        retry_on_locked(self.client.set_terminated, run_id, status=status)
