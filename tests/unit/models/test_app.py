"""The autoencoder post-processing (APP) as released: shapes, activations, gradients."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest
import torch
from torch import nn

from dedl_experiments.models.app import AutoencoderPostProcessing, layer_widths
from dedl_experiments.models.segmentation import build_segmentation_model


def test_layer_widths_for_480_pixel_tiles() -> None:
    assert layer_widths(480) == [480, 15360, 256, 128, 64, 32, 16, 32, 64, 128, 256, 480]


def test_layer_widths_for_64_pixel_tiles() -> None:
    assert layer_widths(64) == [64, 2048, 256, 128, 64, 32, 16, 32, 64, 128, 256, 64]


def test_linear_layers_follow_the_widths_with_an_activation_after_each() -> None:
    app = AutoencoderPostProcessing(width=64, activation="relu")
    modules = list(app.layers)
    linears = modules[0::2]
    widths = layer_widths(64)
    assert [(layer.in_features, layer.out_features) for layer in linears] == list(
        zip(widths[:-1], widths[1:])
    )
    assert all(isinstance(module, nn.ReLU) for module in modules[1::2])
    assert isinstance(modules[-1], nn.ReLU)  # the last layer is activated too


def test_activation_switch_changes_modules_and_outputs() -> None:
    torch.manual_seed(0)
    relu_app = AutoencoderPostProcessing(width=64, activation="relu")
    gelu_app = AutoencoderPostProcessing(width=64, activation="gelu")
    gelu_app.load_state_dict(relu_app.state_dict())  # same weights, only activations differ
    assert all(isinstance(module, nn.GELU) for module in list(gelu_app.layers)[1::2])
    logits = torch.randn(1, 2, 8, 64)
    relu_out, gelu_out = relu_app(logits), gelu_app(logits)
    assert relu_out.shape == gelu_out.shape == logits.shape
    assert relu_out.min() >= 0
    assert not torch.allclose(relu_out, gelu_out)


def test_unknown_activation_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="gelu.*relu"):
        AutoencoderPostProcessing(width=64, activation="tanh")


def test_wrong_input_width_is_reported() -> None:
    app = AutoencoderPostProcessing(width=64)
    with pytest.raises(ValueError, match="width 64.*32"):
        app(torch.randn(1, 2, 32, 32))


def test_app_loss_trains_the_segmentation_network_and_app_stays_separate() -> None:
    torch.manual_seed(0)
    model = build_segmentation_model("unet", "resnet18", weights=None)
    app = AutoencoderPostProcessing(width=64, activation="gelu")
    image = torch.randn(1, 1, 64, 64)
    mask = torch.randint(0, 2, (1, 64, 64))

    # Only the APP term, so any gradient on the segmentation net flows through the APP.
    app_loss = nn.CrossEntropyLoss()(app(model(image)), mask)
    app_loss.backward()

    # The path from the input to the head gets gradient (not every parameter does: smp keeps
    # the encoder stages beyond depth 3 as unused modules).
    for used in (model.encoder.conv1, model.encoder.layer2, model.segmentation_head):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in used.parameters())
    assert all(p.grad is not None for p in app.parameters())
    app_parameter_ids = {id(p) for p in app.parameters()}
    assert not app_parameter_ids & {id(p) for p in model.parameters()}
    assert not any(key.startswith("layers.") for key in model.state_dict())
