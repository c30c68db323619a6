"""Training subsets through the real CLI: a run records its training images (counts as params and
tags, ids as an artifact) so pairing and nesting can be checked from the store; a subset too
small is one line before the store is created."""

from pathlib import Path

import pytest

from conftest import TINY, compose_config, run_cli
from dedl_experiments.tasks import task_class
from helpers import mlflow_runs
from test_data_faults_cli import _folder_dataset

pytestmark = pytest.mark.slow


def test_a_run_records_its_training_images_the_other_arm_trains_on_the_same(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_cli([*TINY, f"data_dir={data}", "dataset.train_fraction=0.5"], tmp_path)
    client, runs = mlflow_runs(tmp_path)
    (run,) = runs
    ids = Path(client.download_artifacts(run.info.run_id, "train_samples.txt", str(tmp_path))).read_text().split()
    assert run.data.params["n_train_images"] == "3" and run.data.params["n_train_tiles"] == "36"
    assert run.data.params["dataset.train_fraction"] == "0.5"
    assert {k: run.data.tags[f"dedl.{k}"] for k in ("train_fraction", "train_count", "n_train_images",
                                                     "n_train_tiles")} == {
        "train_fraction": "0.5", "train_count": "none", "n_train_images": "3", "n_train_tiles": "36"}
    assert run.data.metrics["train_tiles"] == 36
    # The other arm of the paired comparison (the APP), same seed and fraction: the same images.
    arm = compose_config([*TINY, f"data_dir={data}", "dataset.train_fraction=0.5", "app=gelu"])
    task = task_class(arm)
    assert ids == task.training_subset(arm, task.prepare(arm)).splits["train"] == sorted(ids)


@pytest.mark.fresh_store
def test_a_count_larger_than_the_training_set_is_one_line_before_the_store_is_created(tmp_path: Path) -> None:
    root = _folder_dataset(tmp_path / "plain")  # 2 training images, 1 validation, 1 test
    proc = run_cli([*TINY, "dataset=folder", f"dataset.root={root}", f"data_dir={tmp_path / 'd'}",
                    "dataset.train_count=3"], tmp_path, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in out, out
    (line,) = [line for line in out.splitlines() if "Error" in line]
    assert line.endswith("ConfigError: dataset.train_count=3 is larger than the training set: 2 training "
                         "images available; use at most 2"), line
    assert not (tmp_path / "mlflow.db").exists()
