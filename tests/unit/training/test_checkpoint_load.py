"""checkpoint.load: safe loading only, and one line naming the file for every refusal."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from dedl_experiments.training.checkpoint import CheckpointError, load


class NotATensor:
    """A pickled class: the safe loader must refuse it."""


def test_plain_checkpoint_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.pt"
    torch.save({"weights": torch.ones(3), "epoch": 4, "name": "unet"}, path)
    state = load(path)
    assert state["epoch"] == 4 and torch.equal(state["weights"], torch.ones(3))


def _refusal(path: Path) -> str:
    with pytest.raises(CheckpointError) as error:
        load(path)
    message = str(error.value)
    assert "weights_only" not in message and "\n" not in message
    assert error.value.__cause__ is None and error.value.__suppress_context__
    return message


def test_pickled_objects_are_refused_for_safety_without_the_unsafe_hint(tmp_path: Path) -> None:
    path = tmp_path / "objects.pt"
    torch.save({"weights": torch.ones(3), "extra": NotATensor()}, path)
    assert _refusal(path) == (
        f"checkpoint {path} holds objects other than tensors and plain values (the first is "
        f"{__name__}.NotATensor); it is refused for safety, since loading such objects can run "
        "code from the file")


def test_a_plain_pickle_is_not_a_checkpoint_and_gets_no_unsafe_advice(tmp_path: Path) -> None:
    path = tmp_path / "legacy.pkl"
    path.write_bytes(pickle.dumps({"extra": NotATensor()}))
    assert _refusal(path) == (
        f"checkpoint {path} is damaged or not a checkpoint (UnpicklingError: not a file "
        "torch.save wrote with tensors and plain values)")


def test_truncated_and_missing_files_keep_their_messages(tmp_path: Path) -> None:
    path = tmp_path / "cut.pt"
    torch.save({"weights": torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match=f"^checkpoint {path} is damaged or not a checkpoint"):
        load(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load(tmp_path / "absent.pt")
