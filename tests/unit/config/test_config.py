import os
import re

import pytest
import torch
import yaml
from omegaconf import OmegaConf, open_dict
from omegaconf import omegaconf as omegaconf_module

from conftest import compose_config
from dedl_experiments.config.checks import ConfigError, scaled_tile_size, validate


@pytest.fixture(autouse=True)
def data_dir_in_tmp(tmp_path, monkeypatch):
    """Jobs create data_dir; keep it out of the working tree."""
    monkeypatch.setenv("DEDL_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


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
    ["optimizer=adamw"],
    ["optimizer=sgd", "task=classification"],
])
def test_good_overrides_validate(overrides):
    validate(compose_config(overrides))


@pytest.mark.parametrize("override, message", [
    ("optimizer.lr=-1", "optimizer.lr=-1 is invalid: it must be a number > 0"),
    ("optimizer.lr=0", "optimizer.lr=0 is invalid"),
    ("optimizer.weight_decay=-0.1", "optimizer.weight_decay"),
    ("optimizer=adamw optimizer.lr=0", "optimizer.lr=0 is invalid: it must be a number > 0"),
    ("optimizer=sgd optimizer.momentum=-0.9", "optimizer.momentum=-0.9 is invalid: it must be a number >= 0"),
    ("optimizer=sgd optimizer.nesterov=1", "optimizer.nesterov=1 is invalid: it must be true or false"),
    ("train.epochs=0", "train.epochs=0 is invalid: it must be an integer >= 1"),
    ("train.batch_size=0", "train.batch_size=0 is invalid: it must be an integer >= 1"),
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
        validate(compose_config(override.split()))


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


@pytest.mark.parametrize("value", ["[99.8,1.0]", "[5,5]", "[1.0]", "[1,2,3]", "[-1,99]", "[1,101]", "7"])
def test_percentiles_must_be_low_high_within_0_100(value):
    expected = "is invalid: it must be 2 numbers [low, high] with 0 <= low < high <= 100"
    with pytest.raises(ConfigError, match=r"^dataset\.percentiles=.*" + re.escape(expected)):
        validate(compose_config([f"dataset.percentiles={value}"]))
    validate(compose_config(["dataset.percentiles=[0,100]"]))


@pytest.mark.parametrize("overrides, message", [
    (["budget.epochs=0"], "budget.epochs=0 is invalid: it must be an integer >= 1 (it sets train.epochs)"),
    (["budget=smoke", "budget.batch_size=0"],
     "budget.batch_size=0 is invalid: it must be an integer >= 1 (it sets train.batch_size)"),
    (["budget=smoke", "budget.num_workers=-1"],
     "budget.num_workers=-1 is invalid: it must be an integer >= 0 (it sets loader.num_workers)"),
    # followed to the end: budget=paper takes its epochs from the task
    (["task.paper_epochs=0"],
     "task.paper_epochs=0 is invalid: it must be an integer >= 1 (it sets train.epochs)"),
    (["task.lr=-1"], "task.lr=-1 is invalid: it must be a number > 0 (it sets optimizer.lr)"),
])
def test_errors_name_the_option_an_interpolated_value_comes_from(overrides, message):
    with pytest.raises(ConfigError) as error:
        validate(compose_config(overrides))
    assert str(error.value) == message


def test_relative_interpolations_are_followed_too():
    cfg = compose_config()
    with open_dict(cfg):  # a group without a schema (one with a schema refuses a new key)
        cfg.optimizer.lr_source = -2
        cfg.optimizer.lr = "${.lr_source}"
    with pytest.raises(ConfigError, match=r"^optimizer\.lr_source=-2 is invalid"):
        validate(cfg)


def _cuda(monkeypatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_device_on_a_machine_without_cuda(monkeypatch, device):
    _cuda(monkeypatch, 0)
    with pytest.raises(ConfigError) as error:
        validate(compose_config([f"device={device}"]))
    assert str(error.value) == (f"device={device} is not available: this machine has no CUDA device; "
                                "use device=auto or device=cpu")
    validate(compose_config(["device=auto"]))
    validate(compose_config(["device=cpu"]))


def test_cuda_index_beyond_the_devices_of_this_machine(monkeypatch):
    _cuda(monkeypatch, 2)
    validate(compose_config(["device=cuda:1"]))
    validate(compose_config(["device=cuda"]))
    with pytest.raises(ConfigError) as error:
        validate(compose_config(["device=cuda:2"]))
    assert str(error.value) == ("device=cuda:2 is not available: this machine has 2 CUDA device(s), "
                                "cuda:0..cuda:1; use one of them, cuda or auto")


@pytest.mark.parametrize("device", ["cudax", "cuda:", "cuda:one", "cuda1"])
def test_malformed_cuda_names_are_refused(device):
    expected = f"device='{device}' is invalid: it must be auto, cpu, cuda or cuda:N"
    with pytest.raises(ConfigError, match=expected):
        validate(compose_config([f"device={device}"]))


def test_checking_data_dir_creates_nothing(data_dir_in_tmp):
    """A later check (the tracking store) may still stop the job: a failed job leaves nothing."""
    target = data_dir_in_tmp / "nested"
    validate(compose_config([f"data_dir={target}"]))
    assert not data_dir_in_tmp.exists()


def test_data_dir_below_a_file_is_a_config_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError) as error:
        validate(compose_config([f"data_dir={blocker}/sub"]))
    assert str(error.value) == (f"data_dir={blocker}/sub cannot be used: {blocker} is a file, not a folder; "
                                "it must be a folder this user can create and write "
                                "(set data_dir=... or DEDL_DATA_DIR)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_read_only_data_dir_is_a_config_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(ConfigError, match=r"^data_dir=.*locked/sub cannot be used: .*locked cannot be written \(permission denied\)"):
            validate(compose_config([f"data_dir={locked}/sub"]))
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("overrides, message", [
    (["claim.on_busy=later"], "claim.on_busy='later' is invalid: it must be one of: skip, wait"),
    (["claim.lease_s=0"], "claim.lease_s=0 is invalid"),
    (["adopt_legacy_runs=maybe"], "adopt_legacy_runs='maybe' is invalid"),
    (["tiling.padding_label=zero"], "tiling.padding_label='zero' is invalid"),
    (["loss.reduction=max"], "loss.reduction='max' is invalid"),
    (["augment.perspective_p=2"], "augment.perspective_p=2 is invalid"),
    (["task=classification", "task.folds_method=loo"], "task.folds_method='loo' is invalid"),
    (["task=classification", "dataset=synthetic"],
     "dataset=synthetic is a segmentation dataset, not one for task=classification"),
    (["dataset=synthetic_classification"],
     "dataset=synthetic_classification is a classification dataset, not one for task=segmentation"),
])
def test_later_settings_and_task_dataset_mismatch_are_named(overrides, message) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(compose_config(["budget=smoke", "init=random", *overrides]))


@pytest.mark.parametrize("overrides, message", [
    (["loader.device_data=sometimes"], "loader.device_data='sometimes' is invalid: it must be auto, true or false"),
    (["loader.device_data_fraction=2"], "loader.device_data_fraction=2 is invalid"),
    (["speed.jobs_per_gpu=0"], "speed.jobs_per_gpu=0 is invalid: it must be auto or an integer >= 1"),
    (["speed.cpu_threads=-1"], "speed.cpu_threads=-1 is invalid"),
])
def test_pool_and_device_data_settings_are_checked_before_any_work(overrides, message) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(compose_config(["budget=smoke", "init=random", *overrides]))


def test_a_misspelt_key_of_a_tables_report_block_fails_before_any_job() -> None:
    validate(compose_config(["+experiment=table2", "budget=smoke", "init=random"]))
    cfg = compose_config(["+experiment=table2", "++report.titel=Mine", "budget=smoke", "init=random"])
    with pytest.raises(ConfigError, match=r"^experiment table2: unknown key report.titel; valid keys: title, metric, "):
        validate(cfg)


@pytest.mark.parametrize("override, hint", [
    ("dataset.root=/data/Müller", """non-ASCII characters in an override must be quoted: 'dataset.root="/data/Müller"'"""),
    ("dataset.root=/data/(old)", """special characters in an override must be quoted: 'dataset.root="/data/(old)"'"""),
    ("dataset.name=a,ü", """non-ASCII characters in an override must be quoted: 'dataset.name="a","ü"'"""),
    ("seed=[1,2", None),  # an unclosed list: quoting is not the fix
    ("grüße=1", None),  # the key: quoting the value would not help
])
def test_an_override_that_does_not_parse_says_how_to_quote_it(override, hint):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from dedl_experiments.config.checks import compose_error_message

    with pytest.raises(Exception) as raised:
        OverridesParser.create().parse_overrides([override])
    message = compose_error_message(raised.value)
    assert message.startswith(f"{override} is not a valid override (") and "\n" not in message
    if hint is None:
        assert "quoted" not in message
    else:
        assert message.endswith(hint)
        quoted = hint.split(": ", 1)[1].strip("'")
        OverridesParser.create().parse_overrides([quoted])  # the suggestion parses


def test_the_test_process_parses_an_edited_config_file_anew(tmp_path):
    """The tests keep each config file's parse (conftest._YamlParsedOnce): an edited file is
    parsed again, each load is a config of its own, and a file that does not parse fails as
    without the memo, naming the file."""
    path = tmp_path / "option.yaml"
    path.write_text("epochs: 1\n")
    first = OmegaConf.load(path)
    first.epochs = 5
    parsed = len(omegaconf_module.yaml._parsed)
    assert OmegaConf.load(path).epochs == 1
    assert len(omegaconf_module.yaml._parsed) == parsed  # the same text: the kept parse
    path.write_text("epochs: 2\n")
    assert OmegaConf.load(path).epochs == 2
    path.write_text("epochs: [\n")
    with pytest.raises(yaml.YAMLError, match="option.yaml"):
        OmegaConf.load(path)
