"""Data faults seen only across files or in the prepared cache: a cache file changed in place,
training masks without nuclei, and one image in two splits."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import compose_config
from dedl_experiments.data import synthetic
from dedl_experiments.data.cache import MANIFEST, build_once
from dedl_experiments.data.errors import DataError
from dedl_experiments.data.preparation import prepare_segmentation
from dedl_experiments.data.preparation_classification import prepare_classification

ARRAY = np.arange(4096, dtype=np.float32)


def _counting_build(builds: list[Path]):
    def build(folder: Path) -> None:
        builds.append(folder)
        np.save(folder / "train_images.npy", ARRAY)
        (folder / "stats.json").write_text(json.dumps({"tiles": 1}))
    return build


def test_a_cache_file_changed_in_place_is_found_and_rebuilt(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    cache, builds = tmp_path / "cache", []
    build_once(cache, _counting_build(builds))
    images = cache / "train_images.npy"
    size = images.stat().st_size
    with open(images, "r+b") as handle:  # 4 KiB overwritten in place: the size stays
        handle.seek(1024)
        handle.write(bytes(range(256)) * 16)
    assert images.stat().st_size == size

    with caplog.at_level(logging.WARNING):
        build_once(cache, _counting_build(builds))
    assert len(builds) == 2
    assert f"{images} changed since it was built" in caplog.text and "rebuilding" in caplog.text
    np.testing.assert_array_equal(np.load(images), ARRAY)
    caplog.clear()
    build_once(cache, _counting_build(builds))  # intact now: reused
    assert len(builds) == 2 and "rebuilding" not in caplog.text


def test_a_manifest_without_content_hashes_is_rebuilt(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """An older version's manifest (sizes only) cannot vouch for the arrays: rebuilt once."""
    cache, builds = tmp_path / "cache", []
    build_once(cache, _counting_build(builds))
    manifest = json.loads((cache / MANIFEST).read_text())
    (cache / MANIFEST).write_text(json.dumps({"sizes": manifest["sizes"]}))
    with caplog.at_level(logging.WARNING):
        build_once(cache, _counting_build(builds))
    assert len(builds) == 2
    assert f"{cache / MANIFEST} has no content hash" in caplog.text
    assert set(json.loads((cache / MANIFEST).read_text())["sha256"]) == {"train_images.npy",
                                                                       "stats.json"}


def _folder_dataset(root: Path, masks: str = "nuclei") -> Path:
    """4 grey 40x40 PNGs (distinct noise), split img0, img1 train / img2 val / img3 test."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(4):
        image = np.random.default_rng(k).integers(0, 256, (40, 40), dtype=np.uint8)
        Image.fromarray(image).save(root / "images" / f"img{k}.png")
        mask = np.zeros((40, 40), dtype=np.uint8)
        if masks == "full":
            mask[:] = 255
        elif masks == "nuclei" or k >= 2:  # "empty": no nucleus in the training masks only
            mask[10:20, 10:20] = 255
        Image.fromarray(mask).save(root / "masks" / f"img{k}.png")
    (root / "splits.csv").write_text("id,split\nimg0,train\nimg1,train\nimg2,val\nimg3,test\n")
    return root


def _folder_config(root: Path, data_dir: Path):
    return compose_config(["dataset=folder", f"dataset.root={root}", "budget=smoke",
                           "init=random", f"data_dir={data_dir}"])


@pytest.mark.parametrize("masks, what", [
    ("empty", "are empty (no nucleus pixel)"),
    ("full", "mark every pixel as nucleus"),
])
def test_training_masks_without_both_classes_are_one_data_error(tmp_path: Path, masks: str,
                                                               what: str) -> None:
    root = _folder_dataset(tmp_path / "plain", masks)
    with pytest.raises(DataError) as error:
        prepare_segmentation(_folder_config(root, tmp_path / "data"))
    message = str(error.value)
    assert message.startswith(f"{root / 'masks'}: all 2 masks of split 'train' {what}"), message
    assert "\n" not in message


def test_an_image_in_two_splits_is_warned_about_once(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    root = _folder_dataset(tmp_path / "plain")
    cfg = _folder_config(root, tmp_path / "data")
    with caplog.at_level(logging.WARNING):
        clean = prepare_segmentation(cfg)
    assert clean.stats["duplicates_across_splits"] == [] and "identical copy" not in caplog.text

    shutil.copyfile(root / "images" / "img0.png", root / "images" / "img3.png")  # test = train
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        prepared = prepare_segmentation(cfg)
    pair = "images/img0.png (train) = images/img3.png (test)"
    assert prepared.stats["duplicates_across_splits"] == [pair]
    warnings = [r.getMessage() for r in caplog.records if "identical copy" in r.getMessage()]
    assert len(warnings) == 1 and pair in warnings[0] and str(root) in warnings[0], warnings
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        prepare_segmentation(cfg)  # the cache is reused: not warned again
    assert "identical copy" not in caplog.text


def test_a_classification_image_in_both_lists_is_warned_about(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    root = synthetic.write_classification_dataset(tmp_path / "cls", n_images=20, height=40,
                                                  width=50)
    first_test = (root / "test_list.csv").read_text().splitlines()[1].split(",")[0]
    first_train = (root / "train_list.csv").read_text().splitlines()[1].split(",")[0]
    shutil.copyfile(root / "images" / f"{first_train}.jpg", root / "images" / f"{first_test}.jpg")
    cfg = compose_config(["task=classification", "dataset=autofluorescence",
                          f"dataset.root={root}", "budget=smoke", "init=random",
                          f"data_dir={tmp_path / 'data'}"])
    with caplog.at_level(logging.WARNING):
        prepared = prepare_classification(cfg)
    pair = f"images/{first_train}.jpg (train) = images/{first_test}.jpg (test)"
    assert prepared.stats["duplicates_across_splits"] == [pair]
    assert pair in caplog.text


def test_dataset_non_finite_reaches_the_reader_is_checked_and_is_no_part_of_the_cell(tmp_path: Path) -> None:
    from dedl_experiments.config.checks import ConfigError, validate
    from dedl_experiments.data.readers import non_finite
    from dedl_experiments.tracking.cells import cell_key

    cfg = compose_config(["dataset=folder", f"dataset.root={tmp_path}"])
    assert non_finite(cfg) == "error"
    zero = compose_config(["dataset=folder", f"dataset.root={tmp_path}", "dataset.non_finite=zero"])
    assert non_finite(zero) == "zero"
    # With `error` NaN data trains nothing, so `zero` never gives a second result of one cell.
    assert cell_key(cfg, "digest") == cell_key(zero, "digest")
    with pytest.raises(ConfigError, match=r"dataset.non_finite=nan is invalid: it must be one of: error, zero"):
        validate(compose_config(["dataset=folder", f"dataset.root={tmp_path}", "dataset.non_finite=nan"]))
