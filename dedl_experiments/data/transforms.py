"""Augmentation and normalisation with albumentations, as in the paper's released code.

Segmentation (training only): rotation by up to 3 degrees (torchvision's RandomRotation(3)
rotates every image, so p=1), vertical and horizontal flips; image, mask and padding map move
together and masks use nearest-neighbour interpolation. Every split is normalised with the
training tiles' mean and std.
"""

from __future__ import annotations

import albumentations as A
import cv2


def segmentation_transform(train: bool, mean: float, std: float) -> A.Compose:
    steps: list = []
    if train:
        steps += [
            A.Rotate(limit=3, p=1.0, interpolation=cv2.INTER_LINEAR,
                     mask_interpolation=cv2.INTER_NEAREST,
                     border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0),
            A.VerticalFlip(p=0.5),
            A.HorizontalFlip(p=0.5),
        ]
    steps.append(A.Normalize(mean=(mean,), std=(std,), max_pixel_value=1.0))
    return A.Compose(steps, additional_targets={"valid": "mask"}, seed=None)
