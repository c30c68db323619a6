"""The released segmentation networks: smp U-Net / U-Net++ with scSE attention."""

from collections.abc import Sequence

import segmentation_models_pytorch as smp
from segmentation_models_pytorch.base.modules import Attention, SCSEModule
from torch import Tensor, nn

from dedl_experiments.models.weights import load_smp_encoder_weights

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "unet": smp.Unet,
    "unetplusplus": smp.UnetPlusPlus,
}


# Decoder attention: smp's concurrent spatial and channel squeeze-and-excitation (released),
# channel squeeze-and-excitation only (the paper's text), or none.
ATTENTIONS = ("scse", "cse", None)


class ChannelSE(nn.Module):
    """Channel squeeze-and-excitation (Hu et al.), what the paper's text describes: smp's scSE
    block without its spatial branch. Keeps scSE's channel branch (and its parameter names)."""

    def __init__(self, scse: SCSEModule) -> None:
        super().__init__()
        self.cSE = scse.cSE

    def forward(self, x: Tensor) -> Tensor:
        return x * self.cSE(x)


def build_segmentation_model(
    architecture: str,
    encoder: str,
    weights: str | None,
    attention: str | None = "scse",
    encoder_depth: int = 3,
    decoder_channels: Sequence[int] = (256, 128, 64),
    in_channels: int = 1,
    classes: int = 2,
    allow_download: bool = False,
) -> nn.Module:
    """An smp model as released (DAPI in, background/nucleus logits out).

    `attention` is the decoder attention: "scse" (released), "cse" (channel squeeze-and-
    excitation only, as the paper's text describes it) or None.

    `weights` is an smp encoder weights name ("imagenet", "advprop", "noisy-student", ...)
    or None for random initialisation; `allow_download` lets a missing file be fetched unless
    an offline switch (HF_HUB_OFFLINE, DEDL_OFFLINE) is set.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"Unknown segmentation architecture {architecture!r}; valid ones are "
            f"{sorted(ARCHITECTURES)}"
        )
    if attention not in ATTENTIONS:
        raise ValueError(f"Unknown decoder attention {attention!r}; valid ones are scse, cse "
                         "and null")
    # smp is never asked for weights itself: it would download them. The encoder is built
    # at random init and the pretrained state dict comes through models/weights.py, the one
    # place that decides between local files, the Hugging Face cache and the network.
    model = ARCHITECTURES[architecture](
        encoder_name=encoder,
        encoder_depth=encoder_depth,
        encoder_weights=None,
        decoder_channels=tuple(decoder_channels),
        decoder_attention_type="scse" if attention == "cse" else attention,
        in_channels=in_channels,
        classes=classes,
    )
    if attention == "cse":
        for module in model.modules():
            if isinstance(module, Attention) and isinstance(module.attention, SCSEModule):
                module.attention = ChannelSE(module.attention)
    if weights is not None:
        load_smp_encoder_weights(model, encoder, weights, allow_download)
    return model


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or not) in a module."""
    return sum(parameter.numel() for parameter in module.parameters())
