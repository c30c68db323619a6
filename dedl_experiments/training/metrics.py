"""Metric accumulators that stay on the model's device until compute()."""

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MultilabelF1Score,
    MultilabelPrecision,
    MultilabelRecall,
    MultilabelStatScores,
)

CLASSIFICATION_CLASS_NAMES = ("b", "tfh", "tfh217", "tfhl", "other")

NUCLEUS = 1


class SegmentationMetrics:
    """Pixel metrics of background/nucleus segmentation, pooled over all pixels (micro).

    `iou` is the nucleus-class IoU the paper reports; `miou` averages both classes;
    `dice` is the nucleus F1. Padding pixels (valid == False) and targets other than 0/1 are
    ignored. A 2 x 2 confusion matrix accumulates on the device with sync-free reductions:
    torchmetrics' ignore_index path (boolean-mask indexing, torch.bincount) makes the host
    wait for the GPU several times per update, i.e. per training step.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.reset()

    def update(self, logits: Tensor, target: Tensor, valid: Tensor | None = None) -> None:
        """logits (B, 2, H, W), target (B, H, W) class indices, valid (B, H, W) bool."""
        # argmax of two classes (ties go to background, as with argmax), 8x cheaper on CPU.
        predicted = logits[:, NUCLEUS] > logits[:, 0]
        nucleus, background = target == NUCLEUS, target == 0
        if valid is not None:
            nucleus, background = nucleus & valid, background & valid
        tp, fp = (nucleus & predicted).sum(), (background & predicted).sum()
        counts = torch.stack([background.sum() - fp, fp, nucleus.sum() - tp, tp])
        self.confusion += counts.view(2, 2)  # rows: target, columns: prediction

    def compute(self) -> dict[str, float]:
        (tn, fp), (fn, tp) = self.confusion.tolist()  # the one host transfer, per epoch
        ratio = lambda a, b: a / b if b else 0.0  # noqa: E731  (torchmetrics' zero_division=0)
        iou_nucleus, iou_background = ratio(tp, tp + fp + fn), ratio(tn, tn + fn + fp)
        return {
            "iou": iou_nucleus,
            "miou": (iou_nucleus + iou_background) / 2,
            "pixel_accuracy": ratio(tp + tn, tp + tn + fp + fn),
            "dice": ratio(2 * tp, 2 * tp + fp + fn),
        }

    def reset(self) -> None:
        self.confusion = torch.zeros(2, 2, dtype=torch.int64, device=self.device)


# Test metrics also computed over the padded tiles (suffix `_padded`), as the paper counted them.
PADDED_METRICS = ("iou", "pixel_accuracy")
PADDED_SUFFIX = "_padded"


def map_metrics(probs: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray],
                device: torch.device | str = "cpu") -> dict[str, float]:
    """SegmentationMetrics pooled over whole maps: per image a nucleus probability map and a
    bool mask of the same shape. Every pixel of every map counts; a pixel is predicted nucleus
    when its probability exceeds 0.5 (the argmax of the two classes, ties to background)."""
    metrics = SegmentationMetrics(device=device)
    for name, prob in probs.items():
        mask = torch.from_numpy(np.asarray(masks[name]).astype(np.int64))[None]
        logits = torch.from_numpy(np.stack([1 - prob, prob]))[None]
        metrics.update(logits.to(metrics.device), mask.to(metrics.device), None)
    return metrics.compute()


class MultilabelMetrics:
    """Multi-label classification scores at a probability threshold.

    Besides true F1, `recall_as_released` is micro recall tp / (tp + fn): the number the
    released notebooks printed as "F1", kept so results can be set beside the paper's.
    """

    def __init__(
        self,
        num_classes: int = 5,
        threshold: float = 0.5,
        class_names: Sequence[str] = CLASSIFICATION_CLASS_NAMES,
        device: torch.device | str = "cpu",
    ) -> None:
        if len(class_names) != num_classes:
            raise ValueError(f"Got {len(class_names)} class names for {num_classes} classes")
        self.class_names = tuple(class_names)
        common = {"num_labels": num_classes, "threshold": threshold, "validate_args": False}
        self.metrics = MetricCollection(
            {
                "f1_micro": MultilabelF1Score(average="micro", **common),
                "f1_macro": MultilabelF1Score(average="macro", **common),
                "precision_micro": MultilabelPrecision(average="micro", **common),
                "recall_micro": MultilabelRecall(average="micro", **common),
                "f1": MultilabelF1Score(average=None, **common),
                "precision": MultilabelPrecision(average=None, **common),
                "recall": MultilabelRecall(average=None, **common),
                "stat_scores": MultilabelStatScores(average=None, **common),
            }
        ).to(device)

    def update(self, logits: Tensor, target: Tensor) -> None:
        """logits (N, C), target (N, C) 0/1."""
        # Probabilities, so torchmetrics never has to guess whether inputs are logits.
        self.metrics.update(logits.sigmoid(), target.long())

    def compute(self) -> dict[str, float]:
        values = {name: value.cpu() for name, value in self.metrics.compute().items()}
        result = {
            name: values[name].item()
            for name in ("f1_micro", "f1_macro", "precision_micro", "recall_micro")
        }
        result["recall_as_released"] = result["recall_micro"]
        # Stat scores columns are tp, fp, tn, fn, support (= tp + fn).
        stat_scores = values["stat_scores"].tolist()
        for index, name in enumerate(self.class_names):
            result[f"f1_{name}"] = values["f1"][index].item()
            result[f"precision_{name}"] = values["precision"][index].item()
            result[f"recall_{name}"] = values["recall"][index].item()
            tp, fp, tn, fn, support = stat_scores[index]
            result.update(
                {f"tp_{name}": tp, f"fp_{name}": fp, f"tn_{name}": tn, f"fn_{name}": fn}
            )
            result[f"support_{name}"] = support
        return result

    def reset(self) -> None:
        self.metrics.reset()
