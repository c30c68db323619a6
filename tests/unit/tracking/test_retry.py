"""retry_on_locked: SQLite's busy errors are retried, everything else is not; a dataset input
that lost a race for its unique key is logged again."""

import os
import sqlite3
from types import SimpleNamespace

import pytest
from mlflow.exceptions import MlflowException

from dedl_experiments.tracking.sqlite_store import is_duplicate_key_error, is_locked_error, retry_on_locked
from dedl_experiments.tracking.mlflow_store import Tracker


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

    from dedl_experiments.tracking.sqlite_store import sqlite_path

    assert sqlite_path("sqlite:///mlflow.db") == Path("mlflow.db")
    assert sqlite_path("sqlite:////abs/dir/mlflow.db") == Path("/abs/dir/mlflow.db")
    assert sqlite_path("sqlite:///x.db?timeout=30") == Path("x.db")
    for uri in ("http://127.0.0.1:5000", "sqlite://", "sqlite:///:memory:", "file:///tmp/mlruns",
                "postgresql://db/mlflow"):
        assert sqlite_path(uri) is None, uri


def test_sqlite_store_lock_excludes_other_processes(tmp_path):
    import multiprocessing as mp
    import time

    from dedl_experiments.tracking.sqlite_store import sqlite_store_lock

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
    from dedl_experiments.tracking.sqlite_store import sqlite_store_lock

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
    tracker.uri, tracker.client = "sqlite:///mlflow.db", SimpleNamespace(log_inputs=Flaky(1, error))
    tracker.log_dataset("run-1", "synthetic", "ab" * 32, "/data")
    assert tracker.client.log_inputs.calls == calls


def test_other_errors_of_a_dataset_input_propagate():
    tracker = Tracker.__new__(Tracker)
    tracker.uri = "sqlite:///mlflow.db"
    tracker.client = SimpleNamespace(log_inputs=Flaky(1, MlflowException("RESOURCE_DOES_NOT_EXIST: run abc")))
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        tracker.log_dataset("run-1", "synthetic", "ab" * 32, "/data")


# --- an MLflow tracking server that stops answering -------------------------------------


@pytest.mark.parametrize("give_up", [10, 60, 120, 300, 600])
def test_server_retries_give_up_after_about_the_time_asked(give_up):
    from dedl_experiments.tracking.sqlite_store import server_retries

    settings = server_retries(give_up)
    retries = int(settings["MLFLOW_HTTP_REQUEST_MAX_RETRIES"])
    timeout = int(settings["MLFLOW_HTTP_REQUEST_TIMEOUT"])
    factor = float(settings["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"])
    jitter = float(settings["MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"])
    # urllib3's pauses: none before the first retry, then factor * 2**(n-1), at most 120 s.
    pauses = sum(min(120, factor * 2 ** (n - 1)) + jitter for n in range(2, retries + 1))
    never_answers = pauses + (retries + 1) * timeout
    assert retries >= 2 and 5 <= timeout <= 30
    assert never_answers <= max(give_up, 20) * 1.15, settings
    assert pauses >= give_up / 5, "a server that restarts gets time to come back"
    # MLflow's defaults (7 retries, factor 2, 120 s timeouts) wait ~20 minutes on a silent server.


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_tracker(port: int) -> Tracker:
    from mlflow import MlflowClient

    tracker = Tracker.__new__(Tracker)  # the server is gone: no store checks
    tracker.uri = f"http://127.0.0.1:{port}"
    tracker.client = MlflowClient(tracker.uri)
    return tracker


def test_a_server_that_went_away_ends_in_one_line_naming_it(monkeypatch):
    import time

    from dedl_experiments.tracking.sqlite_store import server_retries
    from dedl_experiments.tracking.mlflow_store import StoreUnreachable
    from dedl_experiments.tracking.store_checks import TrackingError

    for name, value in server_retries(10).items():
        monkeypatch.setenv(name, value)
    tracker = _server_tracker(_closed_port())
    start = time.monotonic()
    with pytest.raises(StoreUnreachable) as caught:
        tracker.log_metrics("abc", {"val_loss": 1.0})
    assert time.monotonic() - start < 15
    message = str(caught.value)
    assert isinstance(caught.value, TrackingError) and "\n" not in message
    assert message.startswith(f"MLflow tracking server {tracker.uri} stopped answering "
                              "(Connection refused, after 2 retries); ")
    assert "rerun the same command once it answers, to resume the run" in message


def test_while_stopping_a_server_that_went_away_is_tried_once(monkeypatch):
    import time

    from dedl_experiments.tracking.sqlite_store import server_retries
    from dedl_experiments.tracking.mlflow_store import StoreUnreachable

    for name, value in server_retries(600).items():  # minutes of retries otherwise
        monkeypatch.setenv(name, value)
    tracker = _server_tracker(_closed_port())
    start = time.monotonic()
    with pytest.raises(StoreUnreachable), tracker.failing_fast():
        tracker.end("abc", "KILLED")
    assert time.monotonic() - start < 5
    retries = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
    assert os.environ[retries] == server_retries(600)[retries], "the job's own settings come back"


def test_a_signal_stops_a_request_that_is_being_retried_at_once(monkeypatch):
    import signal
    import threading
    import time

    from dedl_experiments.run.stop import STOP, Terminated
    from dedl_experiments.tracking.sqlite_store import server_retries

    for name, value in server_retries(600).items():
        monkeypatch.setenv(name, value)
    tracker = _server_tracker(_closed_port())
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    start = time.monotonic()
    with pytest.raises(Terminated) as caught, STOP.handling_signals():
        STOP.enter("metric logging", 2, 3)
        timer.start()
        tracker.log_metrics("abc", {"val_loss": 1.0})
    assert time.monotonic() - start < 4
    assert caught.value.exit_code == 143 and str(caught.value) == "SIGTERM in epoch 2/3 (metric logging)"


def test_outside_a_server_request_a_signal_still_waits_for_the_stage_to_end():
    import signal

    from dedl_experiments.run.stop import STOP, Terminated

    with pytest.raises(Terminated), STOP.handling_signals():
        STOP.enter("checkpoint save", 2, 3)
        os.kill(os.getpid(), signal.SIGTERM)  # deferred: the save completes
        finished = True
        with STOP.cut_at_once():
            pass  # a signal that arrived before does not cut what comes next
        assert finished and STOP.signal == signal.SIGTERM
        STOP.check()


@pytest.mark.parametrize("value", ["abc", -5, 0, True])
def test_a_bad_give_up_time_is_one_line_naming_the_setting(value):
    from omegaconf import OmegaConf

    from dedl_experiments.tracking.store_checks import TrackingError
    from dedl_experiments.tracking.mlflow_store import bound_server_retries

    cfg = OmegaConf.create({"tracking": {"uri": None, "give_up_after_s": value}})
    with pytest.raises(TrackingError, match=rf"^tracking.give_up_after_s={value} is invalid: it must be"):
        bound_server_retries(cfg)


def test_the_give_up_time_sets_mlflows_retries_and_null_leaves_them(monkeypatch):
    from omegaconf import OmegaConf

    from dedl_experiments.tracking import mlflow_store
    from dedl_experiments.tracking.sqlite_store import server_retries

    monkeypatch.setattr(tracking, "_users_retry_settings", None)  # a new process
    for name in server_retries(120):
        monkeypatch.delenv(name, raising=False)  # monkeypatch restores them after the test
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")  # the user's own
    mlflow_store.bound_server_retries(OmegaConf.create({"tracking": {"give_up_after_s": None}}))
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"
    mlflow_store.bound_server_retries(OmegaConf.create({"tracking": {"give_up_after_s": 120}}))
    assert {name: os.environ[name] for name in server_retries(120)} == server_retries(120)
    # The next job of the same process (a sequential sweep) with null gets the user's values
    # back, not the last job's.
    mlflow_store.bound_server_retries(OmegaConf.create({"tracking": {"give_up_after_s": None}}))
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"
    assert not any(name in os.environ for name in server_retries(120)
                   if name != "MLFLOW_HTTP_REQUEST_MAX_RETRIES")
