"""The JPEG + CSV classification layout, and the classification augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dedl_experiments.data import synthetic, synthetic_composites
from dedl_experiments.data.classification import (
    CLASSES,
    find_classification_items,
    load_rgb,
    parse_label,
    read_label_csv,
)
from dedl_experiments.data.errors import DataError
from dedl_experiments.data.transforms import IMAGENET_MEAN, classification_transform


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return synthetic.write_classification_dataset(tmp_path / "cls", n_images=30, height=40, width=50)


def _csv(path: Path, *rows: str, header: str = "file,label") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_classes_are_the_synthetic_ones() -> None:
    assert CLASSES == synthetic_composites.CLASSES == ("b", "tfh", "tfh217", "tfhl", "other")


def test_parse_label() -> None:
    assert parse_label("[0, 3]", file="x.csv", line=2) == [0, 3]
    assert parse_label(" [4] ", file="x.csv", line=2) == [4]


@pytest.mark.parametrize("text", ["[7]", "[0,", "[]", "['b']", "[1.5]", "[True]", "3", "__import__('os')"])
def test_parse_label_errors_name_file_line_and_value(text: str) -> None:
    with pytest.raises(DataError) as error:
        parse_label(text, file="lists/train_list.csv", line=12)
    message = str(error.value)
    assert "lists/train_list.csv" in message and "line 12" in message and repr(text.strip()) in message


def test_reads_synthetic_lists(root: Path) -> None:
    rows = read_label_csv(root / "train_list.csv")
    assert len(rows) == 24
    stem, labels = rows[0]
    assert stem.startswith("image_") and labels.shape == (5,) and labels.dtype == np.uint8
    assert all(labels.sum() >= 1 for _, labels in rows)
    items, problems = find_classification_items(root)
    assert problems == [] and len(items["train"]) == 24 and len(items["test"]) == 6
    path, labels = items["test"][0]
    assert path.suffix == ".jpg" and path.is_file()


def test_unquoted_label_with_comma_is_joined_back(tmp_path: Path) -> None:
    path = _csv(tmp_path / "l.csv", "img_1,[0, 3]")
    assert read_label_csv(path)[0][1].tolist() == [1, 0, 0, 1, 0]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (["a,[1]", "b,[7]"], ["line 3", "[7]"]),
        (["a,\"[0,\""], ["line 2", "[0,"]),
        (["a,[1]", "b,[2]", "a,[3]"], ["line 4", "'a'", "line 2"]),
    ],
)
def test_bad_csv_names_file_and_line(tmp_path: Path, rows: list[str], expected: list[str]) -> None:
    path = _csv(tmp_path / "train_list.csv", *rows)
    with pytest.raises(DataError) as error:
        read_label_csv(path)
    assert str(path) in str(error.value)
    for part in expected:
        assert part in str(error.value)


def test_missing_column_lists_the_columns(tmp_path: Path) -> None:
    path = _csv(tmp_path / "train_list.csv", "a,[1]", header="file,labels")
    with pytest.raises(DataError) as error:
        read_label_csv(path)
    assert str(path) in str(error.value) and "'labels'" in str(error.value)


def test_missing_image_is_an_error_or_skipped(root: Path) -> None:
    stem, _ = read_label_csv(root / "test_list.csv")[2]
    (root / "images" / f"{stem}.jpg").unlink()
    with pytest.raises(DataError) as error:
        find_classification_items(root)
    assert stem in str(error.value) and "test_list.csv" in str(error.value)
    items, problems = find_classification_items(root, skip_missing=True)
    assert len(items["test"]) == 5 and len(problems) == 1 and stem in problems[0]


def test_file_in_both_lists_is_an_error(root: Path) -> None:
    stem, _ = read_label_csv(root / "train_list.csv")[0]
    with (root / "test_list.csv").open("a") as handle:
        handle.write(f"{stem},[1]\n")
    with pytest.raises(DataError, match=stem):
        find_classification_items(root)


def test_load_rgb_resizes(root: Path) -> None:
    image = load_rgb(root / "images" / "image_0000.jpg", 24)
    assert image.shape == (24, 24, 3) and image.dtype == np.uint8


def test_corrupt_and_truncated_jpeg_name_the_file(root: Path) -> None:
    corrupt = root / "images" / "image_0001.jpg"
    corrupt.write_bytes(b"\x00garbage" * 50)
    truncated = root / "images" / "image_0002.jpg"
    truncated.write_bytes(truncated.read_bytes()[:300])
    for path in (corrupt, truncated, root / "images" / "absent.jpg"):
        with pytest.raises(DataError) as error:
            load_rgb(path, 16)
        assert str(path) in str(error.value)


def test_classification_transform_shapes_and_stats(root: Path) -> None:
    image = load_rgb(root / "images" / "image_0003.jpg", 32)
    for train in (True, False):
        out = classification_transform(train, 32)(image=image)["image"]
        assert isinstance(out, torch.Tensor) and out.shape == (3, 32, 32) and out.dtype == torch.float32
    # the ImageNet mean colour maps to zero, black to -mean/std
    mean_colour = np.broadcast_to(np.round(np.array(IMAGENET_MEAN) * 255).astype(np.uint8), (8, 8, 3))
    assert classification_transform(False, 8)(image=mean_colour)["image"].abs().max() < 0.02
    black = classification_transform(False, 8)(image=np.zeros((8, 8, 3), np.uint8))["image"]
    assert black[0, 0, 0].item() == pytest.approx(-0.485 / 0.229, abs=1e-4)
    plain = classification_transform(False, 32, normalise=False)(image=image)["image"]
    assert 0 <= plain.min() and plain.max() <= 1


def test_classification_transform_is_seeded_and_children_are_independent(root: Path) -> None:
    image = load_rgb(root / "images" / "image_0004.jpg", 32)
    transform = classification_transform(True, 32)
    outputs = []
    for seed in (5, 5, 6):
        transform.set_random_seed(seed)
        outputs.append(transform(image=image)["image"])
    assert torch.equal(outputs[0], outputs[1])
    # albumentations 2.0 would give every child the same stream, so both flips always coincide
    draws = []
    for seed in range(40):
        transform.set_random_seed(seed)
        vertical, horizontal = transform.transforms[-4:-2]
        assert type(vertical).__name__ == "VerticalFlip" and type(horizontal).__name__ == "HorizontalFlip"
        draws.append(vertical.random_generator.random() != horizontal.random_generator.random())
    assert all(draws)
