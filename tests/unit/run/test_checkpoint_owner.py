"""A training checkpoint names its cell and MLflow run, and only that run resumes from it; a new
run never writes into a folder another run used."""

import json
import logging
import threading

import torch

from dedl_experiments.training import checkpoint
from dedl_experiments.run.folders import OWNER_FILE, own_output_dir

SEED_1 = {"key": "aaaa1111", "run_id": "run1", "run_name": "seg-s1"}
SEED_2 = {"key": "bbbb2222", "run_id": "run2", "run_name": "seg-s2"}


def _state(epoch: int) -> dict:
    return {"fit": {"epoch": epoch, "history": []}, "w": torch.full((2,), float(epoch))}


def test_another_runs_checkpoint_is_refused_naming_the_file_and_both_cells(tmp_path, caplog):
    checkpoint.save_training(tmp_path, _state(1), SEED_2)
    with caplog.at_level(logging.WARNING):
        assert checkpoint.load_training(tmp_path, SEED_1) is None
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.startswith(f"checkpoint {tmp_path / 'last.pt'} belongs to seg-s2 (cell bbbb2222, "
                              "MLflow run run2), not to seg-s1 (cell aaaa1111, MLflow run run1)")
    assert checkpoint.load_training(tmp_path, SEED_2)["fit"]["epoch"] == 1


def test_the_same_cell_in_another_run_is_refused_too(tmp_path):
    checkpoint.save_training(tmp_path, _state(1), SEED_1 | {"run_id": "older"})
    assert checkpoint.load_training(tmp_path, SEED_1) is None


def test_the_runs_own_previous_checkpoint_is_used_when_the_last_is_anothers(tmp_path):
    checkpoint.save_training(tmp_path, _state(1), SEED_1)
    checkpoint.save_training(tmp_path, _state(2), SEED_1)
    # Another cell's job overwrote last.pt (as versions that shared folders did).
    checkpoint.atomic_save(_state(4) | {"cell": SEED_2}, tmp_path / checkpoint.LAST)
    state = checkpoint.load_training(tmp_path, SEED_1)
    assert state["fit"]["epoch"] == 1 and state["cell"] == SEED_1


def test_a_checkpoint_that_names_no_run_is_used_unless_the_run_says_otherwise(tmp_path, caplog):
    checkpoint.atomic_save(_state(3), tmp_path / checkpoint.LAST)  # written by an older version
    assert checkpoint.load_training(tmp_path, SEED_1, lambda state: None)["fit"]["epoch"] == 3
    with caplog.at_level(logging.WARNING):
        assert checkpoint.load_training(tmp_path, SEED_1, lambda state: "its losses differ") is None
    assert f"checkpoint {tmp_path / 'last.pt'} names no run and its losses differ" in caplog.text


def test_a_new_run_takes_a_subfolder_of_a_folder_another_run_used(tmp_path):
    first = own_output_dir(tmp_path, SEED_1["key"], "seg-s1")
    assert first == tmp_path
    assert json.loads((tmp_path / OWNER_FILE).read_text())["cell_key"] == SEED_1["key"]
    second = own_output_dir(tmp_path, SEED_2["key"], "seg-s2")
    assert second == tmp_path / "seg-s2-bbbb2222"
    # The same cell again (force=true) gets another folder still.
    assert own_output_dir(tmp_path, SEED_2["key"], "seg-s2") == tmp_path / "seg-s2-bbbb2222-2"


def test_a_folder_an_older_version_wrote_to_counts_as_used(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    assert own_output_dir(tmp_path, SEED_1["key"], "seg-s1") == tmp_path / "seg-s1-aaaa1111"


def test_jobs_starting_together_take_different_folders(tmp_path):
    got = []
    threads = [threading.Thread(target=lambda k=k: got.append(own_output_dir(tmp_path, k, f"cell-{k}")))
               for k in ("k1", "k2", "k3", "k4")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(got)) == 4


def test_a_checkpoint_that_names_no_run_must_match_the_losses_the_run_recorded():
    from types import SimpleNamespace

    from dedl_experiments.run.job import _history_problem

    recorded = [SimpleNamespace(step=0, value=0.5), SimpleNamespace(step=1, value=0.25)]
    tracker = SimpleNamespace(metric_history=lambda run_id, key: recorded)

    def state(*losses):
        return {"fit": {"history": [{"val_loss": loss} for loss in losses]}}

    assert _history_problem(tracker, "run1", state(0.5)) is None  # one epoch: ahead of nothing
    assert _history_problem(tracker, "run1", state(0.5, 0.25, 0.2)) is None  # died before logging
    assert _history_problem(tracker, "run1", state(0.5, 0.3)) == (
        "its validation losses differ from those MLflow run run1 recorded")
    recorded.clear()
    assert _history_problem(tracker, "run1", state(0.5)) == "MLflow run run1 recorded no epoch to compare it with"


def test_default_output_folders_name_the_microsecond():
    # Jobs started in the same second (a SLURM array, two terminals) must not share a folder.
    import re

    from hydra import compose, initialize_config_dir

    from conftest import CONF

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", return_hydra_config=True)
    stamp = r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-\d{6}"
    assert re.fullmatch(rf"outputs/run/{stamp}", cfg.hydra.run.dir), cfg.hydra.run.dir
    assert re.fullmatch(rf"outputs/multirun/{stamp}", cfg.hydra.sweep.dir), cfg.hydra.sweep.dir
