"""torch Datasets over prepared caches."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from dedl_experiments.data.prepare import TileSplit


class TileDataset(Dataset):
    """Tiles of one split: (image (1, S, S) float32, mask (S, S) int64, valid (S, S) bool)."""

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
        self.transform.set_random_seed(hash((self.seed, self.epoch, k)) & 0x7FFFFFFF)
        out = self.transform(image=np.asarray(self.split.images[k]),
                             mask=np.asarray(self.split.masks[k]),
                             valid=np.asarray(self.split.valid[k], dtype=np.uint8))
        image = torch.from_numpy(np.ascontiguousarray(out["image"], dtype=np.float32))
        return (image.unsqueeze(0), torch.from_numpy(out["mask"].astype(np.int64)),
                torch.from_numpy(out["valid"].astype(bool)))
