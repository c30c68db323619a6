"""Prepare step: raw files -> a cache of normalised tiles, the splits file and dataset statistics.

Like nnU-Net's plan-and-preprocess, the cache is computed once and reused by every job of a
sweep. Its folder name carries a fingerprint of the raw files and of every parameter that
shapes the tiles, so changing either builds a new cache instead of reusing a stale one
(data/cache.py: built once under a lock, verified before reuse). While building, every raw
file is hashed: the dataset's content digest, stored with the cache, is part of each cell's
identity.

    python -m dedl_experiments.prepare budget=smoke          # same overrides as a training job
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from dedl_experiments.config import components
from dedl_experiments.config.checks import scaled_tile_size
from dedl_experiments.data import splits as splits_mod, tiling
from dedl_experiments.data.cache import build_once, dataset_digest, file_sha256
from dedl_experiments.data.checks import check_image_and_mask, warn_duplicates_across_splits
from dedl_experiments.data.errors import DataError
from dedl_experiments.data.readers import SPLITS, RawSegmentation
from dedl_experiments.data.transforms import IGNORE

log = logging.getLogger(__name__)

# Bump when the cache format or the tiling code changes, so old caches are not reused.
CACHE_VERSION = 4


@dataclass(frozen=True)
class TileSplit:
    """One split's tiles: arrays are memory-mapped from the cache."""

    images: np.ndarray  # (N, C, S, S) float32, normalised per image
    targets: np.ndarray  # (N, S, S) uint8: 1 nucleus, 0 background, IGNORE on zero padding
    blank: np.ndarray  # (N,) bool
    tiles: list[dict]  # per tile: sample, y, x


def save_split(folder: Path, name: str, images: np.ndarray, targets: np.ndarray,
               blank: np.ndarray, tiles: list[dict]) -> None:
    for key, array in (("images", images), ("targets", targets), ("blank", blank)):
        np.save(folder / f"{name}_{key}.npy", array)
    (folder / f"{name}_tiles.json").write_text(json.dumps(tiles))


def load_split(folder: Path, name: str) -> TileSplit:
    """Arrays memory-mapped: loader workers share the page cache instead of copies."""
    load = lambda key: np.load(folder / f"{name}_{key}.npy", mmap_mode="r")  # noqa: E731
    tiles = json.loads((folder / f"{name}_tiles.json").read_text())
    return TileSplit(load("images"), load("targets"), load("blank"), tiles)


@dataclass(frozen=True)
class PreparedSegmentation:
    root: Path
    tile_size: int
    channels: int
    splits: dict[str, list[str]]  # split -> sample names
    images: dict[str, dict]  # sample name -> {height, width, split}
    stats: dict
    digest: str  # content digest of the raw files and their splits (data/cache.py)

    def split(self, name: str) -> TileSplit:
        return load_split(self.root, name)


def open_raw_segmentation(cfg: DictConfig) -> RawSegmentation:
    """The samples of the configured dataset by split and how to read one: from the reader its
    YAML names (`dataset._target_`, data/readers.py)."""
    return components.target(cfg.dataset)(cfg)


def _fingerprint(cfg: DictConfig, raw: RawSegmentation, tile_size: int) -> str:
    files = []
    for split in SPLITS:
        for s in raw.by_split[split]:
            for p in (s.image, s.mask):
                st = p.stat()
                files.append([split, str(p), st.st_size, st.st_mtime_ns])
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
    params = {"version": CACHE_VERSION, "files": files, "channel": cfg.task.channel,
              "dataset": dataset, "tile_size": tile_size, "stride": cfg.tiling.stride,
              "blank_threshold": cfg.tiling.blank_threshold}
    return hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name


def _write_split(out: Path, name: str, cfg: DictConfig, raw: RawSegmentation, tile_size: int,
                 images_meta: dict, digests: list, image_hashes: list) -> dict:
    parts: dict[str, list[np.ndarray]] = {"images": [], "targets": [], "blank": []}
    tiles_meta: list[dict] = []
    skipped: list[str] = []
    counts = np.zeros(2, dtype=np.int64)
    total = total_sq = n_px = 0.0
    for sample in raw.by_split[name]:
        try:
            image, mask = raw.read(sample)
            check_image_and_mask(image, mask, sample.image, sample.mask)
        except DataError as err:
            if cfg.dataset.on_bad_sample != "skip":
                raise
            log.warning("skipping sample %s: %s", sample.name, err)
            skipped.append(sample.name)
            continue
        h, w = image.shape[-2:]
        images_meta[sample.name] = {"height": h, "width": w, "split": name}
        files = [(name, _relative(p, raw.root), file_sha256(p)) for p in (sample.image, sample.mask)]
        digests += files
        image_hashes.append(files[0])
        img_tiles, positions = tiling.tile(image, tile_size, cfg.tiling.stride)
        mask_tiles, _ = tiling.tile(mask.astype(np.uint8), tile_size, cfg.tiling.stride)
        parts["images"].append(img_tiles.astype(np.float32))
        valid = tiling.valid_mask(positions, h, w, tile_size)
        parts["targets"].append(np.where(valid, mask_tiles, IGNORE).astype(np.uint8))
        parts["blank"].append(tiling.blank_tiles(img_tiles, cfg.tiling.blank_threshold))
        tiles_meta += [{"sample": sample.name, "y": y, "x": x} for y, x in positions]
        counts += np.bincount(mask.ravel().astype(np.int64), minlength=2)[:2]
        total += image.sum(axis=(-2, -1), dtype=np.float64)
        total_sq += np.square(image, dtype=np.float64).sum(axis=(-2, -1))
        n_px += h * w
    if not tiles_meta:
        raise DataError(f"dataset {raw.root}: no usable sample in split {name!r}"
                        + (f" ({len(skipped)} skipped as unreadable)" if skipped else ""))
    blank = np.concatenate(parts["blank"])
    save_split(out, name, np.concatenate(parts["images"]), np.concatenate(parts["targets"]),
               blank, tiles_meta)
    mean = total / n_px
    return {
        "images": len(raw.by_split[name]) - len(skipped),
        "skipped": skipped,
        "tiles": int(len(blank)),
        "blank_tiles": int(blank.sum()),
        "blank_share": float(blank.mean()),
        "pixel_counts": counts.tolist(),
        "mean": np.atleast_1d(mean).tolist(),
        "std": np.sqrt(np.maximum(np.atleast_1d(total_sq / n_px - mean * mean), 1e-12)).tolist(),
    }


def prepare_segmentation(cfg: DictConfig) -> PreparedSegmentation:
    """Return the tile cache for this config, building it if it does not exist yet."""
    raw = open_raw_segmentation(cfg)
    tile_size = scaled_tile_size(cfg)
    key = _fingerprint(cfg, raw, tile_size)
    cache = Path(cfg.data_dir) / "prepared" / f"{cfg.dataset.name}-seg-{key}"
    build_once(cache, lambda tmp: _build(cfg, raw, tmp, tile_size))
    stats = json.loads((cache / "stats.json").read_text())
    _check_training_masks(raw, stats["train"])
    images = stats.pop("images")
    return PreparedSegmentation(cache, tile_size, stats.pop("channels"),
                                splits_mod.read_splits(cache / "splits.json"), images, stats,
                                stats.pop("dataset_digest"))


def _check_training_masks(raw: RawSegmentation, train: dict) -> None:
    """Refuse training masks that are all empty (or all nucleus): nothing to learn, and the
    loss's inverse-frequency class weights would divide by a zero pixel count. Checked on
    the cache's statistics, before the tracking store is opened."""
    background, nucleus = train["pixel_counts"]
    if background and nucleus:
        return
    masks = [s.mask for s in raw.by_split["train"]]
    folder = Path(os.path.commonpath([m.parent for m in masks])) if masks else raw.root
    what = ("are empty (no nucleus pixel)" if not nucleus
            else "mark every pixel as nucleus (no background pixel; inverted masks?)")
    raise DataError(f"{folder}: all {train['images']} masks of split 'train' {what}; training "
                    "needs both nucleus and background pixels: check the masks (nucleus "
                    "non-zero, background 0) and the split")


def _build(cfg: DictConfig, raw: RawSegmentation, out: Path, tile_size: int) -> None:
    images_meta: dict[str, dict] = {}
    digests: list[tuple[str, str, str]] = []
    image_hashes: list[tuple[str, str, str]] = []  # (split, image file, sha256) of every image
    stats = {k: _write_split(out, k, cfg, raw, tile_size, images_meta, digests, image_hashes)
             for k in SPLITS}
    stats["dataset_digest"] = dataset_digest(digests)
    stats["duplicates_across_splits"] = warn_duplicates_across_splits(image_hashes, raw.root)
    splits_mod.write_splits(out / "splits.json", {
        k: [s.name for s in raw.by_split[k] if s.name in images_meta] for k in SPLITS})
    stats["images"] = images_meta
    stats["tile_size"] = tile_size
    stats["channels"] = len(stats["train"]["mean"])
    for split in SPLITS:
        log.info("%s: %d images, %d tiles, %.1f %% blank", split, stats[split]["images"],
                 stats[split]["tiles"], 100 * stats[split]["blank_share"])
    (out / "stats.json").write_text(json.dumps(stats, indent=1))
