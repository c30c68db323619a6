"""How a job stops: SIGINT and SIGTERM set a flag (STOP) that the loop, the checkpoint save, the
tracking store and the cell's claim check at safe points, and a stop ends as `Terminated` with the
signal's exit code. Also the test-only pause and fault points those places call.

Its own module, below all of them: the loop, the checkpoint, the lifecycle, the job and tracking
share this state without importing each other for it.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
