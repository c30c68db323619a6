"""A full disk (ENOSPC, or EDQUOT for a quota) at a checkpoint, a prepared-data cache or the
SQLite tracking store: one DiskFull naming the file or folder, what the write needed and what is
free; nothing already written is damaged. The full disk is faked by a write that raises."""

import errno
import json
import sqlite3

import numpy as np
import pytest
import torch
from mlflow.exceptions import MlflowException

from dedl_experiments.training import checkpoint
from dedl_experiments.data import cache
from dedl_experiments.run.folders import DiskFull, is_disk_full
from dedl_experiments.tracking.mlflow_store import Tracker


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("error", [
    _enospc(), OSError(errno.EDQUOT, "Disk quota exceeded"),
    sqlite3.OperationalError("database or disk is full"),
])
def test_a_full_disk_is_recognised_however_it_is_wrapped(error):
    try:
        try:
            raise error
        except Exception as inner:
            raise RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos 30 vs 0") from inner
    except RuntimeError as outer:
        assert is_disk_full(outer)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(RuntimeError("unexpected pos 30 vs 0"))


def _fill_disk_in_write(monkeypatch, after_bytes: int = 0) -> None:
    """torch.save writes through the file handle; its write fails as on a full disk once
    `after_bytes` are written, as the real one would (torch wraps it in a RuntimeError)."""
    real_save = torch.save

    class FullDisk:
        def __init__(self, handle):
            self.handle, self.written = handle, 0

        def write(self, data):
            if self.written + len(data) > after_bytes:
                raise _enospc()
            self.written += len(data)
            return self.handle.write(data)

        def flush(self):
            self.handle.flush()

    monkeypatch.setattr(checkpoint.torch, "save", lambda obj, handle: real_save(obj, FullDisk(handle)))


def test_a_full_disk_at_a_checkpoint_names_the_file_and_keeps_the_last_one(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    state = {"modules": {"net": {"w": torch.zeros(1024, 1024)}}, "fit": {"epoch": 1}}
    checkpoint.save_training(folder, state)
    before = (folder / checkpoint.LAST).read_bytes()

    _fill_disk_in_write(monkeypatch, after_bytes=4096)
    with pytest.raises(DiskFull) as caught:
        checkpoint.save_training(folder, state | {"fit": {"epoch": 2}})
    message = str(caught.value)
    assert message.startswith(f"writing {folder / checkpoint.LAST} failed: no space left on the disk "
                              f"or in the quota (it needs about 4.0 MB; {folder} has ")
    assert " MB free); free space there and rerun the same command" in message and "\n" not in message
    assert is_disk_full(caught.value.__cause__)
    # The epoch before is intact and resumable; no half-written file is left.
    assert (folder / checkpoint.LAST).read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == [checkpoint.LAST]
    assert checkpoint.load_training(folder)["fit"]["epoch"] == 1


def test_a_full_disk_at_fsync_is_recognised_too(tmp_path, monkeypatch):
    def full(fd):
        raise _enospc()

    monkeypatch.setattr(checkpoint.os, "fsync", full)
    with pytest.raises(DiskFull, match=r"^writing .*best_model\.pt failed: no space left .* needs about"):
        checkpoint.atomic_save({"w": torch.zeros(10)}, tmp_path / "best_model.pt")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_while_a_cache_is_built_names_the_cache_and_leaves_nothing(tmp_path):
    target = tmp_path / "prepared" / "synthetic-abc"

    def build(folder):
        np.save(folder / "train_images.npy", np.zeros(300_000, np.uint8))
        raise _enospc()  # as np.save of the next array would

    with pytest.raises(DiskFull) as caught:
        cache.build_once(target, build)
    message = str(caught.value)
    assert message.startswith(f"building the prepared data {target} failed: no space left on the disk "
                              "or in the quota (it needs more than 0.3 MB; ")
    assert not target.exists()
    assert [p.name for p in target.parent.iterdir() if not p.name.startswith(".")] == []


def test_a_full_disk_under_the_sqlite_store_names_the_database(tmp_path, monkeypatch):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "dedl")
    run_id = tracker.start("run", {}).info.run_id

    def full(*args, **kwargs):
        # How MLflow's SQLAlchemy store reports SQLite's SQLITE_FULL.
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError as err:
            raise MlflowException(f"(sqlite3.OperationalError) {err}") from err

    monkeypatch.setattr(tracker.client, "log_batch", full)
    database = tmp_path / "mlflow.db"
    with pytest.raises(DiskFull, match=rf"^writing the tracking store {database} failed: no space left "):
        tracker.log_metrics(run_id, {"val_loss": 1.0}, step=0)


def test_the_message_fits_on_one_line_and_says_what_is_free(tmp_path):
    err = DiskFull(tmp_path / "missing" / "last.pt", 3 * 2**20)
    text = str(err)
    assert "\n" not in text and "needs about 3.0 MB" in text and f"; {tmp_path} has " in text
    json.dumps(text)  # plain text, for a run's tag


def test_a_full_disk_at_a_file_of_the_job_names_that_file_not_the_store(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "dedl")
    fault = tracker.store_error(OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "metrics.json")))
    assert isinstance(fault, DiskFull) and str(fault).startswith(f"writing {tmp_path / 'metrics.json'} failed")
    assert tracker.store_error(ValueError("bad value")) is None
