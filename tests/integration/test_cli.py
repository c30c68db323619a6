"""The real CLI in a subprocess, on tiny synthetic data, recording into a real SQLite store."""

import re
from pathlib import Path

import mlflow
import pytest

from conftest import TINY, cli_env, run_cli

pytestmark = pytest.mark.slow


def _runs(cwd: Path, experiment: str = "dedl"):
    client = mlflow.MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    return client, ([] if exp is None else client.search_runs([exp.experiment_id]))


@pytest.mark.fresh_store
@pytest.mark.parametrize("override, expected", [
    ("encoder=resnet19", ["encoder=resnet19 is not an option of encoder; its options:",
                          "resnet18", "resnet101"]),
    ("app=sigmoid", ["app=sigmoid is not an option of app; its options: gelu, none, relu"]),
    ("optimizer.lr=-1", ["optimizer.lr=-1 is invalid: it must be a number > 0"]),
])
def test_bad_config_fails_before_any_work(tmp_path, override, expected):
    proc = run_cli([override, f"data_dir={tmp_path / 'data'}"], tmp_path, check=False)
    assert proc.returncode == 2
    (line,) = [text for text in (proc.stdout + proc.stderr).splitlines() if "Error" in text]
    for text in expected:
        assert text in line
    assert not (tmp_path / "data").exists() and not (tmp_path / "mlflow.db").exists()


def test_one_job_records_params_metrics_and_config(tmp_path, shared_data_dir):
    args = [*TINY, "budget.epochs=2", f"data_dir={shared_data_dir}"]
    proc = run_cli(args, tmp_path)
    name = "seg-unet-resnet18-app_none-cosine-random-smoke-s26"
    assert f"{name}: test IoU" in proc.stdout

    client, runs = _runs(tmp_path)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED" and run.info.run_name == name
    params = run.data.params
    assert params["encoder.name"] == "resnet18" and params["app.name"] == "none"
    assert float(params["optimizer.lr"]) == 3.6e-4 and params["seed"] == "26"
    assert params["architecture.decoder_channels"] == "[64, 32, 16]"
    metrics = run.data.metrics
    for key in ("test_iou", "test_pixel_accuracy", "test_dice", "test_miou", "train_time_s",
                "train_loss", "train_iou", "val_loss", "val_iou", "params_net"):
        assert key in metrics, key
    assert 0.0 <= metrics["test_iou"] <= 1.0
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_iou")] == [0, 1]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "best_model.pt", "metrics.json"} <= artifacts

    # The same cell again is skipped, from any folder; force=true reruns it.
    again = run_cli(args, tmp_path)
    assert "already FINISHED" in again.stdout + again.stderr
    assert len(_runs(tmp_path)[1]) == 1
    run_cli([*args, "force=true"], tmp_path)
    assert len(_runs(tmp_path)[1]) == 2


def test_multirun_runs_every_job_of_the_sweep(tmp_path, shared_data_dir):
    proc = run_cli(["-m", *TINY, f"data_dir={shared_data_dir}", "app=none,gelu"], tmp_path)
    _, runs = _runs(tmp_path)
    assert sorted(r.data.params["app.name"] for r in runs) == ["gelu", "none"]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert "2 runs in sqlite:///mlflow.db" in proc.stdout
    for name in ("app_none", "app_gelu"):
        # The closing line of each run shows its task's summary metric (Task.summary_metric).
        assert re.search(rf"^  seg-unet-resnet18-{name}-cosine-random-smoke-s26 +FINISHED +test_iou 0\.\d{{4}}$",
                         proc.stdout, re.M), proc.stdout


def test_missing_pretrained_weights_stop_the_job_before_training(tmp_path, shared_data_dir):
    proc = run_cli([*TINY, "init=imagenet", f"data_dir={shared_data_dir}"], tmp_path, check=False,
                   env=cli_env(DEDL_WEIGHTS_DIR=str(tmp_path / "weights"),
                               HF_HUB_CACHE=str(tmp_path / "hub")))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2
    assert "Pretrained weights smp encoder resnet18 / imagenet are not available offline" in out
    assert str(tmp_path / "weights") in out and str(tmp_path / "hub") in out
    assert "python -m dedl_experiments.weights fetch" in out
    assert _runs(tmp_path)[1] == []  # stopped before any run was started
