"""docs/deviations.md declares every place where the project differs from the paper or its
released notebooks, each with the override that gives the paper's behaviour. Every named
override must compose and validate, and each switch added for a deviation must change what
the code does."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, TINY, compose_config
from cpu_code_paths import use_the_asked_code_paths
from dedl_experiments.tracking import cells
from dedl_experiments.config.checks import validate
from dedl_experiments.data.transforms import (IGNORE, ROTATED_IN, classification_transform,
                                              segmentation_transform, target_classes)
from dedl_experiments.training.losses import FocalLoss
from dedl_experiments.training.metrics import SegmentationMetrics
from dedl_experiments.models.segmentation import ChannelSE, build_segmentation_model
from dedl_experiments.placement import JobPlacement
from dedl_experiments.placement.speed import speed_settings

use_the_asked_code_paths()

DOC = REPO / "docs" / "deviations.md"
COLUMNS = ("Id", "Task", "Paper / released notebooks", "This project", "Why",
           "Override for the paper's behaviour", "Can change a table's numbers?")
# Rows without an override: behaviour that only files outside this table's switches could
# change (the training loop), or that is reported both ways instead. Each says so in its row.
WITHOUT_OVERRIDE = {"validation-schedule", "f1-as-recall", "notebook-defects"}
# The rows the project must declare (at least).
REQUIRED = {
    "intensity-scaling", "padding", "rotation-fill", "cuda-speed", "swa", "folds", "threshold",
    "app-cosine-eta-min", "decoder-attention", "checkpoint-monitor", "focal-loss",
    "perspective-p", "f1-as-recall", "validation-schedule", "early-stopping-segmentation",
    "early-stopping-classification",
}


def deviation_rows() -> list[dict[str, str]]:
    lines = [line.strip() for line in DOC.read_text().splitlines() if line.strip().startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert tuple(header) == COLUMNS
    assert set(lines[1].replace("|", "").strip()) <= set("-: ")
    rows = []
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert len(cells) == len(COLUMNS), line
        rows.append(dict(zip(COLUMNS, cells)))
    return rows


def row_id(row: dict[str, str]) -> str:
    return row["Id"].strip("`")


def overrides_of(row: dict[str, str]) -> list[str]:
    """The Hydra overrides named in the row: code spans of key=value words."""
    spans = re.findall(r"`([^`]+)`", row["Override for the paper's behaviour"])
    return [word for span in spans if "=" in span for word in span.split()]


def test_the_table_declares_the_required_deviations_once() -> None:
    ids = [row_id(row) for row in deviation_rows()]
    assert len(ids) == len(set(ids))
    assert REQUIRED <= set(ids), REQUIRED - set(ids)
    assert WITHOUT_OVERRIDE <= set(ids)
    for row in deviation_rows():
        assert row["Task"] in ("segmentation", "classification", "both"), row
        assert row["Can change a table's numbers?"].split()[0].rstrip(",;:.") in ("Yes", "No"), row


@pytest.mark.parametrize("row", deviation_rows(), ids=row_id)
def test_each_override_composes_and_validates(row: dict[str, str], tmp_path: Path) -> None:
    overrides = overrides_of(row)
    if row_id(row) in WITHOUT_OVERRIDE:
        assert row["Override for the paper's behaviour"].startswith("none: "), row
        return
    assert overrides, f"{row_id(row)} names no override"
    tasks = ["segmentation", "classification"] if row["Task"] == "both" else [row["Task"]]
    for task in tasks:
        base = [f"task={task}", f"data_dir={tmp_path}"]
        default = compose_config(base)
        cfg = compose_config([*base, *overrides])  # unknown keys fail here (struct config)
        validate(cfg)
        # A "No" row may restate our own value; any other row must change the config.
        if row["Can change a table's numbers?"].startswith("Yes"):
            assert cfg != default, (row_id(row), task)


# --- the switches added for deviations change behaviour ----------------------------------


def test_target_classes_map_padding_and_rotated_corners() -> None:
    target = torch.tensor([[0, 1, IGNORE, ROTATED_IN]])
    assert target_classes(target).tolist() == [[0, 1, IGNORE, IGNORE]]
    assert target_classes(target, padding_label="background").tolist() == [[0, 1, 0, IGNORE]]
    assert target_classes(target, rotation_fill="background").tolist() == [[0, 1, IGNORE, 0]]
    assert target_classes(target, "background", "background").tolist() == [[0, 1, 0, 0]]


def test_rotation_marks_the_corners_it_brings_in_apart_from_padding() -> None:
    image = np.ones((64, 64, 1), np.float32)
    mask = np.ones((64, 64), np.uint8)
    mask[:, 60:] = IGNORE  # padding on the right
    transform = segmentation_transform(True)
    transform.set_random_seed(0)
    out = transform(image=image, mask=mask)
    corners = out["mask"] == ROTATED_IN
    assert corners.sum() > 0
    # Where the image got zero fill. The image (float32) and the mask (uint8) go through two
    # OpenCV code paths, which may round a source coordinate on a tie (x.5) to different sides,
    # and which side depends on the CPU: they may disagree only on the corners' edge (a pixel
    # with corner and other pixels among its 3 x 3 neighbours), on at most 2 % of it.
    from scipy import ndimage

    disagree = corners != (out["image"][..., 0] == 0)
    edge = ndimage.binary_dilation(corners) & ~ndimage.binary_erosion(corners)
    assert not (disagree & ~edge).any() and disagree.sum() <= 0.02 * edge.sum()
    assert (out["mask"] == IGNORE).sum() > 0  # padding moved by the rotation, still padding
    assert set(np.unique(out["mask"])) <= {1, IGNORE, ROTATED_IN}


@pytest.fixture(scope="module")
def segmentation_data(tmp_path_factory) -> Path:
    from dedl_experiments.data.preparation import prepare_segmentation

    data_dir = tmp_path_factory.mktemp("deviations-data")
    prepare_segmentation(compose_config([*TINY, f"data_dir={data_dir}"]))
    return data_dir


def segmentation_task(data_dir: Path, *overrides: str):
    from dedl_experiments.data.preparation import prepare_segmentation
    from dedl_experiments.tasks.segmentation import SegmentationTask

    cfg = compose_config([*TINY, f"data_dir={data_dir}", *overrides])
    torch.manual_seed(0)
    return SegmentationTask(cfg, prepare_segmentation(cfg), JobPlacement(torch.device("cpu")))


def outside_batch(size: int, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two tiles whose targets hold nuclei, background, padding and rotated-in corners."""
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, channels, size, size, generator=generator)
    target = (torch.rand(2, size, size, generator=generator) > 0.7).to(torch.uint8)
    target[:, :, size - size // 4:] = IGNORE
    target[:, :3, :3] = ROTATED_IN
    return image, target


@pytest.mark.parametrize("override", ["tiling.padding_label=background",
                                      "augment.rotation_fill=background"])
def test_outside_pixels_count_as_background_when_asked(segmentation_data: Path,
                                                       override: str) -> None:
    ignored = segmentation_task(segmentation_data)
    counted = segmentation_task(segmentation_data, override)
    batch = outside_batch(ignored.prepared.tile_size, ignored.prepared.channels)
    pixels, losses = [], []
    for task in (ignored, counted):
        metrics = SegmentationMetrics()
        with torch.no_grad():
            losses.append(task.step(batch, metrics, train=True).item())
        pixels.append(int(metrics.confusion.sum()))
    size = ignored.prepared.tile_size
    extra = 2 * size * (size // 4) if "padding" in override else 2 * 9
    assert pixels[1] - pixels[0] == extra
    assert losses[0] != pytest.approx(losses[1])


def test_loss_reduction_sum(segmentation_data: Path) -> None:
    mean = segmentation_task(segmentation_data)
    summed = segmentation_task(segmentation_data, "loss.reduction=sum")
    batch = outside_batch(mean.prepared.tile_size, mean.prepared.channels)
    with torch.no_grad():
        loss_mean = mean.step(batch, SegmentationMetrics(), train=False).item()
        loss_sum = summed.step(batch, SegmentationMetrics(), train=False).item()
    # Weighted mean = weighted sum / sum of the counted pixels' class weights.
    target = target_classes(batch[1].long())
    counted = target[target != IGNORE]
    weight = mean.class_weights[counted].sum().item()
    assert loss_sum == pytest.approx(loss_mean * weight, rel=1e-4)
    with pytest.raises(ValueError, match="loss.reduction"):
        segmentation_task(segmentation_data, "loss.reduction=none")


def test_channel_only_attention_drops_the_spatial_branch() -> None:
    torch.manual_seed(0)
    scse = build_segmentation_model("unet", "resnet18", None, attention="scse")
    cse = build_segmentation_model("unet", "resnet18", None, attention="cse")
    assert any(isinstance(m, ChannelSE) for m in cse.modules())
    assert not any("sSE" in name for name, _ in cse.named_parameters())
    spatial = {name for name, _ in scse.named_parameters() if "sSE" in name}
    assert spatial and set(dict(scse.named_parameters())) - spatial == set(dict(cse.named_parameters()))
    cse.load_state_dict({k: v for k, v in scse.state_dict().items() if "sSE" not in k})
    x = torch.rand(1, 1, 64, 64)
    scse.eval(), cse.eval()
    with torch.no_grad():
        assert not torch.allclose(scse(x), cse(x))
    with pytest.raises(ValueError, match="attention"):
        build_segmentation_model("unet", "resnet18", None, attention="se")


@pytest.mark.parametrize("tf32", [True, False])
def test_tf32_switch(tf32: bool, tmp_path: Path) -> None:
    cfg = compose_config([f"speed.tf32={str(tf32).lower()}", f"data_dir={tmp_path}"])
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = not tf32
        speed_settings(cfg, torch.device("cuda"))
        assert torch.backends.cuda.matmul.allow_tf32 is tf32
        assert torch.backends.cudnn.allow_tf32 is tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_focal_epsilon_reproduces_the_released_formula() -> None:
    logits = torch.tensor([[0.3, -1.2, 2.0], [-40.0, 40.0, 0.0]])
    targets = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    exact, released = FocalLoss(), FocalLoss(epsilon=1e-12)
    # Moderate logits: the same loss.
    assert released(logits[:1], targets[:1]).item() == pytest.approx(exact(logits[:1], targets[:1]).item(), rel=1e-5)
    # Saturated wrong logits: the released terms are capped at -log(1e-12) = 27.63.
    wrong = logits[1:, :2], targets[1:, :2]
    assert exact(*wrong).item() == pytest.approx(40.0, rel=1e-3)
    assert released(*wrong).item() == pytest.approx(-np.log(1e-12), rel=1e-3)


def test_kfold_is_sklearns_shuffled_kfold() -> None:
    from dedl_experiments.tasks.classification import kfold_validation_indices

    folds = kfold_validation_indices(23, 6, seed=77)
    assert sorted(np.concatenate(folds).tolist()) == list(range(23))
    assert [len(f) for f in folds] == [4, 4, 4, 4, 4, 3]
    assert not all(np.array_equal(a, b) for a, b in zip(folds, kfold_validation_indices(23, 6, 26)))
    sklearn = pytest.importorskip("sklearn.model_selection")
    expected = [np.sort(v) for _, v in sklearn.KFold(6, shuffle=True, random_state=77).split(range(23))]
    assert all(np.array_equal(a, b) for a, b in zip(folds, expected))


@pytest.fixture(scope="module")
def classification_data(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("deviations-cls")


def classification_task(data_dir: Path, *overrides: str, fold: int = 0):
    from dedl_experiments.data.preparation_classification import prepare_classification
    from dedl_experiments.tasks.classification import ClassificationTask

    cfg = compose_config(["task=classification", *TINY, "dataset.n_images=30", "task.folds=3",
                          f"data_dir={data_dir}", *overrides])
    torch.manual_seed(0)
    return ClassificationTask(cfg, prepare_classification(cfg), JobPlacement(torch.device("cpu")), fold)


def test_folds_method_kfold_uses_the_run_seed(classification_data: Path) -> None:
    from dedl_experiments.tasks.classification import kfold_validation_indices

    stratified = classification_task(classification_data)
    kfold = classification_task(classification_data, "task.folds_method=kfold", "seed=77")
    n = len(kfold.train_data.names)
    assert np.array_equal(kfold.val_idx, kfold_validation_indices(n, 3, 77)[0])
    assert not np.array_equal(kfold.val_idx, stratified.val_idx)
    assert np.array_equal(stratified.val_idx, np.asarray(stratified.prepared.folds[0]))


def test_drop_last_and_perspective_p_reach_the_training_loader(classification_data: Path) -> None:
    keep = classification_task(classification_data, "train.batch_size=7")
    drop = classification_task(classification_data, "train.batch_size=7", "task.drop_last=true",
                               "augment.perspective_p=0.5", "loss.epsilon=1e-12")
    n = len(keep.train_idx)
    assert n % 7, "the test needs an incomplete last batch"
    assert len(keep.loader("train", True, 0)) == -(-n // 7)
    assert len(drop.loader("train", True, 0)) == n // 7
    assert len(drop.loader("val", False, 0)) == len(keep.loader("val", False, 0))  # training only

    def perspective_p(task) -> float:
        transform = task.loader("train", True, 0).dataset.transform
        return next(t.p for t in transform.transforms[1].transforms if type(t).__name__ == "Perspective")

    assert perspective_p(keep) == 1.0 and perspective_p(drop) == 0.5
    assert keep.criterion.epsilon is None and drop.criterion.epsilon == 1e-12


def test_perspective_probability_inside_its_block() -> None:
    """With the block forced on, the perspective distorts a white image (black corners) in
    about the chosen share of draws."""
    white = np.full((96, 96, 3), 255, np.uint8)

    def distorted_share(p: float) -> float:
        transform = classification_transform(True, 96, normalise=False, perspective_p=p)
        transform.transforms[1].p = 1.0  # block 1 always (colour jitter then perspective)
        transform.transforms[2].p = 0.0  # no affine block: its rotation also adds black corners
        hits = 0
        for seed in range(200):
            transform.set_random_seed(seed)
            hits += bool((transform(image=white)["image"] < 0.05).any())
        return hits / 200

    assert distorted_share(1.0) > 0.9
    assert 0.35 < distorted_share(0.5) < 0.65
    assert distorted_share(0.0) == 0.0


# The switches added for deviations; all but the speed switch change numerics.
NUMERIC_SWITCHES = {
    "segmentation": ("tiling.padding_label", "augment.rotation_fill", "loss.reduction",
                     "architecture.attention", "lr_schedule.interval", "app_lr_schedule.interval"),
    "classification": ("task.folds_method", "task.drop_last", "augment.perspective_p",
                       "loss.epsilon", "lr_schedule.interval"),
}


@pytest.mark.parametrize("task", list(NUMERIC_SWITCHES))
def test_switches_that_change_numerics_define_the_cell_and_tf32_does_not(task: str,
                                                                          tmp_path: Path) -> None:
    values = cells.cell_values(compose_config([f"task={task}", f"data_dir={tmp_path}"]), "0" * 64)
    for path in NUMERIC_SWITCHES[task]:
        head, leaf = path.split(".")
        assert leaf in values.get(head, {}), path
    assert "tf32" not in values.get("speed", {})


def test_a_per_batch_schedule_steps_after_every_training_step() -> None:
    """lr_schedule.interval=batch: the notebooks' scheduler.step() after every batch; the
    default steps once per epoch."""
    from torch import nn

    from dedl_experiments.training.schedules import build_scheduler
    from dedl_experiments.tasks.base import Task

    def rates(interval: str) -> list[float]:
        cfg = compose_config(["budget=smoke", f"lr_schedule.interval={interval}"])
        # Only the base class's scheduling hooks are exercised.
        task = type("Scheduling", (), {"end_step": Task.end_step,
                                       "step_schedulers": Task.step_schedulers})()
        task.optimizers = {"net": torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=1.0)}
        task.schedulers = {"net": build_scheduler(task.optimizers["net"], cfg.lr_schedule)}
        task.schedule_intervals = {"net": cfg.lr_schedule.interval}
        seen = []
        for _ in range(3):  # three training steps of one epoch
            task.optimizers["net"].step()
            task.end_step()
            seen.append(task.optimizers["net"].param_groups[0]["lr"])
        return seen

    assert len(set(rates("epoch"))) == 1
    assert len(set(rates("batch"))) == 3
