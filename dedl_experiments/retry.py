"""SQLite tracking stores shared by parallel jobs: serialise their creation, retry busy calls.

Creating a new store is not safe from two processes at once: MLflow builds the schema by
running its Alembic migrations, and jobs that start together on a fresh file fail with
"table _alembic_tmp_... already exists" or "duplicate column name". `sqlite_store_lock(uri)`
makes the jobs take turns (a lock file beside the database) while they open the store.

Once it exists, the jobs of a parallel sweep (joblib, submitit, SLURM) all write to the one
file. MLflow has SQLite wait up to 20 s for the write lock, which was enough for 8 processes
logging at full speed here; but SQLite gives up at once, without waiting, when a transaction
that began by reading must write while another process writes (it would deadlock otherwise),
and a lock held past the timeout fails too. MLflow then raises "database is locked";
`retry_on_locked` calls again, which is safe since the failed transaction was rolled back.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from dedl_experiments.locks import exclusive_lock

log = logging.getLogger(__name__)

T = TypeVar("T")
LOCKED_MESSAGES = ("database is locked", "database table is locked")
# SQLite, PostgreSQL, MySQL: an insert that lost a race for a unique key.
DUPLICATE_KEY_MESSAGES = ("unique constraint failed", "duplicate key value", "duplicate entry")


def _says(err: BaseException | None, messages: tuple[str, ...]) -> bool:
    """Whether `err`, or an error it was raised from, says one of `messages`."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        text = str(err).lower()
        if any(message in text for message in messages):
            return True
        err = err.__cause__ or err.__context__
    return False


def is_locked_error(err: BaseException) -> bool:
    """True for SQLite's busy errors, however MLflow or SQLAlchemy wrapped them."""
    return _says(err, LOCKED_MESSAGES)


def is_duplicate_key_error(err: BaseException) -> bool:
    """True when an insert lost a race for a unique key (another process inserted it first)."""
    return _says(err, DUPLICATE_KEY_MESSAGES)


def retry_on_locked(fn: Callable[..., T], *args, attempts: int = 8, delay: float = 0.05,
                    max_delay: float = 2.0, sleep: Callable[[float], None] = time.sleep,
                    **kwargs) -> T:
    """`fn(*args, **kwargs)`, called again after a growing, jittered pause while it fails with
    "database is locked"; any other error, or the last attempt's, propagates unchanged."""
    if attempts < 1:
        raise ValueError(f"attempts={attempts} must be >= 1")
    pause = delay
    for attempt in range(1, attempts + 1):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            if attempt == attempts or not is_locked_error(err):
                raise
            wait = min(max_delay, pause) * (0.5 + random.random())
            log.debug("%s: database is locked (attempt %d/%d), retrying in %.2fs",
                      getattr(fn, "__qualname__", fn), attempt, attempts, wait)
            sleep(wait)
            pause *= 2
    raise AssertionError("unreachable")


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///relative` or `sqlite:////absolute` URI, else None."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


@contextmanager
def sqlite_store_lock(uri: str) -> Iterator[None]:
    """Hold `<database>.lock` (an exclusive flock) for a SQLite URI; no-op for other stores."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    with exclusive_lock(path.with_name(path.name + ".lock")):
        yield
