"""Whether a tracking store can be used, checked in seconds before any data or training work
and without creating anything; and where the artifacts of a store's new experiments go."""

from __future__ import annotations

import json
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from mlflow.utils.file_utils import local_file_uri_to_path
from mlflow.utils.uri import is_local_uri
from sqlalchemy.engine import make_url

from dedl_experiments.run.folders import writable_folder_problem

# Schemes MLflow can track to (a folder store is refused by MLflow >= 3.13).
STORE_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")
# Beside a SQLite store: the artifacts of its experiments (default_artifact_root).
ARTIFACTS_FOLDER = "mlartifacts"


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message names the URI and where it was set."""


def uri_option(uri: str) -> str:
    """Where a tracking URI was set, as the user would type it: `MLFLOW_TRACKING_URI=...` when
    the environment gave it (tracking.uri unset, or set to the same URI), else `tracking.uri=...`."""
    name = "MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") == uri else "tracking.uri"
    return f"{name}={uri}"


def _scheme(uri: str) -> str:
    return urllib.parse.urlparse(uri).scheme.split("+", 1)[0]


def in_memory_store(uri: str) -> bool:
    """A SQLite URI without a database file (`sqlite://`, `sqlite:///`, `sqlite:///:memory:`,
    `mode=memory`): the store lives as long as one process, so nothing it records persists."""
    if _scheme(uri) != "sqlite":
        return False
    url = make_url(uri)  # SQLAlchemy's parser: MLflow hands the URI to SQLAlchemy as is
    database = url.database or ""
    return database in ("", ":memory:") or database.startswith("file::memory:") or url.query.get("mode") == "memory"


def check_store_uri(uri: str) -> None:
    """The checks that need neither the network nor the file system: a scheme MLflow can track
    to, and a store that persists what it records."""
    named = uri_option(uri)
    scheme = _scheme(uri)
    if scheme not in STORE_SCHEMES:
        raise TrackingError(
            f"{named}: unknown scheme {scheme or '(none)'!r}; use sqlite:///path/to/mlflow.db, "
            "http(s)://host:port (an MLflow server) or a database URI (postgresql://, mysql://, mssql://)")
    if in_memory_store(uri):
        raise TrackingError(f"{named} is an in-memory SQLite store: nothing recorded there outlives "
                            "the process (a rerun would train again); use a database file, e.g. "
                            "sqlite:///mlflow.db")


def check_store(uri: str, timeout: float = 5.0) -> None:
    """Fail in seconds, before any data or training work and without creating anything, when
    the tracking store cannot be used: an unknown scheme, a store that does not persist, a SQLite
    file that cannot be written, a server that does not answer or is not an MLflow tracking
    server, an artifact folder that cannot be written. The message names the URI as it was set
    (uri_option)."""
    check_store_uri(uri)
    scheme = _scheme(uri)
    if scheme == "sqlite":
        _check_sqlite_writable(uri)
    elif scheme in ("http", "https"):
        _check_mlflow_server(uri, timeout)
    root = default_artifact_root(uri)
    if root is not None:
        check_artifact_folder(uri, root, "its artifacts go to")


def default_artifact_root(uri: str) -> Path | None:
    """Where new experiments of a database store keep their runs' artifacts: beside a SQLite
    file, in `mlartifacts/` (where `make server` serves them from), so that they do not depend
    on the folder a job runs from; for other databases MLflow's default, `./mlruns`. None for a
    server, which places artifacts itself."""
    scheme = _scheme(uri)
    if scheme == "sqlite":
        database = make_url(uri).database
        return (Path(database).absolute().parent / ARTIFACTS_FOLDER) if database else None
    if scheme in ("postgresql", "mysql", "mssql"):
        return Path("mlruns").absolute()
    return None


def new_experiment_artifact_location(uri: str, name: str) -> str | None:
    """The artifact location of a new experiment `name` (None: MLflow's default)."""
    if _scheme(uri) != "sqlite" or (root := default_artifact_root(uri)) is None:
        return None
    return str(root / re.sub(r"[^\w.-]", "_", name))


def local_artifact_folder(location: str | None) -> Path | None:
    """The folder of a local artifact location (a path or file:// URI), else None."""
    if not location or not is_local_uri(location):
        return None
    return Path(local_file_uri_to_path(location)).absolute()


def check_artifact_folder(uri: str, folder: Path, what: str) -> None:
    problem = writable_folder_problem(folder, create=False)
    if problem:
        raise TrackingError(f"{uri_option(uri)}: {what} {folder}, and {problem}; runs could not "
                            "record their artifacts (choose another tracking.uri or fix the permissions)")


def _check_sqlite_writable(uri: str) -> None:
    database = make_url(uri).database
    path = Path(database)
    problem = writable_folder_problem(path.parent, create=False)
    if problem is None and path.exists():
        try:
            open(path, "ab").close()  # opens for writing, changes nothing
        except OSError as err:
            problem = f"the database {path} cannot be written ({err.strerror})"
    if problem:
        raise TrackingError(f"{uri_option(uri)}: {problem}; MLflow must write there "
                            "(choose another tracking.uri or fix the permissions)")


def _check_mlflow_server(uri: str, timeout: float) -> None:
    parsed = urllib.parse.urlparse(uri)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            pass
    except OSError as err:
        raise TrackingError(f"{uri_option(uri)}: the MLflow tracking server is unreachable: {err}") from err
    # An MLflow server answers its REST API with JSON; another web server does not.
    probe = uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1"
    try:
        with urllib.request.urlopen(probe, timeout=timeout) as answer:
            json.loads(answer.read(1_000_000) or b"{}")
    except urllib.error.HTTPError as err:
        raise TrackingError(f"{uri_option(uri)} is not an MLflow tracking server: "
                            f"GET {probe} answered HTTP {err.code}") from err
    except (OSError, ValueError) as err:
        kind = "an answer that is not JSON" if isinstance(err, ValueError) else str(err)
        raise TrackingError(f"{uri_option(uri)} is not an MLflow tracking server: "
                            f"GET {probe} gave {kind}") from err
