"""Checks of one image and its mask that the readers cannot make alone.

Each reader checks its own file (format, shape, mask values). Some data errors only show
when the image and its mask are seen together: a blank image whose mask marks nuclei
would train the network to find nuclei in nothing. These checks cost one pass over the
arrays already in memory. One check spans the dataset: an image whose identical copy lies in
another split, found from the content hashes the prepare step computes anyway.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
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


# What a reader does with NaN or infinite image values (`dataset.non_finite`).
NON_FINITE = ("error", "zero")


def check_finite(array: np.ndarray, path: str | Path, what: str = "pixels",
                 non_finite: str | None = None) -> np.ndarray:
    """`array`, refusing NaN or infinite values with their count. Replacing them by a number
    (0, the mean) invents intensities the scanner never measured and shifts the percentiles
    every image is scaled by, so it happens only on the user's word: `non_finite="zero"` (an
    image's `dataset.non_finite`; inForm's spectral unmixing can leave isolated NaNs) sets
    them to 0 with a warning. None: not an option (masks)."""
    array = np.asarray(array)
    if array.dtype.kind not in "fc":
        return array  # integer and bool arrays hold only finite values
    finite = np.isfinite(array)
    bad = array.size - int(np.count_nonzero(finite))
    if not bad:
        return array
    if non_finite == "zero":
        log.warning("%s: %d of %d %s are NaN or infinite; read as 0 (dataset.non_finite=zero)",
                    path, bad, array.size, what)
        return np.where(finite, array, array.dtype.type(0))
    option = ", or read them as 0 (dataset.non_finite=zero)" if non_finite is not None else ""
    raise DataError(f"{path}: {bad} of {array.size} {what} are NaN or infinite; re-export "
                    "the file with every value finite, leave the sample out "
                    f"(dataset.on_bad_sample=skip){option}")


def _is_constant(image: np.ndarray) -> bool:
    """True when every channel holds a single value (no structure to learn from)."""
    planes = image.reshape(-1, *image.shape[-2:])
    return bool(np.all(planes.max(axis=(-2, -1)) == planes.min(axis=(-2, -1))))


def check_image_and_mask(image: np.ndarray, mask: np.ndarray, image_path: str | Path,
                         mask_path: str | Path) -> None:
    """Raise DataError naming the image file when the pair cannot be right.

    `image` is (H, W) or (C, H, W), `mask` is (H, W) with nucleus pixels true (non-zero).
    Refused: NaN or infinite values; a mask whose shape is not the image's; a constant image
    (e.g. all zero, an empty export) whose mask has nuclei. Warned about, not refused (a small
    crop may lie inside one nucleus): a mask marking every pixel as nucleus, which is usually
    an inverted mask. Accepted: an empty mask, whatever the image holds (an image without
    nuclei is valid data; the prepare step refuses a training split whose masks are all empty).
    """
    image_path, mask_path = Path(image_path), Path(mask_path)
    image, mask = np.asarray(image), np.asarray(mask)
    # The readers refuse non-finite files; this also covers a reader added by a dataset YAML.
    check_finite(image, image_path, "image values")
    check_finite(mask, mask_path, "mask values")
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


def warn_duplicates_across_splits(images: Iterable[tuple[str, str, str]],
                                  root: str | Path) -> list[str]:
    """Warn, once, when files of identical content (same SHA-256) lie in different splits: a
    test image that is also a training image inflates the test score. `images` holds (split,
    file, content hash) per image. Returns one text per duplicated content, e.g.
    "images/a.tif (train) = images/copy.tif (test)", which the caller stores with its stats."""
    by_content: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for split, name, digest in images:
        by_content[digest].append((split, name))
    duplicates = [" = ".join(f"{name} ({split})" for split, name in holders)
                  for holders in by_content.values() if len({split for split, _ in holders}) > 1]
    if duplicates:
        shown = "; ".join(duplicates[:5]) + ("; ..." if len(duplicates) > 5 else "")
        log.warning("dataset %s: %d images have an identical copy in another split, so test or "
                    "validation scores are not independent of training: %s", root,
                    len(duplicates), shown)
    return duplicates
