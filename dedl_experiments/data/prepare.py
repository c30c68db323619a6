"""Prepare step: raw files -> a cache of normalised tiles, the splits file and dataset statistics.

Like nnU-Net's plan-and-preprocess, the cache is computed once and reused by every job of a
sweep. Its folder name carries a fingerprint of the raw files and of every parameter that
shapes the tiles, so changing either builds a new cache instead of reusing a stale one.
Building happens in a temporary folder renamed into place under a lock: jobs that start at
once build it once, and a crash never leaves a half-written cache.

    python -m dedl_experiments.prepare budget=smoke          # same overrides as a training job
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from dedl_experiments.config import scaled_tile_size
from dedl_experiments.data import inform, splits as splits_mod, synthetic, tiling
from dedl_experiments.data.errors import DataError

log = logging.getLogger(__name__)

# Bump when the cache format or the tiling code changes, so old caches are not reused.
CACHE_VERSION = 1
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class TileSplit:
    """One split's tiles: arrays are memory-mapped from the cache."""

    images: np.ndarray  # (N, S, S) float32, normalised per image
    masks: np.ndarray  # (N, S, S) uint8, 1 = nucleus
    valid: np.ndarray  # (N, S, S) bool, False on zero padding
    blank: np.ndarray  # (N,) bool
    tiles: list[dict]  # per tile: sample, y, x


@dataclass(frozen=True)
class PreparedSegmentation:
    root: Path
    tile_size: int
    splits: dict[str, list[str]]  # split -> sample names
    images: dict[str, dict]  # sample name -> {height, width, split}
    stats: dict

    def split(self, name: str) -> TileSplit:
        load = lambda suffix: np.load(self.root / f"{name}_{suffix}.npy", mmap_mode="r")  # noqa: E731
        meta = json.loads((self.root / f"{name}_tiles.json").read_text())
        return TileSplit(load("images"), load("masks"), load("valid"), load("blank"), meta)


def raw_root(cfg: DictConfig) -> Path:
    """Folder of the raw dataset; the synthetic one is generated here on first use."""
    ds = cfg.dataset
    if ds.name == "synthetic":
        height = max(32, round(ds.height * cfg.budget.scale))
        width = max(32, round(ds.width * cfg.budget.scale))
        root = Path(cfg.data_dir) / "synthetic" / f"inform-{height}x{width}"
        return synthetic.ensure_dataset(root, "inform", height=height, width=width,
                                        images_per_patient=ds.images_per_patient,
                                        seed=ds.generator_seed)
    if ds.root is None:
        raise DataError(f"dataset={ds.name} needs dataset.root=/path/to/data")
    return Path(ds.root)


def _fingerprint(cfg: DictConfig, samples: list[inform.Sample], tile_size: int) -> str:
    files = []
    for s in samples:
        for p in (s.image, s.mask):
            st = p.stat()
            files.append([str(p), st.st_size, st.st_mtime_ns])
    params = {
        "version": CACHE_VERSION,
        "files": files,
        "channel": cfg.task.channel,
        "normalisation": cfg.dataset.normalisation,
        "percentiles": list(cfg.dataset.percentiles),
        "splits": {k: list(v) for k, v in cfg.dataset.splits.items()},
        "tile_size": tile_size,
        "stride": cfg.tiling.stride,
        "blank_threshold": cfg.tiling.blank_threshold,
    }
    return hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_image(cfg: DictConfig, sample: inform.Sample) -> tuple[np.ndarray, np.ndarray]:
    image = inform.read_channel(sample.image, cfg.task.channel)
    low, high = cfg.dataset.percentiles
    image = inform.normalise(image, cfg.dataset.normalisation, low=low, high=high)
    mask = inform.read_mask(sample.mask, expected_shape=image.shape)
    return image, mask


def _write_split(out: Path, name: str, cfg: DictConfig, samples: list[inform.Sample],
                 tile_size: int, images_meta: dict) -> dict:
    stride = cfg.tiling.stride
    parts = {"images": [], "masks": [], "valid": [], "blank": []}
    tiles_meta: list[dict] = []
    counts = np.zeros(2, dtype=np.int64)
    total, total_sq, n_px = 0.0, 0.0, 0
    for sample in samples:
        image, mask = _read_image(cfg, sample)
        h, w = image.shape
        images_meta[sample.name] = {"height": h, "width": w, "split": name}
        img_tiles, positions = tiling.tile(image, tile_size, stride)
        mask_tiles, _ = tiling.tile(mask.astype(np.uint8), tile_size, stride)
        valid = tiling.valid_mask(positions, h, w, tile_size)
        parts["images"].append(img_tiles.astype(np.float32))
        parts["masks"].append(mask_tiles)
        parts["valid"].append(valid)
        parts["blank"].append(tiling.blank_tiles(img_tiles, cfg.tiling.blank_threshold))
        tiles_meta += [{"sample": sample.name, "y": y, "x": x} for y, x in positions]
        counts += np.bincount(mask.ravel().astype(np.int64), minlength=2)[:2]
        total += float(image.sum(dtype=np.float64))
        total_sq += float(np.square(image, dtype=np.float64).sum())
        n_px += image.size
    for key, arrays in parts.items():
        np.save(out / f"{name}_{key}.npy", np.concatenate(arrays))
    (out / f"{name}_tiles.json").write_text(json.dumps(tiles_meta))
    blank = np.concatenate(parts["blank"])
    mean = total / n_px
    return {
        "tiles": int(len(blank)),
        "blank_tiles": int(blank.sum()),
        "blank_share": float(blank.mean()),
        "pixel_counts": counts.tolist(),
        "mean": mean,
        "std": float(np.sqrt(max(total_sq / n_px - mean * mean, 1e-12))),
    }


def prepare_segmentation(cfg: DictConfig) -> PreparedSegmentation:
    """Return the tile cache for this config, building it if it does not exist yet."""
    root = raw_root(cfg)
    samples, problems = inform.find_samples(root)
    for problem in problems:
        log.warning("dataset %s: %s", root, problem)
    by_split = splits_mod.split_by_patient(samples, {k: list(v) for k, v in cfg.dataset.splits.items()})
    if by_split.get("unassigned"):
        log.warning("dataset %s: %d samples belong to no split (patients %s)", root,
                    len(by_split["unassigned"]), sorted({s.patient for s in by_split["unassigned"]}))
    tile_size = scaled_tile_size(cfg)
    key = _fingerprint(cfg, [s for k in SPLITS for s in by_split[k]], tile_size)
    cache = Path(cfg.data_dir) / "prepared" / f"{cfg.dataset.name}-seg-{key}"
    with _locked(cache.parent / f".{cache.name}.lock"):
        if not (cache / "stats.json").exists():
            _build(cfg, cache, by_split, tile_size)
        else:
            log.info("prepared tiles: reusing %s", cache)
    stats = json.loads((cache / "stats.json").read_text())
    return PreparedSegmentation(cache, tile_size, splits_mod.read_splits(cache / "splits.json"),
                                stats.pop("images"), stats)


def _build(cfg: DictConfig, cache: Path, by_split: dict, tile_size: int) -> None:
    log.info("prepared tiles: building %s", cache)
    tmp = cache.with_name(cache.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        images_meta: dict[str, dict] = {}
        stats = {k: _write_split(tmp, k, cfg, by_split[k], tile_size, images_meta) for k in SPLITS}
        splits_mod.write_splits(tmp / "splits.json", {k: [s.name for s in by_split[k]] for k in SPLITS})
        stats["images"] = images_meta
        stats["tile_size"] = tile_size
        # Written last: its presence marks a complete cache.
        (tmp / "stats.json").write_text(json.dumps(stats, indent=1))
        shutil.rmtree(cache, ignore_errors=True)  # leftovers of an older, incomplete layout
        os.replace(tmp, cache)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
