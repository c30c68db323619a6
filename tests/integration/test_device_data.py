"""The training data on the device (loader.device_data=true), through the CLI on CPU: a run
interrupted after its first epoch and resumed equals the uninterrupted run, bit for bit
(augmentation and shuffling drawn from (seed, epoch, item) alone on this path too)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import mlflow
import pytest
import torch

from conftest import TINY, cli_env, run_cli
from helpers import start_cli

pytestmark = pytest.mark.slow
# One torch thread: on a loaded 2-core machine two threads wait on each other (10x slower).
JOB = [*TINY, "budget.epochs=2", "budget.batch_size=8", "train.patience=null",
       "loader.device_data=true", "speed.cpu_threads=1"]
ENV = {"OMP_NUM_THREADS": "1"}


def _run(cwd: Path):
    client = mlflow.MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("dedl").experiment_id])
    return client, run


def _weights(run) -> dict:
    return torch.load(Path(run.data.tags["dedl.output_dir"]) / "best_model.pt",
                      weights_only=True)["state_dict"]


def _start(args: list[str], cwd: Path, **env: str) -> subprocess.Popen:
    return start_cli(args, cwd, cli_env(**ENV, **env))


def test_device_data_run_resumed_after_an_epoch_is_bit_equal(tmp_path, job_folder, shared_data_dir):
    args = [*JOB, f"data_dir={shared_data_dir}"]
    # The uninterrupted run and the one to interrupt side by side (one builds the tile cache
    # under its lock, the other waits for it).
    reference = _start(args, job_folder("reference"))
    work = job_folder("work")
    # The job waits at its first training step of epoch 2 (after epoch 1's checkpoint) and
    # writes train_step.paused: killed there, it has exactly one epoch behind it.
    proc = _start(args, work, DEDL_TEST_PAUSE_AT="train_step")
    deadline = time.monotonic() + 240
    while not (work / "train_step.paused").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    last = torch.load(next(work.glob("outputs/run/*/checkpoints/last.pt")), weights_only=True)
    assert last["fit"]["epoch"] == 1

    out, _ = reference.communicate(timeout=240)
    assert reference.returncode == 0, out[-4000:]
    assert "training data on the device: loader.device_data=true" in out
    _, expected = _run(tmp_path / "reference")

    again = run_cli(args, work, env=cli_env(**ENV))
    assert "resuming MLflow run" in again.stdout + again.stderr
    client, resumed = _run(work)
    assert resumed.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(resumed.info.run_id, "train_loss")] == [0, 1]
    for key in ("train_loss", "val_loss", "test_iou", "test_pixel_accuracy", "test_dice"):
        assert resumed.data.metrics[key] == expected.data.metrics[key], key
    got, want = _weights(resumed), _weights(expected)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
