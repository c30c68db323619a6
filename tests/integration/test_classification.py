"""Classification end to end: one parent run per cell, one child run per fold, fold=K jobs."""

import re
from pathlib import Path

import mlflow
import pytest

from conftest import TINY, run_cli

pytestmark = pytest.mark.slow
# 30 synthetic images (24 train / 6 test) of 32 px, 3 folds, 1 epoch.
CLS = ["task=classification", *TINY, "dataset.n_images=30", "task.folds=3"]


def _client(cwd: Path):
    return mlflow.MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")


def _runs(cwd: Path):
    client = _client(cwd)
    exp = client.get_experiment_by_name("dedl")
    return client.search_runs([exp.experiment_id])


def test_parent_holds_fold_mean_and_children_hold_folds(tmp_path, shared_data_dir):
    proc = run_cli([*CLS, f"data_dir={shared_data_dir}"], tmp_path)
    assert "cls-resnet18-random-smoke-s26: test F1 (micro)" in proc.stdout
    runs = _runs(tmp_path)
    parents = [r for r in runs if r.data.tags.get("dedl.parent") == "1"]
    children = [r for r in runs if "dedl.fold" in r.data.tags]
    assert len(parents) == 1 and len(children) == 3
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert sorted(r.data.tags["dedl.fold"] for r in children) == ["0", "1", "2"]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children)
    # How many folds a full cell has, for the report's count of missing runs.
    assert {r.data.tags["dedl.folds"] for r in [parent, *children]} == {"3"}
    f1 = [r.data.metrics["test_f1_micro"] for r in children]
    assert parent.data.metrics["test_f1_micro"] == pytest.approx(sum(f1) / 3)
    assert "test_f1_micro_std" in parent.data.metrics
    child = children[0]
    for key in ("test_f1_macro", "test_recall_as_released", "test_precision_micro",
                "test_f1_tfhl", "test_support_other", "swa_snapshots", "val_f1_micro"):
        assert key in child.data.metrics, key
    assert child.data.metrics["swa_snapshots"] >= 1
    assert child.data.params["fold"] in ("0", "1", "2") and parent.data.params["fold"] == "None"
    names = {a.path for a in _client(tmp_path).list_artifacts(child.info.run_id)}
    assert {"best_model.pt", "per_class_metrics.csv", "per_class_metrics.json",
            "test_predictions.png", "config.yaml"} <= names


def test_fold_jobs_fill_one_parent(tmp_path, shared_data_dir):
    common = [*CLS, f"data_dir={shared_data_dir}", "seed=77"]
    run_cli([*common, "fold=1"], tmp_path)
    parents = [r for r in _runs(tmp_path) if r.data.tags.get("dedl.parent") == "1"]
    assert len(parents) == 1 and parents[0].info.status == "RUNNING"
    assert parents[0].data.tags["dedl.folds_finished"] == "1/3"
    sweep = run_cli(["-m", *common, "fold=0,2"], tmp_path)
    runs = _runs(tmp_path)
    # The sweep's closing line shows the cell (its parent run, started by the first job) with
    # the task's summary metric.
    assert re.search(r"^  cls-\S+-s77 +FINISHED +test_f1_micro [01]\.\d{4}$", sweep.stdout, re.M), sweep.stdout
    parents = [r for r in runs if r.data.tags.get("dedl.parent") == "1"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len([r for r in runs if "dedl.fold" in r.data.tags]) == 3
    # The whole cell is now finished: the full job is skipped.
    again = run_cli(common, tmp_path)
    assert "already FINISHED" in again.stdout + again.stderr
    assert len(_runs(tmp_path)) == len(runs)


def test_unknown_init_for_a_model_lists_the_valid_ones(tmp_path):
    proc = run_cli(["task=classification", "encoder=convnext_tiny", "init=noisy_student",
                    f"data_dir={tmp_path}"], tmp_path, check=False)
    assert proc.returncode == 2
    assert "init=noisy_student is not available for encoder=convnext_tiny" in proc.stderr + proc.stdout
    assert "valid inits for it: random, imagenet" in proc.stderr + proc.stdout
