"""Deterministic synthetic datasets written in the real on-disk layouts, so everything runs offline.

- `write_inform_dataset`: the Akoya/inForm export (component TIFFs with a thumbnail page,
  0/255 nucleus masks, cell outline tables, phenotype tables) for the paper's 7 patients.
- `write_classification_dataset` (synthetic_composites.py): RGB composites with multi-label
  CSV lists.
- `ensure_dataset`: generate once per parameter set, atomically, safe for parallel callers.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tifffile

from dedl_experiments.data.errors import DataError
from dedl_experiments.data.inform import (
    COMPONENTS,
    MASK_FOLDER,
    cell_table_path,
    image_path,
    labels_dir,
    mask_path,
    phenotype_table_path,
)
from dedl_experiments.data.synthetic_composites import write_classification_dataset
from dedl_experiments.data.synthetic_shapes import Ellipses, gaussian_blur, rasterise
from dedl_experiments.run.locks import exclusive_lock

log = logging.getLogger(__name__)

PATIENTS = ("Myo089", "Myo253", "Myo368", "Myo208", "Myo388", "Myo231", "Myo511")
MANIFEST = "synthetic.json"
# Bump when the generators' output changes, so datasets made by older code are regenerated.
GENERATOR_VERSION = 1

FULL_HEIGHT, FULL_WIDTH = 1408, 1876
THUMBNAIL_STEP = 8
NUCLEUS_FILL = 0.22  # share of the (non-empty) image covered by nucleus seeds
OUTLINE_POINTS = 8

# Phenotype table columns, and the component page each marker is imaged in.
MARKERS = ("cd19", "cd4", "cd27", "cxcr3", "cxcr5", "pd1")
MARKER_CHANNELS = tuple(COMPONENTS.index(marker.upper()) for marker in MARKERS)
# Cell types (B cell, CD4 T cell, other) and their per-marker positivity probabilities.
CELL_TYPE_SHARES = (0.35, 0.35, 0.30)
MARKER_PROBABILITIES = np.array(
    [
        # cd19 cd4  cd27 cxcr3 cxcr5 pd1
        [1.0, 0.0, 0.4, 0.05, 0.7, 0.05],
        [0.0, 1.0, 0.5, 0.3, 0.4, 0.35],
        [0.0, 0.0, 0.05, 0.1, 0.0, 0.0],
    ]
)



def _empty_region(rng: np.random.Generator, height: int, width: int) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of a nucleus-free quadrant or band, so that some tiles are blank."""
    kind = rng.integers(3)
    if kind == 0:  # quadrant
        top, left = rng.integers(2, size=2)
        return top * height // 2, (top + 1) * height // 2, left * width // 2, (left + 1) * width // 2
    share = rng.uniform(0.2, 0.35)
    if kind == 1:  # horizontal band
        start = int(rng.uniform(0, 1 - share) * height)
        return start, start + int(share * height), 0, width
    start = int(rng.uniform(0, 1 - share) * width)  # vertical band
    return 0, height, start, start + int(share * width)


def _nuclei(rng: np.random.Generator, height: int, width: int) -> Ellipses:
    """Randomly placed nuclei; a third are placed against another one so that some touch or overlap."""
    scale = min(height / FULL_HEIGHT, width / FULL_WIDTH)
    # 6-14 px at full size; never below a few pixels so downscaled images keep visible nuclei.
    r_min, r_max = max(2.0, 6 * scale), max(3.5, 14 * scale)
    n_free = int(NUCLEUS_FILL * height * width / (np.pi * ((r_min + r_max) / 2) ** 2))
    n_touching = n_free // 3
    radius = rng.uniform(r_min, r_max, n_free + n_touching)
    cy = rng.uniform(0, height, n_free)
    cx = rng.uniform(0, width, n_free)
    parent = rng.integers(0, max(n_free, 1), n_touching)
    direction = rng.uniform(0, 2 * np.pi, n_touching)
    distance = (radius[parent] + radius[n_free:]) * rng.uniform(0.7, 1.0, n_touching)
    cy = np.concatenate([cy, cy[parent] + distance * np.sin(direction)])
    cx = np.concatenate([cx, cx[parent] + distance * np.cos(direction)])
    elongation = rng.uniform(0.7, 1.0, len(radius))
    angle = rng.uniform(0, np.pi, len(radius))

    y0, y1, x0, x1 = _empty_region(rng, height, width)
    inside = (cy >= 0) & (cy < height) & (cx >= 0) & (cx < width)
    near_empty = (cy > y0 - r_max) & (cy < y1 + r_max) & (cx > x0 - r_max) & (cx < x1 + r_max)
    keep = inside & ~near_empty
    return Ellipses(cy[keep], cx[keep], radius[keep] * elongation[keep], radius[keep], angle[keep])


def _components(
    rng: np.random.Generator, labels: np.ndarray, profile: np.ndarray, positive: np.ndarray
) -> np.ndarray:
    """The 8 component pages (8, H, W) float32 in an inForm-like range (about 0..30).

    Only DAPI, the channel segmentation uses, is blurred (optics); marker channels keep
    the nucleus profile, which keeps generation of a full-size image fast.
    """
    height, width = labels.shape
    n_cells = len(positive)
    sigma = max(0.6, 1.2 * min(height / FULL_HEIGHT, width / FULL_WIDTH))
    # Per-cell intensities as lookup tables indexed by label (entry 0 = background).
    dapi = np.zeros(n_cells + 1, dtype=np.float32)
    dapi[1:] = rng.lognormal(np.log(11), 0.3, n_cells)
    marker = np.zeros((len(MARKERS), n_cells + 1), dtype=np.float32)
    marker[:, 1:] = positive.T * rng.lognormal(np.log(6), 0.4, (len(MARKERS), n_cells))

    pages = np.empty((len(COMPONENTS), height, width), dtype=np.float32)
    pages[0] = gaussian_blur(dapi[labels] * profile, sigma)
    pages[list(MARKER_CHANNELS)] = marker[:, labels] * profile
    pages[-1] = 0.1 * pages[0] + 0.15 * pages[list(MARKER_CHANNELS)].sum(axis=0)

    noise_level = np.array([0.5] + [0.15] * (len(COMPONENTS) - 1), dtype=np.float32)
    background = np.array([0.3] + [0.1] * (len(COMPONENTS) - 2) + [0.5], dtype=np.float32)
    noise = rng.standard_normal((len(COMPONENTS), height, width), dtype=np.float32)
    noise *= noise_level[:, None, None]
    noise += background[:, None, None]
    pages += noise
    return np.maximum(pages, 0, out=pages)


def _phenotypes(rng: np.random.Generator, n_cells: int) -> np.ndarray:
    """Bool (n_cells, len(MARKERS)) marker positivity drawn by cell type."""
    cell_type = rng.choice(len(CELL_TYPE_SHARES), size=n_cells, p=CELL_TYPE_SHARES)
    return rng.random((n_cells, len(MARKERS))) < MARKER_PROBABILITIES[cell_type]


def _thumbnail(components: np.ndarray) -> np.ndarray:
    """Small RGB uint8 composite (CD4+PD1 red, CD19 green, DAPI blue), as inForm appends."""
    small = components[:, ::THUMBNAIL_STEP, ::THUMBNAIL_STEP]
    channel = {name: small[index] for index, name in enumerate(COMPONENTS)}
    rgb = np.stack([channel["CD4"] + channel["PD1"], channel["CD19"], channel["DAPI"]], axis=-1)
    return np.clip(rgb * (255 / 20), 0, 255).astype(np.uint8)


def _cell_table(blobs: Ellipses, height: int, width: int) -> str:
    """Tab-separated outline points per nucleus: Label, X, Y (1-based pixels)."""
    theta = np.linspace(0, 2 * np.pi, OUTLINE_POINTS, endpoint=False)
    along = blobs.rx[:, None] * np.cos(theta)
    across = blobs.ry[:, None] * np.sin(theta)
    cos, sin = np.cos(blobs.angle)[:, None], np.sin(blobs.angle)[:, None]
    xs = np.clip(np.rint(blobs.cx[:, None] + along * cos - across * sin), 0, width - 1).astype(int) + 1
    ys = np.clip(np.rint(blobs.cy[:, None] + along * sin + across * cos), 0, height - 1).astype(int) + 1
    rows = [
        f"Cell{cell}\t{x}\t{y}"
        for cell, (cell_xs, cell_ys) in enumerate(zip(xs, ys), start=1)
        for x, y in zip(cell_xs, cell_ys)
    ]
    return "\n".join(["Label\tX\tY", *rows]) + "\n"


def _phenotype_table(positive: np.ndarray) -> str:
    rows = [f"Cell{cell}\t" + "\t".join(str(int(v)) for v in flags) for cell, flags in enumerate(positive, 1)]
    return "\n".join(["listname\t" + "\t".join(MARKERS), *rows]) + "\n"


def _sample_names(rng: np.random.Generator, images_per_patient: int) -> list[str]:
    """Names like 121919_Myo089_[7559,39143]: one acquisition date per patient, distinct fields."""
    names = []
    for patient in PATIENTS:
        date = f"{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}19"
        xs = rng.integers(2000, 8000, images_per_patient) + 8000 * np.arange(images_per_patient)
        ys = rng.integers(10000, 60000, images_per_patient)
        names += [f"{date}_{patient}_[{x},{y}]" for x, y in zip(xs, ys)]
    return names


def _write_inform_sample(
    root: Path, panel: str, name: str, rng: np.random.Generator, height: int, width: int
) -> None:
    nuclei = _nuclei(rng, height, width)
    labels, profile = rasterise(nuclei, height, width)
    positive = _phenotypes(rng, len(nuclei.cy))
    components = _components(rng, labels, profile, positive)

    with tifffile.TiffWriter(image_path(root, panel, name)) as tiff:
        for page in components:
            tiff.write(page, photometric="minisblack", metadata=None)
        tiff.write(_thumbnail(components), photometric="rgb", metadata=None)
    # The mask is the union of the nuclei exactly as drawn, before blur and noise.
    mask = np.where(labels > 0, 255, 0).astype(np.uint8)
    tifffile.imwrite(mask_path(root, panel, name), mask, photometric="minisblack", metadata=None)
    cell_table_path(root, panel, name).write_text(_cell_table(nuclei, height, width))
    phenotype_table_path(root, panel, name).write_text(_phenotype_table(positive))


def write_inform_dataset(
    root: str | Path,
    *,
    height: int = FULL_HEIGHT,
    width: int = FULL_WIDTH,
    images_per_patient: int = 2,
    seed: int = 0,
    panel: str = "Panel 1",
) -> Path:
    """Write a synthetic inForm export for the 7 patients in PATIENTS under `root`."""
    if height < 8 or width < 8 or images_per_patient < 1:
        raise DataError(
            f"synthetic inform dataset needs height, width >= 8 and images_per_patient >= 1, "
            f"got {height}x{width}, {images_per_patient}"
        )
    root = Path(root)
    names_seed, *image_seeds = np.random.SeedSequence(seed).spawn(1 + len(PATIENTS) * images_per_patient)
    names = _sample_names(np.random.default_rng(names_seed), images_per_patient)
    (root / panel).mkdir(parents=True, exist_ok=True)
    (labels_dir(root, panel) / MASK_FOLDER).mkdir(parents=True, exist_ok=True)
    for name, image_seed in zip(names, image_seeds):
        _write_inform_sample(root, panel, name, np.random.default_rng(image_seed), height, width)
    log.info("wrote %d synthetic inForm samples (%dx%d) to %s", len(names), height, width, root)
    return root


_WRITERS = {"inform": write_inform_dataset, "classification": write_classification_dataset}


def _manifest(kind: str, params: dict) -> dict:
    """What a dataset was generated from, with the writer's defaults filled in."""
    if kind not in _WRITERS:
        raise DataError(f"unknown synthetic dataset kind {kind!r}; valid: {', '.join(_WRITERS)}")
    options = {
        name: parameter.default
        for name, parameter in inspect.signature(_WRITERS[kind]).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    unknown = sorted(set(params) - set(options))
    if unknown:
        raise DataError(f"unknown option(s) {unknown} for a synthetic {kind} dataset; valid: {sorted(options)}")
    manifest = {"kind": kind, "generator_version": GENERATOR_VERSION, "params": {**options, **params}}
    return json.loads(json.dumps(manifest))  # compare as it will read back from disk


def _is_current(root: Path, manifest: dict) -> bool:
    try:
        return json.loads((root / MANIFEST).read_text()) == manifest
    except (OSError, ValueError):
        return False


def _remove_leftovers(root: Path) -> None:
    """Staging or old copies left by a crashed generation (only lock holders create them)."""
    for pattern in (f".{root.name}.tmp-*", f".{root.name}.old-*"):
        for leftover in root.parent.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)


def ensure_dataset(root: str | Path, kind: str, **params: object) -> Path:
    """Generate a synthetic dataset of `kind` ("inform" or "classification") into `root` if needed.

    The generation parameters are stored in `root/synthetic.json`; an existing dataset is
    reused when they match and regenerated when they differ. Generation writes a temporary
    sibling directory and then swaps it in, so a crash never leaves a half-written dataset;
    an exclusive lock on `root.parent/.<name>.lock` makes concurrent callers generate once.
    """
    root = Path(root)
    manifest = _manifest(kind, params)
    if _is_current(root, manifest):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(root.parent / f".{root.name}.lock"):
        if _is_current(root, manifest):  # made by another process while we waited
            return root
        if root.exists() and not (root / MANIFEST).is_file() and (not root.is_dir() or any(root.iterdir())):
            raise DataError(f"{root} exists but holds no {MANIFEST}; refusing to overwrite data not made here")
        _remove_leftovers(root)
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
        staging.chmod(0o755)  # mkdtemp makes it private; the dataset should not be
        try:
            _WRITERS[kind](staging, **manifest["params"])
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if root.exists():
            retired = root.parent / f".{root.name}.old-{os.getpid()}"
            os.replace(root, retired)
            os.replace(staging, root)
            shutil.rmtree(retired)
        else:
            os.replace(staging, root)
    log.info("synthetic %s dataset ready at %s", kind, root)
    return root
