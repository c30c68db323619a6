"""Autoencoder post-processing (APP) as in the paper's released code.

The APP is a training-time helper: a row-wise fully connected autoencoder applied to the
segmentation logits, whose own cross-entropy is added to the segmentation loss. It is a
separate module so that the saved model and inference stay the plain segmentation network.
"""

from torch import Tensor, nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU}

# Widths after the first expansion (to 32 * tile width); the last layer maps back to W.
_BOTTLENECK_WIDTHS = (256, 128, 64, 32, 16, 32, 64, 128, 256)


def layer_widths(width: int) -> list[int]:
    """Feature sizes along the last axis, input first: W, 32W, 256, ..., 16, ..., 256, W."""
    return [width, 32 * width, *_BOTTLENECK_WIDTHS, width]


class AutoencoderPostProcessing(nn.Module):
    """Fully connected autoencoder over each row of each class map of (B, C, H, W) logits.

    As released, the activation follows every linear layer, the last one included, so the
    reconstructed logits are non-negative (ReLU) or bounded below (GELU).
    """

    def __init__(self, width: int, activation: str = "relu") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"Unknown APP activation {activation!r}; valid ones are {sorted(ACTIVATIONS)}"
            )
        self.width = width
        widths = layer_widths(width)
        layers: list[nn.Module] = []
        for in_features, out_features in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(in_features, out_features), ACTIVATIONS[activation]()]
        self.layers = nn.Sequential(*layers)

    def forward(self, logits: Tensor) -> Tensor:
        if logits.shape[-1] != self.width:
            raise ValueError(
                f"APP was built for width {self.width} but got input whose last dimension is "
                f"{logits.shape[-1]} (shape {tuple(logits.shape)}); build it with the tile width"
            )
        return self.layers(logits)
