"""Augmentation with albumentations, as in the paper's released code.

Segmentation (training only): rotation by up to 3 degrees, vertical and horizontal flips, as
torchvision's RandomRotation(3) (every image rotated, nearest-neighbour: its default) and
RandomVerticalFlip / RandomHorizontalFlip (p=0.5). Image and target move together. Besides
0/1 the target marks pixels outside the image: IGNORE on zero padding (written by the prepare
step) and ROTATED_IN on the corners a rotation brings in. `target_classes` turns both into
IGNORE (the default: they count neither in the loss nor in the metrics) or into background,
as the released notebooks counted them (`tiling.padding_label`, `augment.rotation_fill`).
Intensity normalisation happens on the device (see tasks/segmentation.py), the same code for
training, validation, test and predict.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import torch

# Target value of zero padding in the tile cache, and the value the loss and metrics ignore.
IGNORE = 255
# Target value of the corners a training rotation brings in (before `target_classes`).
ROTATED_IN = 254
# What padding and rotated-in corners count as: ignored, or background (class 0).
OUTSIDE_LABELS = ("ignore", "background")


def check_outside_label(option: str, value: str) -> str:
    if value not in OUTSIDE_LABELS:
        raise ValueError(f"{option}={value!r} is invalid: it must be one of: "
                         f"{', '.join(OUTSIDE_LABELS)}")
    return value


def target_classes(target: torch.Tensor, padding_label: str = "ignore",
                   rotation_fill: str = "ignore") -> torch.Tensor:
    """Class indices for the loss and the metrics from a tile target (0/1, IGNORE on padding,
    ROTATED_IN on rotated-in corners): each of the two becomes IGNORE or background (0)."""
    if padding_label == "background":
        target = target.masked_fill(target == IGNORE, 0)
    return target.masked_fill(target == ROTATED_IN, 0 if rotation_fill == "background" else IGNORE)


def segmentation_transform(train: bool) -> A.Compose | None:
    """Augmentation of (H, W, C) float images with their uint8 `mask` target; None when there
    is nothing to do (validation and test tiles are used as they are)."""
    if not train:
        return None
    return IndependentSeedCompose([
        A.Rotate(limit=3, p=1.0, interpolation=cv2.INTER_NEAREST,
                 mask_interpolation=cv2.INTER_NEAREST,
                 border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=ROTATED_IN),
        A.VerticalFlip(p=0.5),
        A.HorizontalFlip(p=0.5),
    ], seed=None)


def _seed_children(compose: A.BaseCompose, seed: int) -> None:
    """Give each child of `compose` (recursively) its own seed derived from `seed`."""
    children = compose.transforms
    for child, child_seed in zip(children, np.random.SeedSequence(seed).generate_state(len(children))):
        child.set_random_seed(int(child_seed))
        if isinstance(child, A.BaseCompose):
            _seed_children(child, int(child_seed))


class IndependentSeedCompose(A.Compose):
    """A.Compose whose set_random_seed gives every child transform a different seed.

    albumentations 2.0.8 hands the *same* seed to every child, so their random streams are
    identical: with p=0.3 flips, VerticalFlip and HorizontalFlip then fire together (never one
    alone), and a block's probability draw is tied to its members' parameters. Seeding the
    children from a SeedSequence keeps runs reproducible without that coupling.
    """

    def set_random_seed(self, seed: int | None) -> None:
        super().set_random_seed(seed)
        if seed is not None:
            _seed_children(self, seed)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision's RandomPerspective(distortion_scale=d) moves each corner inward by a uniform
# draw in [0, d * side / 2] per axis: for d = 0.2 up to 10 % of the side, mean 5 %, spread
# (std) 2.9 %. albumentations' Perspective draws each corner offset as |N(0, sigma)| (as a
# fraction of the side): sigma = 0.05 gives the same largest usual offset (2 sigma = 10 %),
# a similar mean (4 %) and spread (3 %). A tuple pins sigma; a single float would draw
# sigma from (0, value) and halve the average distortion.
PERSPECTIVE_SIGMA = 0.05


def _colour_jitter() -> A.ColorJitter:
    # torchvision ColorJitter(0.2, 0.2, 0.2): hue untouched (albumentations' default hue is ±0.5).
    return A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.0, p=1.0)


def classification_transform(train: bool, size: int, normalise: bool = True,
                             perspective_p: float = 1.0) -> A.Compose:
    """Classification pipeline for uint8 (H, W, 3) RGB input -> float32 tensor (3, size, size).

    As released (torchvision, per the facts file), training applies, in this order:
      1. with p=0.3: colour jitter (0.2, 0.2, 0.2) and then random perspective (distortion 0.2);
      2. with p=0.3: colour jitter (0.2, 0.2, 0.2) and then random affine (rotation ±10°);
      3. vertical flip p=0.3, horizontal flip p=0.3;
    then ImageNet normalisation. The paper's Section 7.5 words steps 1 and 2 as "colour jitter
    *or* perspective"; the facts file reads the released code as applying both members of a
    block together ("colour jitter then perspective" with p=0.3), and that is what is
    implemented here: an A.Sequential with p=0.3 whose members run with p=1. The released
    notebook leaves torchvision's RandomPerspective at its default p=0.5, so there the
    perspective runs in half of the blocks: `perspective_p=0.5` (config
    `augment.perspective_p`) does that.

    Equivalences with torchvision: perspective uses bilinear and affine nearest-neighbour
    interpolation (torchvision's defaults) with zero fill. torchvision's perspective squeezes
    the whole image into a smaller quadrilateral; albumentations maps a quadrilateral onto the
    image, so `fit_output=True` is used to keep the whole image in view (no cell is cropped
    away, which matters for multi-label targets) - see PERSPECTIVE_SIGMA for the magnitude.

    `load_rgb` already resizes to `size`; the leading Resize is then a cheap copy and only
    matters for callers that pass images of another size. With `normalise=False` the output
    is scaled to [0, 1] only (like torchvision's ToTensor without Normalize).
    """
    steps: list = [A.Resize(size, size, interpolation=cv2.INTER_LINEAR)]
    if train:
        steps += [
            A.Sequential([
                _colour_jitter(),
                A.Perspective(scale=(PERSPECTIVE_SIGMA, PERSPECTIVE_SIGMA), keep_size=True,
                              fit_output=True, interpolation=cv2.INTER_LINEAR,
                              border_mode=cv2.BORDER_CONSTANT, fill=0, p=perspective_p),
            ], p=0.3),
            A.Sequential([
                _colour_jitter(),
                A.Affine(rotate=(-10, 10), interpolation=cv2.INTER_NEAREST,
                         border_mode=cv2.BORDER_CONSTANT, fill=0, p=1.0),
            ], p=0.3),
            A.VerticalFlip(p=0.3),
            A.HorizontalFlip(p=0.3),
        ]
    if normalise:
        steps.append(A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD, max_pixel_value=255.0))
    else:
        steps.append(A.ToFloat(max_value=255.0))
    steps.append(A.ToTensorV2())
    return IndependentSeedCompose(steps, seed=None)
