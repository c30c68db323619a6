"""Reader for the classification layout: RGB JPEGs listed in CSV files with multi-label lists.

Layout::

    <root>/images/<file>.jpg
    <root>/train_list.csv, <root>/test_list.csv     columns `file` (no extension), `label` ("[0, 3]")

Class indices: 0 b, 1 tfh, 2 tfh217, 3 tfhl, 4 other (CLASSES).
"""

from __future__ import annotations

import ast
import csv
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from dedl_experiments.data.checks import check_finite
from dedl_experiments.data.errors import DataError
from dedl_experiments.data.synthetic_composites import CLASSES

log = logging.getLogger(__name__)

LIST_FILES = {"train": "train_list.csv", "test": "test_list.csv"}
# The facts name .jpg; other spellings are accepted so a re-export does not break reading.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
_PIL_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)

__all__ = ["CLASSES", "parse_label", "read_label_csv", "find_classification_items", "load_rgb"]


def parse_label(text: str, *, file: str | Path, line: int) -> list[int]:
    """Class indices of a list literal such as "[0, 3]" (parsed with ast.literal_eval, never eval)."""
    where = f"{file}: line {line}"
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as error:
        raise DataError(
            f"{where}: label {text!r} is not a list literal like [0, 3] ({type(error).__name__})"
        ) from error
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(item, int) and not isinstance(item, bool) for item in value
    ):
        raise DataError(f"{where}: label {text!r} must be a list of class indices like [0, 3]")
    if not value:
        raise DataError(f"{where}: label {text!r} is empty; every image needs at least one class")
    outside = [item for item in value if not 0 <= item < len(CLASSES)]
    if outside:
        raise DataError(f"{where}: label {text!r} has class indices {outside} outside 0..{len(CLASSES) - 1}")
    return list(value)


def _stem(name: str) -> str:
    """The `file` column should hold names without extension; tolerate one anyway."""
    return name[: -len(Path(name).suffix)] if Path(name).suffix.lower() in IMAGE_EXTENSIONS else name


def read_label_csv(path: str | Path) -> list[tuple[str, np.ndarray]]:
    """(file stem, multi-hot (len(CLASSES),) uint8) for every row, in file order."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"label list {path} does not exist")
    rows: list[tuple[str, np.ndarray]] = []
    first_line: dict[str, int] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [name.strip() for name in reader.fieldnames or []]
        if "file" not in columns or "label" not in columns:
            raise DataError(f"{path}: needs columns 'file' and 'label', found columns {columns}")
        reader.fieldnames = columns
        for row in reader:
            line = reader.line_num
            name, label = (row.get("file") or "").strip(), row.get("label")
            if row.get(None) and columns[-1] == "label":
                # An unquoted "[0, 3]" is split at its comma by the CSV reader: join it back.
                label = ",".join([label or "", *row[None]])
            if not name and not (label or "").strip():
                continue  # blank line
            if not name:
                raise DataError(f"{path}: line {line}: empty file name")
            if label is None:
                raise DataError(f"{path}: line {line}: no label for {name!r}")
            stem = _stem(name)
            if stem in first_line:
                raise DataError(
                    f"{path}: line {line}: file {stem!r} is listed again (first on line {first_line[stem]})"
                )
            first_line[stem] = line
            multi_hot = np.zeros(len(CLASSES), dtype=np.uint8)
            multi_hot[parse_label(label, file=path, line=line)] = 1
            rows.append((stem, multi_hot))
    if not rows:
        raise DataError(f"{path}: no rows below the header")
    return rows


def _image_file(folder: Path, stem: str) -> Path | None:
    for extension in IMAGE_EXTENSIONS:
        candidate = folder / f"{stem}{extension}"
        if candidate.is_file():
            return candidate
    return None


def find_classification_items(
    root: str | Path, image_dir: str = "images", skip_missing: bool = False
) -> tuple[dict[str, list[tuple[Path, np.ndarray]]], list[str]]:
    """({"train": [(image path, multi-hot)], "test": [...]}, problems).

    A listed image that is not on disk raises DataError, or with `skip_missing=True` is left
    out, logged and reported in `problems`. A file listed in both lists raises DataError
    (it would leak test images into training).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset root {root} does not exist")
    folder = root / image_dir
    if not folder.is_dir():
        raise DataError(f"dataset root {root}: no image folder {image_dir}/")
    items: dict[str, list[tuple[Path, np.ndarray]]] = {}
    problems: list[str] = []
    listed_in: dict[str, Path] = {}
    for split, list_name in LIST_FILES.items():
        csv_path = root / list_name
        items[split] = []
        for stem, labels in read_label_csv(csv_path):
            if stem in listed_in:
                raise DataError(f"{csv_path}: file {stem!r} is also listed in {listed_in[stem]}")
            listed_in[stem] = csv_path
            image = _image_file(folder, stem)
            if image is None:
                problem = f"{csv_path}: image {folder / stem}.jpg listed but not on disk"
                if not skip_missing:
                    raise DataError(problem)
                log.warning("%s; skipped", problem)
                problems.append(problem)
                continue
            items[split].append((image, labels))
    return items, problems


def load_rgb(path: str | Path, size: int) -> np.ndarray:
    """The image as uint8 (size, size, 3): RGB, resized with bilinear interpolation."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file does not exist")
    try:
        with Image.open(path) as picture:
            if picture.mode == "F":  # a float image (a TIFF under another name): RGB would hide NaN
                check_finite(np.asarray(picture), path)
            picture = picture.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(picture, dtype=np.uint8)
    except DataError:
        raise
    except _PIL_ERRORS as error:
        raise DataError(f"{path}: not a readable image ({type(error).__name__}: {error})") from error
