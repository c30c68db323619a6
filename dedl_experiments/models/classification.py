"""The classification networks: timm models named by `conf/encoder/<name>.yaml`.

Input size rule: the classification task resizes every image to one `image_size` (384 in the
paper's recipe, smaller in smoke runs). Convolutional models (ResNet, EfficientNet, NFNet,
ConvNeXt) take any size and are built as they are. Models whose timm pretrained cfg marks a
fixed input size (ViT, Swin, CoAtNet) are created for `image_size` (timm's `img_size`); timm
then resamples the pretrained position embeddings / relative position tables to that size.
`image_size=None` means the model's native size (`encoder.input_size`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import timm
from torch import nn

from dedl_experiments.models.pretrained import create_timm_model

RANDOM_INIT = "random"


def classification_inits(encoder_cfg: Mapping[str, Any]) -> list[str]:
    """Init names usable for classification with this encoder, `random` first."""
    inits = encoder_cfg.get("inits") or {}
    return [RANDOM_INIT, *(name for name, weights in inits.items()
                           if weights is not None and weights.get("classification"))]


def classification_tag(encoder_cfg: Mapping[str, Any], init_name: str) -> str | None:
    """timm pretrained tag (e.g. 'tv_in1k') of `init_name`; None for random init.

    The config may give the weights as '<timm model>.<tag>' (the usual form) or as a bare tag.
    Raises ValueError naming the encoder and init and listing the valid inits.
    """
    if init_name == RANDOM_INIT:
        return None
    timm_name = encoder_cfg["classification"]
    weights = (encoder_cfg.get("inits") or {}).get(init_name)
    value = weights.get("classification") if weights is not None else None
    if not value:
        raise ValueError(
            f"init={init_name} has no classification weights for encoder={encoder_cfg['name']} "
            f"(timm {timm_name}); valid inits for it: {', '.join(classification_inits(encoder_cfg))}"
        )
    prefix = f"{timm_name}."
    return value[len(prefix):] if value.startswith(prefix) else value


def has_fixed_input_size(timm_name: str, pretrained_tag: str | None = None) -> bool:
    """True when timm builds the model for one input size (ViT, Swin, CoAtNet...)."""
    name = timm_name if pretrained_tag is None else f"{timm_name}.{pretrained_tag}"
    cfg = timm.models.get_pretrained_cfg(name, allow_unregistered=True)
    return bool(cfg is not None and cfg.fixed_input_size)


def classification_input_size(encoder_cfg: Mapping[str, Any], image_size: int | None) -> int:
    """The size images are resized to: `image_size`, or the model's native size when None."""
    size = encoder_cfg["input_size"] if image_size is None else image_size
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ValueError(f"image size must be a positive integer, got {size!r}")
    return size


def build_classification_model(
    encoder_cfg: Mapping[str, Any],
    init_name: str,
    num_classes: int = 5,
    image_size: int | None = None,
    allow_download: bool = False,
) -> nn.Module:
    """The timm model of `encoder_cfg` with `num_classes` outputs, initialised by `init_name`.

    `init_name` is 'random' or one of the encoder's inits with classification weights (loaded
    offline-first by `weights.create_timm_model`). Fixed-size models are created for
    `image_size` when it differs from the native size; see the module docstring.
    """
    timm_name = encoder_cfg["classification"]
    tag = classification_tag(encoder_cfg, init_name)
    size = classification_input_size(encoder_cfg, image_size)
    kwargs: dict[str, Any] = {}
    if size != encoder_cfg["input_size"] and has_fixed_input_size(timm_name, tag):
        kwargs["img_size"] = size
    return create_timm_model(timm_name, tag, num_classes, allow_download=allow_download, **kwargs)
