"""One exclusive lock between processes, for everything that jobs started together must do one at
a time: open a new SQLite store (retry.py), build a prepared-data cache (data/cache.py), generate
the synthetic data (data/synthetic.py), update the GPU memory ledger (speed.py)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created, with its folder, if needed) while the block
    runs. The kernel drops it if the process dies, so a crash never leaves it held."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
