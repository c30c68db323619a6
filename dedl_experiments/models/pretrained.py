"""Offline-first resolution of pretrained weights for smp encoders and timm models.

Weights are looked up in this order:
  1. a state dict file in the project's weights directory (`weights_dir()`),
  2. the local Hugging Face cache, read without any network access,
  3. the network, only when the caller passes `allow_download=True` and neither
     HF_HUB_OFFLINE nor DEDL_OFFLINE is set.
Otherwise `WeightsUnavailable` says where to put the file, so that runs on machines
without internet fail at once with a fix instead of hanging on a download.
"""

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from huggingface_hub import constants as hf_constants
from huggingface_hub import hf_hub_download, try_to_load_from_cache
from huggingface_hub.errors import EntryNotFoundError
from safetensors.torch import load_file as load_safetensors
from segmentation_models_pytorch.encoders import encoders as smp_encoders
from segmentation_models_pytorch.encoders import get_encoder as get_smp_encoder
from torch import nn

logger = logging.getLogger(__name__)

WEIGHTS_DIR_ENV = "DEDL_WEIGHTS_DIR"
OFFLINE_ENVS = ("HF_HUB_OFFLINE", "DEDL_OFFLINE")
STATE_DICT_SUFFIXES = (".safetensors", ".pth")
FETCH_COMMAND = "python -m dedl_experiments.weights fetch <same overrides>"

# smp 0.6 stores every encoder's weights as this file in the Hub repo named by its
# pretrained_settings (e.g. smp-hub/resnet18.imagenet at a pinned revision).
SMP_HUB_FILENAME = "model.safetensors"
# timm's Hub repos hold one of these (safetensors preferred), unless the
# pretrained cfg names another file.
TIMM_HUB_FILENAMES = ("model.safetensors", "pytorch_model.bin")

StateDict = dict[str, torch.Tensor]


class WeightsUnavailable(RuntimeError):
    """Pretrained weights are needed but are neither on disk nor allowed to be downloaded."""

    def __init__(self, weights: str, expected_file: Path) -> None:
        self.weights = weights
        self.expected_file = expected_file
        super().__init__(
            f"Pretrained weights {weights} are not available offline. Looked in the weights "
            f"directory {weights_dir()} and the Hugging Face cache {hf_cache_dir()}. "
            f"Run `{FETCH_COMMAND}` on a machine with internet, or place the file at "
            f"{expected_file} (a .pth state dict with the same stem works too)."
        )


def weights_dir() -> Path:
    """The project's weights directory: $DEDL_WEIGHTS_DIR or ~/.cache/dedl_experiments/weights."""
    configured = os.environ.get(WEIGHTS_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "dedl_experiments" / "weights"


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time.

    huggingface_hub freezes its own constant at import, which would ignore a cache
    directory set later (by a launcher or a test).
    """
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(hf_constants.HF_HUB_CACHE)


def downloads_allowed(allow_download: bool) -> bool:
    """True when the caller asks for downloads and no offline switch is set."""
    offline = any(
        os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
        for name in OFFLINE_ENVS
    )
    return allow_download and not offline


def smp_weights_file(encoder: str, weights: str) -> Path:
    """Where a local smp encoder state dict is expected (.safetensors; .pth also accepted)."""
    return weights_dir() / "smp" / encoder / f"{weights}.safetensors"


def timm_weights_file(timm_name_with_tag: str) -> Path:
    """Where a local timm state dict is expected (.safetensors; .pth also accepted)."""
    return weights_dir() / "timm" / f"{timm_name_with_tag}.safetensors"


def read_state_dict(path: Path) -> StateDict:
    """A state dict from .safetensors, or from a torch file without unpickling code."""
    if path.suffix == ".safetensors":
        return load_safetensors(str(path), device="cpu")
    return torch.load(path, map_location="cpu", weights_only=True)


def smp_hub_location(encoder: str, weights: str) -> tuple[str, str]:
    """(repo_id, revision) that smp itself downloads for this encoder and weights name."""
    if encoder not in smp_encoders:
        raise ValueError(
            f"Unknown smp encoder {encoder!r} (timm universal 'tu-' encoders are not supported "
            f"here); known ones include {sorted(smp_encoders)[:10]} ..."
        )
    settings = smp_encoders[encoder]["pretrained_settings"]
    if weights not in settings:
        raise ValueError(
            f"Encoder {encoder!r} has no pretrained weights {weights!r}; "
            f"available: {sorted(settings)}"
        )
    return settings[weights]["repo_id"], settings[weights]["revision"]


def resolve_smp_weights(encoder: str, weights: str, allow_download: bool = False
                        ) -> tuple[str, Path | None]:
    """(source, file) of an smp encoder's weights: local, HF cache, or (if allowed) download."""
    repo_id, revision = smp_hub_location(encoder, weights)
    return _resolve_weights_file(
        local_file=smp_weights_file(encoder, weights),
        repo_id=repo_id,
        # The pinned revision is what smp would fetch; 'main' also accepts a cache filled
        # by hand (e.g. `hf download smp-hub/resnet18.imagenet`).
        revisions=(revision, None),
        hub_filenames=(SMP_HUB_FILENAME,),
        allow_download=allow_download,
    )


def resolve_timm_weights(name: str, allow_download: bool = False) -> tuple[str, Path | None]:
    """(source, file) of timm weights `<model>.<tag>`: local, HF cache, or download."""
    try:
        pretrained_cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError as error:
        timm_name = name.split(".")[0]
        raise ValueError(
            f"timm has no pretrained weights {name!r}; available for {timm_name!r}: "
            f"{timm.list_pretrained(f'{timm_name}.*')}"
        ) from error
    hub_filenames = (
        (pretrained_cfg.hf_hub_filename,) if pretrained_cfg.hf_hub_filename else TIMM_HUB_FILENAMES
    )
    return _resolve_weights_file(
        local_file=timm_weights_file(name),
        repo_id=pretrained_cfg.hf_hub_id,
        revisions=(None,),
        hub_filenames=hub_filenames,
        allow_download=allow_download,
    )


@dataclass(frozen=True, order=True)
class PretrainedWeights:
    """Weights a job starts from (Task.pretrained_weights): an smp encoder's (`kind` "smp",
    encoder, weights name) or a timm model's (`kind` "timm", model, pretrained tag)."""

    kind: str
    name: str
    weights: str

    def resolve(self, allow_download: bool = False) -> tuple[str, Path | None]:
        """(source, file), as resolve_smp_weights / resolve_timm_weights find it."""
        if self.kind == "smp":
            return resolve_smp_weights(self.name, self.weights, allow_download)
        return resolve_timm_weights(f"{self.name}.{self.weights}", allow_download)

    def __str__(self) -> str:
        return f"{self.kind} {self.name} / {self.weights}"


def load_smp_encoder_weights(
    model: nn.Module, encoder: str, weights: str, allow_download: bool = False
) -> str:
    """Load pretrained weights into `model.encoder`; returns '<source>:<file>'."""
    source, path = resolve_smp_weights(encoder, weights, allow_download)
    if path is None:
        raise WeightsUnavailable(f"smp encoder {encoder} / {weights}",
                                 smp_weights_file(encoder, weights))
    _load_rgb_state_into_encoder(model.encoder, encoder, read_state_dict(path))
    logger.info("Loaded smp encoder %s / %s from %s %s", encoder, weights, source, path)
    return f"{source}:{path}"


def _load_rgb_state_into_encoder(target: nn.Module, encoder: str, state: StateDict) -> None:
    """Load 3-channel pretrained weights into an encoder that may take other channel counts.

    Goes through an RGB twin of the encoder so that smp's own `set_in_channels` adapts the
    first convolution (for one channel it sums the RGB kernels), exactly as smp does when
    it downloads weights itself; the twin's encoder class also drops the fc/classifier keys.
    """
    rgb_twin = get_smp_encoder(encoder, in_channels=3, depth=target._depth, weights=None)
    rgb_twin.load_state_dict(state)
    rgb_twin.set_in_channels(target._in_channels, pretrained=True)
    target.load_state_dict(rgb_twin.state_dict())


def create_timm_model(
    timm_name: str,
    pretrained_tag: str | None,
    num_classes: int,
    allow_download: bool = False,
    **kwargs,
) -> nn.Module:
    """A timm model with `num_classes` outputs; pretrained_tag None means random init.

    Weights go through timm's own loader (pretrained=True with a local `file` overlay),
    which applies model-specific checkpoint filters, adapts the input conv to `in_chans`
    and drops the classifier head when num_classes differs from the pretrained one.
    """
    if pretrained_tag is None:
        return timm.create_model(timm_name, pretrained=False, num_classes=num_classes, **kwargs)
    name = f"{timm_name}.{pretrained_tag}"
    source, path = resolve_timm_weights(name, allow_download)
    if path is None:
        raise WeightsUnavailable(f"timm {name}", timm_weights_file(name))
    logger.info("Loading timm %s from %s %s", name, source, path)
    return timm.create_model(
        name,
        pretrained=True,
        pretrained_cfg_overlay={"file": str(path)},
        num_classes=num_classes,
        **kwargs,
    )


def _resolve_weights_file(
    local_file: Path,
    repo_id: str | None,
    revisions: tuple[str | None, ...],
    hub_filenames: tuple[str, ...],
    allow_download: bool,
) -> tuple[str, Path | None]:
    """(source, path) of the first weights file found: local, HF cache, then download."""
    for candidate in (local_file.with_suffix(suffix) for suffix in STATE_DICT_SUFFIXES):
        if candidate.is_file():
            return "local", candidate
    if repo_id is None:
        return "none", None
    for revision in revisions:
        for filename in hub_filenames:
            cached = try_to_load_from_cache(
                repo_id, filename, cache_dir=hf_cache_dir(), revision=revision
            )
            if isinstance(cached, str):  # other results mean "not cached"
                return "hf-cache", Path(cached)
    if downloads_allowed(allow_download):
        for filename in hub_filenames:
            try:
                downloaded = hf_hub_download(
                    repo_id, filename, revision=revisions[0], cache_dir=hf_cache_dir()
                )
            except EntryNotFoundError:
                continue
            except Exception as error:  # no network, hub down, ...: report as unavailable
                logger.warning("Download of %s/%s failed: %s", repo_id, filename, error)
                return "none", None
            return "download", Path(downloaded)
    return "none", None
