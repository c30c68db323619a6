"""The plain images/ + masks/ layout: pairing, reading 8/16-bit/float/RGB files, masks, splits.csv."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from dedl_experiments.data.errors import DataError
from dedl_experiments.data.folder import (
    find_folder_samples,
    folder_splits,
    read_folder_image,
    read_folder_mask,
)
from dedl_experiments.data.samples import Sample
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
    assert [s.name for s in samples] == ["a", "b", "c", "d"]
    # The one sample type of every layout: a folder image is its own patient.
    assert samples[2] == Sample("c", "c", dataset / "images" / "c.tif", dataset / "masks" / "c.tif")
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


def test_non_finite_pixels_are_refused_and_counted(tmp_path: Path) -> None:
    path = _tif(tmp_path / "nan.tif", np.full((8, 8), np.nan, dtype=np.float32))
    with pytest.raises(DataError, match="64 of 64 pixels are NaN or infinite") as error:
        read_folder_image(path)
    assert str(path) in str(error.value)
    partly = np.ones((40, 40), dtype=np.float32)
    partly[:, :10] = np.nan  # 400 NaN pixels (a missing stripe)
    partly[0, 20], partly[1, 20] = np.inf, -np.inf
    path = _tif(tmp_path / "partly.tif", partly)
    for colour in ("grey", "rgb"):
        with pytest.raises(DataError, match=r"partly\.tif: 402 of 1600 pixels are NaN or infinite"):
            read_folder_image(path, colour)



def test_non_finite_zero_reads_them_as_0_with_a_warning(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    partly = np.ones((40, 40), dtype=np.float32)
    partly[:, :10] = np.nan
    partly[0, 20] = np.inf
    path = _tif(tmp_path / "partly.tif", partly)
    with pytest.raises(DataError, match=r"or read them as 0 \(dataset.non_finite=zero\)"):
        read_folder_image(path)
    with caplog.at_level("WARNING"):
        image = read_folder_image(path, non_finite="zero")
    assert np.isfinite(image).all() and (image[:, :10] == 0).all() and image[0, 20] == 0
    assert (image[1:, 10:] == 1).all()
    assert "partly.tif: 401 of 1600 pixels are NaN or infinite; read as 0" in caplog.text

def test_non_finite_mask_is_refused_and_counted(tmp_path: Path) -> None:
    mask = np.zeros((8, 8), dtype=np.float32)
    mask[2:4, 2:4] = 1
    mask[0, 0] = np.nan
    path = _tif(tmp_path / "mask.tif", mask)
    with pytest.raises(DataError, match=r"mask\.tif: 1 of 64 pixels are NaN or infinite"):
        read_folder_mask(path, (8, 8))


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


def test_root_that_is_a_file_is_named_as_such(tmp_path: Path) -> None:
    root = tmp_path / "export.zip"
    root.write_bytes(b"PK")
    with pytest.raises(DataError) as error:
        find_folder_samples(root)
    assert str(error.value) == (f"dataset root {root} is a file, not a folder "
                                "(expected the folder holding images/ and masks/)")


@pytest.mark.parametrize(("name", "array", "shape"), [
    ("dot.png", np.full((1, 1), 7, dtype=np.uint8), "(1, 1)"),
    ("row.tif", np.arange(5, dtype=np.uint8)[None], "(1, 5)"),
    ("rgb_dot.png", np.zeros((1, 1, 3), dtype=np.uint8), "(1, 1, 3)"),
    ("rgb_column.png", np.zeros((6, 1, 3), dtype=np.uint8), "(6, 1, 3)"),
])
def test_tiny_images_name_their_real_shape(tmp_path: Path, name: str, array: np.ndarray, shape: str) -> None:
    path = (_png if name.endswith(".png") else _tif)(tmp_path / name, array)
    with pytest.raises(DataError) as error:
        read_folder_image(path)
    assert str(error.value) == f"{path}: image of shape {shape} is too small: it must be at least 2x2 pixels"


def test_tiny_mask_names_its_real_shape(tmp_path: Path) -> None:
    path = _png(tmp_path / "dot.png", np.full((1, 1), 255, dtype=np.uint8))
    with pytest.raises(DataError) as error:
        read_folder_mask(path, (1, 1))
    assert str(error.value) == f"{path}: mask of shape (1, 1) is too small: it must be at least 2x2 pixels"


def test_2x2_image_and_singleton_axes_still_read(tmp_path: Path) -> None:
    assert read_folder_image(_png(tmp_path / "small.png", np.eye(2, dtype=np.uint8) * 255)).shape == (2, 2)
    stacked = _tif(tmp_path / "one_sample.tif", np.ones((1, 4, 5), dtype=np.uint8))
    assert read_folder_image(stacked).shape == (4, 5)
    planar = tmp_path / "planar.tif"
    tifffile.imwrite(planar, np.zeros((3, 6, 7), dtype=np.uint8), photometric="rgb", planarconfig="separate")
    assert read_folder_image(planar, colour="rgb").shape == (3, 6, 7)


def test_splits_csv_not_in_utf8_names_file_byte_and_line(dataset: Path) -> None:
    path = dataset / "splits.csv"
    path.write_bytes("id,split\na,train\nb,val\n# café\nc,test\n".encode("latin-1"))
    with pytest.raises(DataError) as error:
        folder_splits(dataset, ["a", "b", "c", "d"], seed=0)
    offset = path.read_bytes().index(b"\xe9")
    assert str(error.value) == (f"{path}: not UTF-8 text: byte offset {offset} (line 4) is 0xe9; "
                                "save it as UTF-8")
    path.write_bytes(b"\xef\xbb\xbf" + "id,split\na,train\nb,val\nc,test\n".encode())  # UTF-8 with a BOM
    assert folder_splits(dataset, ["a", "b", "c", "d"], seed=0)["test"] == ["c"]


def test_splits_csv_error_offset_counts_the_bom(dataset: Path) -> None:
    path = dataset / "splits.csv"
    path.write_bytes(b"\xef\xbb\xbfid,split\n\xe9,train\n")
    with pytest.raises(DataError, match=r"byte offset 12 \(line 2\) is 0xe9"):
        folder_splits(dataset, ["a"], seed=0)


def _pages(path: Path, pages: list[np.ndarray], thumbnail: np.ndarray | None = None) -> Path:
    with tifffile.TiffWriter(path) as tiff:
        for page in pages:
            tiff.write(page, photometric="minisblack", metadata=None)
        if thumbnail is not None:
            tiff.write(thumbnail, photometric="minisblack", subfiletype=1, metadata=None)
    return path


def test_multi_page_tiffs_are_refused_naming_the_page_count(tmp_path: Path) -> None:
    image = _pages(tmp_path / "stack.tif", [np.zeros((8, 8), dtype=np.uint8)] * 3)
    with pytest.raises(DataError) as error:
        read_folder_image(image)
    assert str(error.value) == (f"{image}: TIFF holds 3 pages (a stack); the folder layout takes one "
                                "2-D image per file: save each page as its own file")
    mask = _pages(tmp_path / "mask.tif", [_mask(8, 10, 255)] * 2)
    with pytest.raises(DataError, match=rf"^{re.escape(str(mask))}: TIFF holds 2 pages \(a stack\)"):
        read_folder_mask(mask, (8, 10))


def test_a_reduced_resolution_thumbnail_is_not_a_second_page(tmp_path: Path) -> None:
    ramp = np.arange(64, dtype=np.uint8).reshape(8, 8)
    path = _pages(tmp_path / "with_thumbnail.tif", [ramp], thumbnail=np.zeros((2, 2), dtype=np.uint8))
    assert len(tifffile.TiffFile(path).pages) == 2
    np.testing.assert_allclose(read_folder_image(path), ramp / 255, rtol=1e-6)


def test_animated_png_is_refused_naming_the_frame_count(tmp_path: Path) -> None:
    path = tmp_path / "anim.png"
    frames = [Image.fromarray(np.full((6, 6), value, dtype=np.uint8)) for value in (0, 100, 200)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: PNG holds 3 frames"):
        read_folder_image(path)


def _rgba(alpha: int) -> np.ndarray:
    rgba = np.zeros((6, 7, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    rgba[0, :3, 3] = alpha
    return rgba


def test_translucent_alpha_is_refused_and_opaque_alpha_dropped(tmp_path: Path) -> None:
    path = _png(tmp_path / "rgba.png", _rgba(alpha=0))
    with pytest.raises(DataError) as error:
        read_folder_image(path)
    assert str(error.value) == (f"{path}: alpha channel is not fully opaque (3 of 42 pixels are "
                                "transparent or translucent); only an opaque alpha can be dropped: "
                                "flatten the image or save it without alpha")
    opaque = read_folder_image(_png(tmp_path / "opaque.png", _rgba(alpha=255)), colour="rgb")
    assert opaque.shape == (3, 6, 7) and np.allclose(opaque[0], 200 / 255) and np.allclose(opaque[1:], 0)


def test_alpha_rule_covers_grey_alpha_palette_tiff_and_masks(tmp_path: Path) -> None:
    grey_alpha = np.stack([np.full((5, 5), 9, np.uint8), np.full((5, 5), 128, np.uint8)], axis=-1)
    la = _png(tmp_path / "la.png", grey_alpha)
    palette = tmp_path / "palette.png"
    Image.fromarray(np.eye(5, dtype=np.uint8)).convert("P").save(palette, transparency=0)
    rgba16 = np.full((5, 5, 4), 65535, dtype=np.uint16)
    rgba16[2, 2, 3] = 65534
    tif = tmp_path / "rgba16.tif"
    tifffile.imwrite(tif, rgba16, photometric="rgb", extrasamples=["unassalpha"])
    for path in (la, palette, tif):
        with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: alpha channel is not fully opaque"):
            read_folder_image(path)
    grey_alpha[..., 1] = 255
    assert read_folder_image(_png(tmp_path / "la_opaque.png", grey_alpha)).shape == (5, 5)
    mask = _rgba(alpha=0)
    mask[..., :3] = 255
    path = _png(tmp_path / "mask_rgba.png", mask)
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: alpha channel is not fully opaque"):
        read_folder_mask(path, (6, 7))


def test_unpaired_files_are_warned_about_once(dataset: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The reader lists each unpaired image or mask once; the prepare step does not repeat it."""
    from conftest import compose_config
    from dedl_experiments.data.preparation import open_raw_segmentation

    (dataset / "splits.csv").write_text("id,split\na,train\nb,train\nc,val\nd,test\n")
    cfg = compose_config(["dataset=folder", f"dataset.root={dataset}", "budget=smoke"])
    with caplog.at_level(logging.WARNING):
        open_raw_segmentation(cfg)
    orphans = [r.getMessage() for r in caplog.records if "e.tiff" in r.getMessage()
               or "f.png" in r.getMessage()]
    assert len(orphans) == 2, orphans
