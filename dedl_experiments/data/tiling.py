"""Square tiles of whole images, zero-padded at the right and bottom edges, and their inverse.

The paper tiles each 1408 x 1876 image into 480 x 480 tiles (3 x 4 = 12 per image; the
first attempt used 256, giving 6 x 8 = 48). Tiles are never shifted back to fit inside the
image: the last row and column reach past the edge and the excess is zero padding.
"""

from __future__ import annotations

import numpy as np


def _starts(length: int, size: int, stride: int) -> list[int]:
    """0, stride, 2*stride, ... until a tile of `size` reaches the end of `length`."""
    starts = [0]
    while starts[-1] + size < length:
        starts.append(starts[-1] + stride)
    return starts


def tile_positions(height: int, width: int, size: int, stride: int | None = None) -> list[tuple[int, int]]:
    """Top-left (y, x) corners of the tiles covering a height x width image, row by row."""
    stride = size if stride is None else stride
    if size <= 0 or not 0 < stride <= size:
        raise ValueError(f"tile size must be > 0 and 0 < stride <= size, got size={size}, stride={stride}")
    if height <= 0 or width <= 0:
        raise ValueError(f"image shape must be positive, got {height}x{width}")
    return [(y, x) for y in _starts(height, size, stride) for x in _starts(width, size, stride)]


def tile(array: np.ndarray, size: int, stride: int | None = None) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Cut (H, W) or (C, H, W) into (N, size, size) or (N, C, size, size) tiles."""
    if array.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (C, H, W) array, got shape {array.shape}")
    height, width = array.shape[-2:]
    positions = tile_positions(height, width, size, stride)
    padded_height = max(y for y, _ in positions) + size
    padded_width = max(x for _, x in positions) + size
    padding = [(0, 0)] * (array.ndim - 2) + [(0, padded_height - height), (0, padded_width - width)]
    padded = np.pad(array, padding)
    tiles = np.stack([padded[..., y : y + size, x : x + size] for y, x in positions])
    return tiles, positions


def stitch(tiles: np.ndarray, positions: list[tuple[int, int]], height: int, width: int) -> np.ndarray:
    """Reassemble (N, [C,] s, s) tiles into (..., height, width); overlapping pixels are averaged."""
    if len(tiles) != len(positions):
        raise ValueError(f"{len(tiles)} tiles but {len(positions)} positions")
    size = tiles.shape[-1]
    padded_height = max(y for y, _ in positions) + size
    padded_width = max(x for _, x in positions) + size
    total = np.zeros(tiles.shape[1:-2] + (padded_height, padded_width), dtype=np.float64)
    count = np.zeros((padded_height, padded_width), dtype=np.int64)
    for piece, (y, x) in zip(tiles, positions):
        total[..., y : y + size, x : x + size] += piece
        count[y : y + size, x : x + size] += 1
    average = total / np.maximum(count, 1)
    return average[..., :height, :width].astype(np.result_type(tiles.dtype, np.float32))


def valid_mask(positions: list[tuple[int, int]], height: int, width: int, size: int) -> np.ndarray:
    """Bool (N, size, size): True where the tile pixel lies inside the image, False on padding."""
    offsets = np.arange(size)
    masks = [
        ((y + offsets) < height)[:, None] & ((x + offsets) < width)[None, :] for y, x in positions
    ]
    return np.stack(masks) if masks else np.zeros((0, size, size), dtype=bool)


def blank_tiles(tiles: np.ndarray, threshold: float, min_content: float = 0.01) -> np.ndarray:
    """Bool (N,): True for tiles with (almost) nothing stained.

    Rule: a tile is blank when the share of its values above `threshold` (intensities
    normalised to [0, 1]; for (N, C, s, s) every channel value counts) is below
    `min_content` (1 % by default). Zero padding counts as empty, so edge tiles that are
    mostly padding come out blank, as in the paper's Fig. 3.
    """
    content = (tiles > threshold).reshape(len(tiles), -1).mean(axis=1)
    return content < min_content
