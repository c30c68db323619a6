"""Networks of the framework: the segmentation model, its training-only autoencoder
post-processing (APP), and offline-first loading of pretrained weights."""

from torch import nn


def count_parameters(module: nn.Module | None) -> int:
    """Number of parameters (trainable or not) in a module; 0 for None."""
    return 0 if module is None else sum(parameter.numel() for parameter in module.parameters())
