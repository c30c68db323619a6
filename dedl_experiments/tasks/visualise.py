"""PNG artifacts a person looks at in the MLflow UI."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def segmentation_overlays(images: list[np.ndarray], masks: list[np.ndarray],
                          predictions: list[np.ndarray], titles: list[str], path: Path) -> Path:
    """One row per example: image, ground truth, prediction overlaid on the image
    (green: both, red: predicted only, blue: missed)."""
    rows = len(images)
    fig, axes = plt.subplots(rows, 3, figsize=(9, 3 * rows), squeeze=False)
    _fixed_margins(fig, rows, title_lines=1)
    for row, (image, mask, pred, title) in enumerate(zip(images, masks, predictions, titles)):
        grey = (image - image.min()) / max(float(np.ptp(image)), 1e-6)
        overlay = np.stack([grey] * 3, axis=-1) * 0.6
        overlay[mask & pred] = (0.1, 0.9, 0.1)
        overlay[~mask & pred] = (0.9, 0.1, 0.1)
        overlay[mask & ~pred] = (0.2, 0.4, 1.0)
        for ax, shown, name in zip(axes[row], (grey, mask, overlay),
                                   ("image", "ground truth", "prediction")):
            ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, interpolation="nearest")
            ax.set_title(f"{title}: {name}" if name == "image" else name, fontsize=8, y=1.0)
            ax.axis("off")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _fixed_margins(fig, rows: int, title_lines: int) -> None:
    """Room for each panel's title above it, the panels (axes off) filling the rest. Margins
    and titles (at y=1.0) placed, not measured: measuring them (tight_layout, a title's
    automatic position) built every axis's ticks, most of a small job's time for its PNGs."""
    title_in = 0.05 + 0.14 * title_lines  # a line of 7-8 pt text, in inches
    height_in = fig.get_figheight()
    panel_in = height_in / rows - title_in
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - title_in / height_in,
                        wspace=0.04, hspace=title_in / panel_in)


def classification_grid(images: np.ndarray, truth: np.ndarray, predicted: np.ndarray,
                        names: list[str], classes: list[str], path: Path) -> Path:
    """Test images with their true and predicted labels (wrong ones marked)."""
    count = len(images)
    cols = min(4, count)
    rows = (count + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.3 * rows), squeeze=False)
    _fixed_margins(fig, rows, title_lines=3)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, t, p, name in zip(axes.ravel(), images, truth, predicted, names):
        true_names = [c for c, on in zip(classes, t) if on]
        pred_names = [c for c, on in zip(classes, p) if on]
        ax.imshow(image)
        ok = set(true_names) == set(pred_names)
        ax.set_title(f"{name}\ntrue: {', '.join(true_names) or '-'}\n"
                     f"pred: {', '.join(pred_names) or '-'}", fontsize=7,
                     color="black" if ok else "red", y=1.0)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
