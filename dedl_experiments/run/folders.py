"""Folders the project writes to: whether they can be written (checked before any work), which
run owns an output folder, and a full disk recognised in one place."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import tempfile
from itertools import count
from pathlib import Path

from dedl_experiments.run.locks import exclusive_lock


def file_in_the_way(folder: Path) -> Path | None:
    """The first existing part of `folder` that is a file, not a folder."""
    for part in reversed([folder, *folder.parents]):
        if part.exists() and not part.is_dir():
            return part
    return None


def writable_folder_problem(folder: Path, create: bool = True) -> str | None:
    """Why `folder` cannot be created or written, or None. With `create`, makes it (as the job
    would); without, tries its nearest existing ancestor. A temporary probe file tells more than
    os.access (root, ACLs, read-only mounts) and leaves nothing behind."""
    folder = Path(folder).absolute()
    blocker = file_in_the_way(folder)
    if blocker is not None:
        return f"{blocker} is a file, not a folder"
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        else:
            folder = next(p for p in (folder, *folder.parents) if p.exists())
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        return f"{folder} cannot be written ({(err.strerror or str(err)).lower()})"
    return None


# --- which run owns an output folder ----------------------------------------------------

OWNER_FILE = "cell.json"
# What a run writes into its folder (older versions wrote no OWNER_FILE).
RUN_FILES = (OWNER_FILE, "checkpoints", "best_model.pt", "metrics.json", "config.yaml")


def own_output_dir(folder: Path, cell_key: str, run_name: str) -> Path:
    """The folder a new run of the cell writes to: `folder`, unless a run already wrote there
    (jobs given one hydra.run.dir, or started in the same instant): then a new subfolder of it
    named for the cell, so that no run overwrites another's checkpoints, model or metrics. The
    choice is made under a lock, so that two jobs starting together take different folders."""
    folder = Path(folder)
    with exclusive_lock(folder / ".cell.lock"):
        for n in count():
            candidate = folder if n == 0 else folder / f"{run_name}-{cell_key[:8]}{'' if n == 1 else f'-{n}'}"
            if not any((candidate / name).exists() for name in RUN_FILES):
                candidate.mkdir(parents=True, exist_ok=True)
                (candidate / OWNER_FILE).write_text(json.dumps(
                    {"cell_key": cell_key, "run_name": run_name, "host": socket.gethostname(),
                     "pid": os.getpid()}, indent=1))
                return candidate
    raise AssertionError("unreachable")


# --- a full disk: one recognition for checkpoint, cache and tracking-store writes ----------

# ENOSPC: the file system is full; EDQUOT: the user's quota is.
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# SQLite's SQLITE_FULL, as sqlite3 / SQLAlchemy / MLflow report it (the errno is lost there).
DISK_FULL_MESSAGES = ("database or disk is full", "no space left on device", "disk quota exceeded")


class DiskFull(RuntimeError):
    """A write failed because its file system (or quota) is full; the message names the folder,
    what the write needed and what is free."""

    def __init__(self, path: Path, needed_bytes: int | None = None, what: str = "writing",
                 at_least: bool = False):
        path = Path(path).absolute()
        folder = next((p for p in (path, *path.parents) if p.is_dir()), path.parent)
        try:
            free = f"{_megabytes(shutil.disk_usage(folder).free)} free"
        except OSError:
            free = "free space unknown"
        need = (f"{'more than' if at_least else 'about'} {_megabytes(needed_bytes)}"
                if needed_bytes else "more space")
        super().__init__(f"{what} {path} failed: no space left on the disk or in the quota (it "
                         f"needs {need}; {folder} has {free}); free space there and rerun the "
                         "same command: an interrupted run resumes from its last complete checkpoint")
        self.path = path


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


def is_disk_full(err: BaseException | None) -> bool:
    """Whether `err`, or an error it was raised from, says the disk or quota is full."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS:
            return True
        if any(message in str(err).lower() for message in DISK_FULL_MESSAGES):
            return True
        err = err.__cause__ or err.__context__
    return False


def tree_size(path: Path) -> int:
    """Bytes of the files under `path` (what a build had written when the disk filled)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
