"""Reader for the Akoya/inForm export layout: component TIFFs, nucleus masks, sample names.

Layout (one folder per panel)::

    <root>/<panel>/<sample>_component_data.tif
    <root>/<panel>/<sample>_component_dataMeasured
    <root>/Labels/<panel> cell labels/<sample>_component_datalabels
    <root>/Labels/<panel> cell labels/Mask Labels/<sample>_component_data.tifMask.tif
"""

from __future__ import annotations

import logging
import re
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import tifffile

from dedl_experiments.data.checks import check_finite, check_image_size
from dedl_experiments.data.errors import DataError
from dedl_experiments.data.samples import Sample

log = logging.getLogger(__name__)

COMPONENTS = ("DAPI", "CXCR3", "CD19", "CXCR5", "PD1", "CD4", "CD27", "Autofluorescence")
NORMALISATIONS = ("percentile", "minmax", "none")

IMAGE_SUFFIX = "_component_data.tif"
MASK_SUFFIX = "_component_data.tifMask.tif"
CELL_TABLE_SUFFIX = "_component_datalabels"
PHENOTYPE_TABLE_SUFFIX = "_component_dataMeasured"
LABELS_FOLDER = "Labels"
MASK_FOLDER = "Mask Labels"

# date _ patient _ [x,y] field coordinates, e.g. 121919_Myo089_[7559,39143]
_SAMPLE_NAME = re.compile(r"^[^_\s]+_(?P<patient>[^_\s]+)_\[\d+,\s*\d+\]$")

# What tifffile and the file system raise for unreadable, truncated or non-TIFF files.
_TIFF_ERRORS = (ValueError, OSError, EOFError, struct.error)


def image_path(root: str | Path, panel: str, sample: str) -> Path:
    return Path(root) / panel / f"{sample}{IMAGE_SUFFIX}"


def phenotype_table_path(root: str | Path, panel: str, sample: str) -> Path:
    return Path(root) / panel / f"{sample}{PHENOTYPE_TABLE_SUFFIX}"


def labels_dir(root: str | Path, panel: str) -> Path:
    return Path(root) / LABELS_FOLDER / f"{panel} cell labels"


def cell_table_path(root: str | Path, panel: str, sample: str) -> Path:
    return labels_dir(root, panel) / f"{sample}{CELL_TABLE_SUFFIX}"


def mask_path(root: str | Path, panel: str, sample: str) -> Path:
    return labels_dir(root, panel) / MASK_FOLDER / f"{sample}{MASK_SUFFIX}"


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def _open_tiff(path: Path) -> tifffile.TiffFile:
    if not path.is_file():
        raise DataError(f"{path}: file does not exist")
    try:
        return tifffile.TiffFile(path)
    except _TIFF_ERRORS as error:
        raise DataError(f"{path}: not a readable TIFF file ({_describe(error)})") from error


def _pages(tif: tifffile.TiffFile, path: Path) -> list[tifffile.TiffPage]:
    """All pages, after checking that their pixel data lies inside the file.

    tifffile only notices missing pixel data when it decodes a page, and the reader
    skips extra pages, so a file cut short anywhere is reported up front.
    """
    try:
        pages = list(tif.pages)
    except _TIFF_ERRORS as error:
        raise DataError(f"{path}: corrupt or truncated TIFF ({_describe(error)})") from error
    size = tif.filehandle.size
    for index, page in enumerate(pages):
        ends = [offset + count for offset, count in zip(page.dataoffsets, page.databytecounts)]
        if ends and max(ends) > size:
            raise DataError(
                f"{path}: truncated TIFF, page {index} needs {max(ends)} bytes but the file has {size}"
            )
    if not pages:
        raise DataError(f"{path}: TIFF file has no pages")
    return pages


def _component_pages(tif: tifffile.TiffFile, path: Path) -> list[tifffile.TiffPage]:
    """The full-resolution single-channel pages; thumbnails and RGB pages are skipped.

    inForm exports may carry extra pages, so pages are chosen by shape: among 2-D pages,
    the largest (H, W) wins (ties between equally large shapes go to the most common one).
    """
    pages = _pages(tif, path)
    planes = [page for page in pages if len(page.shape) == 2]
    shape_counts = Counter(page.shape for page in planes)
    if not shape_counts:
        raise DataError(
            f"{path}: expected {len(COMPONENTS)} component pages of one size, found 0 single-channel pages"
        )
    shape = max(shape_counts, key=lambda s: (s[0] * s[1], shape_counts[s]))
    check_image_size(shape[0], shape[1], shape, path)
    chosen = [page for page in planes if page.shape == shape]
    if len(chosen) != len(COMPONENTS):
        raise DataError(
            f"{path}: expected {len(COMPONENTS)} component pages of one size, found {len(chosen)} "
            f"pages of {shape[0]}x{shape[1]} ({len(pages)} pages in total)"
        )
    skipped = len(pages) - len(chosen)
    if skipped:
        log.debug("%s: skipped %d extra page(s) (thumbnails or other sizes)", path, skipped)
    return chosen


def _decode_component(page: tifffile.TiffPage, path: Path, channel: int,
                      non_finite: str = "error") -> np.ndarray:
    try:
        plane = page.asarray().astype(np.float32, copy=False)
    except _TIFF_ERRORS as error:
        raise DataError(f"{path}: cannot decode page of {COMPONENTS[channel]} ({_describe(error)})") from error
    return check_finite(plane, path, f"pixels of channel {COMPONENTS[channel]}", non_finite)


def read_components(path: str | Path, non_finite: str = "error") -> np.ndarray:
    """All 8 component pages of an inForm `*_component_data.tif`, shape (8, H, W) float32
    (`non_finite`: checks.check_finite)."""
    path = Path(path)
    with _open_tiff(path) as tif:
        pages = _component_pages(tif, path)
        return np.stack([_decode_component(page, path, index, non_finite)
                         for index, page in enumerate(pages)])


def channel_index(channel: str | int) -> int:
    """Index into COMPONENTS of a component name (case-insensitive) or index."""
    if isinstance(channel, (int, np.integer)) and not isinstance(channel, bool):
        if 0 <= channel < len(COMPONENTS):
            return int(channel)
        raise DataError(f"channel index {channel} is out of range 0..{len(COMPONENTS) - 1}")
    names = [name.lower() for name in COMPONENTS]
    if isinstance(channel, str) and channel.lower() in names:
        return names.index(channel.lower())
    raise DataError(f"unknown channel {channel!r}; valid names: {', '.join(COMPONENTS)}")


def read_channel(path: str | Path, channel: str | int, non_finite: str = "error") -> np.ndarray:
    """One component page, shape (H, W) float32; only that page is decoded."""
    path = Path(path)
    index = channel_index(channel)
    with _open_tiff(path) as tif:
        return _decode_component(_component_pages(tif, path)[index], path, index, non_finite)


def read_mask(path: str | Path, expected_shape: tuple[int, int] | None = None) -> np.ndarray:
    """A nucleus mask as bool (H, W); the file holds 0/255 (inForm) or 0/1."""
    path = Path(path)
    with _open_tiff(path) as tif:
        first_page = _pages(tif, path)[0]
        try:
            mask = first_page.asarray()
        except _TIFF_ERRORS as error:
            raise DataError(f"{path}: corrupt or truncated TIFF ({_describe(error)})") from error
    check_finite(mask, path)
    file_shape = mask.shape
    # Drop axes of length 1 but never a spatial one: np.squeeze turns a 1x1 mask into a scalar.
    while mask.ndim > 2 and 1 in mask.shape:
        mask = mask.squeeze(axis=mask.shape.index(1))
    if mask.ndim != 2:
        raise DataError(f"{path}: expected a single-channel 2-D mask, found shape {file_shape}")
    check_image_size(mask.shape[0], mask.shape[1], file_shape, path, "mask")
    if expected_shape is not None and mask.shape != tuple(expected_shape):
        raise DataError(f"{path}: mask shape {mask.shape} does not match image shape {tuple(expected_shape)}")
    values = np.unique(mask)
    if not (set(values.tolist()) <= {0, 255} or set(values.tolist()) <= {0, 1}):
        offending = [v for v in values.tolist() if v != 0][:10]
        raise DataError(f"{path}: mask values must be 0/255 or 0/1, found non-zero values {offending}")
    return mask > 0


def normalise(
    image: np.ndarray, method: str = "percentile", low: float = 1.0, high: float = 99.8
) -> np.ndarray:
    """Scale intensities per image (per channel for (C, H, W)) into [0, 1], as float32.

    inForm component intensities are unmixed float32 values whose range depends on the
    image (staining, exposure, tissue density), so a fixed divisor would make tiles of
    different images incomparable. Scaling each image by its own statistics fixes that;
    the same function must be used at training and test time.

    - "percentile": clip to the `low`/`high` percentiles, then scale; robust to a few hot
      pixels. If both percentiles coincide (a nearly empty image) the maximum is used.
    - "minmax": scale the minimum to 0 and the maximum to 1.
    - "none": only convert to float32 (values are not scaled).
    A constant image maps to zeros.
    """
    if method not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {method!r}; valid: {', '.join(NORMALISATIONS)}")
    image = np.asarray(image, dtype=np.float32)
    if method == "none":
        return image
    axes = (-2, -1)
    maximum = image.max(axis=axes, keepdims=True)
    if method == "minmax":
        lower, upper = image.min(axis=axes, keepdims=True), maximum
    else:
        if not 0 <= low < high <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got low={low}, high={high}")
        lower, upper = np.percentile(image, [low, high], axis=axes, keepdims=True)
        upper = np.where(upper > lower, upper, maximum)
    span = upper - lower
    scaled = (image - lower) / np.where(span > 0, span, 1)
    return np.clip(scaled, 0, 1).astype(np.float32)


def patient_id(sample_name: str) -> str:
    """The patient of a sample name like `121919_Myo089_[7559,39143]` (here `Myo089`)."""
    match = _SAMPLE_NAME.match(sample_name)
    if match is None:
        raise DataError(
            f"sample name {sample_name!r} does not look like <date>_<patient>_[<x>,<y>] "
            f"(e.g. 121919_Myo089_[7559,39143])"
        )
    return match.group("patient")


def _panels(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != LABELS_FOLDER)


def _mask_files(root: Path) -> list[tuple[str, str, Path]]:
    """(panel, sample, path) of every mask under root/Labels/<panel> cell labels/Mask Labels/."""
    found = []
    for folder in sorted((root / LABELS_FOLDER).glob(f"* cell labels/{MASK_FOLDER}")):
        panel = folder.parent.name.removesuffix(" cell labels")
        for path in sorted(folder.glob(f"*{MASK_SUFFIX}")):
            found.append((panel, path.name.removesuffix(MASK_SUFFIX), path))
    return found


def find_samples(root: str | Path) -> tuple[list[Sample], list[str]]:
    """Pair every `<panel>/<sample>_component_data.tif` with its mask.

    Returns the paired samples sorted by name, and one human-readable problem per image
    without a mask, mask without an image, or unparsable sample name (those are left out
    and logged here as warnings).
    """
    root = Path(root)
    if root.is_file():
        raise DataError(f"dataset root {root} is a file, not a folder (expected the export "
                        "folder holding <panel>/ and Labels/)")
    if not root.is_dir():
        raise DataError(f"dataset root {root} does not exist")
    pattern = f"<panel>/*{IMAGE_SUFFIX}"
    images = [
        (panel, path.name.removesuffix(IMAGE_SUFFIX), path)
        for panel in _panels(root)
        for path in sorted((root / panel).glob(f"*{IMAGE_SUFFIX}"))
    ]
    if not images:
        raise DataError(f"dataset root {root}: no images found matching {pattern}")

    samples: list[Sample] = []
    problems: list[str] = []
    for panel, name, image in images:
        mask = mask_path(root, panel, name)
        if not mask.is_file():
            problems.append(f"sample {name} ({image}): no mask at {mask}")
            continue
        try:
            patient = patient_id(name)
        except DataError as error:
            problems.append(f"{image}: {error}")
            continue
        samples.append(Sample(name=name, patient=patient, image=image, mask=mask))

    image_keys = {(panel, name) for panel, name, _ in images}
    for panel, name, mask in _mask_files(root):
        if (panel, name) not in image_keys:
            problems.append(f"mask {mask}: no image at {image_path(root, panel, name)}")

    for problem in problems:
        log.warning("%s", problem)
    return sorted(samples, key=lambda s: (s.name, str(s.image))), problems
