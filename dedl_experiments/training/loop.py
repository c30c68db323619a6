"""The one plain-PyTorch training loop for both tasks.

A task object (tasks/base.py's Task) supplies modules, optimisers, schedulers, loaders, metrics
and the loss of a batch; this loop owns epochs, validation, early stopping, best-model
selection, NaN checks and progress output, with plain settings (`FitSettings`), not the config.
Metrics accumulate on the device and reach the host once per epoch.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field

import torch
from torch.utils.data import RandomSampler
from tqdm import tqdm

from dedl_experiments.placement.speed import Speed
from dedl_experiments.run.stop import STOP, pause_for_test
from dedl_experiments.tasks.base import Task

log = logging.getLogger(__name__)


def progress_bars_off() -> bool:
    """Bars only on a terminal: in a log file (SLURM, CI, `> log`) every carriage-return update
    would stay; the loop logs one line per epoch anyway. TQDM_DISABLE=1 turns them off too."""
    return not sys.stderr.isatty() or os.environ.get("TQDM_DISABLE", "") not in ("", "0")


class NonFiniteLoss(RuntimeError):
    def __init__(self, epoch: int, split: str):
        super().__init__(f"non-finite {split} loss in epoch {epoch}")
        self.epoch = epoch


@dataclass(frozen=True)
class FitSettings:
    """What the loop needs to know of a run's config."""

    epochs: int
    seed: int  # shuffling and augmentation draw from (seed, epoch, item)
    monitor: str = "val_loss"  # the validation metric that picks the best epoch
    monitor_mode: str = "min"  # max | min
    patience: int | None = None  # stop after this many epochs without a lower validation loss


@dataclass
class FitState:
    """Everything the loop needs to continue after an interruption."""

    epoch: int = 0  # next epoch to run
    best_score: float | None = None
    best_epoch: int | None = None
    best_state: dict | None = None
    stale_epochs: int = 0  # epochs since the validation loss last improved
    best_val_loss: float = math.inf
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    stopped_early: bool = False


def _to(batch, device: torch.device, channels_last: bool):
    batch = [t.to(device, non_blocking=True) for t in batch]
    if channels_last:
        batch[0] = batch[0].contiguous(memory_format=torch.channels_last)
    return batch


def run_epoch(task: Task, loader, train: bool, epoch: int, speed: Speed, desc: str) -> dict[str, float]:
    device = task.device
    for module in task.modules().values():
        module.train(train)
    # Shuffling and augmentation depend on (seed, epoch) only, so a resumed run draws what
    # the uninterrupted one would have drawn.
    loader.dataset.set_epoch(epoch)
    if isinstance(loader.sampler, RandomSampler) and loader.sampler.generator is not None:
        loader.sampler.generator.manual_seed(loader.dataset.seed * 100003 + epoch)
    metrics = task.new_metrics()
    total = torch.zeros((), device=device, dtype=torch.float64)
    count = 0
    with torch.set_grad_enabled(train):
        for batch in tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, mininterval=1.0,
                          disable=progress_bars_off()):
            batch = _to(batch, device, speed.channels_last)
            with speed.autocast:
                loss = task.step(batch, metrics, train)
            pause_for_test("train_step" if train else "validation")
            if train:
                for opt in task.optimizers.values():
                    opt.zero_grad(set_to_none=True)
                speed.scaler.scale(loss).backward()
                for opt in task.optimizers.values():
                    speed.scaler.step(opt)
                speed.scaler.update()
                task.end_step()
            total += loss.detach().double() * len(batch[0])
            count += len(batch[0])
            STOP.check()
    mean_loss = (total / max(count, 1)).item()
    if not math.isfinite(mean_loss):
        raise NonFiniteLoss(epoch, "train" if train else "validation")
    return {"loss": mean_loss, **metrics.compute()}


def fit(task: Task, settings: FitSettings, state: FitState, speed: Speed, on_epoch_end) -> FitState:
    """Train from `state.epoch` to `settings.epochs` (or early stop); `on_epoch_end(epoch, row,
    state)` records each epoch (checkpoint, metrics)."""
    train_loader = task.loader("train", train=True, seed=settings.seed)
    val_loader = task.loader("val", train=False, seed=settings.seed)
    monitor = settings.monitor.removeprefix("val_")
    sign = 1.0 if settings.monitor_mode == "max" else -1.0
    epochs = settings.epochs
    while state.epoch < epochs and not state.stopped_early:
        epoch = state.epoch
        start = time.perf_counter()
        STOP.enter("train", epoch + 1, epochs)
        train = run_epoch(task, train_loader, True, epoch, speed, f"epoch {epoch + 1}/{epochs} train")
        train_seconds = time.perf_counter() - start
        STOP.enter("validation", epoch + 1, epochs)
        val = run_epoch(task, val_loader, False, epoch, speed, f"epoch {epoch + 1}/{epochs} val")
        lrs = {f"lr_{name}": opt.param_groups[0]["lr"] for name, opt in task.optimizers.items()}
        task.end_epoch(epoch)
        seconds = time.perf_counter() - start
        state.train_seconds += seconds
        row = {f"train_{k}": v for k, v in train.items()} | {f"val_{k}": v for k, v in val.items()}
        # The training phase alone (no validation): comparable with per-epoch training times.
        row |= lrs | {"epoch_time_s": seconds, "epoch_train_time_s": train_seconds}
        state.history.append(row)
        score = sign * val[monitor]
        improved = state.best_score is None or score > state.best_score
        if improved:
            state.best_score, state.best_epoch = score, epoch
            state.best_state = copy.deepcopy(task.inference_state())
        if val["loss"] < state.best_val_loss:
            state.best_val_loss, state.stale_epochs = val["loss"], 0
        else:
            state.stale_epochs += 1
        state.epoch = epoch + 1
        log.info("epoch %d/%d  train loss %.4f %s %.4f | val loss %.4f %s %.4f | %.1fs%s",
                 epoch + 1, epochs, train["loss"], monitor, train[monitor], val["loss"], monitor,
                 val[monitor], seconds, "  *best" if improved else "")
        patience = settings.patience
        if patience is not None and state.stale_epochs >= patience:
            log.info("early stopping: validation loss has not improved for %d epochs", patience)
            state.stopped_early = True
        # The checkpoint save (a stage of its own, see checkpoint.save_training) and MLflow
        # writes finish before a signal stops the job, here (a request to an MLflow server is
        # cut at once: the rerun logs the epochs it did not).
        STOP.enter("metric logging", epoch + 1, epochs)
        on_epoch_end(epoch, row, state)
        STOP.check()
    STOP.check()  # a signal before the loop, when it had no epoch left to run
    # The last checkpoint is written: testing and final logging may stop at once.
    STOP.enter("test", at_once=True)
    return state
