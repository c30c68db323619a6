"""Tracking stores that cannot serve a job, refused in one line naming the URI as it was set: a
store that does not persist, and artifact folders that cannot be written. New experiments of a
SQLite store keep their artifacts beside it, not in the folder a job runs from."""

from pathlib import Path

import mlflow
import pytest

from dedl_experiments.tracking import mlflow_store, store_checks


@pytest.fixture(autouse=True)
def no_tracking_uri_variable(monkeypatch):
    """The user's MLFLOW_TRACKING_URI must not decide what these tests see."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.mark.parametrize("uri", ["sqlite://", "sqlite:///", "sqlite:///:memory:",
                                 "sqlite:///:memory:?cache=shared",
                                 "sqlite:///file:store?mode=memory&uri=true"])
def test_an_in_memory_store_is_refused(uri):
    with pytest.raises(store_checks.TrackingError) as raised:
        store_checks.check_store(uri)
    assert str(raised.value).startswith(f"tracking.uri={uri} is an in-memory SQLite store: nothing recorded")


@pytest.mark.parametrize("uri", ["sqlite:///mlflow.db", "sqlite:////data/mlflow.db",
                                 "sqlite+pysqlite:////data/mlflow.db", "postgresql://db/mlflow"])
def test_stores_on_disk_persist(uri):
    assert not store_checks.in_memory_store(uri)


def test_the_message_names_the_variable_a_uri_came_from(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "bogus://x")
    with pytest.raises(store_checks.TrackingError, match=r"^MLFLOW_TRACKING_URI=bogus://x: unknown scheme 'bogus'"):
        store_checks.check_store("bogus://x")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite://")
    with pytest.raises(store_checks.TrackingError, match=r"^MLFLOW_TRACKING_URI=sqlite:// is an in-memory"):
        store_checks.check_store("sqlite://")
    # Set in the config (another URI than the variable's): the option is named.
    with pytest.raises(store_checks.TrackingError, match=r"^tracking.uri=other://y: unknown scheme"):
        store_checks.check_store("other://y")


def test_new_experiments_keep_their_artifacts_beside_a_sqlite_store(tmp_path, monkeypatch):
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the folder a job runs from
    store = tmp_path / "store"
    store.mkdir()
    tracker = mlflow_store.Tracker(f"sqlite:///{store / 'mlflow.db'}", "dedl-table2")
    location = tracker.client.get_experiment(tracker.experiment_id).artifact_location
    assert Path(location) == store / "mlartifacts" / "dedl-table2"
    run = tracker.start("r", {})
    (tmp_path / "config.yaml").write_text("a: 1\n")
    tracker.log_artifact(run.info.run_id, tmp_path / "config.yaml")
    assert list(store.rglob("config.yaml")) and not (elsewhere / "mlruns").exists()


def test_an_artifact_folder_that_cannot_be_written_is_refused_before_any_run(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "mlartifacts").write_text("")  # a file where the artifacts would go
    uri = f"sqlite:///{store / 'mlflow.db'}"
    with pytest.raises(store_checks.TrackingError) as raised:
        store_checks.check_store(uri)
    assert str(raised.value).startswith(f"tracking.uri={uri}: its artifacts go to {store / 'mlartifacts'}, "
                                        f"and {store / 'mlartifacts'} is a file, not a folder")
    assert not (store / "mlflow.db").exists()


def test_an_existing_experiment_keeps_its_artifact_location_and_it_is_checked(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    # An experiment an older version made, its artifacts under a folder that is now a file.
    mlflow.MlflowClient(uri).create_experiment("dedl", artifact_location=str(blocker / "mlruns" / "1"))
    with pytest.raises(store_checks.TrackingError) as raised:
        mlflow_store.Tracker(uri, "dedl")
    assert f"experiment 'dedl' keeps its artifacts in {blocker / 'mlruns' / '1'}" in str(raised.value)
    assert f"{blocker} is a file, not a folder" in str(raised.value)
    # Another experiment of the store is not affected, and gets the new location.
    tracker = mlflow_store.Tracker(uri, "dedl-table2")
    location = tracker.client.get_experiment(tracker.experiment_id).artifact_location
    assert Path(location) == tmp_path / "mlartifacts" / "dedl-table2"
