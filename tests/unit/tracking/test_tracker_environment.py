"""A Tracker talks to its own store through its own client: opening one leaves the process's
environment as it was, so the processes started afterwards (a sweep's jobs, a benchmark's next
section) track to the store their own config names."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import mlflow

from dedl_experiments.tracking.mlflow_store import Tracker

# Set by MLflow itself when its usage telemetry starts (in any process that uses MLflow): the id
# of that telemetry session, which names no store.
TELEMETRY_SESSION = "_MLFLOW_TELEMETRY_SESSION_ID"


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != TELEMETRY_SESSION}


def test_a_tracker_leaves_the_environment_unchanged(tmp_path: Path, empty_store: Path) -> None:
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    before = environment()
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "dedl-environment")
    run_id = tracker.start("run", {}).info.run_id
    tracker.log_metrics(run_id, {"loss": 1.0}, step=0)
    tracker.end(run_id, "FINISHED")
    assert environment() == before
    assert mlflow.MlflowClient(tracker.uri).get_run(run_id).data.metrics == {"loss": 1.0}
