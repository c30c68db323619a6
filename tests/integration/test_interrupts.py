"""Ctrl-C (SIGINT) or SIGTERM at any moment of a job: one line naming the signal and the
1-based epoch, exit code 130 or 143, no traceback, the run KILLED (never FAILED), and a rerun
that resumes it to the result of an uninterrupted run (bit-equal on CPU, see test_resume.py).
In a sweep, the first Ctrl-C stops the whole sweep.

Real signals go to the real CLI. DEDL_TEST_PAUSE_AT (stop.pause_for_test) holds the job at the
moment to hit until the signal has arrived.
"""

import signal
import time
from pathlib import Path
from subprocess import Popen

import pytest
import torch

from conftest import TINY, cli_env, run_cli
from helpers import best_model_state, mlflow_runs, start_cli

pytestmark = pytest.mark.slow
# Three epochs of images of one 32 px tile each (6 train, 4 val, 4 test tiles), two a batch.
JOB = [*TINY, "budget.epochs=3", "train.patience=null", "budget.batch_size=2",
       "dataset.height=512", "dataset.width=512"]
# One thread: OpenMP threads that wait for each other slow a step tenfold when other processes
# share the cores. Every run of this module uses it, which bit-equality needs.
THREADS = {"OMP_NUM_THREADS": "1"}
RERUN = "rerun the same command to resume"

# Each rerun resumes the run stopped before it and is itself stopped at the next moment, so
# that each moment costs one process. (moment the job waits at, signal, how many, where the
# message says the job stopped, the epoch the rerun resumes from)
MOMENTS = [
    ("train_step", signal.SIGINT, 1, "epoch 2/3 (train)", None),
    ("validation", signal.SIGTERM, 1, "epoch 2/3 (validation)", 2),
    # A second Ctrl-C cuts the save short: the checkpoint before it stays and is resumed from.
    ("checkpoint_save", signal.SIGINT, 2, "epoch 2/3 (checkpoint save)", 2),
    # One Ctrl-C lets the save complete: the rerun goes on from the next epoch.
    ("checkpoint_save", signal.SIGINT, 1, "epoch 2/3 (checkpoint save)", 2),
    ("mlflow_log", signal.SIGTERM, 1, "epoch 3/3 (metric logging)", 3),
]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, shared_data_dir):
    """An uninterrupted run of JOB, its output captured (not a terminal)."""
    cwd = tmp_path_factory.mktemp("reference")
    proc = run_cli([*JOB, f"data_dir={shared_data_dir}"], cwd, env=cli_env(**THREADS))
    client, (run,) = mlflow_runs(cwd)
    return proc.stdout + proc.stderr, client, run


def _stop_at(moment: str, sig: signal.Signals, count: int, args: list[str], cwd: Path):
    """Run the CLI until it waits at `moment`, send `sig` `count` times; its exit code and
    output."""
    (cwd / f"{moment}.paused").unlink(missing_ok=True)
    proc = start_cli(args, cwd, cli_env(**THREADS, DEDL_TEST_PAUSE_AT=moment,
                                        DEDL_TEST_PAUSE_SIGNALS=str(count)))
    for received in range(count):
        _wait_paused(cwd / f"{moment}.paused", received, proc)
        proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, out


def _wait_paused(marker: Path, received: int, proc: Popen, timeout: float = 300) -> None:
    """Until the job waits at the marker's moment, having received `received` signals."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if marker.exists() and marker.read_text() == str(received):
            return
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.02)
    raise AssertionError(f"the job did not wait at {marker.stem} in {timeout}s")


def _assert_one_line(out: str, stopped: str) -> None:
    assert "Traceback" not in out, out
    errors = [line for line in out.splitlines()
              if "ERROR" in line or "Error" in line or "stopped by" in line]
    assert len(errors) == 1 and errors[0].endswith(f"stopped by {stopped}; {RERUN}"), out


def test_outside_a_terminal_no_progress_bars_and_the_training_time_per_epoch(reference):
    out, client, run = reference
    assert "\r" not in out and "it/s]" not in out and "s/it]" not in out, out
    epoch_time = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "epoch_time_s")}
    train_time = client.get_metric_history(run.info.run_id, "epoch_train_time_s")
    assert sorted(m.step for m in train_time) == [0, 1, 2]
    assert all(0 < m.value < epoch_time[m.step] for m in train_time)


def test_a_signal_at_any_moment_stops_in_one_line_and_the_rerun_resumes(
        reference, tmp_path, shared_data_dir):
    args = [*JOB, f"data_dir={shared_data_dir}"]
    run_id = None
    for moment, sig, count, where, resumed_from in MOMENTS:
        step = f"{sig.name} x{count} in {moment}"
        code, out = _stop_at(moment, sig, count, args, tmp_path)
        assert code == 128 + sig, f"{step}:\n{out}"
        _assert_one_line(out, f"{sig.name} in {where}")
        if resumed_from:
            assert f"({run_id}) from epoch {resumed_from}" in out, f"{step}:\n{out}"
        _, (run,) = mlflow_runs(tmp_path)
        assert run.info.status == "KILLED", step
        assert run.data.tags["dedl.interrupted"] == f"Terminated: {sig.name} in {where}", step
        assert not list(tmp_path.glob("outputs/run/*/checkpoints/.*.tmp")), step
        run_id = run.info.run_id

    again = run_cli(args, tmp_path, env=cli_env(**THREADS))
    assert f"({run_id}) from epoch 4" in again.stdout + again.stderr
    client, (resumed,) = mlflow_runs(tmp_path)
    assert resumed.info.run_id == run_id and resumed.info.status == "FINISHED"
    history = client.get_metric_history(run_id, "val_loss")
    assert sorted(m.step for m in history) == [0, 1, 2], "each epoch logged once"
    _, _, expected = reference
    for key in ("test_iou", "test_pixel_accuracy", "test_dice"):
        assert resumed.data.metrics[key] == expected.data.metrics[key], key
    got, want = best_model_state(resumed), best_model_state(expected)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def test_ctrl_c_stops_a_whole_sweep_in_one_line(tmp_path, shared_data_dir):
    # Hydra's local launcher runs the jobs one after the other in this process.
    args = ["-m", *JOB, f"data_dir={shared_data_dir}", "app=none,relu"]
    code, out = _stop_at("train_step", signal.SIGINT, 1, args, tmp_path)
    assert code == 130, out
    _assert_one_line(out, "SIGINT in epoch 2/3 (train)")
    _, runs = mlflow_runs(tmp_path)
    assert [r.info.status for r in runs] == ["KILLED"], "the second job must not start"
