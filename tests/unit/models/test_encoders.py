"""conf/encoder/*.yaml: schema, the paper's model list, weights that exist in timm / smp, and
the classification model builder. Only tiny models are ever built (random init or a local file)."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path

import pytest
import timm
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file
from segmentation_models_pytorch.encoders import encoders as smp_encoders

from conftest import CONF, compose_config
from dedl_experiments.config.checks import ConfigError, validate
from dedl_experiments.models.classification import (
    build_classification_model,
    classification_inits,
    classification_input_size,
    classification_tag,
    has_fixed_input_size,
)

ENCODER_DIR = CONF / "encoder"
# The paper's models (and CoAtNet) by family; other encoder files may be added beside them.
EXPECTED = {
    "resnet": [f"resnet{d}" for d in (18, 34, 50, 101)],
    "efficientnet": [f"efficientnet_b{i}" for i in range(8)],
    "nfnet": [f"nfnet_f{i}" for i in range(7)],
    "convnext": [f"convnext_{s}" for s in ("tiny", "small", "base", "large")],
    "swin": ["swin_base", "swin_large"],
    "vit": ["vit_base_16", "vit_base_32", "vit_large_16", "vit_large_32"],
    "coatnet": ["coatnet"],
}
FAMILY = {name: family for family, names in EXPECTED.items() for name in names}
SCHEMA_KEYS = {"name", "label", "family", "segmentation", "classification", "input_size", "inits"}
INIT_NAMES = {"imagenet", "advprop", "noisy_student"}
SEGMENTATION_FAMILIES = {"resnet", "efficientnet"}
FIXED_SIZE_FAMILIES = {"vit", "swin", "coatnet"}
CONFIG_FILES = sorted(ENCODER_DIR.glob("*.yaml"))
PAPER_FILES = [ENCODER_DIR / f"{name}.yaml" for name in FAMILY]
TIMM_PRETRAINED = set(timm.list_pretrained())


def load(name: str):
    return OmegaConf.load(ENCODER_DIR / f"{name}.yaml")


@pytest.fixture(autouse=True)
def _offline(isolated_weight_stores) -> None:
    """Every test here runs with empty, offline weight stores (see conftest)."""


def test_every_paper_model_has_a_config():
    assert set(PAPER_FILES) <= set(CONFIG_FILES)


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.stem)
def test_config_has_the_schema(path: Path):
    assert path.read_text().startswith("# "), "first line must say what the file is"
    cfg = OmegaConf.load(path)
    assert set(cfg) == SCHEMA_KEYS
    assert cfg.name == path.stem and cfg.family == FAMILY.get(path.stem, cfg.family)
    assert isinstance(cfg.label, str) and cfg.label  # the report's name for it
    assert isinstance(cfg.classification, str) and cfg.classification
    assert isinstance(cfg.input_size, int) and cfg.input_size > 0
    assert cfg.inits and set(cfg.inits) <= INIT_NAMES
    for init, weights in cfg.inits.items():
        assert set(weights) == {"segmentation", "classification"}, init
        assert weights.segmentation or weights.classification, f"{init} has no weights at all"
    if cfg.family in SEGMENTATION_FAMILIES:
        assert cfg.segmentation
    else:
        assert cfg.segmentation is None
        assert set(cfg.inits) == {"imagenet"}
        assert all(w.segmentation is None for w in cfg.inits.values())


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.stem)
def test_classification_weights_exist_in_timm_at_the_configured_size(path: Path):
    cfg = OmegaConf.load(path)
    assert timm.is_model(cfg.classification), cfg.classification
    for init, weights in cfg.inits.items():
        if weights.classification is None:
            continue
        assert weights.classification.startswith(f"{cfg.classification}."), init
        assert weights.classification in TIMM_PRETRAINED, weights.classification
        pretrained_cfg = timm.models.get_pretrained_cfg(weights.classification)
        assert pretrained_cfg.input_size[-1] == cfg.input_size, weights.classification
        assert pretrained_cfg.fixed_input_size == (cfg.family in FIXED_SIZE_FAMILIES)


SEGMENTATION_FILES = [p for p in CONFIG_FILES if OmegaConf.load(p).family in SEGMENTATION_FAMILIES]


@pytest.mark.parametrize("path", SEGMENTATION_FILES, ids=lambda p: p.stem)
def test_segmentation_weights_exist_in_smp(path: Path):
    cfg = OmegaConf.load(path)
    assert cfg.segmentation in smp_encoders, cfg.segmentation
    settings = smp_encoders[cfg.segmentation]["pretrained_settings"]
    for init, weights in cfg.inits.items():
        if weights.segmentation is not None:
            assert weights.segmentation in settings, (init, sorted(settings))


def test_efficientnets_offer_all_three_inits_on_the_tf_ports():
    for i in range(8):
        cfg = load(f"efficientnet_b{i}")
        assert cfg.segmentation == f"timm-efficientnet-b{i}"
        assert cfg.classification == f"tf_efficientnet_b{i}"
        assert {k: dict(v) for k, v in cfg.inits.items()} == {
            "imagenet": {"segmentation": "imagenet", "classification": f"tf_efficientnet_b{i}.aa_in1k"},
            "advprop": {"segmentation": "advprop", "classification": f"tf_efficientnet_b{i}.ap_in1k"},
            "noisy_student": {"segmentation": "noisy-student",
                              "classification": f"tf_efficientnet_b{i}.ns_jft_in1k"},
        }


def test_paper_architectures_are_the_named_timm_models():
    assert load("swin_base").classification == "swin_base_patch4_window12_384"
    assert load("swin_large").classification == "swin_large_patch4_window12_384"
    for name, patch in [("vit_base_16", "base_patch16"), ("vit_base_32", "base_patch32"),
                        ("vit_large_16", "large_patch16"), ("vit_large_32", "large_patch32")]:
        assert load(name).classification == f"vit_{patch}_384"
    assert [load(f"nfnet_f{i}").classification for i in range(7)] == [f"dm_nfnet_f{i}" for i in range(7)]


@pytest.mark.parametrize("name, size", [("resnet18", 64), ("efficientnet_b0", 64), ("vit_base_16", 64)])
def test_random_init_model_gives_one_logit_per_class(name: str, size: int):
    torch.manual_seed(0)
    model = build_classification_model(load(name), "random", num_classes=5, image_size=size).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 5)
    if name == "vit_base_16":  # fixed-size model: built for the task's image size
        assert tuple(model.patch_embed.img_size) == (size, size)


def test_pretrained_tag_is_loaded_from_a_local_file(tmp_path: Path):
    torch.manual_seed(1)
    published = timm.create_model("resnet18", pretrained=False, num_classes=1000)
    path = tmp_path / "weights" / "timm" / "resnet18.tv_in1k.safetensors"
    path.parent.mkdir(parents=True)
    save_file(published.state_dict(), str(path))

    model = build_classification_model(load("resnet18"), "imagenet", num_classes=5, image_size=64)

    torch.testing.assert_close(model.conv1.weight, published.conv1.weight)
    assert model.fc.out_features == 5


def test_init_without_classification_weights_lists_the_valid_ones():
    message = r"init=advprop .*encoder=resnet18.*valid inits for it: random, imagenet$"
    with pytest.raises(ValueError, match=message):
        build_classification_model(load("resnet18"), "advprop")
    with pytest.raises(ValueError, match="random, imagenet, advprop, noisy_student"):
        build_classification_model(load("efficientnet_b0"), "swsl")


def test_tags_and_input_sizes():
    cfg = load("efficientnet_b3")
    assert classification_inits(cfg) == ["random", "imagenet", "advprop", "noisy_student"]
    assert classification_tag(cfg, "noisy_student") == "ns_jft_in1k"
    assert classification_tag(cfg, "random") is None
    assert classification_input_size(cfg, None) == 300
    assert classification_input_size(cfg, 384) == 384
    assert has_fixed_input_size("swin_base_patch4_window12_384")
    assert not has_fixed_input_size("dm_nfnet_f3", "dm_in1k")


def test_validate_rejects_an_init_the_encoder_lacks():
    with pytest.raises(ConfigError, match="init=advprop is not available for encoder=resnet18; "
                                          "valid inits for it: random, imagenet"):
        validate(compose_config(["encoder=resnet18", "init=advprop"]))


def test_validate_accepts_noisy_student_efficientnet():
    validate(compose_config(["encoder=efficientnet_b0", "init=noisy_student"]))


def test_validate_rejects_segmentation_with_a_classification_only_model():
    with pytest.raises(ConfigError, match="encoder=nfnet_f3 has no segmentation encoder"):
        validate(compose_config(["encoder=nfnet_f3"]))


def test_every_architecture_has_a_label():
    for path in sorted((CONF / "architecture").glob("*.yaml")):
        label = OmegaConf.load(path).get("label")
        assert isinstance(label, str) and label, path.name
