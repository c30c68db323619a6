"""The one plain-PyTorch training loop for both tasks.

A task object (tasks/base.py's Task) supplies modules, optimisers, schedulers, loaders, metrics
and the loss of a batch; this loop owns epochs, validation, early stopping, best-model
selection, NaN checks and progress output, with plain settings (`FitSettings`), not the config.
Metrics accumulate on the device and reach the host once per epoch.
"""

from __future__ import annotations

import copy
import errno
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import RandomSampler
from tqdm import tqdm

from dedl_experiments.speed import Speed
from dedl_experiments.tasks.base import Task

log = logging.getLogger(__name__)


class Terminated(BaseException):
    """SIGINT or SIGTERM stopped the job; `exit_code` is 128 + the signal number (130, 143).
    A BaseException like KeyboardInterrupt: it ends the process (a sweep too), not just the job."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message, exit_code)  # both in args, so that it pickles
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.args[0]


class TerminationFlag:
    """During a job SIGINT and SIGTERM only set this flag, remembering where the job was; the
    loop stops at the next check (after every batch and after each epoch's checkpoint save and
    logging), so that no checkpoint or MLflow write is cut half-way. A second signal stops at
    once, and so does the first in a stage with nothing left to save (`at_once`) or during a
    request to an MLflow server (`cut_at_once`: it may wait minutes for a server that went
    away; the rerun logs what it did not)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.signal: int | None = None  # the first signal received
        self.signals = 0  # how many arrived
        self.where = ""  # the stage the first one arrived in, e.g. "epoch 2/3 (train)"
        self.epoch: int | None = None  # 1-based, while training
        self.epochs: int | None = None
        self.stage = "setup"
        self.at_once = False
        self.stopping = False  # raised at once already: later signals must not interrupt that

    def __call__(self, signum, frame) -> None:
        self.signals += 1
        if self.stopping:
            return
        if self.signal is None:
            self.signal, self.where = signum, self.describe()
            if not self.at_once:
                return
        self.stopping = True
        raise self.terminated()

    def describe(self) -> str:
        return f"epoch {self.epoch}/{self.epochs} ({self.stage})" if self.epoch else self.stage

    def enter(self, stage: str, epoch: int | None = None, epochs: int | None = None,
              at_once: bool = False) -> None:
        """The job is now in `stage` (of the 1-based `epoch` of `epochs`, while training)."""
        self.stage, self.epoch, self.epochs, self.at_once = stage, epoch, epochs, at_once

    @contextmanager
    def in_stage(self, stage: str) -> Iterator[None]:
        """A stage within the current one (e.g. the checkpoint save at the end of an epoch)."""
        outer = self.stage
        self.stage = stage
        try:
            yield
        finally:
            self.stage = outer

    @contextmanager
    def cut_at_once(self) -> Iterator[None]:
        """A call that a signal may cut short (an MLflow request that may wait minutes on a
        server that went away): the first signal stops the job at once, in the same stage.
        Only the main thread, where signals arrive, changes the flag."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        outer = self.at_once
        self.at_once = True
        try:
            yield
        finally:
            self.at_once = outer

    def terminated(self) -> Terminated:
        name = signal.Signals(self.signal).name
        return Terminated(f"{name} in {self.where}", 128 + self.signal)

    def check(self) -> None:
        if self.signal is not None:
            self.stopping = True  # a further Ctrl-C must not cut the recording of the stop
            raise self.terminated()

    @contextmanager
    def handling_signals(self) -> Iterator[None]:
        """One job: SIGINT and SIGTERM set the flag; the previous handlers come back after."""
        self.reset()
        previous = {sig: signal.signal(sig, self) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
            self.check()  # a signal after the last check, e.g. during the final logging
        except Terminated:
            raise
        except BaseException as err:
            if self.signal is None:
                raise
            # However a stop surfaced (torch.save turns a second Ctrl-C into a RuntimeError).
            raise self.terminated() from err
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


STOP = TerminationFlag()

# Test-only fault injection (tests/integration/test_interrupts.py): with
# DEDL_TEST_PAUSE_AT=train_step|validation|checkpoint_save|mlflow_log the job waits the first
# time it reaches that point from epoch 2 on, until DEDL_TEST_PAUSE_SIGNALS signals (default 1)
# have arrived (at most 60 s); meanwhile `<point>.paused` in its working directory holds the
# number of signals received so far. DEDL_TEST_DISK_FULL_AT=checkpoint_save fakes a full disk
# (tests/integration/test_run_faults.py).
def pause_point() -> str:
    """The test-only pause point, read when used (the environment is the job's own)."""
    return os.environ.get("DEDL_TEST_PAUSE_AT", "")


def pause_for_test(point: str) -> None:
    if point != pause_point():  # called every training step: the cheap test first
        return
    marker = Path(f"{point}.paused")
    if ((STOP.epoch or 0) < 2 or marker.exists()
            or threading.current_thread() is not threading.main_thread()):
        return
    wanted = int(os.environ.get("DEDL_TEST_PAUSE_SIGNALS", "1"))
    deadline, seen = time.monotonic() + 60, None
    while STOP.signals < wanted and time.monotonic() < deadline:
        if STOP.signals != seen:
            seen = STOP.signals
            marker.write_text(str(seen))
        time.sleep(0.01)


def fault_for_test_at(point: str) -> bool:
    """Whether a test-only pause or fault is set for `point`."""
    return point in (pause_point(), os.environ.get("DEDL_TEST_DISK_FULL_AT", ""))


def disk_full_for_test(point: str) -> None:
    """Test-only: with DEDL_TEST_DISK_FULL_AT=checkpoint_save, checkpoint writes from epoch 2 on
    fail as on a full disk (ENOSPC)."""
    if os.environ.get("DEDL_TEST_DISK_FULL_AT", "") == point and (STOP.epoch or 0) >= 2:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def install_test_pauses() -> None:
    """With DEDL_TEST_PAUSE_AT=mlflow_log, MLflow writes (all are batches) pause inside."""
    from mlflow import MlflowClient

    if pause_point() != "mlflow_log" or hasattr(MlflowClient.log_batch, "pauses_for_test"):
        return

    def _paused_log_batch(self, *args, _log_batch=MlflowClient.log_batch, **kwargs):
        pause_for_test("mlflow_log")
        return _log_batch(self, *args, **kwargs)

    _paused_log_batch.pauses_for_test = True
    MlflowClient.log_batch = _paused_log_batch


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
