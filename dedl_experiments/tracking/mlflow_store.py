"""The MLflow store of a job: its experiment, and the runs of cells it finds, starts and
records (params, metrics, tags, datasets, artifacts), with SQLite's concurrency
(sqlite_store.py), a server's retries bounded and a full disk or a lost server turned into one
clear error."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from dedl_experiments.run.folders import DiskFull, is_disk_full
from dedl_experiments.run.stop import STOP
from dedl_experiments.tracking.run_tags import (CELL_KEY_TAG, CLAIMS_EXPERIMENT, EXPERIMENT_KIND_TAG,
                                                REPORTS_EXPERIMENT, TRAINING_KIND)
from dedl_experiments.tracking.sqlite_store import (FAIL_FAST, environment, is_duplicate_key_error,
                                                    is_unreachable_error, retry_on_locked, server_retries,
                                                    sqlite_path, sqlite_store_lock, unreachable_reason)
from dedl_experiments.tracking.store_checks import (TrackingError, check_artifact_folder, check_store,
                                                    local_artifact_folder, new_experiment_artifact_location,
                                                    uri_option)

log = logging.getLogger(__name__)

DEFAULT_URI = "sqlite:///mlflow.db"


class StoreUnreachable(TrackingError):
    """The tracking server stopped answering during a job (after MLflow's retries)."""


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



# The user's own MLFLOW_HTTP_REQUEST_* values, as they were before a job set them: one process
# may run several jobs (a sequential sweep), and a job with give_up_after_s=null gets these back.
_users_retry_settings: dict[str, str | None] | None = None


def bound_server_retries(cfg: DictConfig) -> None:
    """`tracking.give_up_after_s` as MLflow's retry settings for this job's requests to a
    tracking server (null: MLflow's own MLFLOW_HTTP_REQUEST_* settings, the user's if set)."""
    global _users_retry_settings
    give_up = cfg.tracking.get("give_up_after_s")
    if give_up is not None and (isinstance(give_up, bool) or not isinstance(give_up, (int, float))
                                or give_up <= 0):
        raise TrackingError(f"tracking.give_up_after_s={give_up} is invalid: it must be a number of "
                            "seconds > 0, or null for MLflow's own retry settings")
    if _users_retry_settings is None:
        _users_retry_settings = {name: os.environ.get(name) for name in server_retries(1)}
    values = server_retries(give_up) if give_up is not None else _users_retry_settings
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


class Tracker:
    """One MLflow store and experiment; finds, starts and records the runs of cells."""

    def __init__(self, uri: str, experiment: str):
        self.uri = uri
        check_store(uri)
        # Only a client of this store: mlflow.set_tracking_uri would also export
        # MLFLOW_TRACKING_URI into os.environ (MLflow 3), and every process started afterwards
        # (a sweep's jobs, a benchmark's) would then track to this store, whatever its config says.
        # A new SQLite store is built by MLflow's migrations, which break when several jobs
        # run them at once: jobs take turns opening it (held only for these two lines).
        try:
            with sqlite_store_lock(uri):
                self.client = MlflowClient(uri)
                self.experiment_id = self._experiment_id(experiment)
        except mlflow.exceptions.MlflowException as err:
            raise TrackingError(f"{uri_option(uri)} cannot be used: "
                                f"{str(err).splitlines()[0][:300]}") from err

    @classmethod
    def from_config(cls, cfg: DictConfig) -> Tracker:
        return cls(tracking_uri(cfg), experiment_name(cfg))

    def _call(self, fn, *args, **kwargs):
        """A store call, retried while SQLite is busy. A signal cuts a request to a server short
        (it may wait minutes on one that went away); a full disk under the store, or a server
        that stopped answering, ends the job in one line (`store_error`)."""
        try:
            with STOP.cut_at_once() if self._remote else contextlib.nullcontext():
                return retry_on_locked(fn, *args, **kwargs)
        except Exception as err:
            known = self.store_error(err)
            if known is None:
                raise
            raise known from err

    @property
    def _remote(self) -> bool:
        return self.uri.startswith(("http://", "https://"))

    def store_error(self, err: BaseException) -> DiskFull | StoreUnreachable | None:
        """What `err` means for the job when it is a full disk (under the SQLite store, or of a
        file the job writes) or a server that stopped answering (after MLflow's retries), else
        None: the one line to end the job with, its run resumable."""
        if isinstance(err, (DiskFull, StoreUnreachable)):
            return err
        if is_disk_full(err):
            filename = getattr(err, "filename", None)  # a file of the job's own (an artifact...)
            if filename:
                return DiskFull(Path(filename))
            return DiskFull(sqlite_path(self.uri) or Path(self.uri), what="writing the tracking store")
        if self._remote and is_unreachable_error(err):
            return StoreUnreachable(
                f"MLflow tracking server {self.uri} stopped answering ({unreachable_reason(err)}, "
                f"after {os.environ.get('MLFLOW_HTTP_REQUEST_MAX_RETRIES', 'MLflow’s')} retries); "
                "rerun the same command once it answers, to resume the run "
                "(tracking.give_up_after_s: how long a job waits)")
        return None

    @contextlib.contextmanager
    def failing_fast(self) -> Iterator[None]:
        """While the job stops: requests to a server try once, briefly, so that the job ends
        within seconds even if the server is gone."""
        with environment(FAIL_FAST):
            yield

    def experiment_id_of(self, name: str) -> str:
        """Id of another experiment of this store (created if needed)."""
        with sqlite_store_lock(self.uri):
            return self._experiment_id(name)

    def _experiment_id(self, name: str) -> str:
        # Another job may create it between our lookup and create: look it up again then.
        for _ in range(5):
            found = self.client.get_experiment_by_name(name)
            if found is not None:
                # An existing experiment keeps the artifact location it was created with.
                folder = local_artifact_folder(found.artifact_location)
                if folder is not None:
                    check_artifact_folder(self.uri, folder, f"experiment {name!r} keeps its artifacts in")
                if found.tags.get(EXPERIMENT_KIND_TAG) != TRAINING_KIND:
                    self.client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, TRAINING_KIND)
                return found.experiment_id
            try:
                return self.client.create_experiment(name, new_experiment_artifact_location(self.uri, name), tags={
                    EXPERIMENT_KIND_TAG: TRAINING_KIND, "mlflow.note.content": describe_experiment(name)})
            except mlflow.exceptions.MlflowException:
                time.sleep(0.5)
        raise TrackingError(f"cannot create MLflow experiment {name!r} in {self.uri}")

    def runs_of_cell(self, key: str) -> list[Run]:
        """All top-level runs of this cell, in every dedl experiment, newest first."""
        experiments = [e.experiment_id for e in self.client.search_experiments()
                       if is_cell_experiment(e.name)]
        return self._call(self.client.search_runs,
            experiments, filter_string=f"tags.`{CELL_KEY_TAG}` = '{key}'",
            order_by=["attributes.start_time DESC"], max_results=1000)

    def start(self, name: str, tags: dict[str, str], run_id: str | None = None,
              experiment_id: str | None = None) -> Run:
        if run_id is not None:
            self._call(self.client.update_run, run_id, status="RUNNING")
            return self.client.get_run(run_id)
        return self._call(self.client.create_run, experiment_id or self.experiment_id,
                               run_name=name, tags=tags)

    def metric_history(self, run_id: str, key: str) -> list[mlflow.entities.Metric]:
        return self._call(self.client.get_metric_history, run_id, key)

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        items = [mlflow.entities.Param(k, v[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
            self._call(self.client.log_batch, run_id, params=items[i:i + 100])

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
        now = int(time.time() * 1000)
        items = [mlflow.entities.Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        self._call(self.client.log_batch, run_id, metrics=items)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self._call(self.client.log_batch, run_id,
                        tags=[mlflow.entities.RunTag(k, str(v)[:5000]) for k, v in tags.items()])

    def log_dataset(self, run_id: str, name: str, digest: str, source: str) -> None:
        """The prepared data as the run's MLflow dataset input (shown in the UI's Dataset column)."""
        dataset = mlflow.entities.Dataset(name=name, digest=digest[:36], source_type="local",
                                          source=json.dumps({"uri": source}))
        context = mlflow.entities.InputTag("mlflow.data.context", "training")
        inputs = [mlflow.entities.DatasetInput(dataset, [context])]
        try:
            self._call(self.client.log_inputs, run_id, datasets=inputs)
        except Exception as err:
            # Jobs starting together may both find the dataset new to the experiment and
            # insert it; the later insert fails on its unique key, and a second call links
            # the run to the dataset the other job recorded.
            if not is_duplicate_key_error(err):
                raise
            self._call(self.client.log_inputs, run_id, datasets=inputs)

    def log_artifact(self, run_id: str, path: Path, folder: str | None = None) -> None:
        self._call(self.client.log_artifact, run_id, str(path), folder)

    def end(self, run_id: str, status: str) -> None:
        self._call(self.client.set_terminated, run_id, status=status)
