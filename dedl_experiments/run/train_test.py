"""Train, test and record one run of a cell: its config and params first, then the loop with a
checkpoint every epoch (loop.fit, checkpoint.py), then the test pass, the result metrics, the
saved model and the task's artifacts. The run itself (claim, resume, status) is job.py's."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from dedl_experiments.training import checkpoint
from dedl_experiments.models import load_saved_state
from dedl_experiments.config import components
from dedl_experiments.tracking import cells, mlflow_store, run_tags
from dedl_experiments.training.loop import FitSettings, FitState, fit
from dedl_experiments.placement.peak_memory import record_peak_memory
from dedl_experiments.placement.speed import apply_to_modules, peak_memory_mb, reset_peak_memory, speed_settings
from dedl_experiments.tasks.base import Task
from dedl_experiments.training.warmup import warmup_metrics


def train_and_test(cfg: DictConfig, task: Task, settings: FitSettings, tracker: mlflow_store.Tracker,
                   run_id: str, output_dir: Path, resume_state: dict | None,
                   cell: dict[str, str] | None = None) -> dict:
    """Train `task` with the loop's `settings` (from `resume_state`, a training checkpoint, when
    given), test it and record everything in the run `run_id`; returns the run's result. Its
    checkpoints name `cell` (key, run id and name): no other run resumes from them."""
    output_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = output_dir / "checkpoints"
    reset_peak_memory(task.device)  # this run's peak, not the process's (earlier runs, folds)
    speed = speed_settings(cfg, task.device)
    if resume_state is None:
        config_path = output_dir / "config.yaml"
        OmegaConf.save(cfg, config_path, resolve=True)
        tracker.log_artifact(run_id, config_path)
        tracker.log_params(run_id, cells.flatten(components.loggable_values(cfg)))
        _log_training_set(cfg, task, tracker, run_id, output_dir)
        tracker.log_metrics(run_id, task.describe())
        state = FitState()
    else:
        state = FitState(**checkpoint.restore_training_state(task, resume_state, speed.scaler))
        _log_missing_epochs(tracker, run_id, state)
    apply_to_modules(task, speed)

    def on_epoch_end(epoch: int, row: dict, state: FitState) -> None:
        every = cfg.train.checkpoint_every
        if every and ((epoch + 1) % every == 0 or state.stopped_early or epoch + 1 == settings.epochs):
            checkpoint.save_training(ckpt_dir, checkpoint.training_state(
                task, dataclasses.asdict(state), speed.scaler), cell)
        tracker.log_metrics(run_id, row, step=epoch)

    start = time.perf_counter()
    first_epoch = state.epoch  # a resumed run compiles again in its first epoch here
    state = fit(task, settings, state, speed, on_epoch_end)
    test_start = time.perf_counter()
    final = task.final_state(state.best_state, cfg.seed)
    load_saved_state(task.network(), final)
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
    result |= warmup_metrics(state.history, {0, first_epoch})
    result |= task.result_extras()
    tracker.log_metrics(run_id, result)
    record_peak_memory(cfg, task.device)  # what speed.jobs_per_gpu=auto sizes pools by (CUDA only)

    best_path = checkpoint.atomic_save(task.inference_checkpoint(final), output_dir / "best_model.pt")
    metrics_path = output_dir / "metrics.json"
    metrics_path.write_text(json.dumps(result, indent=1))
    for path in (best_path, metrics_path, *task.write_artifacts(output_dir, test, extras)):
        tracker.log_artifact(run_id, path)
    return result


def _log_training_set(cfg: DictConfig, task: Task, tracker: mlflow_store.Tracker, run_id: str,
                      output_dir: Path) -> None:
    """The training samples of the run: their counts as params and tags, their ids as an
    artifact, so that nesting and pairing of subsets can be checked from the store."""
    training = task.training_set()
    if training is None:
        return
    tracker.log_params(run_id, training.params())
    tracker.set_tags(run_id, training.tags(cfg, run_tags.TAG))
    tracker.log_artifact(run_id, training.write(output_dir))


def _log_missing_epochs(tracker: mlflow_store.Tracker, run_id: str, state: FitState) -> None:
    """Epochs checkpointed but not yet logged when the job died are logged now."""
    logged = {m.step for m in tracker.metric_history(run_id, "val_loss")}
    for epoch, row in enumerate(state.history):
        if epoch not in logged:
            tracker.log_metrics(run_id, row, step=epoch)
