"""Synthetic multi-label classification data in the released layout: RGB composites whose blob
colours show their classes, and the train/test label lists (see synthetic.py for the inForm data
and `ensure_dataset`)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from dedl_experiments.data.errors import DataError
from dedl_experiments.data.synthetic_shapes import Ellipses, rasterise

log = logging.getLogger(__name__)

CLASSES = ("b", "tfh", "tfh217", "tfhl", "other")
# Classification: class share (imbalanced as in the paper) and the blob colour showing it.
CLASS_SHARES = (0.45, 0.25, 0.2, 0.08, 0.55)
CLASS_COLOURS = np.array(
    [(60, 220, 80), (235, 50, 50), (225, 60, 225), (240, 220, 50), (60, 150, 245)], dtype=np.float32
)
CLASSIFICATION_HEIGHT, CLASSIFICATION_WIDTH = 352, 469
TEST_SHARE = 0.2


def _classification_labels(
    rng: np.random.Generator, n_images: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels (N, C) bool, train indices, test indices); every class in both parts when N allows."""
    labels = rng.random((n_images, len(CLASSES))) < np.asarray(CLASS_SHARES)
    labels[~labels.any(axis=1), CLASSES.index("other")] = True
    order = rng.permutation(n_images)
    n_test = round(TEST_SHARE * n_images)
    test, train = order[:n_test], order[n_test:]
    if min(len(test), len(train)) >= len(CLASSES):
        for part in (train, test):
            labels[part[: len(CLASSES)], np.arange(len(CLASSES))] = True
    return labels, np.sort(train), np.sort(test)


def _classification_image(rng: np.random.Generator, labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Dark autofluorescence-like background with dim unstained nuclei and one colour per class."""
    scale = min(height / CLASSIFICATION_HEIGHT, width / CLASSIFICATION_WIDTH)
    image = np.zeros((height, width, 3), dtype=np.float32)
    colours = [np.array((70, 70, 85), dtype=np.float32) * 0.6] * int(rng.integers(8, 20))
    for cls in np.flatnonzero(labels):
        colours += [CLASS_COLOURS[cls]] * int(rng.integers(3, 8))
    radius = rng.uniform(max(2.0, 6 * scale), max(3.0, 12 * scale), len(colours))
    blobs = Ellipses(
        cy=rng.uniform(0, height, len(colours)),
        cx=rng.uniform(0, width, len(colours)),
        ry=radius * rng.uniform(0.7, 1.0, len(colours)),
        rx=radius,
        angle=rng.uniform(0, np.pi, len(colours)),
    )
    blob_labels, profile = rasterise(blobs, height, width)
    palette = np.concatenate([np.zeros((1, 3), np.float32), np.stack(colours)])
    brightness = np.concatenate([[0], rng.uniform(0.7, 1.0, len(colours))]).astype(np.float32)
    image += palette[blob_labels] * (brightness[blob_labels] * profile)[..., None]
    image += np.array((14, 10, 20), dtype=np.float32) + 4 * rng.standard_normal(image.shape, dtype=np.float32)
    picture = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    return np.asarray(picture.filter(ImageFilter.GaussianBlur(radius=max(0.5, scale))))


def _write_label_list(path: Path, files: list[str], labels: np.ndarray) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label"])
        for file, row in zip(files, labels):
            writer.writerow([file, str(np.flatnonzero(row).tolist())])


def write_classification_dataset(
    root: str | Path,
    *,
    n_images: int = 60,
    height: int = CLASSIFICATION_HEIGHT,
    width: int = CLASSIFICATION_WIDTH,
    seed: int = 0,
) -> Path:
    """Write `images/<file>.jpg` and `train_list.csv` / `test_list.csv` (80/20) under `root`.

    Classes (CLASSES): 0 b, 1 tfh, 2 tfh217, 3 tfhl, 4 other; an image shows blobs of the
    colour of each of its classes, so labels are learnable from colour alone.
    """
    if n_images < 2 or height < 8 or width < 8:
        raise DataError(
            f"synthetic classification dataset needs n_images >= 2 and height, width >= 8, "
            f"got {n_images}, {height}x{width}"
        )
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    labels_seed, *image_seeds = np.random.SeedSequence(seed).spawn(1 + n_images)
    labels, train, test = _classification_labels(np.random.default_rng(labels_seed), n_images)
    files = [f"image_{index:04d}" for index in range(n_images)]
    for file, row, image_seed in zip(files, labels, image_seeds):
        pixels = _classification_image(np.random.default_rng(image_seed), row, height, width)
        Image.fromarray(pixels).save(root / "images" / f"{file}.jpg", quality=92, subsampling=0)
    _write_label_list(root / "train_list.csv", [files[i] for i in train], labels[train])
    _write_label_list(root / "test_list.csv", [files[i] for i in test], labels[test])
    log.info("wrote %d synthetic classification images (%dx%d) to %s", n_images, height, width, root)
    return root
