"""Networks of the framework: the segmentation model, its training-only autoencoder
post-processing (APP), and offline-first loading of pretrained weights.

A network may mark state its forward never reads (`unused_state_keys`, set by its builder:
the encoder stages a shallow U-Net does not run). Saved states leave it out (`state_to_save`)
and loading fills it from the network (`load_saved_state`), so that checkpoints and saved
models hold only weights that matter, and states saved whole still load."""

from torch import Tensor, nn


def count_parameters(module: nn.Module | None) -> int:
    """Number of parameters (trainable or not) in a module; 0 for None."""
    return 0 if module is None else sum(parameter.numel() for parameter in module.parameters())


def unused_state_keys(module: nn.Module) -> frozenset[str]:
    """The keys of `module`'s state that its forward never reads (empty unless marked)."""
    return getattr(module, "unused_state_keys", frozenset())


def state_to_save(module: nn.Module) -> dict[str, Tensor]:
    """`module.state_dict()` without its unused state."""
    unused = unused_state_keys(module)
    return {key: value for key, value in module.state_dict().items() if key not in unused}


def load_saved_state(module: nn.Module, state: dict[str, Tensor]) -> None:
    """Load a state `state_to_save` gave, or a whole one; unused keys it lacks keep the
    module's values. Any other missing or unexpected key fails as in `load_state_dict`."""
    current = module.state_dict()
    filled = {key: current[key] for key in unused_state_keys(module) if key not in state}
    module.load_state_dict(filled | dict(state))
