"""One job = one table cell: validate, skip / resume / run, train, test, record.

A segmentation cell is one MLflow run. A classification cell is a parent run with one child
run per cross-validation fold (`fold=K` trains that fold only); the parent holds the mean and
std over folds once every fold has finished.

Interruptions: every epoch the full training state goes to `<output dir>/checkpoints/`. A
rerun of the same cell finds its unfinished run (RUNNING with no live process, or KILLED),
loads the newest readable checkpoint and continues that run from the next epoch.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from mlflow.entities import Run
from omegaconf import DictConfig, OmegaConf, open_dict

from dedl_experiments import checkpoint, lifecycle, tracking
from dedl_experiments.config import validate
from dedl_experiments.data.prepare import prepare_segmentation
from dedl_experiments.data.prepare_classification import prepare_classification
from dedl_experiments.loop import STOP, FitState, NonFiniteLoss, Terminated, fit
from dedl_experiments.speed import apply_to_modules, peak_memory_mb, pick_device, speed_settings
from dedl_experiments.tasks.classification import ClassificationTask
from dedl_experiments.tasks.segmentation import SegmentationTask
from multirun_launchers.devices import pin_current_job

log = logging.getLogger(__name__)
T = tracking.TAG


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def with_fold(cfg: DictConfig, fold: int | None) -> DictConfig:
    out = cfg.copy()
    with open_dict(out):
        out.fold = fold
    return out


def run(cfg: DictConfig, output_dir: Path, sweep_dir: str | None = None) -> dict:
    """Run one cell and return its test metrics (or the recorded ones when skipped)."""
    # Config, store and data are checked before the store is opened: a bad input costs seconds
    # and leaves nothing behind. The data's content digest is part of the cell's identity.
    validate(cfg)
    tracking.check_store(tracking.tracking_uri(cfg))
    classification = cfg.task.name == "classification"
    prepared = prepare_classification(cfg) if classification else prepare_segmentation(cfg)
    tracker = tracking.Tracker.from_config(cfg)
    key, name = tracking.cell_key(cfg, prepared.digest), tracking.run_name(cfg)
    done = lifecycle.finished_run(tracker, key)
    if done is None and cfg.adopt_legacy_runs:
        done = lifecycle.adopt_legacy_run(tracker, tracking.cell_key(cfg, None), key,
                                          cfg.dataset.name, prepared.digest)
    if done is not None and not cfg.force:
        return _skipped(name, key, done)

    seed_everything(cfg.seed)
    # Parallel sweep jobs: one GPU each (job k -> cuda:k % GPUs), or a share of the CPU cores.
    pinned = pin_current_job()
    device = pick_device(pinned["device"] if pinned and cfg.device == "auto" else cfg.device)
    tags = {f"{T}task": cfg.task.name, f"{T}table": cfg.table or "", f"{T}seed": str(cfg.seed),
            f"{T}device": str(device), f"{T}device_name": device_name(device),
            f"{T}host": socket.gethostname(), f"{T}pid": str(os.getpid()),
            f"{T}dataset_name": cfg.dataset.name, f"{T}dataset_digest": prepared.digest,
            **tracking.factor_tags(cfg), **tracking.source_tags()}
    if sweep_dir:
        tags[f"{T}sweep_dir"] = sweep_dir
    if "torch_threads" in pinned:
        tags[f"{T}torch_threads"] = str(pinned["torch_threads"])

    # SIGINT and SIGTERM stop the job at the next batch or stage boundary (loop.STOP).
    with STOP.handling_signals():
        if classification:
            return _run_folds(cfg, prepared, device, tracker, output_dir, tags)
        return _run_cell(cfg, key, name, lambda: SegmentationTask(cfg, prepared, device),
                         tracker, output_dir, tags, prepared)


def device_name(device: torch.device) -> str:
    """What the cost figures are in: the GPU's name, or the CPU model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({torch.get_num_threads()} threads)"
    except OSError:
        pass
    return platform.processor() or "cpu"


def _skipped(name: str, key: str, done: Run) -> dict:
    log.info("skip %s: cell %s already FINISHED in MLflow run %s (force=true reruns it)",
             name, key, done.info.run_id)
    return {"run_name": name, "status": "skipped", "run_id": done.info.run_id, **done.data.metrics}


def _resumable(cfg: DictConfig, tracker: tracking.Tracker, key: str) -> tuple[Run | None, dict | None]:
    """The newest interrupted run of this cell and its training checkpoint, if any."""
    interrupted = lifecycle.interrupted_runs(tracker, key)
    if not cfg.resume:
        for old in interrupted:
            tracker.set_tags(old.info.run_id, {f"{T}superseded": "resume=false started a fresh run"})
            tracker.end(old.info.run_id, "KILLED")
        return None, None
    for old in interrupted:
        folder = old.data.tags.get(f"{T}checkpoint_dir")
        state = checkpoint.load_training(Path(folder)) if folder else None
        if state is not None:
            return old, state
        log.warning("run %s of this cell was interrupted but has no readable checkpoint in %s",
                    old.info.run_id, folder)
    return None, None


def _run_cell(cfg: DictConfig, key: str, name: str, make_task: Callable, tracker: tracking.Tracker,
              output_dir: Path, tags: dict, prepared, parent_id: str | None = None) -> dict:
    """Train the cell unless another live job holds it (one process per cell, across hosts)."""
    try:
        claim = lifecycle.claim_cell(tracker, key, name, lifecycle.ClaimSettings.from_config(cfg))
    except lifecycle.CellBusy as busy:
        log.warning("skip %s: cell %s is being trained by another job, %s "
                    "(claim.on_busy=wait waits for it)", name, key, busy)
        return {"run_name": name, "status": "skipped", "run_id": busy.holder.info.run_id}
    with claim:
        done = lifecycle.finished_run(tracker, key)
        if done is not None and not cfg.force:  # it finished while this job waited
            return _skipped(name, key, done)
        return _train_cell(cfg, key, name, make_task, tracker, output_dir, tags, prepared, parent_id)


def _train_cell(cfg: DictConfig, key: str, name: str, make_task: Callable, tracker: tracking.Tracker,
                output_dir: Path, tags: dict, prepared, parent_id: str | None) -> dict:
    old, state = _resumable(cfg, tracker, key)
    task = make_task()
    tags = tags | {f"{T}cell_key": key, f"{T}output_dir": str(output_dir)}
    if old is not None:
        run_id = old.info.run_id
        output_dir = Path(old.data.tags[f"{T}output_dir"])
        tracker.start(name, {}, run_id=run_id)
        # The resumed run now belongs to this process (and to this sweep, if any).
        tracker.set_tags(run_id, {k: v for k, v in tags.items()
                                  if k in (f"{T}host", f"{T}pid", f"{T}sweep_dir")})
        log.info("resuming MLflow run %s (%s) from epoch %d", name, run_id, state["fit"]["epoch"] + 1)
    else:
        tags[f"{T}checkpoint_dir"] = str(output_dir / "checkpoints")
        if parent_id:
            tags["mlflow.parentRunId"] = parent_id
        run_id = tracker.start(name, tags).info.run_id
        tracker.log_dataset(run_id, cfg.dataset.name, prepared.digest, str(prepared.root))
        log.info("MLflow run %s (%s) in %s, cell %s", name, run_id, tracker.uri, key)
    try:
        result = _train_and_test(cfg, task, tracker, run_id, output_dir, state)
    except NonFiniteLoss as err:
        _end(tracker, run_id, "FAILED", {f"{T}failure": str(err), f"{T}failed_epoch": str(err.epoch)})
        raise
    except BaseException as err:
        if STOP.signal is None and not isinstance(err, (Terminated, KeyboardInterrupt)):
            _end(tracker, run_id, "FAILED", {f"{T}failure": f"{type(err).__name__}: {err}"})
            raise
        # A signal stopped the job, however it surfaced (torch.save turns a Ctrl-C during a
        # save into a RuntimeError): KILLED, so that a rerun resumes the run.
        stop = STOP.terminated() if STOP.signal is not None else err
        _end(tracker, run_id, "KILLED", {f"{T}interrupted": f"{type(stop).__name__}: {stop}"})
        raise
    tracker.end(run_id, "FINISHED")
    print(f"{name}: {task.summary(result)}  ({result['train_time_s']:.0f}s training)", flush=True)
    return {"run_name": name, "status": "finished", "run_id": run_id, **result}


def _end(tracker: tracking.Tracker, run_id: str, status: str, tags: dict) -> None:
    tracker.set_tags(run_id, tags)
    tracker.end(run_id, status)


def _train_and_test(cfg: DictConfig, task, tracker: tracking.Tracker, run_id: str,
                    output_dir: Path, resume_state: dict | None) -> dict:
    output_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = output_dir / "checkpoints"
    speed = speed_settings(cfg, task.device)
    if resume_state is None:
        config_path = output_dir / "config.yaml"
        OmegaConf.save(cfg, config_path, resolve=True)
        tracker.log_artifact(run_id, config_path)
        tracker.log_params(run_id, tracking.flatten(OmegaConf.to_container(cfg, resolve=True)))
        tracker.log_metrics(run_id, task.describe())
        state = FitState()
    else:
        state = FitState(**checkpoint.restore_training_state(task, resume_state, speed.scaler))
        _log_missing_epochs(tracker, run_id, state)
    apply_to_modules(task, speed)

    def on_epoch_end(epoch: int, row: dict, state: FitState) -> None:
        every = cfg.train.checkpoint_every
        if every and ((epoch + 1) % every == 0 or state.stopped_early or epoch + 1 == cfg.train.epochs):
            checkpoint.save_training(ckpt_dir, checkpoint.training_state(
                task, dataclasses.asdict(state), speed.scaler))
        tracker.log_metrics(run_id, row, step=epoch)

    start = time.perf_counter()
    state = fit(task, cfg, state, speed, on_epoch_end, seed=cfg.seed)
    test_start = time.perf_counter()
    final = task.final_state(state.best_state, cfg.seed)
    task.net.load_state_dict(final)
    test, extras = task.test_metrics(cfg.train.batch_size)
    result = {f"test_{k}": v for k, v in test.items()} | {
        "train_time_s": state.train_seconds, "epochs_run": state.epoch,
        "best_epoch": state.best_epoch, "wall_time_s": time.perf_counter() - start,
        "test_time_s": time.perf_counter() - test_start,
        "peak_memory_mb": peak_memory_mb(task.device)}
    # The training phase alone, per epoch: what the paper's timing tables compare (x 50).
    epoch_times = [row["epoch_train_time_s"] for row in state.history if "epoch_train_time_s" in row]
    if epoch_times:
        result["train_epoch_time_mean_s"] = float(np.mean(epoch_times))
    if hasattr(task, "swa_snapshots"):
        result["swa_snapshots"] = task.swa_snapshots
    tracker.log_metrics(run_id, result)

    best_path = checkpoint.atomic_save(task.inference_checkpoint(final), output_dir / "best_model.pt")
    metrics_path = output_dir / "metrics.json"
    metrics_path.write_text(json.dumps(result, indent=1))
    for path in (best_path, metrics_path, *task.write_artifacts(output_dir, test, extras)):
        tracker.log_artifact(run_id, path)
    return result


def _log_missing_epochs(tracker: tracking.Tracker, run_id: str, state: FitState) -> None:
    """Epochs checkpointed but not yet logged when the job died are logged now."""
    logged = {m.step for m in tracker.client.get_metric_history(run_id, "val_loss")}
    for epoch, row in enumerate(state.history):
        if epoch not in logged:
            tracker.log_metrics(run_id, row, step=epoch)


# --- classification: one child run per fold under one parent run per cell ----------------


def _run_folds(cfg: DictConfig, prepared, device: torch.device, tracker: tracking.Tracker,
               output_dir: Path, tags: dict) -> dict:
    parent_cfg = with_fold(cfg, None)
    parent_key, parent_name = tracking.cell_key(parent_cfg, prepared.digest), tracking.run_name(parent_cfg)
    parent_id = _parent_run(cfg, tracker, parent_key, parent_name, tags, prepared)
    folds = [cfg.fold] if cfg.fold is not None else list(range(cfg.task.folds))
    for fold in folds:
        fold_cfg = with_fold(cfg, fold)
        key, name = tracking.cell_key(fold_cfg, prepared.digest), tracking.run_name(fold_cfg)
        done = [r for r in tracker.runs_of_cell(key) if r.info.status == "FINISHED"]
        if done and not cfg.force:
            log.info("skip %s: fold already FINISHED in MLflow run %s", name, done[0].info.run_id)
            continue
        seed_everything(cfg.seed)
        _run_cell(fold_cfg, key, name,
                  lambda: ClassificationTask(cfg, prepared, device, fold), tracker,
                  output_dir / f"fold{fold}", tags | {f"{T}fold": str(fold)}, prepared, parent_id)
    return _close_parent(cfg, tracker, parent_id, parent_name, prepared.digest)


def _parent_run(cfg: DictConfig, tracker: tracking.Tracker, key: str, name: str, tags: dict,
                prepared) -> str:
    """The cell's unfinished parent run, created if needed. Fold jobs that start together may
    each create one: all then use the oldest, and the others are deleted."""
    def open_parents():
        return [r for r in tracker.runs_of_cell(key) if r.info.status != "FINISHED"]

    if not open_parents():
        run_id = tracker.start(name, tags | {f"{T}cell_key": key, f"{T}parent": "1"}).info.run_id
        tracker.log_params(run_id, tracking.flatten(OmegaConf.to_container(with_fold(cfg, None),
                                                                            resolve=True)))
        tracker.log_dataset(run_id, cfg.dataset.name, prepared.digest, str(prepared.root))
    parents = sorted(open_parents(), key=lambda r: (r.info.start_time, r.info.run_id))
    for extra in parents[1:]:
        if extra.data.tags.get(f"{T}pid") == str(os.getpid()):
            tracker.client.delete_run(extra.info.run_id)
    tracker.start(name, {}, run_id=parents[0].info.run_id)
    return parents[0].info.run_id


def _close_parent(cfg: DictConfig, tracker: tracking.Tracker, parent_id: str, name: str,
                  digest: str) -> dict:
    """Mean and std over folds once every fold has a FINISHED child; else leave it open."""
    children = tracker.client.search_runs(
        [tracker.client.get_run(parent_id).info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}' and attributes.status = 'FINISHED'")
    by_fold = {int(r.data.tags[f"{T}fold"]): r for r in children}
    # Folds finished under another parent (e.g. an earlier, replaced one) count too.
    for fold in range(cfg.task.folds):
        if fold not in by_fold:
            done = [r for r in tracker.runs_of_cell(tracking.cell_key(with_fold(cfg, fold), digest))
                    if r.info.status == "FINISHED"]
            if done:
                by_fold[fold] = done[0]
    tracker.set_tags(parent_id, {f"{T}folds_finished": f"{len(by_fold)}/{cfg.task.folds}"})
    if len(by_fold) < cfg.task.folds:
        log.info("%s: %d of %d folds finished; the parent run stays open", name, len(by_fold),
                 cfg.task.folds)
        return {"run_name": name, "status": "partial", "run_id": parent_id}
    summary: dict[str, float] = {}
    keys = set.intersection(*(set(r.data.metrics) for r in by_fold.values()))
    for metric in sorted(k for k in keys if k.startswith("test_")):
        values = np.array([r.data.metrics[metric] for r in by_fold.values()])
        summary[metric] = float(values.mean())
        summary[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    tracker.log_metrics(parent_id, summary)
    tracker.end(parent_id, "FINISHED")
    print(f"{name}: test F1 (micro) {summary['test_f1_micro']:.4f} ± "
          f"{summary['test_f1_micro_std']:.4f}, recall as released "
          f"{summary['test_recall_as_released']:.4f}, mean ± std over {cfg.task.folds} folds",
          flush=True)
    return {"run_name": name, "status": "finished", "run_id": parent_id, **summary}
