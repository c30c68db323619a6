"""Schemas of the config groups whose keys are fixed (Hydra structured configs in its
ConfigStore): a misspelt key or a value of the wrong type, in an option file or an override,
fails when the config is composed, naming the key (`python -m dedl_experiments` prints it as one
line and exits with 2). Ranges, enumerations and combinations stay in config.py.

An option file names its schema first in its defaults list, then its own values:

    # conf/lr_schedule/cosine.yaml
    defaults:
      - /schema/lr_schedule/cosine@_here_
      - _self_

A schema holds exactly the keys of its options (a key added here would enter every cell's
identity), so options with other keys have a schema each (a cosine and a step schedule; an APP
and none). A new option with new keys names no schema or registers its own with `store`.

The package registers these on import (dedl_experiments/__init__.py), before any config is
composed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

GROUP = "schema"
# Numbers keep the type they are written with (`eta_min: 0` stays 0, not 0.0): a converted value
# would log another param and give the cell another key than before schemas checked it.
Number = Union[int, float]


# --- learning-rate schedules (lr_schedule, app_lr_schedule): called with the optimiser --------

@dataclass
class ConstantSchedule:
    _target_: str = MISSING
    _partial_: bool = True
    name: str = MISSING
    # epoch: stepped after each epoch; batch: after each training step (the notebooks).
    interval: str = "epoch"


@dataclass
class CosineSchedule:
    _target_: str = MISSING
    _partial_: bool = True
    name: str = MISSING
    # epoch: stepped after each epoch; batch: after each training step (the notebooks).
    interval: str = "epoch"
    t_max: int = MISSING
    eta_min: Number = MISSING


@dataclass
class StepSchedule:
    _target_: str = MISSING
    _partial_: bool = True
    name: str = MISSING
    # epoch: stepped after each epoch; batch: after each training step (the notebooks).
    interval: str = "epoch"
    step_size: int = MISSING
    gamma: Number = MISSING


# --- autoencoder post-processing ---------------------------------------------------------------

@dataclass
class NoApp:
    name: str = MISSING
    activation: Optional[str] = None


@dataclass
class App:
    name: str = MISSING
    activation: str = MISSING  # relu | gelu
    lr: Number = MISSING


# --- tiles, budget, and the primary config's fixed blocks ----------------------------------------

@dataclass
class Tiling:
    size: int = MISSING
    stride: Optional[int] = None
    blank_threshold: Number = MISSING
    drop_blank_train: bool = False
    padding_label: str = MISSING  # ignore | background


@dataclass
class Budget:
    name: str = MISSING
    epochs: int = MISSING
    batch_size: int = MISSING
    scale: Number = MISSING
    num_workers: int = MISSING


@dataclass
class Train:
    epochs: int = MISSING
    batch_size: int = MISSING
    patience: Optional[int] = MISSING
    monitor: str = MISSING
    monitor_mode: str = MISSING  # min | max
    checkpoint_every: int = MISSING


@dataclass
class Claim:
    heartbeat_s: Number = MISSING
    lease_s: Number = MISSING
    on_busy: str = MISSING  # skip | wait


SCHEMAS: dict[str, type] = {
    "lr_schedule/constant": ConstantSchedule,
    "lr_schedule/cosine": CosineSchedule,
    "lr_schedule/step": StepSchedule,
    "app_lr_schedule/constant": ConstantSchedule,
    "app_lr_schedule/cosine": CosineSchedule,
    "app/none": NoApp,
    "app/autoencoder": App,
    "tiling": Tiling,
    "budget": Budget,
    "train": Train,
    "claim": Claim,
}


def store(path: str, schema: type) -> None:
    """Register `schema` as `/schema/<path>` (group and name: `lr_schedule/cosine`)."""
    group, _, name = f"{GROUP}/{path}".rpartition("/")
    ConfigStore.instance().store(group=group, name=name, node=schema)


def register() -> None:
    for path, schema in SCHEMAS.items():
        store(path, schema)
