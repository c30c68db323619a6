"""Segmentation and multi-label metrics on hand-made examples."""

import pytest
import torch
import torch.nn.functional as F

from dedl_experiments.training.metrics import MultilabelMetrics, SegmentationMetrics

TARGET = torch.tensor(
    [
        [1, 1, 0, 0],
        [1, 1, 0, 0],
        [0, 0, 0, 0],
        [0, 0, 0, 0],
    ]
)
PREDICTION = torch.tensor(
    [
        [1, 1, 0, 0],
        [1, 0, 0, 0],
        [0, 0, 1, 0],
        [0, 0, 0, 0],
    ]
)


def logits_for(prediction: torch.Tensor) -> torch.Tensor:
    """(1, 2, H, W) logits whose argmax is `prediction`."""
    return F.one_hot(prediction, num_classes=2).permute(2, 0, 1).float().unsqueeze(0)


def test_segmentation_metrics_on_a_4x4_mask() -> None:
    # nucleus: tp 3, fp 1, fn 1 -> IoU 3/5, dice 6/8; background: tp 11, fp 1, fn 1 -> 11/13
    metrics = SegmentationMetrics()
    metrics.update(logits_for(PREDICTION), TARGET.unsqueeze(0))
    result = metrics.compute()
    assert result["iou"] == pytest.approx(3 / 5)
    assert result["dice"] == pytest.approx(6 / 8)
    assert result["miou"] == pytest.approx((3 / 5 + 11 / 13) / 2)
    assert result["pixel_accuracy"] == pytest.approx(14 / 16)


def test_padding_predicted_as_nucleus_is_excluded() -> None:
    # The last column is padding, predicted as nucleus everywhere (label 0 there).
    padded_prediction = PREDICTION.clone()
    padded_prediction[:, 3] = 1
    valid = torch.ones(4, 4, dtype=torch.bool)
    valid[:, 3] = False
    logits, target = logits_for(padded_prediction), TARGET.unsqueeze(0)

    with_padding = SegmentationMetrics()
    with_padding.update(logits, target)
    # nucleus: tp 3, fp 1 + 4 padding, fn 1 -> 3/9
    assert with_padding.compute()["iou"] == pytest.approx(3 / 9)

    excluded = SegmentationMetrics()
    excluded.update(logits, target, valid.unsqueeze(0))
    result = excluded.compute()
    # 12 valid pixels: nucleus tp 3, fp 1, fn 1; background tp 7, fp 1, fn 1
    assert result["iou"] == pytest.approx(3 / 5)
    assert result["miou"] == pytest.approx((3 / 5 + 7 / 9) / 2)
    assert result["pixel_accuracy"] == pytest.approx(10 / 12)
    assert result["dice"] == pytest.approx(6 / 8)


def test_segmentation_metrics_accumulate_and_reset() -> None:
    metrics = SegmentationMetrics()
    metrics.update(logits_for(TARGET), TARGET.unsqueeze(0))
    metrics.update(logits_for(PREDICTION), TARGET.unsqueeze(0))
    # nucleus over both: tp 4 + 3, fp 0 + 1, fn 0 + 1 -> 7/9
    assert metrics.compute()["iou"] == pytest.approx(7 / 9)
    metrics.reset()
    metrics.update(logits_for(TARGET), TARGET.unsqueeze(0))
    assert metrics.compute()["iou"] == pytest.approx(1.0)


def test_multilabel_metrics_on_a_hand_made_example() -> None:
    targets = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    # Positive logits 0.2 (sigmoid 0.55) guard against inputs being mistaken for probabilities.
    logits = torch.tensor(
        [[3.0, -3.0, -3.0], [-3.0, 0.2, 3.0], [0.2, -3.0, -3.0], [-3.0, -3.0, 3.0]]
    )
    metrics = MultilabelMetrics(num_classes=3, class_names=("a", "b", "c"))
    metrics.update(logits, targets)
    result = metrics.compute()
    # a: tp 2 fp 0 fn 0 -> F1 1; b: tp 1 fp 0 fn 1 -> F1 2/3; c: tp 1 fp 1 fn 1 -> F1 1/2
    assert result["f1_a"] == pytest.approx(1.0)
    assert result["f1_b"] == pytest.approx(2 / 3)
    assert result["f1_c"] == pytest.approx(1 / 2)
    assert result["precision_b"] == pytest.approx(1.0)
    assert result["recall_b"] == pytest.approx(1 / 2)
    assert (result["tp_c"], result["fp_c"], result["tn_c"], result["fn_c"]) == (1, 1, 1, 1)
    assert result["support_a"] == 2
    # micro: tp 4, fp 1, fn 2
    assert result["f1_micro"] == pytest.approx(8 / 11)
    assert result["precision_micro"] == pytest.approx(4 / 5)
    assert result["recall_micro"] == pytest.approx(4 / 6)
    assert result["recall_as_released"] == pytest.approx(4 / 6)
    assert result["f1_macro"] == pytest.approx((1 + 2 / 3 + 1 / 2) / 3)


def test_multilabel_metrics_need_one_name_per_class() -> None:
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        MultilabelMetrics(num_classes=3, class_names=("a", "b"))


class _ThresholdNet(torch.nn.Module):
    """Predicts nucleus exactly where the input tile is 1 (probability ~1) and background where
    it is 0 (~0): the tile images below spell out the prediction pixel by pixel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(x), 40 * (x - 0.5)], dim=1)


def test_test_metrics_both_ways_on_a_padded_image() -> None:
    """One 2 x 6 image in two 4 px tiles (zero padding: 2 rows below, 2 columns right; 20 of the
    32 tiled pixels). Within the image: tp 3, fp 2, fn 1, tn 6 -> IoU 3/6, accuracy 9/12.
    Over the padded tiles one padding pixel is predicted nucleus and 19 background: fp 3,
    tn 25 -> IoU 3/7, accuracy 28/32. The padding inflates accuracy by 1/8 and, with that one
    false positive, lowers IoU by 1/14."""
    from types import SimpleNamespace

    import numpy as np

    from dedl_experiments.data.transforms import IGNORE
    from dedl_experiments.tasks.segmentation import SegmentationTask

    prediction = np.zeros((4, 8), np.float32)
    prediction[:2, :6] = [[1, 0, 0, 0, 1, 1],
                          [1, 0, 1, 0, 0, 0]]
    prediction[3, 7] = 1  # a false positive on padding
    target = np.full((4, 8), IGNORE, np.uint8)
    target[:2, :6] = [[1, 1, 0, 0, 1, 0],
                      [1, 0, 0, 0, 0, 0]]
    tiles = [{"sample": "a", "y": 0, "x": 0}, {"sample": "a", "y": 0, "x": 4}]
    split = SimpleNamespace(images=np.stack([prediction[None, :, :4], prediction[None, :, 4:]]),
                            targets=np.stack([target[:, :4], target[:, 4:]]), tiles=tiles)
    task = object.__new__(SegmentationTask)
    task.prepared = SimpleNamespace(split=lambda name: split,
                                    images={"a": {"height": 2, "width": 6}})
    task.net, task.mean, task.std, task.device = _ThresholdNet(), [0.0], [1.0], torch.device("cpu")

    metrics, maps = task.test_metrics(batch_size=1)

    assert metrics["iou"] == pytest.approx(3 / 6)
    assert metrics["pixel_accuracy"] == pytest.approx(9 / 12)
    assert metrics["dice"] == pytest.approx(6 / 9)
    assert metrics["iou_padded"] == pytest.approx(3 / 7)
    assert metrics["pixel_accuracy_padded"] == pytest.approx(28 / 32)
    assert metrics["pixel_accuracy_padded"] - metrics["pixel_accuracy"] == pytest.approx(1 / 8)
    assert metrics["iou"] - metrics["iou_padded"] == pytest.approx(1 / 14)
    # The maps (for artifacts) are the original image area.
    prob, mask = maps["a"]
    assert prob.shape == mask.shape == (2, 6)
    assert mask.tolist() == (target[:2, :6] == 1).tolist()


def test_map_metrics_pool_every_pixel_of_every_map() -> None:
    import numpy as np

    from dedl_experiments.training.metrics import map_metrics

    probs = {"a": np.array([[0.9, 0.2]]), "b": np.array([[0.6], [0.4]])}
    masks = {"a": np.array([[True, True]]), "b": np.array([[False], [False]])}
    # tp 1, fn 1 (a); fp 1, tn 1 (b) -> IoU 1/3, accuracy 2/4
    result = map_metrics(probs, masks)
    assert result["iou"] == pytest.approx(1 / 3)
    assert result["pixel_accuracy"] == pytest.approx(2 / 4)
