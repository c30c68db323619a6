"""The plain images/ + masks/ layout: pairing, reading 8/16-bit/float/RGB files, masks, splits.csv."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from dedl_experiments.data.errors import DataError
from dedl_experiments.data.folder import (
    FolderSample,
    find_folder_samples,
    folder_splits,
    read_folder_image,
    read_folder_mask,
)
from dedl_experiments.data.splits import seeded_split


def _png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _tif(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, array)
    return path


def _mask(height: int, width: int, top: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint16 if top > 255 else np.uint8)
    mask[2:6, 3:9] = top
    return mask


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """a: 8-bit PNG, b: 16-bit PNG, c: float TIFF, d: RGB PNG (all different sizes);
    e: image without mask; f: mask without image."""
    root = tmp_path / "data"
    ramp8 = np.arange(20 * 30, dtype=np.uint8).reshape(20, 30)
    _png(root / "images" / "a.png", ramp8)
    _png(root / "masks" / "a.png", _mask(20, 30, 255))
    ramp16 = (np.arange(25 * 35, dtype=np.uint32) * 70).astype(np.uint16).reshape(25, 35)
    ramp16[0, 0] = 65535
    _png(root / "images" / "b.png", ramp16)
    _png(root / "masks" / "b.png", _mask(25, 35, 65535))
    _tif(root / "images" / "c.tif", np.linspace(0, 30, 30 * 20, dtype=np.float32).reshape(30, 20))
    _tif(root / "masks" / "c.tif", _mask(30, 20, 1))
    rgb = np.zeros((16, 18, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    _png(root / "images" / "d.png", rgb)
    _png(root / "masks" / "d.png", _mask(16, 18, 255))
    _tif(root / "images" / "e.tiff", np.zeros((8, 8), dtype=np.uint8))
    _png(root / "masks" / "f.png", _mask(8, 8, 255))
    return root


def test_pairs_by_stem_and_reports_unpaired_files(dataset: Path) -> None:
    samples, problems = find_folder_samples(dataset)
    assert [s.id for s in samples] == ["a", "b", "c", "d"]
    assert samples[2] == FolderSample("c", dataset / "images" / "c.tif", dataset / "masks" / "c.tif")
    assert len(problems) == 2
    assert any("e.tiff" in p and "no mask" in p for p in problems)
    assert any("f.png" in p and "no image" in p for p in problems)


def test_missing_root_and_empty_image_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        find_folder_samples(tmp_path / "nowhere")
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError) as error:
        find_folder_samples(tmp_path)
    assert str(tmp_path / "images") in str(error.value)
    assert ".tif .tiff .png" in str(error.value)


def test_reads_8_and_16_bit_and_float_to_float32(dataset: Path) -> None:
    a = read_folder_image(dataset / "images" / "a.png")
    b = read_folder_image(dataset / "images" / "b.png")
    c = read_folder_image(dataset / "images" / "c.tif")
    assert a.shape == (20, 30) and b.shape == (25, 35) and c.shape == (30, 20)
    assert a.dtype == b.dtype == c.dtype == np.float32
    assert a[0, 1] == pytest.approx(1 / 255) and b[0, 0] == 1.0 and b[0, 1] == pytest.approx(70 / 65535)
    assert c.max() == pytest.approx(30)  # float images keep their values


def test_colour_switch(dataset: Path) -> None:
    grey = read_folder_image(dataset / "images" / "d.png", colour="grey")
    assert grey.shape == (16, 18)
    assert np.allclose(grey, 0.299)  # pure red by luminance
    rgb = read_folder_image(dataset / "images" / "d.png", colour="rgb")
    assert rgb.shape == (3, 16, 18) and np.allclose(rgb[0], 1) and np.allclose(rgb[1:], 0)
    repeated = read_folder_image(dataset / "images" / "a.png", colour="rgb")
    assert repeated.shape == (3, 20, 30) and np.array_equal(repeated[0], repeated[2])
    with pytest.raises(DataError, match="colour"):
        read_folder_image(dataset / "images" / "a.png", colour="cmyk")


def test_unreadable_images_name_the_file(dataset: Path, tmp_path: Path) -> None:
    png = (dataset / "images" / "a.png").read_bytes()
    cut_png = tmp_path / "cut.png"
    cut_png.write_bytes(png[: len(png) // 2])
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"this is no tiff" * 20)
    cut_tif = _tif(tmp_path / "cut.tif", np.ones((64, 64), dtype=np.float32))
    cut_tif.write_bytes(cut_tif.read_bytes()[:-2000])
    for path in (cut_png, garbage, cut_tif, tmp_path / "missing.png"):
        with pytest.raises(DataError) as error:
            read_folder_image(path)
        assert str(path) in str(error.value)
        assert "\n" not in str(error.value)


def test_all_nan_image_is_an_error(tmp_path: Path) -> None:
    path = _tif(tmp_path / "nan.tif", np.full((8, 8), np.nan, dtype=np.float32))
    with pytest.raises(DataError, match="NaN") as error:
        read_folder_image(path)
    assert str(path) in str(error.value)
    partly = np.ones((8, 8), dtype=np.float32)
    partly[0, 0] = np.nan
    assert read_folder_image(_tif(tmp_path / "partly.tif", partly))[0, 0] == 0


def test_masks_0_255_0_1_and_16_bit(dataset: Path) -> None:
    for stem, shape in (("a", (20, 30)), ("b", (25, 35))):
        mask = read_folder_mask(dataset / "masks" / f"{stem}.png", shape)
        assert mask.dtype == bool and mask.shape == shape and mask.sum() == 24
    assert read_folder_mask(dataset / "masks" / "c.tif", (30, 20)).sum() == 24
    # a (C, H, W) image shape is compared on its last two axes
    assert read_folder_mask(dataset / "masks" / "d.png", (3, 16, 18)).shape == (16, 18)


def test_bad_masks_name_file_values_and_shapes(dataset: Path, tmp_path: Path) -> None:
    odd = _png(tmp_path / "odd.png", np.array([[0, 128], [255, 0]], dtype=np.uint8))
    with pytest.raises(DataError) as error:
        read_folder_mask(odd, (2, 2))
    assert str(odd) in str(error.value) and "128" in str(error.value)
    path = dataset / "masks" / "a.png"
    with pytest.raises(DataError) as error:
        read_folder_mask(path, (21, 30))
    assert str(path) in str(error.value) and "(20, 30)" in str(error.value) and "(21, 30)" in str(error.value)


def _splits_csv(root: Path, text: str) -> Path:
    path = root / "splits.csv"
    path.write_text(text)
    return path


def test_splits_csv_and_seeded_fallback(dataset: Path) -> None:
    ids = ["a", "b", "c", "d"]
    assert folder_splits(dataset, ids, seed=3) == seeded_split(ids, seed=3)
    _splits_csv(dataset, "id,split\nb,train\na,train\nc,val\n\nd,test\n")
    assert folder_splits(dataset, ids, seed=3) == {"train": ["a", "b"], "val": ["c"], "test": ["d"]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id,split\na,train\nb,holdout\n", ["line 3", "holdout"]),
        ("id,split\na,train\nzzz,val\n", ["line 3", "zzz"]),
        ("id,split\na,train\nb,val\na,test\n", ["line 4", "'a'", "line 2"]),
        ("name,part\na,train\n", ["line 1", "name"]),
    ],
)
def test_bad_splits_csv_names_file_and_line(dataset: Path, text: str, expected: list[str]) -> None:
    path = _splits_csv(dataset, text)
    with pytest.raises(DataError) as error:
        folder_splits(dataset, ["a", "b", "c", "d"], seed=0)
    message = str(error.value)
    assert str(path) in message
    for part in expected:
        assert part in message
