"""Sweeps (`-m`) and bad settings or busy cells: a bad value of any job, or an unusable store,
stops the sweep with one line and exit code 2 before anything is created; the summary tells a
cell skipped as FINISHED from one another job is training."""

import time

import pytest

from conftest import TINY, compose_config, run_cli
from dedl_experiments.run import lifecycle
from dedl_experiments.tracking import cells, mlflow_store, run_tags
from dedl_experiments.tasks import task_class

pytestmark = pytest.mark.slow


def _one_line(proc, fragment: str) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out and "warn" not in out, out
    errors = [line for line in out.splitlines() if "Error" in line]
    assert len(errors) == 1 and fragment in errors[0], out


@pytest.mark.fresh_store
@pytest.mark.parametrize("values, fragment", [
    (["seed="], "ConfigError: seed='' is invalid: it must be an integer >= 0"),
    (["seed=1,abc"], "ConfigError: seed='abc' is invalid: it must be an integer >= 0 (the sweep's seed=abc)"),
    (["seed=1,2", "optimizer.lr=1e-3,-1"], "ConfigError: optimizer.lr=-1 is invalid: it must be a number > 0"),
])
def test_a_bad_sweep_value_stops_the_sweep_before_anything_is_created(tmp_path, values, fragment):
    proc = run_cli(["-m", *TINY, f"data_dir={tmp_path / 'data'}", *values], tmp_path, check=False)
    _one_line(proc, fragment)
    assert list(tmp_path.iterdir()) == [], "the sweep created something"


@pytest.mark.fresh_store
def test_an_unusable_store_stops_a_sweep_with_exit_2(tmp_path):
    proc = run_cli(["-m", *TINY, f"data_dir={tmp_path / 'data'}", "tracking.uri=sqlite://", "seed=1,2"],
                   tmp_path, check=False)
    _one_line(proc, "TrackingError: tracking.uri=sqlite:// is an in-memory SQLite store")
    assert not (tmp_path / "data" / "synthetic").exists()


def test_the_summary_tells_a_busy_cell_from_a_finished_one(tmp_path, shared_data_dir):
    args = [*TINY, f"data_dir={shared_data_dir}"]
    prepare = run_cli(args, tmp_path, module="dedl_experiments.prepare")
    digest = next(line.split()[-1] for line in prepare.stdout.splitlines()
                  if line.startswith("dataset digest"))
    cfg = compose_config(args)
    key = cells.cell_key(cfg, digest)
    tracker = mlflow_store.Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "dedl")
    claims = tracker.experiment_id_of(run_tags.CLAIMS_EXPERIMENT)
    tracker.start("held elsewhere", {lifecycle.CLAIM_TAG: key, "dedl.host": "node-b", "dedl.pid": "4242",
                                     lifecycle.HEARTBEAT_TAG: f"{time.time():.3f}"}, experiment_id=claims)

    proc = run_cli(["-m", *args], tmp_path)
    summary = next(line for line in proc.stdout.splitlines() if line.startswith("Sweep "))
    assert summary.endswith("0 runs in sqlite:///mlflow.db, 0 cells skipped (already FINISHED), "
                            "1 skipped (being trained by another job)"), proc.stdout
    [busy] = [line for line in proc.stdout.splitlines() if line.startswith("  job 0 skipped: ")]
    assert f"{task_class(cfg).run_name(cfg)}: cell {key} is being trained by another job" in busy
    assert "on host node-b pid 4242" in busy
