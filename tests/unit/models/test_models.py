"""Segmentation models as released and offline-first pretrained weights."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from segmentation_models_pytorch.base.modules import SCSEModule
from segmentation_models_pytorch.encoders import get_encoder

from dedl_experiments.models import count_parameters
from dedl_experiments.models.segmentation import build_segmentation_model
from dedl_experiments.models.pretrained import (
    WeightsUnavailable,
    create_timm_model,
    downloads_allowed,
    load_smp_encoder_weights,
    smp_hub_location,
)

pytestmark = pytest.mark.filterwarnings("ignore:`timm-` encoders are deprecated")

FIRST_CONV = {"resnet18": "conv1.weight", "timm-efficientnet-b0": "conv_stem.weight"}


@pytest.fixture(autouse=True)
def _offline(isolated_weight_stores) -> None:
    """Every test here runs with empty, offline weight stores (see conftest)."""


def rgb_encoder_state(encoder: str) -> dict[str, torch.Tensor]:
    """A stand-in for published weights: a random 3-channel encoder, classifier head included."""
    torch.manual_seed(1)
    state = get_encoder(encoder, in_channels=3, depth=5, weights=None).state_dict()
    head = "fc" if encoder == "resnet18" else "classifier"
    state[f"{head}.weight"] = torch.randn(1000, 8)
    state[f"{head}.bias"] = torch.randn(1000)
    return state


def populate_hf_cache(hub: Path, repo_id: str, revision: str, state: dict) -> Path:
    """Lay out a Hugging Face cache as hf_hub_download leaves it; returns the weights file."""
    org, name = repo_id.split("/")
    repo_cache = hub / f"models--{org}--{name}"
    snapshot = repo_cache / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo_cache / "refs").mkdir()
    (repo_cache / "refs" / "main").write_text(revision)
    save_file(state, str(snapshot / "model.safetensors"))
    return snapshot / "model.safetensors"


def assert_encoder_holds(model: torch.nn.Module, encoder: str, rgb_state: dict) -> None:
    loaded = model.encoder.state_dict()
    first_conv = FIRST_CONV[encoder]
    # smp adapts RGB kernels to one input channel by summing them.
    torch.testing.assert_close(loaded[first_conv], rgb_state[first_conv].sum(dim=1, keepdim=True))
    for key, value in loaded.items():
        if key != first_conv:
            torch.testing.assert_close(value, rgb_state[key])


@pytest.mark.parametrize("architecture", ["unet", "unetplusplus"])
@pytest.mark.parametrize("encoder", ["resnet18", "timm-efficientnet-b0"])
def test_models_as_released_at_random_init(architecture: str, encoder: str) -> None:
    model = build_segmentation_model(architecture, encoder, weights=None).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 1, 64, 64))
    assert logits.shape == (1, 2, 64, 64)
    assert model.encoder._depth == 3
    assert model.encoder._in_channels == 1
    assert any(isinstance(module, SCSEModule) for module in model.decoder.modules())
    assert count_parameters(model) == sum(p.numel() for p in model.parameters()) > 0


def test_unknown_architecture_is_rejected() -> None:
    with pytest.raises(ValueError, match="unet.*unetplusplus"):
        build_segmentation_model("fpn", "resnet18", weights=None)


@pytest.mark.parametrize(
    ("encoder", "suffix"), [("resnet18", ".pth"), ("timm-efficientnet-b0", ".safetensors")]
)
def test_local_weights_file_is_loaded_and_first_conv_summed(
    tmp_path: Path, encoder: str, suffix: str
) -> None:
    rgb_state = rgb_encoder_state(encoder)
    path = tmp_path / "weights" / "smp" / encoder / f"imagenet{suffix}"
    path.parent.mkdir(parents=True)
    if suffix == ".pth":
        torch.save(rgb_state, path)
    else:
        save_file(rgb_state, str(path))

    model = build_segmentation_model("unet", encoder, weights="imagenet")

    assert_encoder_holds(model, encoder, rgb_state)


def test_missing_weights_name_the_weights_the_directory_and_the_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailable) as raised:
        build_segmentation_model("unet", "resnet18", weights="imagenet")
    message = str(raised.value)
    assert "smp encoder resnet18 / imagenet" in message
    assert str(tmp_path / "weights") in message
    assert str(tmp_path / "weights" / "smp" / "resnet18" / "imagenet.safetensors") in message
    assert "python -m dedl_experiments.weights fetch" in message


def test_unknown_weights_name_lists_the_available_ones() -> None:
    with pytest.raises(ValueError, match="advprop.*imagenet.*noisy-student"):
        build_segmentation_model("unet", "timm-efficientnet-b0", weights="instagram")


@pytest.mark.parametrize("pinned", [True, False], ids=["smp-revision", "other-main-revision"])
def test_populated_hf_cache_is_found_without_network(tmp_path: Path, pinned: bool) -> None:
    repo_id, smp_revision = smp_hub_location("resnet18", "imagenet")
    assert repo_id == "smp-hub/resnet18.imagenet"
    revision = smp_revision if pinned else "0" * 40
    rgb_state = rgb_encoder_state("resnet18")
    cached_file = populate_hf_cache(tmp_path / "hub", repo_id, revision, rgb_state)

    model = build_segmentation_model("unet", "resnet18", weights=None)
    source = load_smp_encoder_weights(model, "resnet18", "imagenet", allow_download=True)

    assert source == f"hf-cache:{cached_file}"
    assert_encoder_holds(model, "resnet18", rgb_state)


def test_offline_switches_forbid_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not downloads_allowed(allow_download=True)  # HF_HUB_OFFLINE=1
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert downloads_allowed(allow_download=True)
    assert not downloads_allowed(allow_download=False)
    monkeypatch.setenv("DEDL_OFFLINE", "1")
    assert not downloads_allowed(allow_download=True)


def test_timm_local_file_loads_backbone_with_a_fresh_head(tmp_path: Path) -> None:
    torch.manual_seed(2)
    pretrained = timm.create_model("resnet18", pretrained=False, num_classes=1000)
    path = tmp_path / "weights" / "timm" / "resnet18.a1_in1k.safetensors"
    path.parent.mkdir(parents=True)
    save_file(pretrained.state_dict(), str(path))

    model = create_timm_model("resnet18", "a1_in1k", num_classes=5)

    assert model.fc.weight.shape == (5, 512)
    assert not torch.allclose(model.fc.weight, pretrained.fc.weight[:5])
    loaded, original = model.state_dict(), pretrained.state_dict()
    for key, value in loaded.items():
        if not key.startswith("fc."):
            torch.testing.assert_close(value, original[key])


def test_timm_weights_are_found_in_the_hf_cache(tmp_path: Path) -> None:
    torch.manual_seed(3)
    pretrained = timm.create_model("resnet18", pretrained=False, num_classes=1000)
    populate_hf_cache(tmp_path / "hub", "timm/resnet18.a1_in1k", "1" * 40, pretrained.state_dict())

    model = create_timm_model("resnet18", "a1_in1k", num_classes=5)

    torch.testing.assert_close(model.conv1.weight, pretrained.conv1.weight)
    assert model.fc.out_features == 5


def test_timm_missing_weights_are_reported(tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailable) as raised:
        create_timm_model("resnet18", "a1_in1k", num_classes=5)
    message = str(raised.value)
    assert "timm resnet18.a1_in1k" in message
    assert str(tmp_path / "weights" / "timm" / "resnet18.a1_in1k.safetensors") in message


def test_timm_without_tag_is_randomly_initialised() -> None:
    model = create_timm_model("resnet18", None, num_classes=5)
    assert model.fc.out_features == 5


def test_timm_unknown_tag_lists_the_available_ones() -> None:
    with pytest.raises(ValueError, match="resnet18.a1_in1k"):
        create_timm_model("resnet18", "no_such_tag", num_classes=5)
