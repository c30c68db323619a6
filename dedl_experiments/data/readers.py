"""Dataset readers: where a dataset's raw samples are, which split each belongs to, and how to
read one. A dataset YAML names its reader with `_target_` (conf/dataset/<name>.yaml); the
prepare step (data/prepare.py, data/prepare_classification.py) calls it with the job's config
and turns what it returns into the tile or image cache.

A segmentation reader returns a `RawSegmentation`: the root, the samples per split ("train",
"val", "test"; each a data/samples.py Sample: `name`, `patient`, `image` and `mask`) and
`read(sample)` -> (image (C, H, W) float32, normalised as `dataset.normalisation` says; mask
(H, W), non-zero = nucleus). A classification reader returns a `RawClassification`: the root, the (image path,
multi-hot labels) pairs of "train" and "test", and `read(path, size)` -> (size, size, 3) uint8.
Raise DataError for data that cannot be used. A new dataset layout is a new YAML file naming a
function like these.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from dedl_experiments.data import classification, folder as folder_layout, inform, synthetic
from dedl_experiments.data import splits as splits_mod
from dedl_experiments.data.errors import DataError
from dedl_experiments.data.samples import Sample

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class RawSegmentation:
    """A raw dataset: samples per split and how to read one (image (C, H, W), mask (H, W))."""

    root: Path
    by_split: dict[str, list[Sample]]
    read: Callable[[Sample], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class RawClassification:
    """A raw classification dataset: (image, labels) pairs of "train" and "test" and how to read
    an image at a size."""

    root: Path
    items: dict[str, list[tuple[Path, np.ndarray]]]
    read: Callable[[Path, int], np.ndarray] = classification.load_rgb


def normalise(cfg: DictConfig, image: np.ndarray) -> np.ndarray:
    """Per-image intensity scaling as `dataset.normalisation` (and `percentiles`) say."""
    low, high = cfg.dataset.percentiles
    return inform.normalise(image, cfg.dataset.normalisation, low=low, high=high)


def non_finite(cfg: DictConfig) -> str:
    """What the readers do with NaN or infinite image values: error (default) or zero."""
    return cfg.dataset.get("non_finite") or "error"


# --- segmentation -------------------------------------------------------------------------


def inform_export(cfg: DictConfig, root: Path | None = None) -> RawSegmentation:
    """The inForm export layout (dataset=myositis): samples split by patient
    (`dataset.splits`), the `task.channel` component page of each image."""
    root = Path(cfg.dataset.root) if root is None else root
    samples, _ = inform.find_samples(root)  # orphan images or masks are logged there, once each
    by_split = splits_mod.split_by_patient(samples, {k: list(v) for k, v in cfg.dataset.splits.items()})
    unassigned = by_split.pop(splits_mod.UNASSIGNED, [])
    if unassigned:
        log.warning("dataset %s: %d samples belong to no split (patients %s)", root,
                    len(unassigned), sorted({s.patient for s in unassigned}))

    def read(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        image = inform.read_channel(sample.image, cfg.task.channel, non_finite(cfg))
        image = normalise(cfg, image)[None]
        return image, inform.read_mask(sample.mask, expected_shape=image.shape[-2:])

    return RawSegmentation(root, by_split, read)


def synthetic_inform(cfg: DictConfig) -> RawSegmentation:
    """The built-in synthetic data in the inForm layout, generated under data_dir on first use
    at the budget's scale."""
    ds = cfg.dataset
    height = max(32, round(ds.height * cfg.budget.scale))
    width = max(32, round(ds.width * cfg.budget.scale))
    root = synthetic.ensure_dataset(Path(cfg.data_dir) / "synthetic" / f"inform-{height}x{width}",
                                    "inform", height=height, width=width,
                                    images_per_patient=ds.images_per_patient, seed=ds.generator_seed)
    return inform_export(cfg, root)


def image_folder(cfg: DictConfig) -> RawSegmentation:
    """images/ and masks/ with matching stems (dataset=folder), split by splits.csv or seeded."""
    root = Path(cfg.dataset.root)
    samples, _ = folder_layout.find_folder_samples(root)  # problems are logged there
    ids = folder_layout.folder_splits(root, [s.name for s in samples], cfg.dataset.split_seed)
    by_name = {s.name: s for s in samples}
    by_split = {k: [by_name[i] for i in ids.get(k, [])] for k in SPLITS}
    for name in SPLITS:
        if not by_split[name]:
            raise DataError(f"dataset {root}: split {name!r} is empty ({len(samples)} images in total)")

    def read(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        image = folder_layout.read_folder_image(sample.image, cfg.dataset.colour, non_finite(cfg))
        image = normalise(cfg, image if image.ndim == 3 else image[None])
        return image, folder_layout.read_folder_mask(sample.mask, image.shape[-2:])

    return RawSegmentation(root, by_split, read)


# --- classification -----------------------------------------------------------------------


def image_lists(cfg: DictConfig, root: Path | None = None) -> RawClassification:
    """<root>/<image_dir>/ images listed with their labels in train_list.csv and test_list.csv
    (dataset=autofluorescence)."""
    root = Path(cfg.dataset.root) if root is None else root
    items, problems = classification.find_classification_items(
        root, cfg.dataset.image_dir, skip_missing=cfg.dataset.on_bad_sample == "skip")
    for problem in problems:
        log.warning("dataset %s: %s", root, problem)
    return RawClassification(root, items)


def synthetic_classification(cfg: DictConfig) -> RawClassification:
    """The built-in synthetic autofluorescence composites, generated under data_dir on first use."""
    ds = cfg.dataset
    root = synthetic.ensure_dataset(Path(cfg.data_dir) / "synthetic" / f"classification-{ds.n_images}",
                                    "classification", n_images=ds.n_images, height=ds.height,
                                    width=ds.width, seed=ds.generator_seed)
    return image_lists(cfg, root)
