"""A bad setting of where things go (tracking store, output or data folder) or a damaged cache:
one line naming the option, exit code 2, before any data work, and nothing left behind; a
damaged prepared cache is rebuilt, not reused."""

import http.server
import subprocess
import sys
import threading
from pathlib import Path

import mlflow
import numpy as np
import pytest

from conftest import TINY, cli_env, run_cli

pytestmark = pytest.mark.slow


def _one_line_error(proc, *fragments: str) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    errors = [line for line in out.splitlines() if "Error" in line]
    assert len(errors) == 1, out
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def not_mlflow():
    """A web server on 127.0.0.1 that is not an MLflow tracking server."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("uri, fragments", [
    ("bogus://store", ["tracking.uri=bogus://store", "unknown scheme 'bogus'", "sqlite:///"]),
    ("sqlite:///{file}/sub/mlflow.db", ["{file} is a file, not a folder"]),
    ("server", ["is not an MLflow tracking server", "HTTP 404"]),
])
def test_an_unusable_tracking_store_is_one_line_before_any_data_work(tmp_path, not_mlflow, uri,
                                                                     fragments):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    uri = not_mlflow if uri == "server" else uri.format(file=blocker)
    proc = run_cli([*TINY, f"tracking.uri={uri}", f"data_dir={tmp_path / 'data'}"], tmp_path,
                   check=False)
    _one_line_error(proc, "TrackingError", *(f.format(file=blocker) for f in fragments))
    assert not (tmp_path / "data" / "synthetic").exists(), "data work started"


def test_an_unwritable_output_folder_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = run_cli([*TINY, f"hydra.run.dir={blocker}/run"], tmp_path, check=False)
    _one_line_error(proc, "hydra.run.dir=", f"{blocker} is a file, not a folder")
    sweep = run_cli(["-m", *TINY, f"hydra.sweep.dir={blocker}/sweep", "seed=1,2"], tmp_path,
                    check=False)
    _one_line_error(sweep, "hydra.sweep.dir=")


@pytest.mark.fresh_store
def test_bad_data_fails_before_the_store_is_opened(tmp_path):
    proc = run_cli([*TINY, "dataset=folder", f"dataset.root={tmp_path / 'nowhere'}"], tmp_path,
                   check=False)
    _one_line_error(proc, "DataError", f"dataset root {tmp_path / 'nowhere'} does not exist")
    assert not (tmp_path / "mlflow.db").exists()


def test_prepare_cli_builds_and_a_damaged_cache_is_rebuilt(tmp_path):
    args = [*TINY, f"data_dir={tmp_path / 'data'}"]
    first = run_cli(args, tmp_path, module="dedl_experiments.prepare")
    cache = Path(next(line.split(": ", 1)[1] for line in first.stdout.splitlines()
                      if line.startswith("prepared data: ")))
    digest = next(line for line in first.stdout.splitlines() if line.startswith("dataset digest"))
    images = cache / "train_images.npy"
    expected = np.load(images)
    with open(images, "r+b") as handle:  # cut short, as a full disk or a killed copy leaves it
        handle.truncate(images.stat().st_size // 2)

    again = run_cli(args, tmp_path, module="dedl_experiments.prepare")
    log = again.stdout + again.stderr
    assert f"{images} has" in log and "rebuilding" in log, log
    assert digest in again.stdout
    np.testing.assert_array_equal(np.load(images), expected)
    reuse = run_cli(args, tmp_path, module="dedl_experiments.prepare")
    assert "reusing" in reuse.stdout + reuse.stderr and "rebuilding" not in reuse.stdout + reuse.stderr


@pytest.mark.fresh_store
@pytest.mark.parametrize("uri", ["sqlite:///", "sqlite://", "sqlite:///:memory:"])
@pytest.mark.parametrize("given_by", ["tracking.uri", "MLFLOW_TRACKING_URI"])
def test_an_in_memory_store_is_refused_naming_where_it_was_set(tmp_path, uri, given_by):
    """It would record the run nowhere: exit code 0, and the rerun trains again."""
    args = [*TINY, f"data_dir={tmp_path / 'data'}"]
    if given_by == "tracking.uri":
        proc = run_cli([*args, f"tracking.uri={uri}"], tmp_path, check=False)
    else:
        proc = run_cli(args, tmp_path, check=False, env=cli_env(MLFLOW_TRACKING_URI=uri))
    _one_line_error(proc, f"TrackingError: {given_by}={uri} is an in-memory SQLite store")
    assert not (tmp_path / "data" / "synthetic").exists(), "data work started"


def test_a_bad_tracking_uri_variable_is_named(tmp_path):
    proc = run_cli([*TINY, f"data_dir={tmp_path / 'data'}"], tmp_path, check=False,
                   env=cli_env(MLFLOW_TRACKING_URI="bogus://x"))
    _one_line_error(proc, "TrackingError: MLFLOW_TRACKING_URI=bogus://x: unknown scheme 'bogus'")


def test_artifacts_that_cannot_be_written_beside_the_store_are_one_line(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "mlartifacts").write_text("")
    proc = run_cli([*TINY, f"tracking.uri=sqlite:///{store / 'mlflow.db'}", f"data_dir={tmp_path / 'data'}"],
                   tmp_path, check=False)
    _one_line_error(proc, f"its artifacts go to {store / 'mlartifacts'}", "is a file, not a folder")
    assert not (store / "mlflow.db").exists() and not (tmp_path / "data" / "synthetic").exists()


@pytest.mark.fresh_store
def test_a_read_only_working_folder_with_a_store_elsewhere_records_the_run(tmp_path, shared_data_dir):
    """The artifacts go beside the store, not to ./mlruns of the folder the job runs from."""
    from test_predict import _read_only

    work, store = tmp_path / "work", tmp_path / "store"
    work.mkdir()
    store.mkdir()
    prefix = _read_only(work)
    uri = f"sqlite:///{store / 'mlflow.db'}"
    proc = subprocess.run([*prefix, sys.executable, "-m", "dedl_experiments", *TINY, f"tracking.uri={uri}",
                           f"data_dir={shared_data_dir}", f"hydra.run.dir={tmp_path / 'outputs'}"],
                          cwd=work, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [run] = mlflow.MlflowClient(uri).search_runs([mlflow.MlflowClient(uri).get_experiment_by_name("dedl").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith(str(store / "mlartifacts" / "dedl"))
    assert list((store / "mlartifacts").rglob("metrics.json")) and not list(work.iterdir())
