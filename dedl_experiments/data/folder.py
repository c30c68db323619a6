"""Reader for the plain layout most public segmentation datasets use.

Layout::

    <root>/images/<id>.{tif,tiff,png}     8- or 16-bit integer or float, grey or RGB, any size
    <root>/masks/<id>.{tif,tiff,png}      same stem and size as its image; 0/255, 0/1 or 0/65535
    <root>/splits.csv                     optional: header `id,split`, split in train/val/test

Images of one dataset may differ in size. Integer images are scaled by their type's maximum
(uint8 / 255, uint16 / 65535) so that 8- and 16-bit files land in the same [0, 1] range;
float images keep their values (a file holding NaN or infinite values is refused). Per-image
normalisation (`inform.normalise`) comes later.
"""

from __future__ import annotations

import csv
import io
import logging
import struct
from pathlib import Path
from typing import Literal

import numpy as np
import tifffile
from PIL import Image

from dedl_experiments.data import splits as splits_mod
from dedl_experiments.data.checks import check_finite, check_image_size
from dedl_experiments.data.errors import DataError
from dedl_experiments.data.samples import Sample

log = logging.getLogger(__name__)

IMAGE_FOLDER = "images"
MASK_FOLDER = "masks"
SPLITS_FILE = "splits.csv"
EXTENSIONS = (".tif", ".tiff", ".png")
SPLIT_NAMES = ("train", "val", "test")
# ITU-R BT.601 luma weights, the ones PIL's convert("L") uses.
LUMINANCE = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# Channels of one pixel: grey, grey + alpha, RGB, RGBA.
CHANNEL_COUNTS = (1, 2, 3, 4)

_TIFF_ERRORS = (ValueError, OSError, EOFError, struct.error, IndexError, KeyError)
_PIL_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def _files_by_stem(folder: Path, problems: list[str]) -> dict[str, Path]:
    """Image files of `folder` by stem; a stem present with two extensions is a problem, not a guess."""
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in EXTENSIONS:
            found.setdefault(path.stem, []).append(path)
    unique = {}
    for stem, paths in found.items():
        if len(paths) > 1:
            problems.append(f"{folder}: id {stem!r} has several files {[p.name for p in paths]}; left out")
        else:
            unique[stem] = paths[0]
    return unique


def find_folder_samples(root: str | Path) -> tuple[list[Sample], list[str]]:
    """Pair `images/<id>.*` with `masks/<id>.*` by file stem: a Sample named by the stem, its
    own patient.

    Returns the pairs sorted by id and one message per image without a mask, mask without an
    image, or ambiguous id (those are left out and logged as warnings).
    """
    root = Path(root)
    if root.is_file():
        raise DataError(f"dataset root {root} is a file, not a folder (expected the folder "
                        f"holding {IMAGE_FOLDER}/ and {MASK_FOLDER}/)")
    if not root.is_dir():
        raise DataError(f"dataset root {root} does not exist")
    image_dir, mask_dir = root / IMAGE_FOLDER, root / MASK_FOLDER
    accepted = " ".join(EXTENSIONS)
    if not image_dir.is_dir():
        raise DataError(f"dataset root {root}: no {IMAGE_FOLDER}/ folder (expected images with {accepted})")
    if not mask_dir.is_dir():
        raise DataError(f"dataset root {root}: no {MASK_FOLDER}/ folder (expected masks with {accepted})")

    problems: list[str] = []
    images = _files_by_stem(image_dir, problems)
    if not images:
        raise DataError(f"{image_dir}: no images found (accepted extensions: {accepted})")
    masks = _files_by_stem(mask_dir, problems)

    samples = []
    for stem, image in images.items():
        if stem in masks:
            samples.append(Sample(name=stem, patient=stem, image=image, mask=masks[stem]))
        else:
            problems.append(f"image {image}: no mask {mask_dir}/{stem}.* ({accepted})")
    problems += [f"mask {mask}: no image {image_dir}/{stem}.*" for stem, mask in masks.items()
                 if stem not in images]
    for problem in problems:
        log.warning("%s", problem)
    if not samples:
        raise DataError(f"dataset root {root}: no image has a mask; first problem: {problems[0]}")
    return sorted(samples, key=lambda s: s.name), problems


def _single_page(tif: tifffile.TiffFile, path: Path) -> tifffile.TiffPage:
    """The file's one full-resolution page (reduced-resolution thumbnails aside).

    A file of this layout is one 2-D image: reading page 1 of a stack would silently
    train on a part of it.
    """
    pages = [page for page in tif.pages if not getattr(page, "is_reduced", False)]
    if len(pages) > 1:
        raise DataError(f"{path}: TIFF holds {len(pages)} pages (a stack); the folder layout takes "
                        "one 2-D image per file: save each page as its own file")
    return pages[0] if pages else tif.pages.first


def _check_tiff_complete(page: tifffile.TiffPage, size: int, path: Path) -> None:
    """tifffile only notices missing pixel data when decoding; a truncated file is named up front."""
    ends = [offset + count for offset, count in zip(page.dataoffsets, page.databytecounts)]
    if ends and max(ends) > size:
        raise DataError(f"{path}: truncated TIFF, pixel data needs {max(ends)} bytes but the file has {size}")


def _read_tiff(path: Path) -> np.ndarray:
    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.pages:
                raise DataError(f"{path}: TIFF file has no pages")
            page = _single_page(tif, path)
            _check_tiff_complete(page, tif.filehandle.size, path)
            return page.asarray()
    except DataError:
        raise
    except _TIFF_ERRORS as error:
        raise DataError(f"{path}: not a readable TIFF ({type(error).__name__}: {error})") from error


def _read_png(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as picture:
            frames = getattr(picture, "n_frames", 1)
            if frames > 1:
                raise DataError(f"{path}: PNG holds {frames} frames (an animation); the folder "
                                "layout takes one 2-D image per file: save each frame as its own file")
            picture.load()  # decodes now, so a truncated file fails here and not later
            return np.asarray(_grey_or_colour(picture))
    except DataError:
        raise
    except _PIL_ERRORS as error:
        raise DataError(f"{path}: not a readable image ({type(error).__name__}: {error})") from error


def _grey_or_colour(picture: Image.Image) -> Image.Image:
    """L, I, RGB, or LA / RGBA: an alpha channel is kept so that `_without_alpha` can check it."""
    if picture.mode == "P":
        return picture.convert("RGBA" if "transparency" in picture.info else "RGB")
    if picture.mode in ("PA", "RGBa", "La"):
        return picture.convert("RGBA")
    if picture.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        return picture.convert("RGB")
    if picture.mode == "1":
        return picture.convert("L")
    return picture


def _read_array(path: Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file does not exist")
    if path.suffix.lower() in (".tif", ".tiff"):
        return _read_tiff(path)
    if path.suffix.lower() == ".png":
        return _read_png(path)
    raise DataError(f"{path}: unsupported extension {path.suffix!r} (accepted: {' '.join(EXTENSIONS)})")


def _channels_last(array: np.ndarray, path: Path, what: str = "image") -> np.ndarray:
    """(H, W) or (H, W, C) with C in CHANNEL_COUNTS: leading axes of length 1 dropped, planar
    (C, H, W) TIFFs transposed. Errors name the file's own shape, and a 1-pixel side is refused
    (np.squeeze would have turned a 1x1 file into a shapeless scalar)."""
    file_shape = array.shape
    while array.ndim > 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3 and array.shape[-1] not in CHANNEL_COUNTS and array.shape[0] in CHANNEL_COUNTS:
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in CHANNEL_COUNTS):
        raise DataError(f"{path}: expected a 2-D grey (H, W) or RGB (H, W, 3) {what}, "
                        f"found shape {file_shape}")
    check_image_size(array.shape[0], array.shape[1], file_shape, path, what)
    return array


def _opaque(dtype: np.dtype) -> bool | int | float:
    """The alpha value of a fully opaque pixel: the type's maximum (1.0 for floats)."""
    if dtype == bool:
        return True
    return np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1.0


def _without_alpha(array: np.ndarray, path: Path) -> np.ndarray:
    """Drop the alpha channel of a grey+alpha or RGBA array only when it is fully opaque
    (lossless); otherwise transparency, often what marks no-data, would be lost silently."""
    if array.ndim != 3 or array.shape[-1] not in (2, 4):
        return array
    alpha = array[..., -1]
    see_through = int(np.count_nonzero(alpha != _opaque(array.dtype)))
    if see_through:
        raise DataError(f"{path}: alpha channel is not fully opaque ({see_through} of {alpha.size} "
                        "pixels are transparent or translucent); only an opaque alpha can be "
                        "dropped: flatten the image or save it without alpha")
    colour = array[..., :-1]
    return colour[..., 0] if colour.shape[-1] == 1 else colour


def _to_unit_float(array: np.ndarray, path: Path, non_finite: str) -> np.ndarray:
    if array.dtype == bool:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        if array.dtype.itemsize <= 2 and np.issubdtype(array.dtype, np.unsignedinteger):
            return array.astype(np.float32) / np.float32(np.iinfo(array.dtype).max)
        # PIL reads 16-bit PNGs as int32 ("I" mode): values still span 0..65535.
        if array.min() >= 0 and array.max() <= 65535:
            return array.astype(np.float32) / np.float32(65535)
        raise DataError(f"{path}: integer values {array.min()}..{array.max()} are outside 8/16-bit range")
    if np.issubdtype(array.dtype, np.floating):
        return check_finite(array, path, non_finite=non_finite).astype(np.float32)
    raise DataError(f"{path}: unsupported pixel type {array.dtype}")


def read_folder_image(path: str | Path, colour: Literal["grey", "rgb"] = "grey",
                      non_finite: str = "error") -> np.ndarray:
    """An image as float32: (H, W) for colour="grey", (3, H, W) for colour="rgb".

    RGB files become grey by luminance (0.299 R + 0.587 G + 0.114 B); grey files are
    repeated into three channels for "rgb".
    """
    if colour not in ("grey", "rgb"):
        raise DataError(f"colour must be 'grey' or 'rgb', got {colour!r}")
    path = Path(path)
    image = _without_alpha(_channels_last(_read_array(path), path), path)
    image = _to_unit_float(image, path, non_finite)
    if colour == "grey":
        return image if image.ndim == 2 else np.tensordot(image, LUMINANCE, axes=([-1], [0]))
    if image.ndim == 2:
        return np.repeat(image[None], 3, axis=0)
    return np.ascontiguousarray(np.moveaxis(image, -1, 0))


def read_folder_mask(path: str | Path, expected_shape: tuple[int, ...]) -> np.ndarray:
    """A mask as bool (H, W): the file holds 0/255, 0/1 or (16-bit) 0/65535.

    An RGB mask is accepted when its three channels are equal (a grey mask saved as colour).
    `expected_shape` is the image's (H, W) (a (C, H, W) shape is compared on its last two axes).
    """
    path = Path(path)
    raw = _read_array(path)
    check_finite(raw, path)
    mask = _without_alpha(_channels_last(raw, path, "mask"), path)
    if mask.ndim == 3 and (mask == mask[..., :1]).all():
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise DataError(f"{path}: expected a single-channel 2-D mask, found shape {raw.shape}")
    expected = tuple(expected_shape)[-2:]
    if mask.shape != expected:
        raise DataError(f"{path}: mask shape {mask.shape} does not match image shape {expected}")
    values = set(np.unique(mask).tolist())
    if not any(values <= {0, top} for top in (1, 255, 65535)):
        shown = sorted(values)[:10]
        raise DataError(f"{path}: mask values must be 0/255, 0/1 or 0/65535, found {shown}")
    return mask > 0


def _utf8_text(path: Path) -> str:
    """The file decoded as UTF-8 (a BOM is allowed); any other encoding is named by byte and line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        bom = len(data) - len(data.removeprefix(b"\xef\xbb\xbf"))
        position = bom + error.start  # positions count from after the BOM
        line = data[:position].count(b"\n") + 1
        raise DataError(f"{path}: not UTF-8 text: byte offset {position} (line {line}) is "
                        f"0x{data[position]:02x}; save it as UTF-8") from error


def _read_splits_csv(path: Path, ids: set[str]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    seen: dict[str, int] = {}
    with io.StringIO(_utf8_text(path), newline="") as handle:
        reader = csv.reader(handle)
        header = [cell.strip() for cell in next(reader, [])]
        if "id" not in header or "split" not in header:
            raise DataError(f"{path}: line 1 must name the columns id and split, found {header}")
        id_col, split_col = header.index("id"), header.index("split")
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) <= max(id_col, split_col):
                raise DataError(f"{path}: line {line}: expected columns {header}, found {row}")
            sample, split = row[id_col].strip(), row[split_col].strip()
            if split not in SPLIT_NAMES:
                valid = ", ".join(SPLIT_NAMES)
                raise DataError(f"{path}: line {line}: unknown split {split!r} (valid: {valid})")
            if sample not in ids:
                raise DataError(f"{path}: line {line}: id {sample!r} is not in the dataset")
            if sample in seen:
                raise DataError(
                    f"{path}: line {line}: id {sample!r} is listed again (first on line {seen[sample]})"
                )
            seen[sample] = line
            result[split].append(sample)
    unlisted = sorted(ids - set(seen))
    if unlisted:
        log.warning("%s: %d ids are in no split and are left out: %s", path, len(unlisted), unlisted[:10])
    return {name: sorted(members) for name, members in result.items()}


def folder_splits(root: str | Path, ids: list[str], seed: int) -> dict[str, list[str]]:
    """train/val/test ids: from `root/splits.csv` when present, else a seeded 70/15/15 split."""
    path = Path(root) / SPLITS_FILE
    if path.is_file():
        return _read_splits_csv(path, set(ids))
    return splits_mod.seeded_split(ids, seed=seed)
