"""Extending by adding a file: a scheduler, a loss, a dataset reader, a task or an architecture
named in a YAML file of a user's config folder (Hydra's search path) is used without any change
to the package; no code chooses them by name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import segmentation_models_pytorch as smp
import torch
from torch import nn

from conftest import CONF, TINY, compose_config
from dedl_experiments.config import components
from dedl_experiments.tracking import cells
from dedl_experiments import weights as weights_cli
from dedl_experiments.config.checks import ConfigError, validate
from dedl_experiments.data import readers
from dedl_experiments.data.preparation import prepare_segmentation
from dedl_experiments.tasks import task_class
from dedl_experiments.training.losses import build_loss
from dedl_experiments.models.segmentation import architecture_class, build_segmentation_model
from dedl_experiments.models.pretrained import PretrainedWeights
from dedl_experiments.placement import JobPlacement
from dedl_experiments.tasks.segmentation import SegmentationTask

CPU = JobPlacement(torch.device("cpu"))


# --- what a user's files name (importable: pytest puts this folder on sys.path) -------------


class HalvedCrossEntropy(nn.Module):
    def __init__(self, class_weights, ignore_index: int, scale: float) -> None:
        super().__init__()
        self.ce = nn.CrossEntropyLoss(weight=class_weights, ignore_index=ignore_index)
        self.scale = scale

    def forward(self, logits, target):
        return self.scale * self.ce(logits, target)


def without_first_test_sample(cfg) -> readers.RawSegmentation:
    raw = readers.synthetic_inform(cfg)
    return readers.RawSegmentation(raw.root, raw.by_split | {"test": raw.by_split["test"][1:]}, raw.read)


class DescribedSegmentation(SegmentationTask):
    def describe(self) -> dict[str, float]:
        return super().describe() | {"described": 1.0}


class TileOnlySegmentation(SegmentationTask):
    """A task with its own name, factors, rule, weights and summary metric."""

    summary_metric = "test_dice"

    @staticmethod
    def check_config(cfg) -> None:
        SegmentationTask.check_config(cfg)
        if cfg.tiling.stride is not None:
            raise ConfigError(f"tiling.stride={cfg.tiling.stride}: tile-only segmentation takes no stride")

    run_name = staticmethod(lambda cfg: f"tiles-{cfg.encoder.name}-s{cfg.seed}")
    factors = staticmethod(lambda cfg: {"encoder": cfg.encoder.name, "tile": str(cfg.tiling.size)})
    pretrained_weights = staticmethod(lambda cfg: PretrainedWeights("smp", "mine", "tiles"))


# --- helpers ---------------------------------------------------------------------------------


def user_conf(tmp_path: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        path = tmp_path / "conf" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return f"hydra.searchpath=[file://{tmp_path / 'conf'}]"


def tiny(shared_data_dir: Path, *overrides: str):
    return compose_config([*TINY, f"data_dir={shared_data_dir}", *overrides])


def task_of(cfg) -> SegmentationTask:
    validate(cfg)
    return task_class(cfg)(cfg, prepare_segmentation(cfg), CPU)


# --- tests -------------------------------------------------------------------------------------


def test_a_new_scheduler_is_a_yaml_file(tmp_path, shared_data_dir) -> None:
    exponential = ("_target_: torch.optim.lr_scheduler.ExponentialLR\n_partial_: true\n"
                   "name: exponential\ngamma: 0.5\n")
    searchpath = user_conf(tmp_path, {"lr_schedule/exponential.yaml": exponential,
                                      "app_lr_schedule/exponential.yaml": exponential})
    cfg = tiny(shared_data_dir, searchpath, "lr_schedule=exponential", "app=gelu",
               "app_lr_schedule=exponential")
    task = task_of(cfg)
    for name in ("net", "app"):
        scheduler = task.schedulers[name]
        assert isinstance(scheduler, torch.optim.lr_scheduler.ExponentialLR) and scheduler.gamma == 0.5
    assert cells.cell_key(cfg, "0" * 64) != cells.cell_key(tiny(shared_data_dir), "0" * 64)


def test_the_papers_schedules_are_built_from_their_files(shared_data_dir) -> None:
    task = task_of(tiny(shared_data_dir, "lr_schedule=step", "app=relu", "app_lr_schedule=cosine"))
    step, cosine = task.schedulers["net"], task.schedulers["app"]
    assert isinstance(step, torch.optim.lr_scheduler.StepLR) and (step.step_size, step.gamma) == (10, 0.1)
    assert isinstance(cosine, torch.optim.lr_scheduler.CosineAnnealingLR)
    assert (cosine.T_max, cosine.eta_min) == (1, 0.0)  # t_max: ${train.epochs}
    constant = task_of(tiny(shared_data_dir, "lr_schedule=constant")).schedulers["net"]
    assert isinstance(constant, torch.optim.lr_scheduler.ConstantLR) and constant.factor == 1.0


def test_a_new_loss_is_a_yaml_file_naming_a_function_of_your_own(tmp_path, shared_data_dir) -> None:
    searchpath = user_conf(tmp_path, {"loss/halved_ce.yaml": (
        f"_target_: {__name__}.HalvedCrossEntropy\nname: halved_ce\nweighting: inverse_frequency\n"
        "weights: null\nscale: 0.5\n")})
    task = task_of(tiny(shared_data_dir, searchpath, "loss=halved_ce"))
    assert isinstance(task.criterion, HalvedCrossEntropy) and task.criterion.scale == 0.5
    assert torch.equal(task.criterion.ce.weight, task.class_weights)


def test_a_setting_the_loss_does_not_take_is_named(shared_data_dir) -> None:
    cfg = tiny(shared_data_dir, "+loss.smoothing=0.1")
    with pytest.raises(ConfigError, match=r"^loss: dedl_experiments.training.losses.cross_entropy does not fit "
                                          r"its settings \(reduction, smoothing\).*'smoothing'"):
        build_loss(cfg.loss, None, ignore_index=2)


def test_a_new_dataset_reader_is_named_by_its_yaml(tmp_path, shared_data_dir) -> None:
    synthetic = (CONF / "dataset" / "synthetic.yaml").read_text()
    searchpath = user_conf(tmp_path, {"dataset/fewer.yaml": re.sub(
        r"(?m)^_target_: .*$", f"_target_: {__name__}.without_first_test_sample",
        synthetic.replace("name: synthetic", "name: fewer"))})
    plain = prepare_segmentation(tiny(shared_data_dir))
    fewer = prepare_segmentation(tiny(shared_data_dir, searchpath, "dataset=fewer"))
    assert fewer.splits["test"] == plain.splits["test"][1:]
    assert fewer.splits["train"] == plain.splits["train"] and fewer.digest != plain.digest


def test_a_new_task_is_a_class_named_by_its_yaml(tmp_path, shared_data_dir) -> None:
    segmentation = (CONF / "task" / "segmentation.yaml").read_text()
    searchpath = user_conf(tmp_path, {"task/described.yaml": re.sub(
        r"(?m)^  _target_: .*$", f"  _target_: {__name__}.DescribedSegmentation", segmentation)})
    cfg = tiny(shared_data_dir, searchpath, "task=described")
    assert task_class(cfg) is DescribedSegmentation
    assert task_of(cfg).describe()["described"] == 1.0
    # the class is how a task is built, not what the cell computes
    assert cells.cell_key(cfg, "0" * 64) == cells.cell_key(tiny(shared_data_dir), "0" * 64)


def test_what_a_job_records_and_checks_of_a_task_comes_from_its_class(tmp_path, shared_data_dir) -> None:
    segmentation = (CONF / "task" / "segmentation.yaml").read_text()
    searchpath = user_conf(tmp_path, {"task/tiles.yaml": re.sub(
        r"(?m)^  _target_: .*$", f"  _target_: {__name__}.TileOnlySegmentation", segmentation)})
    cfg = tiny(shared_data_dir, searchpath, "task=tiles", "seed=5")
    validate(cfg)
    assert task_class(cfg).run_name(cfg) == "tiles-resnet18-s5"
    assert cells.factor_tags(cfg, task_class(cfg).factors(cfg)) == {"encoder": "resnet18", "tile": "480", "seed": "5",
                                         "budget": "smoke", "dataset": "synthetic"}
    assert weights_cli.needed(cfg) is None  # random init (TINY)
    pretrained = tiny(shared_data_dir, searchpath, "task=tiles", "init=imagenet")
    assert weights_cli.needed(pretrained) == PretrainedWeights("smp", "mine", "tiles")
    with pytest.raises(ConfigError, match="tiling.stride=8: tile-only segmentation takes no stride"):
        validate(tiny(shared_data_dir, searchpath, "task=tiles", "tiling.stride=8"))
    # The shared rules still apply, and the segmentation task's own through its class.
    with pytest.raises(ConfigError, match="tiling.size=30 is invalid"):
        validate(tiny(shared_data_dir, searchpath, "task=tiles", "tiling.size=30"))


def test_the_architecture_class_is_the_yamls_smp_class(shared_data_dir) -> None:
    assert architecture_class("unet") is smp.Unet
    assert architecture_class("unetplusplus") is smp.UnetPlusPlus
    assert architecture_class("mine", "segmentation_models_pytorch.UnetPlusPlus") is smp.UnetPlusPlus
    with pytest.raises(ValueError, match="'Unett' is not a class of segmentation_models_pytorch"):
        architecture_class("unet", "Unett")
    task = task_of(tiny(shared_data_dir, "architecture.smp_class=UnetPlusPlus"))
    assert type(task.net) is smp.UnetPlusPlus
    saved = task.inference_checkpoint(task.net.state_dict())["model"]
    assert saved["smp_class"] == "UnetPlusPlus" and saved["architecture"] == "unet"
    assert type(build_segmentation_model(weights=None, **saved)) is smp.UnetPlusPlus
    del saved["smp_class"]  # a model saved before checkpoints named the class: the YAML's
    assert type(build_segmentation_model(weights=None, **saved)) is smp.Unet


def test_instantiate_keys_are_neither_params_nor_part_of_a_cell() -> None:
    cfg = compose_config(["budget=smoke", "init=random"])
    assert cfg.lr_schedule._target_ and cfg.loss._target_ and cfg.dataset._target_ and cfg.task._target_
    params = cells.flatten(components.loggable_values(cfg))
    assert not [key for key in params if re.search(r"(^|\.)_\w+_($|\.)", key)]
    assert {"lr_schedule.name", "lr_schedule.t_max", "loss.reduction", "dataset.name",
            "task.name"} <= params.keys()


def test_a_tables_report_block_is_not_logged() -> None:
    """Its printed numbers and claims say how the report shows the table, not what a run did."""
    cfg = compose_config(["+experiment=table2", "++report.title=Mine", "budget=smoke", "init=random"])
    assert cfg.report.title == "Mine"
    params = cells.flatten(components.loggable_values(cfg))
    assert not [key for key in params if key.startswith("report")]
    assert params["table"] == "table2"


@pytest.mark.parametrize("override, message", [
    ("lr_schedule._target_=dedl_experiments.training.schedules.cosinus",
     "lr_schedule._target_=dedl_experiments.training.schedules.cosinus cannot be imported"),
    ("task._target_=nowhere.Task", "task._target_=nowhere.Task cannot be imported"),
])
def test_a_target_that_does_not_import_is_a_config_error(override, message) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(compose_config(["budget=smoke", "init=random", override]))


class MomentumSegmentation(SegmentationTask):
    """A variant task overriding one build hook: SGD with momentum for the network."""

    def build_optimizers(self) -> None:
        self.optimizers = {"net": torch.optim.SGD(self.net.parameters(), lr=0.01, momentum=0.5)}


def test_a_variant_task_overrides_one_build_hook(tmp_path, shared_data_dir) -> None:
    segmentation = (CONF / "task" / "segmentation.yaml").read_text()
    searchpath = user_conf(tmp_path, {"task/momentum.yaml": re.sub(
        r"(?m)^  _target_: .*$", f"  _target_: {__name__}.MomentumSegmentation", segmentation)})
    torch.manual_seed(0)
    variant = task_of(tiny(shared_data_dir, searchpath, "task=momentum"))
    torch.manual_seed(0)
    plain = task_of(tiny(shared_data_dir))
    assert type(variant.optimizers["net"]) is torch.optim.SGD
    assert variant.optimizers["net"].defaults["momentum"] == 0.5
    # The network, loss and schedule are the defaults', the schedule on the variant's optimiser.
    assert all(torch.equal(a, b) for a, b in zip(variant.net.state_dict().values(),
                                                 plain.net.state_dict().values()))
    assert torch.equal(variant.criterion.weight, plain.criterion.weight)
    assert type(variant.schedulers["net"]) is type(plain.schedulers["net"])
    assert variant.schedulers["net"].optimizer is variant.optimizers["net"]


@pytest.mark.parametrize("choice, optimizer_class, arguments", [
    ("adam", torch.optim.Adam, {}),
    ("adamw", torch.optim.AdamW, {"amsgrad": False}),
    ("sgd", torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
])
def test_the_optimizer_is_its_yamls_target_with_the_tasks_rate(shared_data_dir, choice, optimizer_class,
                                                                arguments) -> None:
    cfg = tiny(shared_data_dir, f"optimizer={choice}", "app=gelu", "task.weight_decay=0.01")
    task = task_of(cfg)
    optimizer = task.optimizers["net"]
    assert type(optimizer) is optimizer_class
    assert optimizer.defaults["lr"] == cfg.task.lr == 3.6e-4 and optimizer.defaults["weight_decay"] == 0.01
    assert arguments.items() <= optimizer.defaults.items()
    # The APP keeps its own Adam at app.lr, as released, whatever the network's optimiser.
    assert type(task.optimizers["app"]) is torch.optim.Adam
    assert task.optimizers["app"].defaults["lr"] == cfg.app.lr


def test_a_new_task_brings_its_encoder_settings_in_files_of_its_own(tmp_path) -> None:
    """A task's per-encoder settings are its files (task_encoder/<task>_<encoder>.yaml), merged
    into the encoder's node: no encoder file changes, and other tasks' cells keep their keys."""
    segmentation = (CONF / "task" / "segmentation.yaml").read_text()
    searchpath = user_conf(tmp_path, {
        "task/tiles.yaml": segmentation.replace("name: segmentation", "name: tiles"),
        "task_encoder/tiles_resnet34.yaml": ("# @package encoder\ntiles: my_resnet34\n"
                                             "inits:\n  imagenet: {tiles: my_weights}\n")})
    cfg = compose_config(["task=tiles", "encoder=resnet34", searchpath])
    assert cfg.encoder.tiles == "my_resnet34" and cfg.encoder.inits.imagenet.tiles == "my_weights"
    assert cfg.encoder.segmentation == "resnet34"  # the encoder's own file, as it is
    assert "tiles" not in compose_config(["task=tiles", searchpath]).encoder  # no file for resnet18
    for overrides in (["encoder=resnet34"], ["task=classification", "encoder=resnet34"]):
        assert cells.cell_key(compose_config([*overrides, searchpath]), "0" * 64) == \
            cells.cell_key(compose_config(overrides), "0" * 64)
