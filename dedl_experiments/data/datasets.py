"""torch Datasets over prepared caches."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from dedl_experiments.data.preparation import TileSplit


def item_seed(seed: int, epoch: int, item: int) -> int:
    """The augmentation seed of one item in one epoch: (seed, epoch, item) alone decide the
    draws, so they are the same across worker counts, after a resume, and on the device path
    (data/device_augment.py). (Python hashes tuples of ints the same in every process.)"""
    return hash((seed, epoch, item)) & 0x7FFFFFFF


class TileDataset(Dataset):
    """Tiles of one split: image (C, S, S) float32 in [0, 1] and target (S, S) uint8 with
    1 = nucleus, 0 = background, IGNORE (255) = outside the image. uint8 keeps the data sent
    from loader workers small; the task widens it on the device."""

    def __init__(self, split: TileSplit, transform, indices: np.ndarray | None = None,
                 seed: int = 0):
        self.split = split
        self.transform = transform
        self.indices = np.arange(len(split.blank)) if indices is None else indices
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Augmentation draws depend on (seed, epoch, item) only: identical across worker
        counts and after a resume, which is what makes resumed runs bit-equal on CPU."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        k = int(self.indices[i])
        # Copies: the cache is a read-only memory map and torch wants writable arrays.
        image = np.array(self.split.images[k])
        target = np.array(self.split.targets[k])
        if self.transform is not None:
            self.transform.set_random_seed(item_seed(self.seed, self.epoch, k))
            out = self.transform(image=image.transpose(1, 2, 0), mask=target)
            image, target = out["image"].transpose(2, 0, 1), out["mask"]
        return (torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
                torch.from_numpy(np.ascontiguousarray(target)))


class ImageDataset(Dataset):
    """Classification images: (image (3, S, S) float32 in [0, 1], multi-hot labels float32)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, indices: np.ndarray, transform,
                 seed: int = 0):
        self.images, self.labels, self.indices = images, labels, indices
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch  # see TileDataset.set_epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        k = int(self.indices[i])
        self.transform.set_random_seed(item_seed(self.seed, self.epoch, k))
        image = self.transform(image=np.asarray(self.images[k]))["image"]
        return image, torch.from_numpy(self.labels[k].astype(np.float32))
