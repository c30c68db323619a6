"""Helpers for tests that start the CLI as a real process and look at what it left behind."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import mlflow
import torch

from conftest import cli_env
from forked_cli import start_forked


def mlflow_runs(cwd: Path, experiment: str = "dedl"):
    """The MLflow client of the store in `cwd` and the runs of `experiment` there."""
    client = mlflow.MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    return client, ([] if exp is None else client.search_runs([exp.experiment_id]))


def start_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None,
              new_session: bool = False) -> subprocess.Popen:
    """The CLI in the background, stdout and stderr together in `proc.stdout`; with
    `new_session`, the leader of its own process group (for os.killpg)."""
    return start_forked("dedl_experiments", args, cwd, env or cli_env(), new_session)


def wait_for(path_glob: str, cwd: Path, proc: subprocess.Popen, timeout: float = 300) -> Path:
    """The first file matching `path_glob` under `cwd`, once there; fails if `proc` ends first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = list(cwd.glob(path_glob))
        if found:
            return found[0]
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.02)
    raise AssertionError(f"{path_glob} did not appear in {timeout}s")


def best_model_state(run) -> dict:
    """The network weights a finished run kept for testing."""
    return torch.load(Path(run.data.tags["dedl.output_dir"]) / "best_model.pt",
                      weights_only=True)["state_dict"]
