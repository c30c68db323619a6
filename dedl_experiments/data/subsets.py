"""Nested training subsets: `dataset.train_fraction` (a share of the training samples) or
`dataset.train_count` (a number of them), for learning curves over the amount of training data.

The samples kept are chosen by the run's seed alone: the sorted sample ids are put in the order
of a permutation drawn from a generator seeded with the seed, and the first ceil(f * N) (or
`train_count`) are kept. So the two arms of a paired comparison (same seed) train on the same
samples, and for one seed the samples of a smaller fraction are a subset of a larger one's.
Validation and test never change. The data cache holds every sample; the subset is taken when a
job starts, so the cache is shared by every fraction.

A task calls `training_ids` on the samples of its training part (segmentation: whole images or
inForm samples, before tiling; classification: the images of a fold's training part) and
`check_batch` on what they give; each run logs `record`'s params and tags and the ids.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from dedl_experiments.config.config_rules import ConfigError, Rule, check_rules, optional, positive, positive_int

FRACTION, COUNT = "dataset.train_fraction", "dataset.train_count"
# The dataset keys that select training samples: not part of a prepared cache's fingerprint.
KEYS = ("train_fraction", "train_count")
SAMPLES_FILE = "train_samples.txt"
# ceil(0.7 * 10) is 8 in floating point: a product this close to an integer is that integer.
_ROUNDING = 1e-9

RULES: list[Rule] = [
    (FRACTION, lambda x: positive(x) and x <= 1, "a number in (0, 1]: the share of the training samples kept"),
    (COUNT, optional(positive_int), "null or an integer >= 1: the number of training samples kept"),
]


def check_settings(cfg: DictConfig) -> None:
    """The values alone (before any data is read): a fraction in (0, 1], a count >= 1, not both."""
    check_rules(cfg, RULES)
    fraction, count = cfg.dataset.train_fraction, cfg.dataset.train_count
    if count is not None and fraction != 1:
        raise ConfigError(f"{FRACTION}={fraction} and {COUNT}={count} are both set: give one of them "
                          "(a share or a number of the training samples)")


def is_subset(cfg: DictConfig) -> bool:
    """Whether the config keeps fewer than all training samples."""
    return cfg.dataset.train_count is not None or cfg.dataset.train_fraction != 1


def without_subset_keys(dataset: dict) -> dict:
    """A dataset's settings as a prepared cache's fingerprint reads them: every fraction and
    count shares one cache (and caches built before these settings keep their names)."""
    return {key: value for key, value in dataset.items() if key not in KEYS}


def name_part(cfg: DictConfig) -> list[str]:
    """The subset's part of a run name: `train0.25` or `train8img`, none for every sample (the
    names of runs recorded before these settings)."""
    count, fraction = cfg.dataset.train_count, cfg.dataset.train_fraction
    if count is not None:
        return [f"train{count}img"]
    return [] if fraction == 1 else [f"train{fraction:g}"]


def _setting(cfg: DictConfig) -> str:
    count = cfg.dataset.train_count
    return f"{COUNT}={count}" if count is not None else f"{FRACTION}={cfg.dataset.train_fraction}"


def subset_size(cfg: DictConfig, available: int, where: str = "") -> int:
    """How many of `available` training samples the config keeps; a ConfigError (one line
    naming the option, its value and the samples available) where that is none or more than
    there are. `where`: the training part meant, e.g. " in fold 2's training part"."""
    count, fraction = cfg.dataset.train_count, cfg.dataset.train_fraction
    there = f"{available} training images available{where}"
    if count is not None:
        if count > available:
            raise ConfigError(f"{COUNT}={count} is larger than the training set: {there}; use at most "
                              f"{available}")
        return count
    size = math.ceil(fraction * available - _ROUNDING)
    if size < 1:
        raise ConfigError(f"{FRACTION}={fraction} leaves no training image: {there}; use at least "
                          f"{1 / max(available, 1):.4g} (one image) or {COUNT}=1")
    return size


def nested_order(ids: Sequence[str], seed: int) -> list[str]:
    """The sorted ids in the order of a permutation drawn from a generator seeded with `seed`
    alone: any prefix is the subset of that size, so smaller subsets nest in larger ones."""
    ordered = sorted(ids)
    return [ordered[i] for i in np.random.default_rng(seed).permutation(len(ordered))]


def training_ids(cfg: DictConfig, ids: Sequence[str], where: str = "") -> list[str]:
    """The training sample ids this config keeps, sorted (all of them without a subset)."""
    if not is_subset(cfg):
        return sorted(ids)
    return sorted(nested_order(ids, cfg.seed)[:subset_size(cfg, len(ids), where)])


def check_batch(cfg: DictConfig, images: int, tiles: int, available: int, where: str = "") -> None:
    """A subset must fill one training batch."""
    batch = cfg.train.batch_size
    if is_subset(cfg) and tiles < batch:
        unit = "" if tiles == images else f" ({tiles} tiles)"
        raise ConfigError(f"{_setting(cfg)} keeps {images} of {available} training images available{where}"
                          f"{unit}: fewer than one batch (train.batch_size={batch}); keep more images or "
                          "lower train.batch_size")


@dataclass(frozen=True)
class TrainingSet:
    """The training samples a run trains on: their ids and how many tiles they give (a
    classification image is one tile)."""

    ids: tuple[str, ...]
    tiles: int

    def params(self) -> dict[str, str]:
        return {"n_train_images": str(len(self.ids)), "n_train_tiles": str(self.tiles)}

    def tags(self, cfg: DictConfig, tag: str) -> dict[str, str]:
        """MLflow tags: the setting and the counts, to group and plot runs by."""
        count = cfg.dataset.train_count
        return {f"{tag}train_fraction": str(float(cfg.dataset.train_fraction)),
                f"{tag}train_count": "none" if count is None else str(count),
                f"{tag}n_train_images": str(len(self.ids)), f"{tag}n_train_tiles": str(self.tiles)}

    def write(self, folder: Path) -> Path:
        """One training sample id per line, sorted."""
        path = folder / SAMPLES_FILE
        path.write_text("".join(f"{sample}\n" for sample in sorted(self.ids)))
        return path
