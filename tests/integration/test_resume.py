"""Faults cost minutes, not the sweep: kill -9 and SIGTERM resume, NaN fails one cell, a
killed sweep reruns only what is missing, a damaged checkpoint is survived.

Bit-equality on CPU rests on: augmentation and shuffling drawn from (seed, epoch, item) only,
the full optimiser / scheduler / RNG state in every checkpoint, and the same thread count.
"""

import os
import signal

import pytest
import torch

from conftest import TINY, run_cli
from helpers import best_model_state, mlflow_runs, start_cli, wait_for

pytestmark = pytest.mark.slow
# Four short epochs with many small batches, so that a kill lands inside an epoch.
JOB = [*TINY, "budget.epochs=4", "budget.batch_size=4", "train.patience=null"]


def test_kill_9_in_epoch_3_resumes_bit_equal(job_folder, shared_data_dir):
    args = [*JOB, f"data_dir={shared_data_dir}"]
    reference = job_folder("reference")
    run_cli(args, reference)
    _, (expected,) = mlflow_runs(reference)

    work = job_folder("work")
    proc = start_cli(args, work)
    # previous.pt appears when epoch 2's checkpoint replaces epoch 1's: epoch 3 is running.
    wait_for("outputs/run/*/checkpoints/previous.pt", work, proc)
    wait_for("outputs/run/*/checkpoints/last.pt", work, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    last = torch.load(next(work.glob("outputs/run/*/checkpoints/last.pt")), weights_only=True)
    assert last["fit"]["epoch"] == 2, "the kill must land inside epoch 3"
    client, (killed,) = mlflow_runs(work)
    assert killed.info.status == "RUNNING"
    # As a run recorded before runs named their summary metric: the resumed run learns it.
    client.delete_tag(killed.info.run_id, "dedl.summary_metric")

    again = run_cli(args, work)
    assert "resuming MLflow run" in again.stdout + again.stderr
    client, runs = mlflow_runs(work)
    assert [r.info.run_id for r in runs] == [killed.info.run_id]
    (resumed,) = runs
    assert resumed.info.status == "FINISHED" and resumed.data.tags["dedl.summary_metric"] == "test_iou"
    assert [m.step for m in client.get_metric_history(resumed.info.run_id, "val_loss")] == [0, 1, 2, 3]
    for key in ("test_iou", "test_pixel_accuracy", "test_dice"):
        assert resumed.data.metrics[key] == expected.data.metrics[key], key
    got, want = best_model_state(resumed), best_model_state(expected)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def test_sigterm_saves_marks_killed_and_the_rerun_resumes(tmp_path, shared_data_dir):
    args = [*JOB, f"data_dir={shared_data_dir}"]
    proc = start_cli(args, tmp_path)
    wait_for("outputs/run/*/checkpoints/last.pt", tmp_path, proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out
    assert "rerun the same command to resume" in out
    _, (run,) = mlflow_runs(tmp_path)
    assert run.info.status == "KILLED" and "Terminated" in run.data.tags["dedl.interrupted"]
    assert list(tmp_path.glob("outputs/run/*/checkpoints/last.pt"))

    run_cli(args, tmp_path)
    _, runs = mlflow_runs(tmp_path)
    assert [r.info.run_id for r in runs] == [run.info.run_id]
    assert runs[0].info.status == "FINISHED"


def test_a_damaged_checkpoint_falls_back_to_the_previous_one(tmp_path, shared_data_dir):
    args = [*JOB, f"data_dir={shared_data_dir}"]
    proc = start_cli(args, tmp_path)
    wait_for("outputs/run/*/checkpoints/previous.pt", tmp_path, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    last = next(tmp_path.glob("outputs/run/*/checkpoints/last.pt"))
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # truncated

    again = run_cli(args, tmp_path)
    log = again.stdout + again.stderr
    assert f"checkpoint {last} is damaged" in log and "resuming MLflow run" in log
    _, runs = mlflow_runs(tmp_path)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"


def test_resume_false_starts_fresh_and_marks_the_old_run_killed(tmp_path, shared_data_dir):
    args = [*JOB, f"data_dir={shared_data_dir}"]
    proc = start_cli(args, tmp_path)
    wait_for("outputs/run/*/checkpoints/last.pt", tmp_path, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_cli([*args, "resume=false"], tmp_path)
    _, runs = mlflow_runs(tmp_path)
    assert sorted(r.info.status for r in runs) == ["FINISHED", "KILLED"]


def test_nan_fails_one_cell_and_the_sweep_goes_on(tmp_path, shared_data_dir):
    # The failing cell first: the sweep goes on to the next one.
    proc = run_cli(["-m", *TINY, f"data_dir={shared_data_dir}", "optimizer.lr=1e30,1e-3"],
                   tmp_path, check=False)
    assert proc.returncode != 0
    assert "1 job(s) of this sweep failed" in proc.stdout
    assert "job 0: NonFiniteLoss: non-finite" in proc.stdout
    _, runs = mlflow_runs(tmp_path)
    by_lr = {float(r.data.params["optimizer.lr"]): r for r in runs}
    assert by_lr[1e-3].info.status == "FINISHED"
    failed = by_lr[1e30]
    assert failed.info.status == "FAILED"
    assert "non-finite" in failed.data.tags["dedl.failure"] and failed.data.tags["dedl.failed_epoch"] == "0"
    # The report shows that cell as failed (selecting the runs with that learning rate).
    lr = failed.data.params["optimizer.lr"]
    report = run_cli(["table=table2", "budget=smoke", "init=random", f"where.optimizer.lr={lr}",
                      f"out={tmp_path / 'reports'}"], tmp_path, module="dedl_experiments.report")
    row = next(line for line in report.stdout.splitlines() if line.startswith("| ResNet-18"))
    assert "failed (1)" in row.split("|")[2]


def test_a_killed_sweep_reruns_only_what_is_missing(tmp_path, shared_data_dir):
    args = ["-m", *TINY, f"data_dir={shared_data_dir}", "app=none,gelu"]
    proc = start_cli(args, tmp_path, new_session=True)
    wait_for("outputs/multirun/*/1/checkpoints/last.pt", tmp_path, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _, runs = mlflow_runs(tmp_path)
    assert sorted(r.info.status for r in runs) == ["FINISHED", "RUNNING"]

    again = run_cli(args, tmp_path)
    assert again.stdout.count("skip seg-") + again.stderr.count("skip seg-") == 1
    assert "1 runs in sqlite:///mlflow.db, 1 cells skipped" in again.stdout
    _, runs = mlflow_runs(tmp_path)
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    assert sorted(r.data.params["app.name"] for r in runs) == ["gelu", "none"]
