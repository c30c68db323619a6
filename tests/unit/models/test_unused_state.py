"""State a network never reads (the encoder stages a U-Net of encoder_depth=3 does not run) is
left out of what is saved and filled back when loading; states saved whole still load."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dedl_experiments.models import load_saved_state, state_to_save, unused_state_keys
from dedl_experiments.models.segmentation import build_segmentation_model, unused_encoder_state

pytestmark = pytest.mark.filterwarnings("ignore:`timm-` encoders are deprecated")


def _outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


@pytest.mark.parametrize("encoder,stages", [("resnet18", ("layer3.", "layer4.")),
                                            ("timm-efficientnet-b0", ("blocks.3.", "blocks.6.", "conv_head."))])
def test_the_encoder_stages_a_shallow_unet_does_not_run_are_not_saved(encoder, stages) -> None:
    torch.manual_seed(0)
    model = build_segmentation_model("unet", encoder, weights=None)
    assert model.training and model.encoder.training  # the check ran in eval mode, then went back
    unused = unused_state_keys(model)
    for stage in stages:
        assert any(key.startswith(f"encoder.{stage}") for key in unused), stage
    # Nothing the network runs: the first stages, the decoder, the head.
    assert not any(key.startswith(("encoder.layer1.", "encoder.layer2.", "encoder.blocks.0.",
                                   "decoder.", "segmentation_head.")) for key in unused)
    saved = state_to_save(model)
    assert set(saved) == set(model.state_dict()) - unused
    if encoder == "resnet18":  # most of a ResNet-18 lies in its last two stages
        assert sum(v.numel() for v in saved.values()) < 0.25 * sum(
            v.numel() for v in model.state_dict().values())
    # Into a new network (other random weights): the same outputs, from the saved state alone
    # or from the whole state, as files written before these keys were left out hold it.
    x = torch.randn(2, 1, 64, 64)
    want = _outputs(model, x)
    for state in (saved, model.state_dict()):
        torch.manual_seed(1)
        other = build_segmentation_model("unet", encoder, weights=None)
        load_saved_state(other, state)
        assert torch.equal(_outputs(other, x), want)


def test_a_key_the_network_reads_must_be_in_the_state() -> None:
    model = build_segmentation_model("unet", "resnet18", weights=None)
    saved = state_to_save(model)
    del saved["encoder.layer1.0.conv1.weight"]
    with pytest.raises(RuntimeError, match="encoder.layer1.0.conv1.weight"):
        load_saved_state(model, saved)


class _ReadsWithoutCalling(nn.Module):
    """An encoder whose forward reads a child's weight without calling the child."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.shared = nn.Conv2d(4, 4, 3, padding=1)
        self.never = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        y = self.stem(x)
        return [x, nn.functional.conv2d(y, self.shared.weight, padding=1)]


class _Network(nn.Module):
    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder


def test_weights_read_without_a_call_keep_everything_saved() -> None:
    """A module never called may still be read (here `shared`): the NaN check finds it, and
    then nothing is left out, `never` included."""
    assert unused_encoder_state(_Network(_ReadsWithoutCalling()), 1) == frozenset()

    class _OnlyCalls(_ReadsWithoutCalling):
        def forward(self, x):
            return [x, self.shared(self.stem(x))]

    network = _Network(_OnlyCalls())
    before = {k: v.clone() for k, v in network.state_dict().items()}
    assert unused_encoder_state(network, 1) == {"encoder.never.weight", "encoder.never.bias"}
    # The check leaves every weight as it found it.
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())
