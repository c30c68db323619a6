"""Metric accumulators (torchmetrics) that stay on the model's device until compute()."""

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassF1Score,
    MulticlassJaccardIndex,
    MultilabelF1Score,
    MultilabelPrecision,
    MultilabelRecall,
    MultilabelStatScores,
)

CLASSIFICATION_CLASS_NAMES = ("b", "tfh", "tfh217", "tfhl", "other")

# Target value for pixels outside the image (tile padding); torchmetrics skips it.
IGNORED_PIXEL = -1
NUCLEUS = 1


class SegmentationMetrics:
    """Pixel metrics of background/nucleus segmentation, pooled over all pixels (micro).

    `iou` is the nucleus-class IoU the paper reports; `miou` averages both classes;
    `dice` is the nucleus F1. Padding pixels (valid == False) are ignored.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        # validate_args=False: argument checks would sync with the host on every update.
        common = {"num_classes": 2, "ignore_index": IGNORED_PIXEL, "validate_args": False}
        self.metrics = MetricCollection(
            {
                "jaccard": MulticlassJaccardIndex(average=None, **common),
                "accuracy": MulticlassAccuracy(average="micro", **common),
                "f1": MulticlassF1Score(average=None, **common),
            }
        ).to(device)

    def update(self, logits: Tensor, target: Tensor, valid: Tensor | None = None) -> None:
        """logits (B, 2, H, W), target (B, H, W) class indices, valid (B, H, W) bool."""
        if valid is not None:
            target = target.masked_fill(~valid, IGNORED_PIXEL)
        self.metrics.update(logits.argmax(dim=1), target)

    def compute(self) -> dict[str, float]:
        values = {name: value.cpu() for name, value in self.metrics.compute().items()}
        iou_per_class = values["jaccard"]
        return {
            "iou": iou_per_class[NUCLEUS].item(),
            "miou": iou_per_class.mean().item(),
            "pixel_accuracy": values["accuracy"].item(),
            "dice": values["f1"][NUCLEUS].item(),
        }

    def reset(self) -> None:
        self.metrics.reset()


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
