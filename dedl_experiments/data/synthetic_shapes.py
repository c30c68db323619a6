"""Drawing for the synthetic datasets: elliptical blobs (nuclei, cells) rasterised with a dome
profile, and a Gaussian blur."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Ellipses:
    """Centres, semi-axes and rotation (radians) of elliptical blobs."""

    cy: np.ndarray
    cx: np.ndarray
    ry: np.ndarray
    rx: np.ndarray
    angle: np.ndarray


def rasterise(blobs: Ellipses, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Label image (0 = background, k = blob k-1, later blobs on top) and a dome-shaped profile."""
    labels = np.zeros((height, width), dtype=np.int32)
    profile = np.zeros((height, width), dtype=np.float32)
    for index, (cy, cx, ry, rx, angle) in enumerate(
        zip(blobs.cy, blobs.cx, blobs.ry, blobs.rx, blobs.angle), start=1
    ):
        reach = max(ry, rx)
        top, bottom = max(int(cy - reach), 0), min(int(cy + reach) + 2, height)
        left, right = max(int(cx - reach), 0), min(int(cx + reach) + 2, width)
        dy = (np.arange(top, bottom) - cy)[:, None]
        dx = (np.arange(left, right) - cx)[None, :]
        along = (dx * np.cos(angle) + dy * np.sin(angle)) / rx
        across = (dy * np.cos(angle) - dx * np.sin(angle)) / ry
        distance = along**2 + across**2
        inside = distance <= 1
        labels[top:bottom, left:right][inside] = index
        profile[top:bottom, left:right][inside] = 1 - 0.35 * distance[inside]
    return labels, profile


def gaussian_blur(stack: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur over the last two axes (reflecting edges)."""
    radius = max(1, int(3 * sigma + 0.5))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-(offsets**2) / (2 * sigma**2)).astype(np.float32)
    kernel /= kernel.sum()
    height, width = stack.shape[-2:]
    padding = [(0, 0)] * (stack.ndim - 2) + [(radius, radius), (radius, radius)]
    padded = np.pad(stack, padding, mode="reflect")
    rows = sum(weight * padded[..., i : i + height, :] for i, weight in enumerate(kernel))
    return sum(weight * rows[..., :, i : i + width] for i, weight in enumerate(kernel))
