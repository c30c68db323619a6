"""One job = one table cell: validate, skip or run, train, test, record."""

from __future__ import annotations

import json
import logging
import random
import resource
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from dedl_experiments import tracking
from dedl_experiments.checkpoint import atomic_save
from dedl_experiments.config import validate
from dedl_experiments.data.prepare import prepare_segmentation
from dedl_experiments.loop import FitState, NonFiniteLoss, fit
from dedl_experiments.speed import apply_to_modules, speed_settings
from dedl_experiments.tasks.segmentation import SegmentationTask
from dedl_experiments.visualise import segmentation_overlays
from multirun_launchers.devices import pin_current_job

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def run(cfg: DictConfig, output_dir: Path, sweep_dir: str | None = None) -> dict:
    """Run one cell and return its test metrics (or the recorded ones when skipped)."""
    validate(cfg)
    tracker = tracking.Tracker.from_config(cfg)
    key = tracking.cell_key(cfg)
    name = tracking.run_name(cfg)
    finished = [r for r in tracker.runs_of_cell(key) if r.info.status == "FINISHED"]
    if finished and not cfg.force:
        done = finished[0]
        log.info("skip %s: cell %s already FINISHED in MLflow run %s (force=true reruns it)",
                 name, key, done.info.run_id)
        return {"run_name": name, "status": "skipped", "run_id": done.info.run_id,
                **done.data.metrics}

    seed_everything(cfg.seed)
    # Parallel sweep jobs: one GPU each (job k -> cuda:k % GPUs), or a share of the CPU cores.
    pinned = pin_current_job()
    device = pick_device(pinned["device"] if pinned and cfg.device == "auto" else cfg.device)
    prepared = prepare_segmentation(cfg)
    task = SegmentationTask(cfg, prepared, device)

    tags = {f"{tracking.TAG}cell_key": key, f"{tracking.TAG}task": cfg.task.name,
            f"{tracking.TAG}table": cfg.table or "", f"{tracking.TAG}seed": str(cfg.seed),
            f"{tracking.TAG}output_dir": str(output_dir), f"{tracking.TAG}device": str(device)}
    if sweep_dir:
        tags[f"{tracking.TAG}sweep_dir"] = sweep_dir
    if "torch_threads" in pinned:
        tags[f"{tracking.TAG}torch_threads"] = str(pinned["torch_threads"])
    run_id = tracker.start(name, tags).info.run_id
    log.info("MLflow run %s (%s) in %s, cell %s", name, run_id, tracker.uri, key)
    try:
        result = _train_and_test(cfg, task, tracker, run_id, output_dir)
    except NonFiniteLoss as err:
        tracker.set_tags(run_id, {f"{tracking.TAG}failure": str(err),
                                  f"{tracking.TAG}failed_epoch": str(err.epoch)})
        tracker.end(run_id, "FAILED")
        raise
    except KeyboardInterrupt:
        tracker.end(run_id, "KILLED")
        raise
    except BaseException as err:
        tracker.set_tags(run_id, {f"{tracking.TAG}failure": f"{type(err).__name__}: {err}"})
        tracker.end(run_id, "FAILED")
        raise
    tracker.end(run_id, "FINISHED")
    print(f"{name}: test IoU {result['test_iou']:.4f}  pixel accuracy "
          f"{result['test_pixel_accuracy']:.4f}  ({result['train_time_s']:.0f}s training)",
          flush=True)
    return {"run_name": name, "status": "finished", "run_id": run_id, **result}


def peak_memory_mb(device: torch.device) -> float:
    """Peak resident memory of this process (CPU) or peak allocated memory (CUDA)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _train_and_test(cfg: DictConfig, task: SegmentationTask, tracker: tracking.Tracker,
                    run_id: str, output_dir: Path) -> dict:
    output_dir.mkdir(parents=True, exist_ok=True)
    config_path = output_dir / "config.yaml"
    OmegaConf.save(cfg, config_path, resolve=True)
    tracker.log_artifact(run_id, config_path)
    tracker.log_params(run_id, tracking.flatten(OmegaConf.to_container(cfg, resolve=True)))
    tracker.log_metrics(run_id, task.describe())

    def on_epoch_end(epoch: int, row: dict, state: FitState) -> None:
        tracker.log_metrics(run_id, row, step=epoch)

    speed = speed_settings(cfg, task.device)
    apply_to_modules(task, speed)
    start = time.perf_counter()
    state = fit(task, cfg, FitState(), speed, on_epoch_end, seed=cfg.seed)
    task.net.load_state_dict(state.best_state)
    test, maps = task.test_metrics(cfg.train.batch_size)
    result = {f"test_{k}": v for k, v in test.items()} | {
        "train_time_s": state.train_seconds, "epochs_run": state.epoch,
        "best_epoch": state.best_epoch, "wall_time_s": time.perf_counter() - start,
        "peak_memory_mb": peak_memory_mb(task.device)}
    tracker.log_metrics(run_id, result)

    best_path = atomic_save(task.inference_checkpoint(state.best_state), output_dir / "best_model.pt")
    metrics_path = output_dir / "metrics.json"
    metrics_path.write_text(json.dumps(result, indent=1))
    images = task.test_images()
    shown = sorted(maps)[:3]
    overlay = segmentation_overlays([images[s][0] for s in shown], [maps[s][1] for s in shown],
                                    [maps[s][0] > 0.5 for s in shown], shown,
                                    output_dir / "test_overlays.png")
    for path in (best_path, metrics_path, overlay):
        tracker.log_artifact(run_id, path)
    return result
