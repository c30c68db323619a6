"""The released segmentation networks: smp U-Net / U-Net++ with scSE attention.

The network class of an architecture is its YAML's `smp_class` (conf/architecture/<name>.yaml):
a class of segmentation_models_pytorch (`Unet`) or a dotted path to any class taking smp's
arguments. A new architecture is a new YAML file.
"""

from collections.abc import Sequence
from pathlib import Path

import hydra.utils
import segmentation_models_pytorch as smp
from omegaconf import OmegaConf
from segmentation_models_pytorch.base.modules import Attention, SCSEModule
from torch import Tensor, nn

from dedl_experiments.config.config_files import CONF_DIR
from dedl_experiments.models import count_parameters  # noqa: F401  (re-exported)
from dedl_experiments.models.pretrained import load_smp_encoder_weights

ARCHITECTURE_DIR = CONF_DIR / "architecture"


def architectures(folder: Path = ARCHITECTURE_DIR) -> list[str]:
    """The architectures of the package's configs."""
    return sorted(path.stem for path in folder.glob("*.yaml"))


def architecture_class(architecture: str, smp_class: str | None = None) -> type[nn.Module]:
    """The network class of `smp_class`, or of the package's conf/architecture/<name>.yaml
    when not given (models saved before checkpoints named their class)."""
    if smp_class is None:
        path = ARCHITECTURE_DIR / f"{architecture}.yaml"
        if not path.is_file():
            raise ValueError(f"Unknown segmentation architecture {architecture!r}; valid ones are "
                             f"{architectures()}")
        smp_class = str(OmegaConf.load(path).smp_class)
    if "." in smp_class:
        return hydra.utils.get_class(smp_class)
    if not isinstance(getattr(smp, smp_class, None), type):
        raise ValueError(f"architecture {architecture}: smp_class {smp_class!r} is not a class of "
                         "segmentation_models_pytorch (give a dotted path for another class)")
    return getattr(smp, smp_class)


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
    smp_class: str | None = None,
) -> nn.Module:
    """An smp model as released (DAPI in, background/nucleus logits out).

    `attention` is the decoder attention: "scse" (released), "cse" (channel squeeze-and-
    excitation only, as the paper's text describes it) or None.

    `weights` is an smp encoder weights name ("imagenet", "advprop", "noisy-student", ...)
    or None for random initialisation; `allow_download` lets a missing file be fetched unless
    an offline switch (HF_HUB_OFFLINE, DEDL_OFFLINE) is set.

    `smp_class` is the architecture's network class (its YAML's `smp_class`); None looks it up
    in the package's conf/architecture/<architecture>.yaml.
    """
    network_class = architecture_class(architecture, smp_class)
    if attention not in ATTENTIONS:
        raise ValueError(f"Unknown decoder attention {attention!r}; valid ones are scse, cse "
                         "and null")
    # smp is never asked for weights itself: it would download them. The encoder is built
    # at random init and the pretrained state dict comes through models/weights.py, the one
    # place that decides between local files, the Hugging Face cache and the network.
    model = network_class(
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
