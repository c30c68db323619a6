"""Class weights and the multi-label focal loss."""

import math

import numpy as np
import pytest
import torch

from dedl_experiments.training.losses import FocalLoss, label_class_weights, pixel_class_weights


def test_pixel_weights_from_a_mask() -> None:
    # 16 pixels, 4 nucleus: w = (1/12, 1/4) / (1/12 + 1/4) = (0.25, 0.75)
    mask = np.zeros((4, 4), dtype=np.uint8)
    mask[0, :] = 255
    torch.testing.assert_close(pixel_class_weights(mask), torch.tensor([0.25, 0.75]))


def test_pixel_weights_pool_masks_of_different_sizes() -> None:
    # 4 + 12 pixels, 1 + 3 nucleus: same totals as above
    masks = [
        torch.tensor([[0, 1], [0, 0]]),
        torch.tensor([[1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]]),
    ]
    torch.testing.assert_close(pixel_class_weights(masks), torch.tensor([0.25, 0.75]))


def test_pixel_weights_reproduce_the_released_values_from_counts() -> None:
    counts = np.array([8521, 1479])  # 14.79 % nucleus pixels
    torch.testing.assert_close(pixel_class_weights(counts), torch.tensor([0.1479, 0.8521]))


def test_pixel_weights_need_both_classes() -> None:
    with pytest.raises(ValueError, match="Both classes"):
        pixel_class_weights(np.zeros((4, 4)))


def test_label_weights_give_the_most_frequent_class_one_and_the_rarest_point_two() -> None:
    # frequencies per class: b 0.75, tfh 0.5, tfh217 0.5, tfhl 0.25, other 1.0
    labels = torch.tensor(
        [
            [1, 1, 1, 1, 1],
            [1, 1, 0, 0, 1],
            [1, 0, 1, 0, 1],
            [0, 0, 0, 0, 1],
        ]
    )
    weights = label_class_weights(labels)
    # 0.2 + 0.8 * (f - 0.25) / 0.75
    expected = [0.2 + 0.8 * 2 / 3, 0.2 + 0.8 / 3, 0.2 + 0.8 / 3, 0.2, 1.0]
    torch.testing.assert_close(weights, torch.tensor(expected))
    assert weights.argmin() == 3 and weights.argmax() == 4
    assert weights.min() == pytest.approx(0.2) and weights.max() == pytest.approx(1.0)


def test_label_weights_are_ones_when_all_classes_are_equally_frequent() -> None:
    torch.testing.assert_close(label_class_weights(np.eye(3)), torch.ones(3))


def test_focal_loss_matches_hand_computation() -> None:
    logits = torch.tensor([[0.0, 2.0], [-1.0, 1.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # p = sigmoid(logit); p_t = p for target 1, 1 - p for target 0; ce = -ln p_t
    #   (0,0): p_t = 0.5               ce = ln 2
    #   (0,1): p_t = 1 - s(2) = s(-2)  ce = ln(1 + e^2)
    #   (1,0): p_t = 1 - s(-1) = s(1)  ce = ln(1 + e^-1)
    #   (1,1): p_t = s(1)              ce = ln(1 + e^-1)
    # term = alpha * (1 - p_t)^2 * ce * w_column, alpha = 1, weights (0.5, 1.0)
    def sigmoid(x: float) -> float:
        return 1 / (1 + math.exp(-x))

    terms = [
        (1 - 0.5) ** 2 * math.log(2) * 0.5,
        (1 - sigmoid(-2)) ** 2 * math.log(1 + math.exp(2)) * 1.0,
        (1 - sigmoid(1)) ** 2 * math.log(1 + math.exp(-1)) * 0.5,
        (1 - sigmoid(1)) ** 2 * math.log(1 + math.exp(-1)) * 1.0,
    ]
    loss = FocalLoss(alpha=1.0, gamma=2.0, class_weights=[0.5, 1.0])(logits, targets)
    assert loss.item() == pytest.approx(sum(terms) / 4, rel=1e-6)


def test_focal_loss_keeps_negative_terms_with_alpha_one() -> None:
    # torchvision's sigmoid_focal_loss with alpha = 1 would give exactly 0 here.
    loss = FocalLoss(alpha=1.0)(torch.tensor([[3.0]]), torch.tensor([[0.0]]))
    assert loss.item() > 0


def test_focal_loss_class_weights_move_with_the_module() -> None:
    loss = FocalLoss(class_weights=[1.0, 0.2])
    assert "class_weights" in dict(loss.named_buffers())
    assert loss.to(torch.float64).class_weights.dtype == torch.float64
