"""A segmentation job's training subset (data/subsets.py): whole images (inForm samples) chosen
before tiling, their tiles taken from the shared cache when the job starts, and the training
statistics (normalisation, class frequencies) recomputed over them, so that nothing of the
images left out reaches the run. Without a subset the cache is used as it is."""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np
from omegaconf import DictConfig

from dedl_experiments.data import subsets, tiling
from dedl_experiments.data.preparation import PixelSums, PreparedSegmentation, TileSplit, select_samples, tile_counts


def training_subset(cfg: DictConfig, prepared: PreparedSegmentation) -> PreparedSegmentation:
    """`prepared` with the training images the config keeps; a ConfigError where they are too
    few (none, more asked than there are, fewer tiles than one batch)."""
    available = prepared.splits["train"]
    ids = subsets.training_ids(cfg, available)
    if not subsets.is_subset(cfg):
        return prepared
    full = prepared.split("train")
    kept = set(ids)
    subsets.check_batch(cfg, len(ids), sum(t["sample"] in kept for t in full.tiles), len(available))
    data = select_samples(full, ids)
    stats = {**prepared.stats["train"], "images": len(ids), **tile_counts(np.asarray(data.blank)),
             **_pixel_stats(data, prepared.images)}
    return dataclasses.replace(prepared, train_samples=tuple(ids),
                               splits={**prepared.splits, "train": list(ids)},
                               stats={**prepared.stats, "train": stats})


def _pixel_stats(data: TileSplit, images: dict[str, dict]) -> dict:
    """Normalisation statistics and pixel counts of the split's images, each stitched back from
    its tiles (the cached pixels, each counted once, padding left out)."""
    tiles_of: dict[str, list[int]] = defaultdict(list)
    for k, t in enumerate(data.tiles):
        tiles_of[t["sample"]].append(k)
    sums = PixelSums()
    for sample, ks in tiles_of.items():
        positions = [(data.tiles[k]["y"], data.tiles[k]["x"]) for k in ks]
        height, width = images[sample]["height"], images[sample]["width"]
        image = tiling.stitch(data.images[ks], positions, height, width)
        mask = tiling.stitch(data.targets[ks], positions, height, width)
        sums.add(image, np.rint(mask).astype(np.uint8))
    return sums.stats()
