"""What a cell is and who trains it: the data's content is part of the cell (a moved copy is the
same cell, other data is another), and one process trains a cell at a time, on one host or
several."""

import shutil
import time
from pathlib import Path

import mlflow
import pytest

from conftest import TINY, compose_config, run_cli
from helpers import start_cli
from dedl_experiments.run import lifecycle
from dedl_experiments.tracking import cells, mlflow_store, run_tags
from dedl_experiments.data import synthetic

pytestmark = pytest.mark.slow


def _runs(cwd: Path, experiment: str = "dedl"):
    client = mlflow.MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id])


def _job(root: Path, cwd: Path) -> list[str]:
    return [*TINY, "dataset=myositis", f"dataset.root={root}", f"data_dir={cwd / 'data'}"]


def test_other_data_is_another_cell_and_a_moved_copy_the_same(tmp_path):
    first = synthetic.write_inform_dataset(tmp_path / "a", height=88, width=117,
                                           images_per_patient=1, seed=3)
    other = synthetic.write_inform_dataset(tmp_path / "b", height=88, width=117,
                                           images_per_patient=1, seed=4)
    moved = shutil.copytree(first, tmp_path / "elsewhere" / "a")
    run_cli(_job(first, tmp_path), tmp_path)
    trained = run_cli(_job(other, tmp_path), tmp_path)
    assert "already FINISHED" not in trained.stdout + trained.stderr
    skipped = run_cli(_job(moved, tmp_path), tmp_path)
    assert "already FINISHED" in skipped.stdout + skipped.stderr

    runs = _runs(tmp_path)
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    digests = {r.data.tags["dedl.dataset_digest"] for r in runs}
    assert len(digests) == 2
    # The prepared data is the run's MLflow dataset input, named and digested.
    inputs = [r.inputs.dataset_inputs[0].dataset for r in runs]
    assert {d.name for d in inputs} == {"myositis"}
    assert {d.digest for d in inputs} == {d[:36] for d in digests}


def test_two_identical_jobs_started_together_train_the_cell_once(tmp_path, shared_data_dir):
    # Several short epochs: the winner still trains when the other reaches the claim.
    args = [*TINY, f"data_dir={shared_data_dir}", "budget.epochs=4", "budget.batch_size=4"]
    procs = [start_cli(args, tmp_path) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    busy = [o for o in outputs if "is being trained by another job" in o]
    assert len(busy) == 1, outputs
    runs = _runs(tmp_path)
    assert [r.info.status for r in runs if r.data.tags.get("dedl.seed") == "26"] == ["FINISHED"]
    # Both claims are closed: neither blocks a later job.
    claims = _runs(tmp_path, run_tags.CLAIMS_EXPERIMENT)
    assert claims and all(c.info.status != "RUNNING" for c in claims)


def test_a_live_claim_from_another_host_is_respected_until_its_lease_runs_out(tmp_path,
                                                                               shared_data_dir):
    args = [*TINY, f"data_dir={shared_data_dir}", "claim.lease_s=60"]
    # The job's cell key: the same config and data as the CLI job below.
    prepare = run_cli(args, tmp_path, module="dedl_experiments.prepare")
    digest = next(line.split()[-1] for line in prepare.stdout.splitlines()
                  if line.startswith("dataset digest"))
    key = cells.cell_key(compose_config(args), digest)

    tracker = mlflow_store.Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "dedl")
    claims = tracker.experiment_id_of(run_tags.CLAIMS_EXPERIMENT)
    other = tracker.start("held elsewhere", {
        lifecycle.CLAIM_TAG: key, "dedl.host": "node-b", "dedl.pid": "4242",
        lifecycle.HEARTBEAT_TAG: f"{time.time():.3f}"}, experiment_id=claims).info.run_id

    proc = run_cli(args, tmp_path)
    assert "is being trained by another job" in proc.stderr + proc.stdout
    assert "node-b" in proc.stderr + proc.stdout
    assert not _runs(tmp_path)

    # The other host went silent for longer than the lease: its claim no longer holds.
    tracker.set_tags(other, {lifecycle.HEARTBEAT_TAG: f"{time.time() - 3600:.3f}"})
    run_cli(args, tmp_path)
    assert [r.info.status for r in _runs(tmp_path)] == ["FINISHED"]
    assert tracker.client.get_run(other).info.status == "KILLED"


def test_a_run_recorded_before_digests_is_adopted_when_asked(tmp_path, shared_data_dir):
    args = [*TINY, f"data_dir={shared_data_dir}"]
    cfg = compose_config(args)
    tracker = mlflow_store.Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "dedl")
    old = tracker.start("recorded before digests", {"dedl.cell_key": cells.cell_key(cfg, None)})
    tracker.log_params(old.info.run_id, {"dataset.name": "synthetic"})
    tracker.end(old.info.run_id, "FINISHED")

    adopted = run_cli([*args, "adopt_legacy_runs=true"], tmp_path)
    assert "already FINISHED" in adopted.stdout + adopted.stderr
    tags = tracker.client.get_run(old.info.run_id).data.tags
    assert tags["dedl.adopted_legacy_key"] == cells.cell_key(cfg, None)
    assert tags["dedl.cell_key"] == cells.cell_key(cfg, tags["dedl.dataset_digest"])
    assert len(_runs(tmp_path)) == 1
