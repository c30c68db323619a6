"""Tiling with right/bottom zero padding, its inverse, padding masks and blank tiles."""

from __future__ import annotations

import numpy as np
import pytest

from dedl_experiments.data.tiling import blank_tiles, stitch, tile, tile_positions, valid_mask

HEIGHT, WIDTH = 1408, 1876


@pytest.mark.parametrize(("size", "rows", "cols"), [(480, 3, 4), (256, 6, 8)])
def test_paper_tile_counts_and_zero_padding(size: int, rows: int, cols: int) -> None:
    image = np.ones((HEIGHT, WIDTH), dtype=np.float32)
    tiles, positions = tile(image, size)
    assert tiles.shape == (rows * cols, size, size)
    assert positions == [(r * size, c * size) for r in range(rows) for c in range(cols)]
    padded_area = rows * cols * size * size - HEIGHT * WIDTH
    assert tiles.sum() == HEIGHT * WIDTH and (tiles == 0).sum() == padded_area
    last = tiles[-1]
    assert not last[HEIGHT - (rows - 1) * size :, :].any()
    assert not last[:, WIDTH - (cols - 1) * size :].any()


def test_channel_first_arrays_are_tiled_per_channel() -> None:
    image = np.zeros((8, HEIGHT, WIDTH), dtype=np.float32)
    tiles, positions = tile(image, 480)
    assert tiles.shape == (12, 8, 480, 480) and len(positions) == 12


def test_positions_with_overlap_never_shift_back() -> None:
    assert tile_positions(10, 10, 4, stride=3) == [(y, x) for y in (0, 3, 6) for x in (0, 3, 6)]
    assert tile_positions(4, 9, 4) == [(0, 0), (0, 4), (0, 8)]
    assert tile_positions(3, 3, 8) == [(0, 0)]
    with pytest.raises(ValueError, match="stride"):
        tile_positions(10, 10, 4, stride=5)


@pytest.mark.parametrize("stride", [None, 5, 16])
@pytest.mark.parametrize("shape", [(37, 50), (3, 37, 50), (16, 16)])
def test_stitch_inverts_tile(shape: tuple[int, ...], stride: int | None) -> None:
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    tiles, positions = tile(image, 16, stride)
    restored = stitch(tiles, positions, *shape[-2:])
    assert restored.shape == image.shape and restored.dtype == np.float32
    np.testing.assert_allclose(restored, image, rtol=1e-6)


def test_stitch_averages_overlapping_predictions() -> None:
    positions = tile_positions(4, 6, 4, stride=2)
    tiles = np.stack([np.full((4, 4), float(i)) for i in range(len(positions))])
    stitched = stitch(tiles, positions, 4, 6)
    np.testing.assert_array_equal(stitched[:, :2], 0)
    np.testing.assert_array_equal(stitched[:, 2:4], 0.5)
    np.testing.assert_array_equal(stitched[:, 4:], 1)


def test_valid_mask_marks_the_image_and_excludes_padding() -> None:
    positions = tile_positions(HEIGHT, WIDTH, 480)
    valid = valid_mask(positions, HEIGHT, WIDTH, 480)
    assert valid.shape == (12, 480, 480) and valid.dtype == bool
    assert valid.sum() == HEIGHT * WIDTH
    assert valid[0].all()
    assert valid[-1].sum() == (HEIGHT - 960) * (WIDTH - 1440)
    _, tiled_positions = tile(np.zeros((HEIGHT, WIDTH)), 480)
    assert tiled_positions == positions


def test_blank_tiles_use_share_of_bright_pixels() -> None:
    tiles = np.zeros((3, 10, 10), dtype=np.float32)
    tiles[1, 0, 0] = 1.0  # 1 % bright: content
    tiles[2, 0, 0] = 0.05  # bright pixel below threshold: still blank
    np.testing.assert_array_equal(blank_tiles(tiles, threshold=0.1), [True, False, True])
    np.testing.assert_array_equal(blank_tiles(tiles, threshold=0.1, min_content=0.02), [True, True, True])
