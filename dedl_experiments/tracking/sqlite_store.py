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

An MLflow tracking server is retried by MLflow itself (its MLFLOW_HTTP_REQUEST_* variables).
Its defaults wait up to ~4 minutes per request for a server that refuses connections, and 20
for one that does not answer; `server_retries(give_up_after_s)` bounds that, so that a job whose
server went away ends in minutes, resumable, instead of hanging until the time limit.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from dedl_experiments.run.locks import exclusive_lock

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


# --- an MLflow tracking server that stops answering -----------------------------------

# A request that waits longer fails (and is retried); generous for a busy server.
MAX_REQUEST_TIMEOUT_S = 30


def server_retries(give_up_after_s: float) -> dict[str, str]:
    """MLflow's retry settings (MLFLOW_HTTP_REQUEST_*) with which a request to a server that
    refuses connections or does not answer fails after about `give_up_after_s` seconds: pauses
    of 2, 4, 8, ... s (urllib3's backoff with factor 1, the first retry at once) over about half
    of it, each try's timeout (5-30 s) over the rest."""
    budget = max(float(give_up_after_s), 4.0)
    retries = int(math.log2(budget / 2 + 2))  # pauses 0 + 2 + 4 + ... = 2**retries - 2 s
    pauses = 2**retries - 2
    timeout = max(5, min(MAX_REQUEST_TIMEOUT_S, round((budget - pauses) / (retries + 1))))
    return {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries),
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
            "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout)}


# Once the job is stopping: one short try, then the run is left for the rerun to resume.
FAIL_FAST = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """`values` in os.environ while the block runs (MLflow reads its settings per request)."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# requests' and urllib3's words for a server that is gone or silent, as MLflow passes them on.
UNREACHABLE_MESSAGES = ("max retries exceeded", "connection refused", "connectionerror",
                        "read timed out", "failed with timeout", "remotedisconnected",
                        "connection aborted", "connection reset")


def is_unreachable_error(err: BaseException) -> bool:
    """True when an MLflow request failed because its server did not answer (after MLflow's
    retries), not because the server refused the request."""
    return _says(err, UNREACHABLE_MESSAGES)


def unreachable_reason(err: BaseException) -> str:
    """The socket's own words (e.g. "Connection refused", "Read timed out") in MLflow's long
    message, else its first line."""
    text = str(err)
    found = re.search(r"\[Errno -?\d+\] ([^'\"()]+)|(Read timed out|Connection aborted|RemoteDisconnected)",
                      text)
    if found:
        return (found.group(1) or found.group(2)).strip().rstrip(".")
    return (text.splitlines() or [type(err).__name__])[0][:120]
