"""Checkpoint files: written atomically, read with `weights_only=True`.

A checkpoint is first written to a temporary file in the same folder and then renamed over
the target, so a crash or a kill mid-write leaves the previous file intact. Loading never
unpickles arbitrary objects; a damaged file raises CheckpointError naming it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read; the message names the file."""


def atomic_save(obj: Any, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: Path, map_location: str | torch.device = "cpu") -> Any:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, wrong format, disallowed objects
        raise CheckpointError(f"checkpoint {path} is damaged or not a checkpoint "
                              f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from err
