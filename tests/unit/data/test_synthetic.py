"""The synthetic generators write the real inForm / classification layouts, deterministically."""

from __future__ import annotations

import ast
import csv
import functools
import multiprocessing
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from dedl_experiments.data import synthetic, synthetic_composites
from dedl_experiments.data.errors import DataError
from dedl_experiments.data.inform import COMPONENTS, normalise
from dedl_experiments.data.tiling import blank_tiles, tile

HEIGHT, WIDTH = 176, 235  # 1/8 of the real 1408 x 1876
PANEL = "Panel 1"
SMALL = {"height": HEIGHT, "width": WIDTH, "images_per_patient": 1}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _sample_names(root: Path) -> list[str]:
    return sorted(p.name.removesuffix("_component_data.tif") for p in (root / PANEL).glob("*_component_data.tif"))


@pytest.fixture(scope="module")
def inform_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.write_inform_dataset(tmp_path_factory.mktemp("inform"), **SMALL)


def test_same_seed_gives_identical_bytes_other_seed_differs(tmp_path: Path, inform_root: Path) -> None:
    again = synthetic.write_inform_dataset(tmp_path / "again", **SMALL)
    assert _files(again) == _files(inform_root)

    other = synthetic.write_inform_dataset(tmp_path / "other", seed=1, **SMALL)
    original_images = [v for k, v in _files(inform_root).items() if k.endswith("_component_data.tif")]
    other_images = [v for k, v in _files(other).items() if k.endswith("_component_data.tif")]
    assert len(other_images) == len(original_images)
    assert not set(other_images) & set(original_images)


def test_layout_has_every_file_of_the_inform_export(inform_root: Path) -> None:
    names = _sample_names(inform_root)
    assert len(names) == len(synthetic.PATIENTS)
    assert sorted(name.split("_")[1] for name in names) == sorted(synthetic.PATIENTS)
    labels = inform_root / "Labels" / f"{PANEL} cell labels"
    for name in names:
        assert re.fullmatch(r"\d{6}_Myo\d{3}_\[\d+,\d+\]", name)
        assert (inform_root / PANEL / f"{name}_component_dataMeasured").is_file()
        assert (labels / f"{name}_component_datalabels").is_file()
        assert (labels / "Mask Labels" / f"{name}_component_data.tifMask.tif").is_file()


def test_image_has_8_float32_components_and_a_trailing_rgb_thumbnail(inform_root: Path) -> None:
    name = _sample_names(inform_root)[0]
    with tifffile.TiffFile(inform_root / PANEL / f"{name}_component_data.tif") as tif:
        pages = list(tif.pages)
        assert len(pages) == len(COMPONENTS) + 1
        for page in pages[:-1]:
            assert page.shape == (HEIGHT, WIDTH)
            assert page.dtype == np.float32
        thumbnail = pages[-1]
        assert thumbnail.dtype == np.uint8
        assert thumbnail.shape == (HEIGHT // 8, -(-WIDTH // 8), 3)
        dapi = pages[0].asarray()
    assert 0 <= dapi.min() and 15 < dapi.max() < 60


def test_mask_is_0_255_and_covers_exactly_the_bright_nuclei(inform_root: Path) -> None:
    for name in _sample_names(inform_root):
        mask_folder = inform_root / "Labels" / f"{PANEL} cell labels" / "Mask Labels"
        mask_file = mask_folder / f"{name}_component_data.tifMask.tif"
        with tifffile.TiffFile(mask_file) as tif:
            assert len(tif.pages) == 1
            mask = tif.pages[0].asarray()
        assert mask.shape == (HEIGHT, WIDTH) and mask.dtype == np.uint8
        assert set(np.unique(mask).tolist()) == {0, 255}
        components = tifffile.imread(inform_root / PANEL / f"{name}_component_data.tif", key=range(8))
        nucleus = mask == 255
        assert 0.05 < nucleus.mean() < 0.4
        assert components[0][nucleus].mean() > 8 * components[0][~nucleus].mean()
        # Marker-positive nuclei are bright in their marker channel only inside nuclei.
        cd19 = components[COMPONENTS.index("CD19")]
        assert cd19[nucleus].mean() > 3 * cd19[~nucleus].mean()


def test_every_image_has_an_empty_region_that_gives_blank_tiles(inform_root: Path) -> None:
    for name in _sample_names(inform_root):
        dapi = tifffile.imread(inform_root / PANEL / f"{name}_component_data.tif", key=0)
        tiles, _ = tile(normalise(dapi), 16)
        blank = blank_tiles(tiles, threshold=0.3)
        assert blank.any() and not blank.all()


def test_cell_and_phenotype_tables_describe_the_same_cells(inform_root: Path) -> None:
    name = _sample_names(inform_root)[0]
    cell_table = inform_root / "Labels" / f"{PANEL} cell labels" / f"{name}_component_datalabels"
    with cell_table.open() as handle:
        points = list(csv.DictReader(handle, delimiter="\t"))
    with (inform_root / PANEL / f"{name}_component_dataMeasured").open() as handle:
        cells = list(csv.DictReader(handle, delimiter="\t"))
    assert {"Label", "X", "Y"} <= set(points[0])
    xs, ys = np.array([int(p["X"]) for p in points]), np.array([int(p["Y"]) for p in points])
    assert xs.min() >= 1 and xs.max() <= WIDTH and ys.min() >= 1 and ys.max() <= HEIGHT
    assert {p["Label"] for p in points} == {c["listname"] for c in cells}
    assert all(re.fullmatch(r"Cell\d+", c["listname"]) for c in cells)
    markers = np.array([[int(c[m]) for m in ("cd19", "cd4", "cd27", "cxcr3", "cxcr5", "pd1")] for c in cells])
    assert set(np.unique(markers).tolist()) == {0, 1}


@pytest.fixture(scope="module")
def classification_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.write_classification_dataset(tmp_path_factory.mktemp("cls"), n_images=30, height=88, width=117)


def _read_list(path: Path) -> dict[str, list[int]]:
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["file", "label"]
    return {row["file"]: ast.literal_eval(row["label"]) for row in rows}


def test_classification_lists_split_80_20_with_every_class_on_both_sides(classification_root: Path) -> None:
    train = _read_list(classification_root / "train_list.csv")
    test = _read_list(classification_root / "test_list.csv")
    assert (len(train), len(test)) == (24, 6)
    assert not set(train) & set(test)
    for part in (train, test):
        assert {c for labels in part.values() for c in labels} == set(range(len(synthetic_composites.CLASSES)))
    counts = np.bincount([c for labels in {**train, **test}.values() for c in labels], minlength=5)
    assert counts[synthetic_composites.CLASSES.index("tfhl")] < counts[synthetic_composites.CLASSES.index("b")]
    assert counts[synthetic_composites.CLASSES.index("tfhl")] < counts[synthetic_composites.CLASSES.index("other")]
    for file in {**train, **test}:
        with Image.open(classification_root / "images" / f"{file}.jpg") as image:
            assert image.mode == "RGB" and image.size == (117, 88)


def test_classification_labels_are_visible_as_class_colours(classification_root: Path) -> None:
    labels = {
        **_read_list(classification_root / "train_list.csv"),
        **_read_list(classification_root / "test_list.csv"),
    }
    chroma = synthetic_composites.CLASS_COLOURS / synthetic_composites.CLASS_COLOURS.sum(axis=1, keepdims=True)
    for file, classes in labels.items():
        pixels = np.asarray(Image.open(classification_root / "images" / f"{file}.jpg"), dtype=np.float32)
        bright = pixels.sum(axis=-1) > 200
        pixel_chroma = pixels[bright] / pixels[bright].sum(axis=-1, keepdims=True)
        distance = np.linalg.norm(pixel_chroma[:, None, :] - chroma[None], axis=-1)
        shown = {c for c in range(len(chroma)) if (distance[:, c] < 0.08).sum() >= 3}
        assert shown == set(classes), file


def test_ensure_dataset_generates_once_and_again_only_when_params_change(tmp_path: Path) -> None:
    root = tmp_path / "data"
    synthetic.ensure_dataset(root, "inform", **SMALL)
    manifest = root / synthetic.MANIFEST
    first = manifest.stat()
    sample = next((root / PANEL).glob("*.tif")).stat()

    synthetic.ensure_dataset(root, "inform", seed=0, panel=PANEL, **SMALL)  # defaults spelled out
    assert (manifest.stat().st_ino, manifest.stat().st_mtime_ns) == (first.st_ino, first.st_mtime_ns)
    again = next((root / PANEL).glob("*.tif")).stat()
    assert (again.st_ino, again.st_mtime_ns) == (sample.st_ino, sample.st_mtime_ns)

    synthetic.ensure_dataset(root, "inform", seed=1, **SMALL)
    assert manifest.stat().st_ino != first.st_ino
    assert '"seed": 1' in manifest.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".data.lock", "data"]


def test_ensure_dataset_rejects_bad_options_and_foreign_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown option.*'colour'"):
        synthetic.ensure_dataset(tmp_path / "a", "inform", colour=3)
    with pytest.raises(DataError, match="unknown synthetic dataset kind 'video'"):
        synthetic.ensure_dataset(tmp_path / "a", "video")
    foreign = tmp_path / "real"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("real data")
    with pytest.raises(DataError, match=re.escape(str(foreign)) + ".*refusing to overwrite"):
        synthetic.ensure_dataset(foreign, "classification", n_images=4, height=16, width=16)
    assert (foreign / "keep.txt").read_text() == "real data"


def _ensure_in_child(root: Path, counter: Path) -> str:
    writer = synthetic._WRITERS["classification"]

    @functools.wraps(writer)  # keeps the signature that ensure_dataset reads the defaults from
    def counting_writer(path: Path, **params: object) -> Path:
        with counter.open("a") as handle:
            handle.write("generated\n")
        return writer(path, **params)

    synthetic._WRITERS["classification"] = counting_writer
    synthetic.ensure_dataset(root, "classification", n_images=8, height=32, width=40)
    return (root / synthetic.MANIFEST).read_text()


def test_concurrent_callers_generate_the_dataset_once(tmp_path: Path) -> None:
    root, counter = tmp_path / "shared", tmp_path / "count.txt"
    context = multiprocessing.get_context("fork")
    with context.Pool(3) as pool:
        manifests = pool.starmap(_ensure_in_child, [(root, counter)] * 3)
    assert counter.read_text().count("generated") == 1
    assert len(set(manifests)) == 1
    assert len(list((root / "images").glob("*.jpg"))) == 8
