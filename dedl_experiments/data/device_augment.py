"""The training data on the device: a split of the prepared tile cache is copied to the job's
device once, and the segmentation augmentation runs there on whole batches with torch ops.

The CPU path (`TileDataset` + albumentations in loader workers, data/transforms.py) stays the
reference; this path computes the same thing:

- the same draws: per item, the angle and the two flip decisions come from the same seeds the
  CPU pipeline uses, `item_seed(seed, epoch, k)` split by `np.random.SeedSequence` into one seed
  per transform, each drawn with Python's `random.Random` exactly as albumentations draws them;
  so a resumed run draws what the uninterrupted one drew, and both paths draw alike;
- the same geometry: albumentations' rotation matrix about the tile centre, inverted by
  OpenCV, and OpenCV's nearest-neighbour sampling of `cv2.warpAffine` as OpenCV 5 computes it
  (source x = fma(m00, x, float32(m01 * y + m02)) in float32, rounded half to even), for the
  image and the target alike; corners brought in by the rotation get 0 in the image and
  ROTATED_IN in the target, exactly as the CPU pipeline fills them; flips follow the rotation.

Measured against the CPU pipeline (tests/unit/data/test_device_augment.py): the same images and
targets up to rounding ties. Where a pixel's source coordinate lies on a tie (x.5) to float32
precision, OpenCV's SIMD code may round it to the other side than torch does, and which side
depends on the CPU: such a pixel then holds the neighbouring source pixel (or the fill, at a
corner's edge). The tests allow that only within a few float32 ulps of a tie and on at most
0.02 % of a tile's pixels (seen: none on Intel CPUs, up to 12 of 230,400 on an AMD EPYC).

Shuffling matches too: the loader draws the epoch's order from the same generator, in the same
order of draws, as torch's DataLoader with `shuffle=True`.
"""

from __future__ import annotations

import functools
import logging
import math
import random
from collections.abc import Iterator, Sequence

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.augmentations.geometric import functional as fgeometric
from torch.utils.data import RandomSampler, SequentialSampler

from dedl_experiments.config.config_rules import ConfigError
from dedl_experiments.data.datasets import item_seed
from dedl_experiments.data.preparation import TileSplit
from dedl_experiments.data.transforms import ROTATED_IN, segmentation_transform

log = logging.getLogger(__name__)

DEVICE_DATA_CHOICES = ("auto", True, False)
# Tiles copied to the device per transfer while a split is uploaded (bounds host memory).
UPLOAD_CHUNK = 64


# --- the CPU pipeline's parameters and draws ---------------------------------------------------


@functools.cache
def pipeline_parameters() -> tuple[float, float, float]:
    """(rotation limit in degrees, vertical flip p, horizontal flip p) of the CPU pipeline,
    read from `segmentation_transform(True)`, which must still be the rotation and two flips
    that this module reproduces."""
    compose = segmentation_transform(True)
    kinds = [type(t) for t in compose.transforms]
    if kinds != [A.Rotate, A.VerticalFlip, A.HorizontalFlip]:
        raise RuntimeError("the CPU augmentation is no longer Rotate, VerticalFlip, HorizontalFlip "
                           f"({[k.__name__ for k in kinds]}): update data/device_augment.py")
    rotate, vflip, hflip = compose.transforms
    low, high = rotate.limit
    if (low != -high or rotate.p != 1.0 or rotate.interpolation != cv2.INTER_NEAREST
            or rotate.mask_interpolation != cv2.INTER_NEAREST
            or rotate.border_mode != cv2.BORDER_CONSTANT or rotate.fill != 0
            or rotate.fill_mask != ROTATED_IN or rotate.crop_border):
        raise RuntimeError("the CPU rotation's settings changed: update data/device_augment.py")
    return float(high), float(vflip.p), float(hflip.p)


def draw(seed: int, limit: float, p_vertical: float, p_horizontal: float) -> tuple[float, bool, bool]:
    """(angle, vertical flip, horizontal flip) that IndependentSeedCompose.set_random_seed(seed)
    makes the CPU pipeline draw: one child seed per transform from a SeedSequence; Rotate
    (p=1, no probability draw) takes `uniform(-limit, limit)`, each flip `random() < p`."""
    s_rotate, s_vertical, s_horizontal = np.random.SeedSequence(seed).generate_state(3)
    angle = random.Random(int(s_rotate)).uniform(-limit, limit)
    vertical = random.Random(int(s_vertical)).random() < p_vertical
    horizontal = random.Random(int(s_horizontal)).random() < p_horizontal
    return angle, vertical, horizontal


def inverse_rotation(angle: float, height: int, width: int) -> np.ndarray:
    """The 2x3 float32 map from output to source pixel coordinates that cv2.warpAffine uses
    for albumentations' rotation by `angle` degrees about the tile centre."""
    matrix = fgeometric.create_affine_transformation_matrix(
        {"x": 0, "y": 0}, {"x": 0, "y": 0}, {"x": 1, "y": 1}, angle,
        fgeometric.center((height, width)))
    return cv2.invertAffineTransform(matrix[:2]).astype(np.float32)


def augment_parameters(rows: Sequence[int], seed: int, epoch: int, height: int,
                       width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per item k of `rows`: its inverse rotation (N, 2, 3) float32 and its two flips (N,) bool,
    drawn from (seed, epoch, k) as the CPU pipeline draws them."""
    limit, p_vertical, p_horizontal = pipeline_parameters()
    inverse = np.empty((len(rows), 2, 3), dtype=np.float32)
    vertical = np.empty(len(rows), dtype=bool)
    horizontal = np.empty(len(rows), dtype=bool)
    for i, k in enumerate(rows):
        angle, vertical[i], horizontal[i] = draw(item_seed(seed, epoch, int(k)), limit,
                                                 p_vertical, p_horizontal)
        inverse[i] = inverse_rotation(angle, height, width)
    return inverse, vertical, horizontal


# --- the transform, in torch -------------------------------------------------------------------


def source_pixels(inverse: torch.Tensor, vertical: torch.Tensor, horizontal: torch.Tensor,
                  height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat source index (B, H*W) of every output pixel and whether it lies inside the tile.

    OpenCV 5's nearest-neighbour warpAffine computes the source coordinate in float32 as
    fma(m00, x, m01 * y + m02) (the row term rounded twice, the fma once) and rounds it half to
    even; the fma is computed in float64 here (the product of two float32 values is exact in
    float64) and rounded to float32. Flips act on the output: they select the rotated pixel
    (H-1-y, W-1-x) instead of (y, x).
    """
    device = inverse.device
    xs = torch.arange(width, device=device, dtype=torch.float32)
    ys = torch.arange(height, device=device, dtype=torch.float32)
    x = torch.where(horizontal[:, None], (width - 1) - xs, xs)  # (B, W)
    y = torch.where(vertical[:, None], (height - 1) - ys, ys)  # (B, H)
    m = inverse.reshape(-1, 6)

    def coordinate(a: int, b: int, c: int) -> torch.Tensor:
        row = m[:, b, None] * y  # float32, then
        row = row + m[:, c, None]  # a second float32 rounding, as OpenCV's row term
        exact = m[:, a, None, None].double() * x[:, None, :].double() + row[:, :, None].double()
        return torch.round(exact.float())  # (B, H, W), half to even as cvRound

    sx, sy = coordinate(0, 1, 2), coordinate(3, 4, 5)
    inside = (sx >= 0) & (sx <= width - 1) & (sy >= 0) & (sy <= height - 1)
    flat = (sy.clamp(0, height - 1).long() * width + sx.clamp(0, width - 1).long())
    return flat.flatten(1), inside.flatten(1)


def warp_batch(images: torch.Tensor, targets: torch.Tensor, inverse: torch.Tensor,
               vertical: torch.Tensor, horizontal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate and flip a batch of tiles as the CPU pipeline does: images (B, C, H, W) float32
    (corners brought in: 0), targets (B, H, W) uint8 (corners brought in: ROTATED_IN)."""
    b, c, h, w = images.shape
    flat, inside = source_pixels(inverse, vertical, horizontal, h, w)
    image = images.reshape(b, c, h * w).gather(2, flat[:, None, :].expand(b, c, h * w))
    image = image.masked_fill_(~inside[:, None, :], 0.0).view(b, c, h, w)
    target = targets.reshape(b, h * w).gather(1, flat)
    target = target.masked_fill_(~inside, ROTATED_IN).view(b, h, w)
    return image, target


# --- the split on the device, and a loader over it -------------------------------------------


def split_nbytes(split: TileSplit) -> int:
    return int(split.images.nbytes + split.targets.nbytes)


class DeviceTiles:
    """One split's images (N, C, S, S) float32 and targets (N, S, S) uint8 on `device`,
    copied from the memory-mapped cache in chunks (host memory stays bounded)."""

    def __init__(self, split: TileSplit, device: torch.device):
        self.device = device
        self.images = torch.empty(split.images.shape, dtype=torch.float32, device=device)
        self.targets = torch.empty(split.targets.shape, dtype=torch.uint8, device=device)
        pin = device.type == "cuda"
        for start in range(0, len(split.images), UPLOAD_CHUNK):
            end = start + UPLOAD_CHUNK
            for dst, src in ((self.images, split.images), (self.targets, split.targets)):
                chunk = torch.from_numpy(np.array(src[start:end]))  # a copy: the map is read-only
                dst[start:end].copy_(chunk.pin_memory() if pin else chunk, non_blocking=pin)
        if pin:
            torch.cuda.synchronize(device)  # once per job: the pinned chunks may be reused
        self.nbytes = split_nbytes(split)


class DeviceTileDataset:
    """The loop's view of the data (indices, seed, epoch, `set_epoch`, length), as TileDataset
    offers it; batches come from `DeviceTileLoader`."""

    def __init__(self, tiles: DeviceTiles, augment: bool, indices: np.ndarray | None = None,
                 seed: int = 0):
        self.tiles = tiles
        self.augment = augment
        self.indices = np.arange(len(tiles.images)) if indices is None else indices
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Augmentation draws depend on (seed, epoch, item) only, as in TileDataset."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, target = self.batch(np.asarray([self.indices[i]]))
        return image[0], target[0]

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Tiles `rows` of the split, augmented when training. The rows and their augmentation
        parameters (drawn here, on the host) reach the device through pinned memory without
        waiting: on CUDA the host prepares the next batch while the device trains on this one."""
        rows = np.asarray(rows, dtype=np.int64)
        index = _to_device(torch.from_numpy(rows), self.tiles.device)
        images, targets = self.tiles.images[index], self.tiles.targets[index]
        if not self.augment:
            return images, targets
        return warp_batch(images, targets, *self.parameters(rows))

    def parameters(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The rows' augmentation parameters for this epoch, on the device."""
        _, _, h, w = self.tiles.images.shape
        arrays = augment_parameters(rows, self.seed, self.epoch, h, w)
        return tuple(_to_device(torch.from_numpy(a), self.tiles.device) for a in arrays)


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host -> device without stalling the device's queue: pinned and asynchronous on CUDA (the
    caching host allocator keeps the pinned buffer until the copy has run)."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


class DeviceTileLoader:
    """Batches of a DeviceTileDataset in DataLoader's order: with `shuffle`, a RandomSampler
    over the dataset driven by `generator`, after the one draw DataLoader makes from that
    generator at the start of every epoch (its worker base seed), so both paths visit the
    same items in the same batches. Per batch, the host sends the rows and their augmentation
    parameters (a few hundred bytes, asynchronously); the pixels stay on the device."""

    def __init__(self, dataset: DeviceTileDataset, batch_size: int, shuffle: bool,
                 generator: torch.Generator | None = None):
        self.dataset = dataset
        self.batch_size = batch_size
        self.generator = generator
        self.sampler = (RandomSampler(dataset, generator=generator) if shuffle
                        else SequentialSampler(dataset))
        self.num_workers = 0
        self.pin_memory = False

    def __len__(self) -> int:
        return math.ceil(len(self.dataset) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.generator is not None:
            # DataLoader draws its workers' base seed from the generator before the sampler
            # shuffles: drawing it here too keeps the order equal to the CPU path's.
            torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        order = np.asarray(list(self.sampler), dtype=np.int64)
        rows = np.asarray(self.dataset.indices, dtype=np.int64)[order]
        for start in range(0, len(rows), self.batch_size):
            yield self.dataset.batch(rows[start:start + self.batch_size])


# --- when to use it ----------------------------------------------------------------------------


def device_data_setting(value) -> str | bool:
    """`loader.device_data` checked: auto, true or false."""
    if value == "auto" or isinstance(value, bool):
        return value
    raise ConfigError(f"loader.device_data={value!r} is invalid: it must be auto, true or false")


def use_device_data(setting, device: torch.device, nbytes: int, fraction: float,
                    jobs_on_device: int = 1, free_bytes: int | None = None) -> tuple[bool, str]:
    """Whether the training data goes to the device, and why.

    true / false decide; auto: on CUDA when the splits' `nbytes` fit in `fraction` of the
    device's free memory shared by the `jobs_on_device` jobs that run on it (each keeps its own
    copy); off on CPU, where the loader workers' albumentations path is the faster one."""
    setting = device_data_setting(setting)
    if setting is True:
        return True, "loader.device_data=true"
    if setting is False:
        return False, "loader.device_data=false"
    if device.type != "cuda":
        return False, f"loader.device_data=auto on {device.type}: off"
    if free_bytes is None:
        free_bytes, _ = torch.cuda.mem_get_info(device)
    budget = fraction * free_bytes / max(1, jobs_on_device)
    fits = nbytes <= budget
    return fits, (f"loader.device_data=auto: {nbytes / 2**30:.2f} GiB of tiles "
                  f"{'fit' if fits else 'do not fit'} in {fraction:g} of the free "
                  f"{free_bytes / 2**30:.1f} GiB / {max(1, jobs_on_device)} job(s) on {device}")
