"""The device data path (data/device_augment.py) against the CPU pipeline (TileDataset +
albumentations): same draws, same pixels, same batches; run on CPU tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dedl_experiments.data import device_augment as da
from dedl_experiments.data.datasets import TileDataset, item_seed
from dedl_experiments.data.prepare import TileSplit
from dedl_experiments.data.transforms import IGNORE, ROTATED_IN, segmentation_transform

CPU = torch.device("cpu")
# A pixel may only differ where float32 rounding differs between OpenCV's SIMD code and torch
# (none seen): allowed at most this share of a tile's pixels, in the image and in the target.
MAX_DIFFERING_SHARE = 1e-4


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
        for k in rows:
            want_image, want_target = cpu_pipeline(split, 26, epoch, int(k))
            image_differs = (images[k] != want_image).any(dim=0).float().mean().item()
            target_differs = (targets[k] != want_target).float().mean().item()
            assert image_differs <= MAX_DIFFERING_SHARE and target_differs <= MAX_DIFFERING_SHARE
            # What is measured: no pixel differs at all.
            assert torch.equal(images[k], want_image), (epoch, k)
            assert torch.equal(targets[k], want_target), (epoch, k)
            assert images.dtype == want_image.dtype and targets.dtype == want_target.dtype
    # Both flips fired and did not fire somewhere: the comparison covered every combination.
    assert seen == {"vertical": {False, True}, "horizontal": {False, True}}


def test_rotated_in_corners_and_padding_keep_the_cpu_codes() -> None:
    split = make_split(4, 480)
    dataset = da.DeviceTileDataset(da.DeviceTiles(split, CPU), augment=True, seed=1)
    images, targets = dataset.batch(np.arange(4))
    for k in range(4):
        want_image, want_target = cpu_pipeline(split, 1, 0, k)
        assert torch.equal(targets[k], want_target) and torch.equal(images[k], want_image)
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
        assert np.array_equal(cv2.invertAffineTransform(got[:2]).astype(np.float32), want)
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
        for (ci, ct), (di, dt) in zip(cpu_batches, dev_batches, strict=True):
            assert torch.equal(ci, di) and torch.equal(ct, dt)


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
    from dedl_experiments.config import ConfigError

    for bad in ("yes", 1, None):
        with pytest.raises(ConfigError, match="loader.device_data"):
            da.use_device_data(bad, CPU, 1, 0.25)
