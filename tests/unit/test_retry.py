"""retry_on_locked: SQLite's busy errors are retried, everything else is not; a dataset input
that lost a race for its unique key is logged again."""

import sqlite3
from types import SimpleNamespace

import pytest
from mlflow.exceptions import MlflowException

from dedl_experiments.retry import is_duplicate_key_error, is_locked_error, retry_on_locked
from dedl_experiments.tracking import Tracker


class Flaky:
    def __init__(self, failures: int, error: Exception):
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return args, kwargs


def _mlflow_locked() -> MlflowException:
    # How MLflow's SQLAlchemy store reports it: the OperationalError is the cause.
    try:
        try:
            raise sqlite3.OperationalError("database is locked")
        except sqlite3.OperationalError as err:
            raise MlflowException("(sqlite3.OperationalError) database is locked") from err
    except MlflowException as err:
        return err


def test_locked_errors_are_recognised_however_wrapped():
    assert is_locked_error(sqlite3.OperationalError("database is locked"))
    assert is_locked_error(_mlflow_locked())
    outer = RuntimeError("log_batch failed")
    outer.__cause__ = sqlite3.OperationalError("database table is locked")
    assert is_locked_error(outer)
    assert not is_locked_error(MlflowException("RESOURCE_DOES_NOT_EXIST: run abc"))
    assert not is_locked_error(sqlite3.OperationalError("no such table: runs"))


def test_retries_until_the_call_goes_through_and_passes_arguments():
    fn, pauses = Flaky(3, _mlflow_locked()), []
    assert retry_on_locked(fn, 1, 2, key="v", sleep=pauses.append) == ((1, 2), {"key": "v"})
    assert fn.calls == 4 and len(pauses) == 3
    # Growing pauses, jittered within [0.5, 1.5) x the nominal one.
    assert 0.025 <= pauses[0] < 0.075 and 0.05 <= pauses[1] < 0.15 and 0.1 <= pauses[2] < 0.3


def test_pauses_are_capped():
    pauses = []
    retry_on_locked(Flaky(6, _mlflow_locked()), attempts=7, delay=1.0, max_delay=1.5,
                    sleep=pauses.append)
    assert max(pauses) < 1.5 * 1.5


def test_gives_up_after_the_last_attempt_with_the_original_error():
    fn = Flaky(10, _mlflow_locked())
    with pytest.raises(MlflowException, match="database is locked"):
        retry_on_locked(fn, attempts=3, sleep=lambda s: None)
    assert fn.calls == 3


def test_other_errors_are_not_retried():
    fn = Flaky(1, MlflowException("INVALID_PARAMETER_VALUE: bad metric"))
    with pytest.raises(MlflowException, match="bad metric"):
        retry_on_locked(fn, sleep=lambda s: None)
    assert fn.calls == 1


def test_attempts_must_be_positive():
    with pytest.raises(ValueError):
        retry_on_locked(lambda: None, attempts=0)


def test_sqlite_path_of_uris():
    from pathlib import Path

    from dedl_experiments.retry import sqlite_path

    assert sqlite_path("sqlite:///mlflow.db") == Path("mlflow.db")
    assert sqlite_path("sqlite:////abs/dir/mlflow.db") == Path("/abs/dir/mlflow.db")
    assert sqlite_path("sqlite:///x.db?timeout=30") == Path("x.db")
    for uri in ("http://127.0.0.1:5000", "sqlite://", "sqlite:///:memory:", "file:///tmp/mlruns",
                "postgresql://db/mlflow"):
        assert sqlite_path(uri) is None, uri


def test_sqlite_store_lock_excludes_other_processes(tmp_path):
    import multiprocessing as mp
    import time

    from dedl_experiments.retry import sqlite_store_lock

    uri = f"sqlite:///{tmp_path / 'sub' / 'mlflow.db'}"
    ctx = mp.get_context("fork")
    acquired = ctx.Event()
    with sqlite_store_lock(uri):
        assert (tmp_path / "sub" / "mlflow.db.lock").exists()
        child = ctx.Process(target=_take_lock, args=(uri, acquired))
        child.start()
        time.sleep(0.3)
        assert not acquired.is_set()  # the child waits while this process holds it
    child.join(timeout=10)
    assert acquired.is_set() and child.exitcode == 0
    assert not (tmp_path / "sub" / "mlflow.db").exists()  # MLflow creates the store itself
    with sqlite_store_lock("http://127.0.0.1:1"):  # other stores: nothing to lock
        pass


def _take_lock(uri, acquired):
    from dedl_experiments.retry import sqlite_store_lock

    with sqlite_store_lock(uri):
        acquired.set()


def _mlflow_duplicate() -> MlflowException:
    # What a job got when another job of its sweep recorded the same dataset a moment earlier.
    try:
        try:
            raise sqlite3.IntegrityError(
                "UNIQUE constraint failed: datasets.experiment_id, datasets.name, datasets.digest")
        except sqlite3.IntegrityError as err:
            raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed") from err
    except MlflowException as err:
        return err


def test_duplicate_key_errors_are_recognised():
    assert is_duplicate_key_error(_mlflow_duplicate())
    assert is_duplicate_key_error(MlflowException('duplicate key value violates unique constraint "datasets_pk"'))
    assert not is_duplicate_key_error(_mlflow_locked())
    assert not is_duplicate_key_error(MlflowException("RESOURCE_DOES_NOT_EXIST: run abc"))


@pytest.mark.parametrize("error, calls", [(_mlflow_duplicate(), 2), (_mlflow_locked(), 2)])
def test_a_dataset_input_that_lost_a_race_is_logged_again(error, calls):
    tracker = Tracker.__new__(Tracker)  # no store: only the client's calls matter here
    tracker.client = SimpleNamespace(log_inputs=Flaky(1, error))
    tracker.log_dataset("run-1", "synthetic", "ab" * 32, "/data")
    assert tracker.client.log_inputs.calls == calls


def test_other_errors_of_a_dataset_input_propagate():
    tracker = Tracker.__new__(Tracker)
    tracker.client = SimpleNamespace(log_inputs=Flaky(1, MlflowException("RESOURCE_DOES_NOT_EXIST: run abc")))
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        tracker.log_dataset("run-1", "synthetic", "ab" * 32, "/data")
