"""A bad setting of where things go (tracking store, output or data folder) or a damaged cache:
one line naming the option, exit code 2, before any data work, and nothing left behind; a
damaged prepared cache is rebuilt, not reused."""

import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY, run_cli

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
