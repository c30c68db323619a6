import pytest
from omegaconf import open_dict

from conftest import compose_config
from dedl_experiments.config import ConfigError, scaled_tile_size, validate


def test_defaults_are_the_papers_segmentation_setup():
    cfg = compose_config()
    validate(cfg)
    assert cfg.task.name == "segmentation" and cfg.architecture.name == "unet"
    assert cfg.architecture.attention == "scse" and cfg.architecture.encoder_depth == 3
    assert list(cfg.architecture.decoder_channels) == [256, 128, 64]
    assert cfg.optimizer.lr == 3.6e-4 and cfg.optimizer.weight_decay == 1e-5
    assert cfg.lr_schedule.name == "cosine" and cfg.lr_schedule.eta_min == 3.4e-4
    assert cfg.lr_schedule.t_max == cfg.train.epochs == 50
    assert cfg.train.batch_size == 16 and cfg.train.patience == 5
    assert cfg.init.name == "imagenet" and cfg.tiling.size == 480
    assert dict(cfg.dataset.splits) == {"train": ["Myo089", "Myo253", "Myo368"],
                                        "val": ["Myo208", "Myo388"],
                                        "test": ["Myo231", "Myo511"]}


@pytest.mark.parametrize("overrides", [
    ["encoder=resnet50", "architecture=unetplusplus", "app=gelu"],
    ["app=relu", "app_lr_schedule=cosine", "lr_schedule=constant"],
    ["budget=smoke", "init=random", "tiling=px256"],
    ["lr_schedule=step", "loss=ce", "seed=994"],
])
def test_good_overrides_validate(overrides):
    validate(compose_config(overrides))


@pytest.mark.parametrize("override, message", [
    ("optimizer.lr=-1", "optimizer.lr=-1 is invalid: it must be a number > 0"),
    ("optimizer.lr=0", "optimizer.lr=0 is invalid"),
    ("optimizer.weight_decay=-0.1", "optimizer.weight_decay"),
    ("train.epochs=0", "train.epochs=0 is invalid: it must be an integer >= 1"),
    ("train.batch_size=2.5", "train.batch_size"),
    ("seed=-3", "seed=-3"),
    ("tiling.size=100", "tiling.size=100 is invalid: it must be an integer >= 32 divisible by 8"),
    ("tiling.stride=600", "must not exceed tiling.size"),
    ("train.monitor_mode=up", "one of: min, max"),
    ("init=advprop", "valid inits for it: random, imagenet"),
    ("loss.weighting=fixed", "loss.weights must list 2 numbers"),
    ("device=tpu", "device='tpu' is invalid"),
])
def test_bad_values_fail_with_the_option_and_what_is_allowed(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("+", r"\+")):
        validate(compose_config([override]))


def test_unresolvable_interpolation_is_a_config_error():
    cfg = compose_config()
    with open_dict(cfg):
        cfg.train.epochs = "${nowhere.epochs}"
    with pytest.raises(ConfigError, match="does not resolve"):
        validate(cfg)


@pytest.mark.parametrize("size, scale, expected", [(480, 1.0, 480), (480, 0.125, 64),
                                                   (256, 0.125, 32), (480, 0.0625, 32)])
def test_smoke_scale_keeps_tiles_a_multiple_of_8(size, scale, expected):
    cfg = compose_config([f"tiling.size={size}", f"budget.scale={scale}"])
    assert scaled_tile_size(cfg) == expected


@pytest.mark.parametrize("dataset", ["myositis", "folder"])
def test_real_datasets_need_a_root(dataset):
    with pytest.raises(ConfigError, match=f"dataset={dataset} needs dataset.root="):
        validate(compose_config([f"dataset={dataset}"]))
    validate(compose_config([f"dataset={dataset}", "dataset.root=/somewhere"]))


def test_bad_sample_policy_and_colour_are_checked():
    with pytest.raises(ConfigError, match="dataset.on_bad_sample='ignore' is invalid"):
        validate(compose_config(["dataset.on_bad_sample=ignore"]))
    with pytest.raises(ConfigError, match="dataset.colour='cmyk' is invalid"):
        validate(compose_config(["dataset=folder", "dataset.root=/x", "dataset.colour=cmyk"]))
