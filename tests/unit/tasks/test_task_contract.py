"""The task contract (tasks/base.py): both tasks subclass it; checkpoints, the loop and the
speed switches use its hooks and defaults, never probes or a task's attribute names; the loop
takes plain settings, not the config."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from conftest import compose_config
from dedl_experiments.training import checkpoint
from dedl_experiments.config.checks import ConfigError
from dedl_experiments.training.loop import FitSettings, FitState, fit
from dedl_experiments.placement import JobPlacement
from dedl_experiments.placement.speed import Speed, apply_to_modules
from dedl_experiments.tasks.base import Task
from dedl_experiments.tasks.classification import ClassificationTask
from dedl_experiments.tasks.segmentation import SegmentationTask


class Points(Dataset):
    """Eight fixed (x, y) pairs; `set_epoch` and `seed` as the loop expects of a dataset."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(8, 3, generator=generator)
        self.y = self.x.sum(dim=1, keepdim=True)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


class MeanError:
    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    def update(self, error: torch.Tensor) -> None:
        self.total += float(error.sum())
        self.count += len(error)

    def compute(self) -> dict[str, float]:
        return {"error": self.total / max(self.count, 1)}


class Regression(Task):
    """The smallest task: the abstract hooks, and build hooks of its own (it has no config)."""

    summary_metric = "test_error"
    prepare = staticmethod(lambda cfg: None)
    run_name = staticmethod(lambda cfg: "regression")
    factors = staticmethod(lambda cfg: {})
    pretrained_weights = staticmethod(lambda cfg: None)

    def __init__(self, cfg=None, prepared=None, placement=JobPlacement(torch.device("cpu")),
                 fold=None) -> None:
        super().__init__(cfg, prepared, placement, fold)

    def build_network(self) -> None:
        torch.manual_seed(0)
        self.net = nn.Linear(3, 1)

    def build_loss(self) -> None:
        self.criterion = nn.L1Loss()

    def build_optimizers(self) -> None:
        self.optimizers = {"net": torch.optim.SGD(self.net.parameters(), lr=0.1)}

    def build_schedulers(self) -> None:
        self.schedulers = {"net": torch.optim.lr_scheduler.StepLR(self.optimizers["net"], 1, 0.5)}

    @staticmethod
    def summary(result: dict) -> str:
        return f"error {result['test_error']:.3f}"

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def loader(self, split: str, train: bool, seed: int) -> DataLoader:
        return DataLoader(Points(seed), batch_size=4, shuffle=train,
                          generator=torch.Generator().manual_seed(seed))

    def new_metrics(self) -> MeanError:
        return MeanError()

    def step(self, batch, metrics: MeanError, train: bool) -> torch.Tensor:
        x, y = batch
        prediction = self.net(x)
        metrics.update((prediction - y).abs().detach())
        return self.criterion(prediction, y)

    def test_metrics(self, batch_size: int):
        return {"error": 0.0}, None

    def inference_checkpoint(self, state_dict: dict) -> dict:
        return {"state_dict": state_dict}


def test_both_tasks_subclass_the_contract() -> None:
    assert issubclass(SegmentationTask, Task) and issubclass(ClassificationTask, Task)


def test_a_task_without_a_required_hook_cannot_be_built() -> None:
    hooks = {name: Regression.__dict__[name] for name in Task.__abstractmethods__ if name != "step"}
    no_step = type("NoStep", (Task,), hooks)
    with pytest.raises(TypeError, match="abstract method '?step"):
        no_step(None, None, JobPlacement(torch.device("cpu")))


def test_the_build_hooks_run_in_order_and_a_variant_overrides_one() -> None:
    calls = []

    class Recorded(Regression):
        def setup(self) -> None:
            calls.append("setup")

        def build_network(self) -> None:
            calls.append("network")
            super().build_network()

        def build_loss(self) -> None:
            calls.append("loss")
            super().build_loss()

        def build_optimizers(self) -> None:
            calls.append("optimizers")
            super().build_optimizers()

        def build_schedulers(self) -> None:
            calls.append("schedulers")
            super().build_schedulers()

    task = Recorded()
    assert calls == ["setup", "network", "loss", "optimizers", "schedulers"]
    assert task.schedulers["net"].optimizer is task.optimizers["net"]

    class Momentum(Regression):
        def build_optimizers(self) -> None:
            self.optimizers = {"net": torch.optim.SGD(self.net.parameters(), lr=0.1, momentum=0.9)}

    variant, plain = Momentum(), Regression()
    assert variant.optimizers["net"].defaults["momentum"] == 0.9
    # Every other part is built as before, and the schedule runs on the variant's optimiser.
    assert torch.equal(variant.net.weight, plain.net.weight)
    assert isinstance(variant.criterion, nn.L1Loss)
    assert variant.schedulers["net"].optimizer is variant.optimizers["net"]


def test_the_defaults_of_a_task_without_extra_state() -> None:
    task = Regression()
    assert task.network() is task.net
    assert task.extra_state() == {} and task.result_extras() == {}
    assert task.final_state({"w": 1}, seed=0) == {"w": 1}
    assert task.describe() == {"params_net": 4}
    assert task.write_artifacts(None, {}, None) == []
    assert Regression.folds(None) is None
    task.optimizers["net"].step()
    task.end_epoch(0)  # steps every scheduler
    assert task.optimizers["net"].param_groups[0]["lr"] == pytest.approx(0.05)


def test_checkpoints_use_the_default_extra_state_and_read_older_files() -> None:
    task, scaler = Regression(), torch.amp.GradScaler("cuda", enabled=False)
    state = checkpoint.training_state(task, {"epoch": 3}, scaler)
    assert state["extra"] == {}
    restored = Regression()
    with torch.no_grad():
        restored.net.weight.add_(1.0)
    assert checkpoint.restore_training_state(restored, state, scaler) == {"epoch": 3}
    assert torch.equal(restored.net.weight, task.net.weight)
    del state["extra"]  # written before tasks had extra state: loads all the same
    assert checkpoint.restore_training_state(Regression(), state, scaler) == {"epoch": 3}


def test_a_tasks_extra_state_goes_through_the_checkpoint() -> None:
    class Counting(Regression):
        def __init__(self) -> None:
            super().__init__()
            self.seen = 0

        def extra_state(self) -> dict:
            return {"seen": self.seen}

        def load_extra_state(self, state: dict) -> None:
            self.seen = state["seen"]

    task, scaler = Counting(), torch.amp.GradScaler("cuda", enabled=False)
    task.seen = 7
    resumed = Counting()
    checkpoint.restore_training_state(resumed, checkpoint.training_state(task, {}, scaler), scaler)
    assert resumed.seen == 7


def test_the_loop_takes_plain_settings_not_a_config() -> None:
    task = Regression()
    speed = Speed(None, False, False, torch.amp.GradScaler("cuda", enabled=False))
    rows = []
    state = fit(task, FitSettings(epochs=3, seed=0, monitor="val_error", monitor_mode="min"),
                FitState(), speed, lambda epoch, row, state: rows.append(row))
    assert state.epoch == 3 and len(rows) == 3 and state.best_epoch is not None
    assert [round(row["lr_net"], 4) for row in rows] == [0.1, 0.05, 0.025]
    assert state.best_state.keys() == task.net.state_dict().keys()
    # patience: early stopping on the validation loss
    stopped = fit(Regression(), FitSettings(epochs=50, seed=0, patience=1), FitState(), speed,
                  lambda *args: None)
    assert stopped.stopped_early and stopped.epoch < 50


def test_channels_last_applies_to_the_network_the_task_names() -> None:
    class Conv(Regression):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = nn.Conv2d(3, 4, 3)

        def modules(self) -> dict[str, nn.Module]:
            return {"backbone": self.backbone}

        def network(self) -> nn.Module:
            return self.backbone

    task = Conv()
    apply_to_modules(task, Speed(None, True, False, torch.amp.GradScaler("cuda", enabled=False)))
    assert task.backbone.weight.is_contiguous(memory_format=torch.channels_last)
    assert not task.backbone.weight.is_contiguous()


@pytest.mark.parametrize("overrides, folds", [
    ([], None),
    (["task=classification"], [0, 1, 2, 3, 4, 5]),
    (["task=classification", "task.folds=3"], [0, 1, 2]),
    (["task=classification", "fold=2"], [2]),
])
def test_the_task_says_whether_a_cell_has_folds(overrides, folds) -> None:
    from dedl_experiments.tasks import task_class

    cfg = compose_config(overrides)
    assert task_class(cfg).folds(cfg) == folds


def test_the_default_loss_is_the_configs_and_data_weights_need_the_tasks_own() -> None:
    class DefaultLoss(Regression):
        build_loss = Task.build_loss

    task = DefaultLoss(compose_config(["loss=ce"]))
    assert isinstance(task.criterion, nn.CrossEntropyLoss) and task.class_weights is None
    with pytest.raises(ConfigError, match=r"^loss.weighting=inverse_frequency is invalid for "
                                          r"task=segmentation: it must be one of: none, fixed$"):
        DefaultLoss(compose_config([]))  # weighted_ce: weights from the data
