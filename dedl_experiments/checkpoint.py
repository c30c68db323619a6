"""Checkpoint files: written atomically, read with `weights_only=True`.

A checkpoint is first written to a temporary file in the same folder and then renamed over
the target, so a crash or a kill mid-write leaves the previous file intact. Loading never
unpickles arbitrary objects; a damaged file raises CheckpointError naming it.
"""

from __future__ import annotations

import logging
import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dedl_experiments.loop import STOP, pause_for_test, pause_point
from dedl_experiments.tasks.base import Task

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read; the message names the file."""


def atomic_save(obj: Any, path: Path, previous: Path | None = None) -> Path:
    """Write `obj` to `path` through a temporary file; with `previous`, the file it replaces
    is kept there (renamed only once the new one is complete)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, _PausingWriter(handle) if pause_point() == "checkpoint_save" else handle)
            handle.flush()
            os.fsync(handle.fileno())
        # Stopped between these renames, only previous.pt exists, and load_training uses it.
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class _PausingWriter:
    """Test-only (see loop.pause_for_test): torch.save writes through it and pauses in its
    second write, mid-file, where an exception makes torch.save fail with "unexpected pos"."""

    def __init__(self, handle):
        self.handle, self.writes = handle, 0

    def write(self, data) -> int:
        self.writes += 1
        if self.writes == 2:
            pause_for_test("checkpoint_save")
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


def load(path: Path, map_location: str | torch.device = "cpu") -> Any:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, wrong format, disallowed objects
        text = str(err)
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if refused:
            # The safe loader met pickled objects (classes, functions) that could run code.
            # torch's message advises loading the file unsafely: wrong advice for a file of
            # unknown origin, so it is neither repeated nor chained.
            raise CheckpointError(f"checkpoint {path} holds objects other than tensors and plain "
                                  f"values (the first is {refused.group(1)}); it is refused for "
                                  "safety, since loading such objects can run code from the file") from None
        first = (text.splitlines() or [""])[0][:200]
        if "weights_only" in first.lower() or "Weights only load failed" in first:
            first = "not a file torch.save wrote with tensors and plain values"
        raise CheckpointError(f"checkpoint {path} is damaged or not a checkpoint "
                              f"({type(err).__name__}: {first})") from None


# --- training state: everything needed to continue a run where it stopped ---------------

LAST, PREVIOUS = "last.pt", "previous.pt"


def _scheduler_state(scheduler) -> dict:
    # Some schedulers (SWALR) keep a bound method in their state: rebuilt by __init__, and
    # not loadable with weights_only, so it is left out.
    return {k: v for k, v in scheduler.state_dict().items() if not callable(v)}


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"python": random.getstate(), "numpy_keys": torch.from_numpy(np_state[1].copy()),
             "numpy_rest": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    name, pos, has_gauss, cached = state["numpy_rest"]
    np.random.set_state((name, state["numpy_keys"].numpy(), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def training_state(task: Task, fit_state: dict, scaler: torch.amp.GradScaler) -> dict:
    """Everything a rerun needs to continue bit-equal: the task's modules, optimisers,
    schedulers and `extra_state()`, the loss scaler, the loop's state and the RNG states."""
    return {
        "modules": {k: m.state_dict() for k, m in task.modules().items()},
        "optimizers": {k: o.state_dict() for k, o in task.optimizers.items()},
        "schedulers": {k: _scheduler_state(s) for k, s in task.schedulers.items()},
        "scaler": scaler.state_dict(),
        "fit": fit_state,
        "rng": rng_state(),
        "extra": task.extra_state(),
    }


def restore_training_state(task: Task, state: dict, scaler: torch.amp.GradScaler) -> dict:
    """Load `state` into the task's modules, optimisers and schedulers (and what the task keeps
    beyond them, `load_extra_state`; empty in checkpoints written without it); returns the fit
    state."""
    for key, module in task.modules().items():
        module.load_state_dict(state["modules"][key])
    for key, optimizer in task.optimizers.items():
        optimizer.load_state_dict(state["optimizers"][key])
    for key, scheduler in task.schedulers.items():
        scheduler.load_state_dict(state["schedulers"][key])
    scaler.load_state_dict(state["scaler"])
    task.load_extra_state(state.get("extra", {}))
    set_rng_state(state["rng"])
    return state["fit"]


def save_training(folder: Path, state: dict) -> Path:
    """Write `last.pt`, keeping the one before as `previous.pt` to fall back on. A signal
    during the save names this stage, and the job stops once the save is complete."""
    folder = Path(folder)
    with STOP.in_stage("checkpoint save"):
        return atomic_save(state, folder / LAST, previous=folder / PREVIOUS)


def load_training(folder: Path) -> dict | None:
    """The newest readable training checkpoint in `folder`, or None; a damaged file is
    reported by path and the previous one is tried."""
    for name in (LAST, PREVIOUS):
        path = Path(folder) / name
        if not path.exists():
            continue
        try:
            return load(path)
        except CheckpointError as err:
            log.warning("%s; trying an older checkpoint", err)
    return None
