"""Checks of one image and its mask that the readers cannot make alone.

Each reader checks its own file (format, shape, mask values). Some data errors only show
when the image and its mask are seen together: a blank image whose mask marks nuclei
would train the network to find nuclei in nothing. These checks cost one pass over the
arrays already in memory.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dedl_experiments.data.errors import DataError

log = logging.getLogger(__name__)

# A side of 1 pixel is a line or a point, not an image: almost always a broken export.
MIN_SIDE = 2


def check_image_size(height: int, width: int, file_shape: tuple[int, ...], path: str | Path,
                     what: str = "image") -> None:
    """Refuse an image (or mask) smaller than MIN_SIDE x MIN_SIDE, naming the file's own shape."""
    if min(height, width) < MIN_SIDE:
        raise DataError(f"{path}: {what} of shape {tuple(file_shape)} is too small: it must be at "
                        f"least {MIN_SIDE}x{MIN_SIDE} pixels")


def _is_constant(image: np.ndarray) -> bool:
    """True when every channel holds a single value (no structure to learn from)."""
    planes = image.reshape(-1, *image.shape[-2:])
    return bool(np.all(planes.max(axis=(-2, -1)) == planes.min(axis=(-2, -1))))


def check_image_and_mask(image: np.ndarray, mask: np.ndarray, image_path: str | Path,
                         mask_path: str | Path) -> None:
    """Raise DataError naming the image file when the pair cannot be right.

    `image` is (H, W) or (C, H, W), `mask` is (H, W) with nucleus pixels true (non-zero).
    Refused: a mask whose shape is not the image's; a constant image (e.g. all zero, an
    empty export) whose mask has nuclei. Warned about, not refused (a small crop may lie
    inside one nucleus): a mask marking every pixel as nucleus, which is usually an
    inverted mask. Accepted: an empty mask, whatever the image holds (an image without
    nuclei is valid data).
    """
    image_path, mask_path = Path(image_path), Path(mask_path)
    image, mask = np.asarray(image), np.asarray(mask)
    if mask.shape != image.shape[-2:]:
        raise DataError(f"{image_path}: image shape {image.shape} does not match the shape "
                        f"{mask.shape} of its mask {mask_path}")
    nucleus_pixels = int(np.count_nonzero(mask))
    if nucleus_pixels == 0:
        return
    if _is_constant(image):
        value = float(image.flat[0])
        raise DataError(f"{image_path}: image is constant (every pixel is {value:g}) but its mask "
                        f"{mask_path} marks {nucleus_pixels} nucleus pixels; the image must show "
                        "the nuclei its mask marks (re-export it, or remove the pair)")
    if nucleus_pixels == mask.size:
        log.warning("%s: its mask %s marks every pixel as nucleus; masks mark nuclei non-zero "
                    "and background 0 (is it inverted?)", image_path, mask_path)
