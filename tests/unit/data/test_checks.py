"""Checks of an image and its mask together: silent data errors become one clear line."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest

from dedl_experiments.data.checks import MIN_SIDE, check_image_and_mask, check_image_size
from dedl_experiments.data.errors import DataError

IMAGE, MASK = Path("/data/images/s1.tif"), Path("/data/masks/s1.tif")


def _mask(shape: tuple[int, int] = (8, 9)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[2:5, 3:6] = True
    return mask


def _ramp(shape: tuple[int, ...] = (8, 9)) -> np.ndarray:
    return np.linspace(0, 1, int(np.prod(shape)), dtype=np.float32).reshape(shape)


def test_all_zero_image_whose_mask_has_nuclei_is_refused() -> None:
    with pytest.raises(DataError) as error:
        check_image_and_mask(np.zeros((8, 9), np.float32), _mask(), IMAGE, MASK)
    assert str(error.value) == (f"{IMAGE}: image is constant (every pixel is 0) but its mask {MASK} "
                                "marks 9 nucleus pixels; the image must show the nuclei its mask "
                                "marks (re-export it, or remove the pair)")


def test_constant_multi_channel_image_is_refused() -> None:
    image = np.stack([np.full((8, 9), 0.5, np.float32), np.full((8, 9), 0.2, np.float32)])
    with pytest.raises(DataError, match=re.escape(f"{IMAGE}: image is constant (every pixel is 0.5)")):
        check_image_and_mask(image, _mask(), str(IMAGE), str(MASK))


@pytest.mark.parametrize("image, mask", [
    (_ramp(), _mask()),  # an ordinary pair
    (_ramp(), np.zeros((8, 9), bool)),  # no nuclei in an image with signal: valid data
    (np.zeros((8, 9), np.float32), np.zeros((8, 9), bool)),  # a blank field without nuclei
    (np.stack([np.zeros((8, 9), np.float32), _ramp()]), _mask()),  # one channel with signal is enough
    (_ramp(), _mask().astype(np.uint8) * 255),  # a 0/255 mask as read from a file
])
def test_valid_pairs_pass(image: np.ndarray, mask: np.ndarray) -> None:
    check_image_and_mask(image, mask, IMAGE, MASK)


def test_shape_mismatch_names_both_files() -> None:
    with pytest.raises(DataError) as error:
        check_image_and_mask(_ramp((1, 8, 9)), _mask((8, 10)), IMAGE, MASK)
    assert str(error.value) == (f"{IMAGE}: image shape (1, 8, 9) does not match the shape (8, 10) "
                                f"of its mask {MASK}")


def test_mask_marking_every_pixel_is_a_warning_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="dedl_experiments.data.checks"):
        check_image_and_mask(_ramp(), np.ones((8, 9), bool), IMAGE, MASK)
    assert [r.getMessage() for r in caplog.records] == [
        f"{IMAGE}: its mask {MASK} marks every pixel as nucleus; masks mark nuclei non-zero and "
        "background 0 (is it inverted?)"]


def test_image_size_names_the_file_shape() -> None:
    check_image_size(MIN_SIDE, MIN_SIDE, (MIN_SIDE, MIN_SIDE), IMAGE)
    with pytest.raises(DataError) as error:
        check_image_size(1, 1, (1, 1, 3), IMAGE)
    assert str(error.value) == (f"{IMAGE}: image of shape (1, 1, 3) is too small: it must be at "
                                "least 2x2 pixels")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_of_any_reader_are_refused_and_counted(bad: float) -> None:
    """The readers refuse such files; this catches a reader a dataset YAML adds."""
    image = _ramp((2, 8, 9))
    image[1, :2] = bad
    with pytest.raises(DataError, match=rf"^{re.escape(str(IMAGE))}: 18 of 144 image values are "
                                        "NaN or infinite; .*dataset.on_bad_sample=skip"):
        check_image_and_mask(image, _mask(), IMAGE, MASK)
    mask = _mask().astype(np.float32)
    mask[0, 0] = bad
    with pytest.raises(DataError, match=rf"^{re.escape(str(MASK))}: 1 of 72 mask values are NaN"):
        check_image_and_mask(_ramp(), mask, IMAGE, MASK)
