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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dedl_experiments.models import load_saved_state, state_to_save
from dedl_experiments.run.folders import DiskFull, is_disk_full
from dedl_experiments.run.stop import STOP, disk_full_for_test, fault_for_test_at, pause_for_test
from dedl_experiments.tasks.base import Task

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read; the message names the file."""


def atomic_save(obj: Any, path: Path, previous: Path | None = None) -> Path:
    """Write `obj` to `path` through a temporary file; with `previous`, the file it replaces
    is kept there (renamed only once the new one is complete). A full disk raises DiskFull
    naming the file; the files already there stay intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, _TestWriter(handle) if fault_for_test_at("checkpoint_save") else handle)
            handle.flush()
            os.fsync(handle.fileno())
        # Stopped between these renames, only previous.pt exists, and load_training uses it.
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, Exception) and is_disk_full(err):
            raise DiskFull(path, _nbytes(obj)) from err
        raise
    return path


def _nbytes(obj: Any) -> int:
    """About the size of `obj` saved: the bytes of its tensors and arrays."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj)
    return 0


class _TestWriter:
    """Test-only (see stop.pause_for_test and stop.disk_full_for_test): torch.save writes
    through it; in its second write, mid-file, it pauses or fails as the disk would, where an
    exception makes torch.save fail with "unexpected pos"."""

    def __init__(self, handle):
        self.handle, self.writes = handle, 0

    def write(self, data) -> int:
        self.writes += 1
        if self.writes == 2:
            pause_for_test("checkpoint_save")
            disk_full_for_test("checkpoint_save")
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


def rng_state(device: torch.device) -> dict:
    """The random generators' states; on CUDA that of the job's GPU only (`cuda`): a rerun
    may see other GPUs (another SLURM allocation, CUDA_VISIBLE_DEVICES) or train on another."""
    np_state = np.random.get_state()
    state = {"python": random.getstate(), "numpy_keys": torch.from_numpy(np_state[1].copy()),
             "numpy_rest": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
             "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    """Restore `rng_state`'s states; the saved GPU state goes to the GPU this job trains on."""
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    name, pos, has_gauss, cached = state["numpy_rest"]
    np.random.set_state((name, state["numpy_keys"].numpy(), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is None or device.type != "cuda":
        return  # a CPU run's checkpoint, or a CUDA run resumed on the CPU
    if isinstance(cuda, (list, tuple)):
        # Older checkpoints hold every visible GPU's state and not which one trained: the
        # entry of this job's GPU number when there is one (the same slot), else the first.
        index = device.index if device.index is not None else torch.cuda.current_device()
        cuda = cuda[index] if index < len(cuda) else cuda[0]
    torch.cuda.set_rng_state(cuda, device)


def training_state(task: Task, fit_state: dict, scaler: torch.amp.GradScaler) -> dict:
    """Everything a rerun needs to continue bit-equal: the task's modules, optimisers,
    schedulers and `extra_state()`, the loss scaler, the loop's state and the RNG states."""
    return {
        "modules": {k: state_to_save(m) for k, m in task.modules().items()},
        "optimizers": {k: o.state_dict() for k, o in task.optimizers.items()},
        "schedulers": {k: _scheduler_state(s) for k, s in task.schedulers.items()},
        "scaler": scaler.state_dict(),
        "fit": fit_state,
        "rng": rng_state(task.device),
        "extra": task.extra_state(),
    }


def restore_training_state(task: Task, state: dict, scaler: torch.amp.GradScaler) -> dict:
    """Load `state` into the task's modules, optimisers and schedulers (and what the task keeps
    beyond them, `load_extra_state`; empty in checkpoints written without it); returns the fit
    state."""
    for key, module in task.modules().items():
        load_saved_state(module, state["modules"][key])
    for key, optimizer in task.optimizers.items():
        optimizer.load_state_dict(state["optimizers"][key])
    for key, scheduler in task.schedulers.items():
        scheduler.load_state_dict(state["schedulers"][key])
    _restore_scaler(scaler, state["scaler"])
    task.load_extra_state(state.get("extra", {}))
    set_rng_state(state["rng"], task.device)
    return state["fit"]


def _restore_scaler(scaler: torch.amp.GradScaler, saved: dict) -> None:
    """A disabled scaler (bf16, fp32 or CPU runs) saves an empty state, which an enabled one
    (fp16) refuses: it then starts afresh, as in a new run, and the log says so."""
    if not saved and scaler.is_enabled():
        log.info("the checkpoint holds no loss-scaler state (its run did not train in fp16): "
                 "fp16 loss scaling starts afresh")
        return
    scaler.load_state_dict(saved)


def save_training(folder: Path, state: dict, cell: dict[str, str] | None = None) -> Path:
    """Write `last.pt`, keeping the one before as `previous.pt` to fall back on. `cell` (its
    `key`, `run_id` and `run_name`) says whose state it is: only that run resumes from it. A
    signal during the save names this stage, and the job stops once the save is complete."""
    folder = Path(folder)
    with STOP.in_stage("checkpoint save"):
        return atomic_save(state | ({"cell": cell} if cell else {}), folder / LAST,
                           previous=folder / PREVIOUS)


def _not_for(state: dict, path: Path, cell: dict[str, str]) -> str | None:
    """Why the checkpoint at `path` must not be resumed by the run `cell`, or None."""
    theirs = state.get("cell")
    if not isinstance(theirs, dict):
        return None
    if theirs.get("key") == cell.get("key") and theirs.get("run_id") == cell.get("run_id"):
        return None
    return (f"checkpoint {path} belongs to {theirs.get('run_name', '?')} (cell {theirs.get('key')}, "
            f"MLflow run {theirs.get('run_id')}), not to {cell.get('run_name', '?')} (cell "
            f"{cell.get('key')}, MLflow run {cell.get('run_id')}); it is not resumed")


def load_training(folder: Path, cell: dict[str, str] | None = None,
                  legacy_problem: Callable[[dict], str | None] | None = None) -> dict | None:
    """The newest readable training checkpoint in `folder` that belongs to the run `cell` (when
    given), or None; a damaged file or another run's is reported by path and the previous one
    is tried. A checkpoint written before checkpoints named their run is used unless
    `legacy_problem(state)` says why not."""
    for name in (LAST, PREVIOUS):
        path = Path(folder) / name
        if not path.exists():
            continue
        try:
            state = load(path)
        except CheckpointError as err:
            log.warning("%s; trying an older checkpoint", err)
            continue
        if cell is None:
            return state
        problem = _not_for(state, path, cell)
        if problem is None and "cell" not in state and legacy_problem is not None:
            problem = legacy_problem(state)
            problem = problem and f"checkpoint {path} names no run and {problem}; it is not resumed"
        if problem is None:
            return state
        log.warning("%s; trying an older checkpoint", problem)
    return None
