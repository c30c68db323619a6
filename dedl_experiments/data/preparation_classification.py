"""Prepare step for classification: images resized once into a uint8 cache, labels, the
cross-validation folds and the label statistics.

The data's own train/test lists are the 80/20 split. Inside the training part,
`task.folds` multi-label stratified folds (every fold sees every class where the data
allows) are computed once with `dataset.split_seed` and stored in `splits.json`, so every
seed and model of a table is evaluated on the same folds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from dedl_experiments.config import components
from dedl_experiments.data import splits as splits_mod
from dedl_experiments.data.cache import build_once, dataset_digest, file_sha256
from dedl_experiments.data.checks import warn_duplicates_across_splits
from dedl_experiments.data.errors import DataError
from dedl_experiments.data.readers import RawClassification

log = logging.getLogger(__name__)
CACHE_VERSION = 2


@dataclass(frozen=True)
class ImageSplit:
    images: np.ndarray  # (N, S, S, 3) uint8, memory-mapped
    labels: np.ndarray  # (N, C) uint8 multi-hot
    names: list[str]


@dataclass(frozen=True)
class PreparedClassification:
    root: Path
    image_size: int
    folds: list[list[int]]  # per fold: indices (into the train split) of its validation part
    stats: dict
    digest: str  # content digest of the images, their labels and splits (data/cache.py)

    def split(self, name: str) -> ImageSplit:
        return ImageSplit(np.load(self.root / f"{name}_images.npy", mmap_mode="r"),
                          np.load(self.root / f"{name}_labels.npy"),
                          json.loads((self.root / f"{name}_names.json").read_text()))


def image_size(cfg: DictConfig) -> int:
    """The task's image size after the budget's scale, a multiple of 32 (patch sizes)."""
    return max(32, int(math.ceil(cfg.task.image_size * cfg.budget.scale / 32) * 32))


def _fingerprint(cfg: DictConfig, items: dict, size: int) -> str:
    files = [[split, str(p), p.stat().st_size, p.stat().st_mtime_ns, labels.tolist()]
             for split, pairs in items.items() for p, labels in pairs]
    params = {"version": CACHE_VERSION, "files": files, "size": size, "folds": cfg.task.folds,
              "dataset": OmegaConf.to_container(cfg.dataset, resolve=True)}
    return hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _write_split(out: Path, name: str, raw: RawClassification, size: int, skip_bad: bool,
                 digests: list, image_hashes: list) -> dict:
    images, labels, names, skipped = [], [], [], []
    root = raw.root
    for path, label in raw.items[name]:
        try:
            images.append(raw.read(path, size))
        except DataError as err:
            if not skip_bad:
                raise
            log.warning("skipping image %s: %s", path, err)
            skipped.append(path.name)
            continue
        labels.append(label)
        names.append(path.stem)
        relative = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
        content = file_sha256(path)
        digests.append((name, f"{relative} {np.asarray(label).tolist()}", content))
        image_hashes.append((name, relative, content))
    if not names:
        raise DataError(f"no usable image in the {name} list")
    np.save(out / f"{name}_images.npy", np.stack(images))
    np.save(out / f"{name}_labels.npy", np.stack(labels).astype(np.uint8))
    (out / f"{name}_names.json").write_text(json.dumps(names))
    counts = np.stack(labels).sum(axis=0)
    return {"images": len(names), "skipped": skipped, "label_counts": counts.tolist()}


def _build(cfg: DictConfig, raw: RawClassification, out: Path, size: int) -> None:
    skip_bad = cfg.dataset.on_bad_sample == "skip"
    digests: list[tuple[str, str, str]] = []
    image_hashes: list[tuple[str, str, str]] = []  # (split, image file, sha256) of every image
    stats = {name: _write_split(out, name, raw, size, skip_bad, digests, image_hashes)
             for name in ("train", "test")}
    stats["dataset_digest"] = dataset_digest(digests)
    stats["duplicates_across_splits"] = warn_duplicates_across_splits(image_hashes, raw.root)
    train_labels = np.load(out / "train_labels.npy")
    folds = splits_mod.multilabel_folds(train_labels, k=cfg.task.folds, seed=cfg.dataset.split_seed)
    for k, fold in enumerate(folds):
        missing = [c for c, n in zip(cfg.task.classes, train_labels[fold].sum(axis=0)) if n == 0]
        if missing:
            log.warning("fold %d has no validation image of class %s", k, ", ".join(missing))
    names = json.loads((out / "train_names.json").read_text())
    splits_mod.write_splits(out / "splits.json", {
        "train": names, "test": json.loads((out / "test_names.json").read_text()),
        "folds": [[names[i] for i in fold] for fold in folds]})
    stats["folds"] = [np.sort(fold).tolist() for fold in folds]
    stats["image_size"] = size
    (out / "stats.json").write_text(json.dumps(stats, indent=1))


def prepare_classification(cfg: DictConfig) -> PreparedClassification:
    # The dataset's reader (`dataset._target_`, data/readers.py): its images and labels by split.
    raw: RawClassification = components.target(cfg.dataset)(cfg)
    size = image_size(cfg)
    cache = Path(cfg.data_dir) / "prepared" / f"{cfg.dataset.name}-cls-{_fingerprint(cfg, raw.items, size)}"
    build_once(cache, lambda tmp: _build(cfg, raw, tmp, size))
    stats = json.loads((cache / "stats.json").read_text())
    return PreparedClassification(cache, size, stats.pop("folds"), stats, stats.pop("dataset_digest"))
