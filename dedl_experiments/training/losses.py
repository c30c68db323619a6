"""Losses, built from `conf/loss/<name>.yaml`, class weights and the multi-label focal loss of
the released training recipes.

A loss node holds its `_target_` (a class or function returning an nn.Module), the target's own
arguments, and two keys every loss has, read by the task rather than passed on: `weighting` (how
class weights are found: `none`, `fixed` = `weights`, or from the training data) and `weights`.
The target is called with its arguments, `class_weights` (a float tensor, or None) and the
task's own arguments: segmentation passes `ignore_index` (pixels outside the image), so a
segmentation loss takes (class_weights, ignore_index, ...) and a classification loss
(class_weights, ...). A new loss is a new YAML file naming a function like `cross_entropy`.
"""

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dedl_experiments.config import components

ArrayLike = Tensor | np.ndarray


def _as_tensor(values: ArrayLike) -> Tensor:
    return values if isinstance(values, Tensor) else torch.as_tensor(np.asarray(values))


def _pixel_counts(masks_or_counts: ArrayLike | Sequence[ArrayLike]) -> Tensor:
    """(background, nucleus) pixel counts; any non-zero mask value counts as nucleus."""
    if isinstance(masks_or_counts, (list, tuple)):
        return torch.stack([_pixel_counts(mask) for mask in masks_or_counts]).sum(dim=0)
    values = _as_tensor(masks_or_counts)
    if values.shape == (2,):
        return values.to(torch.float64)
    nucleus = torch.count_nonzero(values)
    return torch.stack([values.numel() - nucleus, nucleus]).to(torch.float64)


def pixel_class_weights(masks_or_counts: ArrayLike | Sequence[ArrayLike]) -> Tensor:
    """Normalised inverse pixel frequencies for background / nucleus cross-entropy.

    Accepts masks (one array, or a sequence of arrays of any shapes; non-zero = nucleus)
    or a (2,) array of pixel counts. w_i = (1 / c_i) / sum_j (1 / c_j), so each class gets
    the other class's share: 14.79 % nucleus pixels give [0.1479, 0.8521] as released.
    """
    counts = _pixel_counts(masks_or_counts)
    if bool((counts <= 0).any()):
        raise ValueError(f"Both classes need pixels to weight them, got counts {counts.tolist()}")
    inverse = 1.0 / counts
    return (inverse / inverse.sum()).to(torch.float32)


def label_class_weights(labels: ArrayLike) -> Tensor:
    """Per-class weights of the classification recipe from (N, C) 0/1 labels.

    Class frequencies min-max normalised into [0.2, 1]: 0.2 + 0.8 * (f - min) / (max - min),
    ones when all frequencies are equal. As released the MOST frequent class gets 1.0 and the
    rarest 0.2 (released list [0.9475, 0.4934, 0.5029, 0.2, 1.0]: 'other' 1.0, rare 'tfhl'
    0.2), i.e. not the usual inverse-frequency weighting; reproduced here as it was run.
    """
    frequencies = _as_tensor(labels).to(torch.float64).mean(dim=0)
    spread = frequencies.max() - frequencies.min()
    if spread == 0:
        return torch.ones_like(frequencies, dtype=torch.float32)
    return (0.2 + 0.8 * (frequencies - frequencies.min()) / spread).to(torch.float32)


class FocalLoss(nn.Module):
    """Multi-label focal loss on logits: mean of w_c * alpha * (1 - p_t)^gamma * BCE.

    Written out rather than using torchvision.ops.sigmoid_focal_loss: torchvision's alpha
    weighs positives by alpha and negatives by 1 - alpha, so the released alpha = 1 would
    drop every negative term, whereas the released loss scales all terms by alpha.

    `epsilon=None` takes the exact log-probability (BCE on logits). A number reproduces the
    released formula, log(sigmoid(x) + epsilon) and log(1 - sigmoid(x) + epsilon): the same
    up to rounding until a logit saturates, where each term is capped near -log(epsilon)
    (27.6 for 1e-12) and its gradient vanishes.
    """

    def __init__(
        self, alpha: float = 1.0, gamma: float = 2.0, class_weights: ArrayLike | None = None,
        epsilon: float | None = None,
    ) -> None:
        super().__init__()
        self.alpha = alpha
        self.gamma = gamma
        self.epsilon = epsilon
        # A buffer so that .to(device) moves the weights with the loss.
        self.class_weights: Tensor | None
        self.register_buffer(
            "class_weights",
            None if class_weights is None else _as_tensor(class_weights).to(torch.float32),
        )

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        targets = targets.to(logits.dtype)
        if self.epsilon is None:
            ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        else:
            probs = torch.sigmoid(logits)
            ce = -(targets * torch.log(probs + self.epsilon)
                   + (1 - targets) * torch.log(1 - probs + self.epsilon))
        p_t = torch.exp(-ce)
        loss = self.alpha * (1 - p_t) ** self.gamma * ce
        if self.class_weights is not None:
            loss = loss * self.class_weights
        return loss.mean()


# Keys of every loss node that the task reads (class weights), not arguments of its `_target_`.
WEIGHTING_KEYS = ("weighting", "weights")


def build_loss(loss_cfg, class_weights: Tensor | None, **task_arguments) -> nn.Module:
    """The loss `loss_cfg` names, with `class_weights` and the task's own arguments."""
    return components.build(loss_cfg, omit=WEIGHTING_KEYS, class_weights=class_weights,
                            **task_arguments)


def cross_entropy(class_weights: Tensor | None = None, ignore_index: int = -100,
                  reduction: str = "mean") -> nn.Module:
    """Per-pixel cross-entropy; `reduction` mean (over the counted pixels) or sum (the released
    notebooks')."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"loss.reduction={reduction!r} is invalid: it must be one of: mean, sum")
    return nn.CrossEntropyLoss(weight=class_weights, ignore_index=ignore_index, reduction=reduction)


def binary_cross_entropy(class_weights: Tensor | None = None) -> nn.Module:
    """Multi-label binary cross-entropy on logits, optionally weighted per class."""
    return nn.BCEWithLogitsLoss(weight=class_weights)


def configured_class_weights(loss_cfg, from_data) -> Tensor | None:
    """Class weights as the loss config asks: `none`, `fixed` (loss.weights) or computed from
    the training data by `from_data()` (inverse pixel frequency / label frequency)."""
    if loss_cfg.weighting == "none":
        return None
    if loss_cfg.weighting == "fixed":
        return torch.tensor(list(loss_cfg.weights), dtype=torch.float32)
    return from_data()
