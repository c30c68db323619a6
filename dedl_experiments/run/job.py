"""One job = one table cell: validate, skip / resume / run, train, test, record.

The task (conf/task/<name>.yaml's `_target_`, a subclass of tasks/base.py's Task) prepares the
data and says whether a cell is one MLflow run or, with cross-validation folds, a parent run
with one child run per fold (folds.py; `fold=K` trains that fold only).

Interruptions: every epoch the full training state goes to `<output dir>/checkpoints/`,
naming the cell and run it belongs to. A rerun of the same cell finds its unfinished run
(RUNNING with no live process, or KILLED), loads the newest readable checkpoint of that run and
continues it from the next epoch. A new run never writes into a folder another run used
(folders.own_output_dir). A full disk, or a tracking server that stops answering, ends the job
like a stop: the run stays resumable.
"""

from __future__ import annotations

import logging
import math
import os
import random
import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from mlflow.entities import Run
from omegaconf import DictConfig

from dedl_experiments.training import checkpoint
from dedl_experiments.run import folds, lifecycle
from dedl_experiments.tracking import cells, mlflow_store, run_tags, store_checks
from dedl_experiments.config.checks import validate
from dedl_experiments.run.folders import own_output_dir
from dedl_experiments.training.loop import FitSettings, NonFiniteLoss
from dedl_experiments.placement import JobPlacement
from dedl_experiments.placement.speed import device_name, place_job
from dedl_experiments.run.stop import STOP, Terminated, install_test_pauses
from dedl_experiments.tasks import task_class
from dedl_experiments.tasks.base import Task
from dedl_experiments.run.train_test import train_and_test

log = logging.getLogger(__name__)
T = run_tags.TAG


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fit_settings(cfg: DictConfig) -> FitSettings:
    """What the training loop needs of the config: its `train` block and the seed."""
    train = cfg.train
    return FitSettings(epochs=train.epochs, seed=cfg.seed, monitor=train.monitor,
                       monitor_mode=train.monitor_mode, patience=train.patience)


def run(cfg: DictConfig, output_dir: Path, sweep_dir: str | None = None) -> dict:
    """Run one cell and return its test metrics (or the recorded ones when skipped)."""
    # Config, store and data are checked before the store is opened: a bad input costs seconds
    # and leaves nothing behind. The data's content digest is part of the cell's identity.
    validate(cfg)
    mlflow_store.bound_server_retries(cfg)
    install_test_pauses()
    store_checks.check_store(mlflow_store.tracking_uri(cfg))
    task_type = task_class(cfg)
    prepared = task_type.prepare(cfg)
    tracker = mlflow_store.Tracker.from_config(cfg)
    key, name = cells.cell_key(cfg, prepared.digest), task_type.run_name(cfg)
    done = lifecycle.finished_run(tracker, key)
    if done is None and cfg.adopt_legacy_runs:
        done = lifecycle.adopt_legacy_run(tracker, cells.cell_key(cfg, None), key,
                                          cfg.dataset.name, prepared.digest)
    if done is not None and not cfg.force:
        return _skipped(name, key, done)

    seed_everything(cfg.seed)
    # Parallel sweep jobs: k per GPU (a free GPU slot each), or a share of the CPU cores.
    placement = place_job(cfg)
    device = placement.device
    tags = {f"{T}task": cfg.task.name, f"{T}summary_metric": task_type.summary_metric,
            f"{T}table": cfg.table or "", f"{T}seed": str(cfg.seed),
            f"{T}device": str(device), f"{T}device_name": device_name(device),
            f"{T}host": socket.gethostname(), f"{T}pid": str(os.getpid()),
            f"{T}dataset_name": cfg.dataset.name, f"{T}dataset_digest": prepared.digest,
            **cells.factor_tags(cfg, task_type.factors(cfg)), **run_tags.source_tags()}
    if sweep_dir:
        tags[f"{T}sweep_dir"] = sweep_dir
    if placement.torch_threads is not None:
        tags[f"{T}torch_threads"] = str(placement.torch_threads)

    # SIGINT and SIGTERM stop the job at the next batch or stage boundary (stop.STOP).
    try:
        with STOP.handling_signals():
            if task_type.folds(cfg) is not None:
                return _run_folds(cfg, task_type, prepared, placement, tracker, output_dir, tags)
            return _run_cell(cfg, key, name, lambda: task_type(cfg, prepared, placement), tracker,
                             output_dir, tags, prepared)
    except Exception as err:  # a full disk or a server gone, outside training too: one line
        fault = tracker.store_error(err)
        if fault is None or fault is err:
            raise
        raise fault from err


def _skipped(name: str, key: str, done: Run) -> dict:
    log.info("skip %s: cell %s already FINISHED in MLflow run %s (force=true reruns it)",
             name, key, done.info.run_id)
    return {"run_name": name, "status": "skipped", "run_id": done.info.run_id, **done.data.metrics}


def _resumable(cfg: DictConfig, tracker: mlflow_store.Tracker, key: str,
               name: str) -> tuple[Run | None, dict | None]:
    """The newest interrupted run of this cell and its training checkpoint, if any: one that
    this run wrote (another cell's, in a shared folder, is refused with a warning)."""
    interrupted = lifecycle.interrupted_runs(tracker, key)
    if not cfg.resume:
        for old in interrupted:
            tracker.set_tags(old.info.run_id, {f"{T}superseded": "resume=false started a fresh run"})
            tracker.end(old.info.run_id, "KILLED")
        return None, None
    for old in interrupted:
        folder, run_id = old.data.tags.get(f"{T}checkpoint_dir"), old.info.run_id
        cell = {"key": key, "run_id": run_id, "run_name": name}
        state = None if not folder else checkpoint.load_training(
            Path(folder), cell, lambda state: _history_problem(tracker, run_id, state))
        if state is not None:
            return old, state
        log.warning("run %s of this cell was interrupted but has no readable checkpoint of its "
                    "own in %s", old.info.run_id, folder)
    return None, None


def _history_problem(tracker: mlflow_store.Tracker, run_id: str, state: dict) -> str | None:
    """Whether a checkpoint that names no run (written by an older version) is the run's own:
    its epochs' validation losses must be those the run recorded. Why not, or None."""
    recorded = {m.step: m.value for m in tracker.metric_history(run_id, "val_loss")}
    history = [row.get("val_loss") for row in state["fit"]["history"]]
    common = [step for step in recorded if step < len(history)]
    if not common:
        return f"MLflow run {run_id} recorded no epoch to compare it with"
    if not all(history[step] is not None and math.isclose(history[step], recorded[step], rel_tol=1e-9)
               for step in common):
        return f"its validation losses differ from those MLflow run {run_id} recorded"
    return None


def _run_cell(cfg: DictConfig, key: str, name: str, make_task: Callable, tracker: mlflow_store.Tracker,
              output_dir: Path, tags: dict, prepared, parent_id: str | None = None) -> dict:
    """Train the cell unless another live job holds it (one process per cell, across hosts)."""
    try:
        claim = lifecycle.claim_cell(tracker, key, name, lifecycle.ClaimSettings.from_config(cfg))
    except lifecycle.CellBusy as busy:
        log.warning("skip %s: cell %s is being trained by another job, %s "
                    "(claim.on_busy=wait waits for it)", name, key, busy)
        return {"run_name": name, "status": "skipped", "run_id": busy.holder.info.run_id,
                "busy": f"cell {key} is being trained by another job, {busy}"}
    with claim:
        done = lifecycle.finished_run(tracker, key)
        if done is not None and not cfg.force:  # it finished while this job waited
            return _skipped(name, key, done)
        return _train_cell(cfg, key, name, make_task, tracker, output_dir, tags, prepared, parent_id)


def _train_cell(cfg: DictConfig, key: str, name: str, make_task: Callable, tracker: mlflow_store.Tracker,
                output_dir: Path, tags: dict, prepared, parent_id: str | None) -> dict:
    old, state = _resumable(cfg, tracker, key, name)
    task = make_task()
    if old is None:
        output_dir = own_output_dir(output_dir, key, name)
    tags = tags | {f"{T}cell_key": key, f"{T}output_dir": str(output_dir)}
    if old is not None:
        run_id = old.info.run_id
        output_dir = Path(old.data.tags[f"{T}output_dir"])
        tracker.start(name, {}, run_id=run_id)
        # The resumed run now belongs to this process (and to this sweep, if any); a run
        # recorded by an older version learns its summary metric.
        tracker.set_tags(run_id, {k: v for k, v in tags.items()
                                  if k in (f"{T}host", f"{T}pid", f"{T}sweep_dir", f"{T}summary_metric")})
        log.info("resuming MLflow run %s (%s) from epoch %d", name, run_id, state["fit"]["epoch"] + 1)
    else:
        tags[f"{T}checkpoint_dir"] = str(output_dir / "checkpoints")
        if parent_id:
            tags["mlflow.parentRunId"] = parent_id
        run_id = tracker.start(name, tags).info.run_id
        tracker.log_dataset(run_id, cfg.dataset.name, prepared.digest, str(prepared.root))
        log.info("MLflow run %s (%s) in %s, cell %s", name, run_id, tracker.uri, key)
    cell = {"key": key, "run_id": run_id, "run_name": name}
    try:
        result = train_and_test(cfg, task, fit_settings(cfg), tracker, run_id, output_dir, state, cell)
    except NonFiniteLoss as err:
        _end(tracker, run_id, "FAILED", {f"{T}failure": str(err), f"{T}failed_epoch": str(err.epoch)})
        raise
    except BaseException as err:
        fault = tracker.store_error(err) if isinstance(err, Exception) else None
        if fault is not None:  # a full disk or a server gone: the last checkpoint is intact
            _mark_killed(tracker, run_id, fault)
            if fault is err:
                raise
            raise fault from err
        if STOP.signal is None and not isinstance(err, (Terminated, KeyboardInterrupt)):
            _end(tracker, run_id, "FAILED", {f"{T}failure": f"{type(err).__name__}: {err}"})
            raise
        # A signal stopped the job, however it surfaced (torch.save turns a Ctrl-C during a
        # save into a RuntimeError): KILLED, so that a rerun resumes the run.
        _mark_killed(tracker, run_id, STOP.terminated() if STOP.signal is not None else err)
        raise
    tracker.end(run_id, "FINISHED")
    print(f"{name}: {task.summary(result)}  ({result['train_time_s']:.0f}s training)", flush=True)
    return {"run_name": name, "status": "finished", "run_id": run_id, **result}


def _end(tracker: mlflow_store.Tracker, run_id: str, status: str, tags: dict) -> None:
    tracker.set_tags(run_id, tags)
    tracker.end(run_id, status)


def _mark_killed(tracker: mlflow_store.Tracker, run_id: str, reason: BaseException) -> None:
    """KILLED, with the reason, so that a rerun resumes the run. Within seconds even when the
    store is gone (SLURM kills a job 30-60 s after its SIGTERM); a store that cannot take it
    leaves the run RUNNING with no live owner, which a rerun resumes as well."""
    with tracker.failing_fast():
        try:
            _end(tracker, run_id, "KILLED", {f"{T}interrupted": f"{type(reason).__name__}: {reason}"})
        except Exception as err:
            log.info("run %s stays RUNNING (not marked KILLED: %s); a rerun resumes it",
                     run_id, (str(err).splitlines() or [type(err).__name__])[0][:200])


# --- cells with folds: one child run per fold under one parent run per cell (folds.py) ------


def _run_folds(cfg: DictConfig, task_type: type[Task], prepared, placement: JobPlacement,
               tracker: mlflow_store.Tracker, output_dir: Path, tags: dict) -> dict:
    """Train the folds this job asks for, then close the cell's parent run if all are done."""
    parent_cfg = folds.with_fold(cfg, None)
    n_folds = len(task_type.folds(parent_cfg))  # every fold of the cell
    tags = tags | {run_tags.FOLDS_TAG: str(n_folds)}  # what a full cell is, for the report
    parent_key, parent_name = cells.cell_key(parent_cfg, prepared.digest), task_type.run_name(parent_cfg)
    parent_id = folds.parent_run(cfg, tracker, parent_key, parent_name, tags, prepared)
    for fold in task_type.folds(cfg):
        fold_cfg = folds.with_fold(cfg, fold)
        key, name = cells.cell_key(fold_cfg, prepared.digest), task_type.run_name(fold_cfg)
        done = [r for r in tracker.runs_of_cell(key) if r.info.status == "FINISHED"]
        if done and not cfg.force:
            log.info("skip %s: fold already FINISHED in MLflow run %s", name, done[0].info.run_id)
            continue
        seed_everything(cfg.seed)
        _run_cell(fold_cfg, key, name, lambda: task_type(cfg, prepared, placement, fold), tracker,
                  output_dir / f"fold{fold}", tags | {f"{T}fold": str(fold)}, prepared, parent_id)
    summary = folds.close_parent(cfg, tracker, parent_id, parent_name, prepared.digest, n_folds)
    if summary is None:
        return {"run_name": parent_name, "status": "partial", "run_id": parent_id}
    print(f"{parent_name}: {task_type.folds_summary(summary, n_folds)}", flush=True)
    return {"run_name": parent_name, "status": "finished", "run_id": parent_id, **summary}
