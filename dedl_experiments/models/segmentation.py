"""The released segmentation networks: smp U-Net / U-Net++ with scSE attention."""

from collections.abc import Sequence

import segmentation_models_pytorch as smp
from torch import nn

from dedl_experiments.models.weights import load_smp_encoder_weights

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "unet": smp.Unet,
    "unetplusplus": smp.UnetPlusPlus,
}


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

    `weights` is an smp encoder weights name ("imagenet", "advprop", "noisy-student", ...)
    or None for random initialisation; `allow_download` lets a missing file be fetched unless
    an offline switch (HF_HUB_OFFLINE, DEDL_OFFLINE) is set.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"Unknown segmentation architecture {architecture!r}; valid ones are "
            f"{sorted(ARCHITECTURES)}"
        )
    # smp is never asked for weights itself: it would download them. The encoder is built
    # at random init and the pretrained state dict comes through models/weights.py, the one
    # place that decides between local files, the Hugging Face cache and the network.
    model = ARCHITECTURES[architecture](
        encoder_name=encoder,
        encoder_depth=encoder_depth,
        encoder_weights=None,
        decoder_channels=tuple(decoder_channels),
        decoder_attention_type=attention,
        in_channels=in_channels,
        classes=classes,
    )
    if weights is not None:
        load_smp_encoder_weights(model, encoder, weights, allow_download)
    return model


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or not) in a module."""
    return sum(parameter.numel() for parameter in module.parameters())
