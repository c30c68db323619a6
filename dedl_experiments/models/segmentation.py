"""The released segmentation networks: smp U-Net / U-Net++ with scSE attention.

The network class of an architecture is its YAML's `smp_class` (conf/architecture/<name>.yaml):
a class of segmentation_models_pytorch (`Unet`) or a dotted path to any class taking smp's
arguments. A new architecture is a new YAML file.
"""

from collections.abc import Sequence
from pathlib import Path

import hydra.utils
import segmentation_models_pytorch as smp
import torch
from omegaconf import OmegaConf
from segmentation_models_pytorch.base.modules import Attention, SCSEModule
from torch import Tensor, nn

from dedl_experiments.config.config_files import CONF_DIR
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
    model.unused_state_keys = unused_encoder_state(model, in_channels)
    return model


def unused_encoder_state(model: nn.Module, in_channels: int) -> frozenset[str]:
    """State keys of the encoder's modules that the network never runs. smp builds a whole
    encoder and runs its first `encoder_depth` stages: at the released depth of 3, 94 % of a
    ResNet-18's weights (its last two stages) never change, and saving them made every
    checkpoint and saved model of a UNet-ResNet18 five times larger (models/__init__.py leaves
    them out).

    Found by running the encoder once on zeros (eval mode, no gradients: nothing it holds
    changes) and noting the modules it never calls; confirmed by a second run with their
    floating-point tensors set to NaN, whose features must come out the same. Empty when that
    check fails (a module whose weights its parent reads without calling it)."""
    encoder = model.encoder
    called: set[nn.Module] = set()
    hooks = [module.register_forward_pre_hook(lambda module, args: called.add(module))
             for module in encoder.modules()]
    probe = torch.zeros(1, in_channels, 64, 64)
    training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            features = encoder(probe)
            tensors = {f"encoder.{name}.{key}": value for name, module in encoder.named_modules()
                       if module not in called
                       for key, value in [*module.named_parameters(recurse=False),
                                          *module.named_buffers(recurse=False)]}
            if not tensors:
                return frozenset()
            kept = {key: value.clone() for key, value in tensors.items()}
            for value in tensors.values():
                if value.is_floating_point():
                    value.fill_(float("nan"))
            again = encoder(probe)
            for key, value in tensors.items():
                value.copy_(kept[key])
        same = len(features) == len(again) and all(torch.equal(a, b) for a, b in zip(features, again))
        return frozenset(tensors) if same else frozenset()
    finally:
        for hook in hooks:
            hook.remove()
        encoder.train(training)
