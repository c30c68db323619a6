"""Whole-image inference: tile, predict, stitch back to the original size.

Shared by the test evaluation of training runs and by the predict CLI, so a saved model
gives the same masks in both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from dedl_experiments.data import tiling


# progress(tiles done, tiles in all): called before the first batch and after each batch.
Progress = Callable[[int, int], None]


@torch.no_grad()
def predict_tiles(net: nn.Module, tiles: np.ndarray, mean: Sequence[float], std: Sequence[float],
                  batch_size: int, device: torch.device, progress: Progress | None = None) -> np.ndarray:
    """Nucleus probabilities (N, S, S) for normalised-intensity tiles (N, C, S, S).

    On CUDA no batch waits for the one before: inputs go through pinned memory and
    asynchronous copies, and each batch's probabilities are copied asynchronously into one
    pinned result, read once at the end (a `.cpu()` per batch would drain the device's queue
    between batches). The numbers are those of a plain per-batch loop. `progress` is told of each
    batch once it is queued (on CUDA the device may still be computing it)."""
    net.eval()
    shift = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    scale = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    cuda = device.type == "cuda"
    result = torch.empty((len(tiles), *tiles.shape[-2:]), dtype=torch.float32, pin_memory=cuda)
    for start in range(0, len(tiles), batch_size):
        # np.array copies: the tiles may be a read-only memory map.
        batch = torch.from_numpy(np.array(tiles[start:start + batch_size], dtype=np.float32))
        batch = batch.pin_memory().to(device, non_blocking=True) if cuda else batch.to(device)
        logits = net((batch - shift) / scale)
        probs = torch.softmax(logits.float(), dim=1)[:, 1]
        result[start:start + len(batch)].copy_(probs, non_blocking=cuda)
        if progress is not None:
            progress(start + len(batch), len(tiles))
    if cuda:
        torch.cuda.synchronize(device)
    return result.numpy()


def predict_image(net: nn.Module, image: np.ndarray, tile_size: int, stride: int | None,
                  mean: Sequence[float], std: Sequence[float], batch_size: int,
                  device: torch.device, progress: Progress | None = None) -> np.ndarray:
    """Nucleus probability map (H, W) of one normalised (C, H, W) image."""
    tiles, positions = tiling.tile(image, tile_size, stride)
    if progress is not None:
        progress(0, len(tiles))
    probs = predict_tiles(net, tiles, mean, std, batch_size, device, progress)
    return tiling.stitch(probs, positions, *image.shape[-2:])
