"""A saved segmentation model (a run's best_model.pt, format INFERENCE_FORMAT): its network,
weights and preprocessing, each checked so that anything unusable is one CheckpointError naming
the file and what is wrong (predict.py turns it into one line and exit code 2)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from dedl_experiments.training.checkpoint import CheckpointError, load
from dedl_experiments.data import inform
from dedl_experiments.data.errors import DataError
from dedl_experiments.models import load_saved_state, unused_state_keys
from dedl_experiments.models.segmentation import build_segmentation_model
from dedl_experiments.tasks.segmentation import INFERENCE_FORMAT

CHECKPOINT_KEYS = ("format", "state_dict", "model", "preprocess")


@dataclass(frozen=True)
class SavedModel:
    net: torch.nn.Module
    preprocess: dict
    in_channels: int


def check_checkpoint_file(path: Path) -> None:
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder; give the model file "
                              "(a run's best_model.pt)")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")


def first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def build_network(path: Path, model: object) -> torch.nn.Module:
    if not isinstance(model, dict):
        raise CheckpointError(f"checkpoint {path}: 'model' is not a dict of network settings")
    try:
        return build_segmentation_model(weights=None, **model)
    except Exception as err:  # unknown architecture or encoder, missing or unknown settings
        raise CheckpointError(f"checkpoint {path}: cannot build its network from 'model' "
                              f"{model} ({first_line(err)})") from err


def shape_of(value: object) -> object:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def load_weights(path: Path, net: torch.nn.Module, state_dict: object) -> None:
    """Load `state_dict`, or name in one line how it differs from what the network holds (the
    state the network never reads may be left out: models.state_to_save)."""
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"checkpoint {path}: 'state_dict' is not a dict of tensors")
    expected = net.state_dict()
    unused = unused_state_keys(net)
    missing = [key for key in expected if key not in state_dict and key not in unused]
    unexpected = [key for key in state_dict if key not in expected]
    reshaped = [f"{key} is {shape_of(state_dict[key])} in the checkpoint, {tuple(value.shape)} "
                f"in the network" for key, value in expected.items()
                if key in state_dict and shape_of(state_dict[key]) != tuple(value.shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (first {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (first {unexpected[0]})")
    if reshaped:
        problems.append(f"{len(reshaped)} of another shape (first {reshaped[0]})")
    if not problems:
        try:
            load_saved_state(net, state_dict)
            return
        except RuntimeError as err:  # whatever the checks above do not foresee
            problems.append(first_line(err))
    raise CheckpointError(f"checkpoint {path}: state_dict does not fit the network its 'model' "
                          f"describes: {'; '.join(problems)}")


def preprocess_problem(pre: object, in_channels: int) -> str | None:
    """What is wrong with the checkpoint's preprocessing settings, or None."""
    if not isinstance(pre, dict):
        return "'preprocess' is not a dict of settings"

    def per_channel(values) -> bool:
        return isinstance(values, (list, tuple)) and len(values) == in_channels

    rules = [  # (key, test, what is allowed)
        ("channel", lambda v: inform.channel_index(v) >= 0,
         f"one of {', '.join(inform.COMPONENTS)}"),
        ("colour", lambda v: v in ("grey", "rgb"), "grey, rgb"),
        ("normalisation", lambda v: v in inform.NORMALISATIONS, ", ".join(inform.NORMALISATIONS)),
        ("percentiles", lambda v: len(v) == 2 and 0 <= v[0] < v[1] <= 100,
         "[low, high] with 0 <= low < high <= 100"),
        ("tile_size", lambda v: isinstance(v, int) and v >= 1, "a whole number >= 1"),
        ("stride", lambda v: v is None or (isinstance(v, int) and 1 <= v <= pre["tile_size"]),
         "null or a whole number from 1 to tile_size"),
        ("mean", per_channel, f"{in_channels} numbers, one per input channel"),
        ("std", lambda v: per_channel(v) and all(s > 0 for s in v),
         f"{in_channels} numbers > 0, one per input channel"),
    ]
    for key, test, allowed in rules:
        if key not in pre:
            return f"'preprocess' lacks {key}"
        try:
            ok = test(pre[key])
        except (DataError, TypeError, ValueError, IndexError, KeyError):
            ok = False
        if not ok:
            return f"'preprocess' has {key}={pre[key]!r}; allowed: {allowed}"
    return None


def load_model(path: Path, device: torch.device) -> SavedModel:
    """The network and its preprocessing settings; anything unusable is a CheckpointError."""
    checkpoint = load(path)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != INFERENCE_FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a segmentation model saved by "
                              f"dedl_experiments (expected format {INFERENCE_FORMAT})")
    missing = [key for key in CHECKPOINT_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(map(repr, missing))} (a "
                              f"{INFERENCE_FORMAT} checkpoint holds {', '.join(CHECKPOINT_KEYS)})")
    net = build_network(path, checkpoint["model"])
    # build_segmentation_model's default when the settings leave it out
    in_channels = checkpoint["model"].get("in_channels", 1)
    problem = preprocess_problem(checkpoint["preprocess"], in_channels)
    if problem:
        raise CheckpointError(f"checkpoint {path}: {problem}")
    load_weights(path, net, checkpoint["state_dict"])
    return SavedModel(net.to(device).eval(), checkpoint["preprocess"], in_channels)
