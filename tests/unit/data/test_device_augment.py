"""The device data path (data/device_augment.py) against the CPU pipeline (TileDataset +
albumentations): same draws, same pixels up to float32 rounding ties, same batches; run on CPU
tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cpu_code_paths import check_the_asked_code_paths, use_the_asked_code_paths
from dedl_experiments.data import device_augment as da
from dedl_experiments.data.datasets import TileDataset, item_seed
from dedl_experiments.data.preparation import TileSplit
from dedl_experiments.data.transforms import IGNORE, ROTATED_IN, segmentation_transform

use_the_asked_code_paths()

CPU = torch.device("cpu")
# Both paths sample the nearest source pixel of a float32 source coordinate. Where that
# coordinate lies on a rounding tie (x.5) to float32 precision, OpenCV's SIMD code and torch may
# round it to either side, and OpenCV's choice depends on the CPU (and differs between its
# float image and uint8 mask warps). So a pixel may differ, in the image or the target, only
# where its exact source coordinate lies within TIE_ULPS float32 ulps (at the tile's size) of a
# tie, and then holds a source pixel on one side of that tie (or the fill value when that side
# lies outside the tile, at the rotated-in corners). Measured on 480 px tiles: none on the
# developers' Intel CPUs; on an AMD EPYC up to 12 image and 6 target pixels of 230,400, each
# within 1.1 ulps of a tie. At most MAX_DIFFERING_SHARE of a tile's pixels may differ (or
# MIN_DIFFERING_LIMIT pixels, on tiles too small for that share to make a few pixels).
TIE_ULPS = 4
MAX_DIFFERING_SHARE = 2e-4
MIN_DIFFERING_LIMIT = 4


def test_the_asked_cpu_code_paths_are_in_use() -> None:
    """`make test` reruns this module with the CPUs' generic code (tests/cpu_code_paths.py)."""
    check_the_asked_code_paths()


def source_coordinates(inverse: np.ndarray, vertical: bool, horizontal: bool,
                       size: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact (float64) source x and y (H, W) of every output pixel of one item: its flips
    select the rotated pixel, whose source is the float32 inverse rotation applied to it."""
    xs, ys = np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64)
    x = (size - 1 - xs if horizontal else xs)[None, :]
    y = (size - 1 - ys if vertical else ys)[:, None]
    m = inverse.astype(np.float64)
    return m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]


def assert_equal_up_to_rounding_ties(got: tuple[torch.Tensor, torch.Tensor],
                                     want: tuple[torch.Tensor, torch.Tensor], split: TileSplit,
                                     k: int, inverse: np.ndarray, vertical: bool,
                                     horizontal: bool) -> None:
    """Item k's image (C, H, W) and target (H, W) of both paths agree as stated above."""
    (image, target), (want_image, want_target) = got, want
    size = target.shape[-1]
    tie = TIE_ULPS * float(np.spacing(np.float32(size)))
    sx, sy = source_coordinates(inverse, vertical, horizontal, size)
    near = [np.abs(s - np.floor(s) - 0.5) <= tie for s in (sx, sy)]
    differs = ((image != want_image).any(dim=0) | (target != want_target)).numpy()
    assert not (differs & ~(near[0] | near[1])).any(), f"item {k}: a pixel away from a tie differs"
    limit = max(MAX_DIFFERING_SHARE * differs.size, MIN_DIFFERING_LIMIT)
    assert differs.sum() <= limit, f"item {k}: {int(differs.sum())} pixels differ"
    source_image = torch.from_numpy(np.asarray(split.images[k]))
    source_target = torch.from_numpy(np.asarray(split.targets[k]))
    for y, x in zip(*np.nonzero(differs)):
        sides = [[int(np.floor(s[y, x])), int(np.floor(s[y, x])) + 1] if n[y, x]
                 else [int(np.rint(s[y, x]))] for s, n in zip((sx, sy), near)]
        allowed = [(source_image[:, cy, cx], source_target[cy, cx])
                   if 0 <= cx < size and 0 <= cy < size
                   else (torch.zeros(image.shape[0]), torch.tensor(ROTATED_IN, dtype=torch.uint8))
                   for cx in sides[0] for cy in sides[1]]
        for pixel in ((image[:, y, x], target[y, x]), (want_image[:, y, x], want_target[y, x])):
            assert any(torch.equal(pixel[0], a) and pixel[1] == b for a, b in allowed), (k, y, x)


def make_split(n: int, size: int, channels: int = 1, seed: int = 0) -> TileSplit:
    """Random tiles with a zero-padded bottom-right band (IGNORE in the target), as the prepare
    step writes tiles at an image's edge."""
    rng = np.random.default_rng(seed)
    images = rng.random((n, channels, size, size), dtype=np.float32)
    targets = (rng.random((n, size, size)) > 0.6).astype(np.uint8)
    pad = max(1, size // 5)
    for k in range(0, n, 2):  # every other tile lies at an image edge
        images[k, :, -pad:, :] = 0
        images[k, :, :, -pad:] = 0
        targets[k, -pad:, :] = IGNORE
        targets[k, :, -pad:] = IGNORE
    return TileSplit(images, targets, np.zeros(n, dtype=bool),
                     [{"sample": "s", "y": 0, "x": 0}] * n)


def cpu_pipeline(split: TileSplit, seed: int, epoch: int, k: int):
    dataset = TileDataset(split, segmentation_transform(True), seed=seed)
    dataset.set_epoch(epoch)
    image, target = dataset[k]
    return image, target


@pytest.mark.parametrize("size,channels", [(32, 1), (64, 3), (96, 1)])
def test_device_path_applies_the_cpu_pipelines_transform(size: int, channels: int) -> None:
    split = make_split(12, size, channels)
    tiles = da.DeviceTiles(split, CPU)
    dataset = da.DeviceTileDataset(tiles, augment=True, seed=26)
    seen = {"vertical": set(), "horizontal": set()}
    for epoch in (0, 3):
        dataset.set_epoch(epoch)
        rows = np.arange(len(split.images))
        images, targets = dataset.batch(rows)
        _, vertical, horizontal = da.augment_parameters(rows, 26, epoch, size, size)
        seen["vertical"] |= set(vertical.tolist())
        seen["horizontal"] |= set(horizontal.tolist())
        inverse, _, _ = da.augment_parameters(rows, 26, epoch, size, size)
        for k in rows:
            want_image, want_target = cpu_pipeline(split, 26, epoch, int(k))
            assert_equal_up_to_rounding_ties((images[k], targets[k]), (want_image, want_target),
                                             split, int(k), inverse[k], vertical[k], horizontal[k])
            assert images.dtype == want_image.dtype and targets.dtype == want_target.dtype
    # Both flips fired and did not fire somewhere: the comparison covered every combination.
    assert seen == {"vertical": {False, True}, "horizontal": {False, True}}


def test_rotated_in_corners_and_padding_keep_the_cpu_codes() -> None:
    split = make_split(4, 480)
    dataset = da.DeviceTileDataset(da.DeviceTiles(split, CPU), augment=True, seed=1)
    images, targets = dataset.batch(np.arange(4))
    parameters = da.augment_parameters(np.arange(4), 1, 0, 480, 480)
    for k in range(4):
        assert_equal_up_to_rounding_ties((images[k], targets[k]), cpu_pipeline(split, 1, 0, k),
                                         split, k, *(p[k] for p in parameters))
    # A rotation of a few degrees brings in corners; tiles at an edge keep their padding code.
    assert (targets == ROTATED_IN).any() and (targets[0] == IGNORE).any()
    assert set(torch.unique(targets).tolist()) <= {0, 1, ROTATED_IN, IGNORE}


def test_draws_are_the_cpu_pipelines() -> None:
    """The angle and flips drawn here equal what albumentations' transforms draw from the
    children's seeds (read back from the transforms after a call)."""
    compose = segmentation_transform(True)
    limit, pv, ph = da.pipeline_parameters()
    assert (limit, pv, ph) == (3.0, 0.5, 0.5)
    image = np.zeros((16, 16, 1), np.float32)
    mask = np.zeros((16, 16), np.uint8)
    for item in range(20):
        seed = item_seed(7, 2, item)
        angle, vertical, horizontal = da.draw(seed, limit, pv, ph)
        assert -3 <= angle <= 3
        compose.set_random_seed(seed)
        compose(image=image, mask=mask)
        rotate, vflip, hflip = compose.transforms
        want = da.inverse_rotation(angle, 16, 16)
        got = np.asarray(rotate.params["matrix"])
        import cv2
        # Two computations of the matrix, equal to float32 precision when the angles are equal
        # (another draw's angle, uniform over +-3 degrees, moves its entries far more).
        np.testing.assert_allclose(cv2.invertAffineTransform(got[:2]).astype(np.float32), want,
                                   rtol=0, atol=1e-5)
        assert bool(vflip.params) == vertical and bool(hflip.params) == horizontal


def test_loader_visits_the_items_of_the_cpu_loader_in_the_same_batches() -> None:
    split = make_split(11, 32)
    indices = np.array([0, 2, 3, 5, 6, 7, 9, 10])
    cpu = DataLoader(TileDataset(split, segmentation_transform(True), indices, seed=5),
                     batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(5))
    dev = da.DeviceTileLoader(da.DeviceTileDataset(da.DeviceTiles(split, CPU), True, indices,
                                                   seed=5),
                              batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(5))
    assert len(dev) == len(cpu) == 3
    for epoch in (0, 1, 4):
        for loader in (cpu, dev):  # as loop.run_epoch reseeds them
            loader.dataset.set_epoch(epoch)
            loader.sampler.generator.manual_seed(loader.dataset.seed * 100003 + epoch)
        cpu_batches, dev_batches = list(cpu), list(dev)
        assert [len(b[0]) for b in dev_batches] == [3, 3, 2]
        # The same items in the same order: another item's tile differs in most of its
        # pixels, while the same item's may differ only at rounding ties (as tested above).
        for (ci, ct), (di, dt) in zip(cpu_batches, dev_batches, strict=True):
            differs = ((ci != di).any(dim=1) | (ct != dt)).flatten(1).float().mean(dim=1)
            assert (differs <= 0.01).all(), differs


def test_validation_batches_are_the_tiles_unchanged() -> None:
    split = make_split(5, 32)
    loader = da.DeviceTileLoader(da.DeviceTileDataset(da.DeviceTiles(split, CPU), False),
                                 batch_size=2, shuffle=False)
    images = torch.cat([b[0] for b in loader])
    targets = torch.cat([b[1] for b in loader])
    assert torch.equal(images, torch.from_numpy(split.images))
    assert torch.equal(targets, torch.from_numpy(split.targets))


def test_when_the_data_goes_to_the_device() -> None:
    gib = 2**30
    cuda = torch.device("cuda", 0)
    assert da.use_device_data(True, CPU, 10 * gib, 0.25)[0]
    assert not da.use_device_data(False, cuda, 1, 0.25, free_bytes=100 * gib)[0]
    assert not da.use_device_data("auto", CPU, 1, 0.25)[0]  # CPU: the workers' path
    assert da.use_device_data("auto", cuda, 2 * gib, 0.25, free_bytes=100 * gib)[0]
    # Four jobs share the device: each may take a quarter of the budget.
    assert not da.use_device_data("auto", cuda, 7 * gib, 0.25, jobs_on_device=4,
                                  free_bytes=100 * gib)[0]
    from dedl_experiments.config.checks import ConfigError

    for bad in ("yes", 1, None):
        with pytest.raises(ConfigError, match="loader.device_data"):
            da.use_device_data(bad, CPU, 1, 0.25)
