"""The contract between a task and the shared machinery: every hook the job (job.py,
training.py), the training loop (loop.py), checkpointing (checkpoint.py) and the speed switches
(speed.py) call, in one place. A task is a subclass of `Task` named by `conf/task/<name>.yaml`
(`task._target_`); it overrides the abstract hooks and whichever defaults do not fit.

Before a job runs, from the config alone (the class is `tasks.task_class(cfg)`):

    Task.check_config(cfg)       the task's own value and combination rules (config.validate)
    Task.run_name(cfg)           the run's readable name, e.g. seg-unet-resnet18-app_gelu-...-s26
    Task.factors(cfg)            the settings its tables vary, as MLflow tags (tracking.factor_tags)
    Task.pretrained_weights(cfg) the weights its pretrained init loads (`python -m dedl_experiments.weights`)
    Task.summary_metric          the test metric a sweep's closing lines show per run
    Task.recipe_settings         the settings runs outside the tables ablate (the report holds
                                 a table's runs to the table's own values of them)

Life of a task in a job:

    Task.prepare(cfg)            the prepared data (built once, cached), before the cell's run starts
    Task.training_subset(cfg, p) the prepared data with the training samples the config keeps
                                 (dataset.train_fraction / train_count), checked before the run starts
    Task.folds(cfg)              None: one run per cell; [0, 1, ...]: one child run per fold
    Task(cfg, prepared, placement, fold)  placement: its device and its share of it
                                 (placement.py); builds, in this order (`build`, one hook each; a variant
                                 task overrides the one it changes):
      setup()                    the task's own state the builders read (splits, statistics)
      build_network()            self.net (and any other trained module: the order of their
                                 random initialisation)
      build_loss()               self.criterion: the config's `loss` (`_target_`, losses.py)
      build_optimizers()         self.optimizers: the config's `optimizer` (`_target_`:
                                 torch.optim.Adam, AdamW, SGD; conf/optimizer/) on the network
      build_schedulers()         self.schedulers: the config's `lr_schedule` on that optimiser
      modules(), optimizers,     what the loop trains and a checkpoint holds
      schedulers
      network()                  the network evaluated and saved (speed's channels_last applies to it)
      describe()                 numbers logged once at the start (parameter counts, data sizes)
      training_set()             the training samples it trains on (logged: counts, ids)
      loader(split, train, seed) batches of "train" / "val" (and "test" where the task reads it)
      new_metrics(), step(...)   one batch's loss, accumulating metrics (loop.run_epoch)
      end_epoch(epoch)           after validation: schedulers, SWA, ...
      inference_state()          the weights kept when validation improves
      extra_state() /            what else a checkpoint must hold to resume bit-equal
        load_extra_state(state)
      final_state(best, seed)    the weights tested (default: the best epoch's)
      test_metrics(batch_size)   (metrics, extras for write_artifacts)
      result_extras()            more numbers for the run's result
      inference_checkpoint(sd)   the best_model.pt that `predict` reads
      write_artifacts(...)       files logged with the run
    Task.summary(result)         the result line printed per run
    Task.folds_summary(...)      the line printed when every fold of a cell has finished
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import torch
from omegaconf import DictConfig
from torch import nn

from dedl_experiments.config import components
from dedl_experiments.config.config_files import PAPER_OPTIMIZER
from dedl_experiments.config.config_rules import ConfigError
from dedl_experiments.data import subsets
from dedl_experiments.training.losses import build_loss, configured_class_weights
from dedl_experiments.models import count_parameters, state_to_save
from dedl_experiments.models.pretrained import PretrainedWeights
from dedl_experiments.placement import JobPlacement
from dedl_experiments.training.schedules import build_scheduler, schedule_interval


class Metrics(Protocol):
    """What `new_metrics()` returns: updated by `step`, read once per epoch by the loop."""

    def compute(self) -> dict[str, float]: ...


class Prepared(Protocol):
    """What `Task.prepare` returns: the cache folder and the data's content digest (part of
    the cell's identity)."""

    root: Path
    digest: str


class Task(abc.ABC):
    """One job's data, networks, optimisers and metrics; the loop, checkpoints, speed switches
    and recording are shared (see the module docstring for the order of the hooks)."""

    device: torch.device
    # Set by the build hooks: the loop steps every optimiser after each training batch, and a
    # checkpoint holds the state of every optimiser and scheduler under these names.
    net: nn.Module
    criterion: nn.Module
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler]
    # When each scheduler steps: "epoch" (the default) or "batch" (lr_schedule.interval).
    schedule_intervals: dict[str, str] = {}
    # What the task passes to its loss besides the class weights (segmentation: ignore_index).
    loss_arguments: dict[str, Any] = {}

    def __init__(self, cfg: DictConfig, prepared: Any, placement: JobPlacement,
                 fold: int | None = None) -> None:
        """A task of `cfg` on `prepared` data (from `prepare`), placed as the job decided, for
        cross-validation fold `fold` (None where `folds` is None), built by `build`."""
        self.cfg, self.prepared, self.placement, self.fold = cfg, prepared, placement, fold
        self.device = placement.device
        self.build()

    # --- building: one hook per part, in this order -----------------------------------------

    def build(self) -> None:
        """The template every task is built by: its own state, then the network, the loss, the
        optimisers and the schedulers. The order is the order of random initialisation (a
        resumed run rebuilds the same weights): a task overrides hooks, not this."""
        self.setup()
        self.build_network()
        self.build_loss()
        self.build_optimizers()
        self.build_schedulers()

    def setup(self) -> None:
        """The task's own state that the build hooks read (data splits, normalisation); none by
        default."""

    @abc.abstractmethod
    def build_network(self) -> None:
        """Set `self.net`, the network on `self.device`, and any other module the task trains
        (`modules()`), in the order of their random initialisation."""

    def data_class_weights(self) -> torch.Tensor:
        """Class weights from the training data, for a loss whose `weighting` asks for them."""
        raise ConfigError(f"loss.weighting={self.cfg.loss.weighting} is invalid for "
                          f"task={self.cfg.task.name}: it must be one of: none, fixed")

    def build_loss(self) -> None:
        """Set `self.criterion`: the loss the config's `loss` node names (its `_target_`,
        losses.py), with `self.class_weights` as its `weighting` says and `loss_arguments`."""
        self.class_weights = configured_class_weights(self.cfg.loss, self.data_class_weights)
        self.criterion = build_loss(self.cfg.loss, self.class_weights,
                                    **self.loss_arguments).to(self.device)

    def build_optimizers(self) -> None:
        """Set `self.optimizers`: the config's `optimizer` (its `_target_`, conf/optimizer/) over
        the network's parameters, as "net"."""
        self.optimizers = {"net": components.build(self.cfg.optimizer, self.net.parameters())}

    def build_schedulers(self) -> None:
        """Set `self.schedulers`: the config's `lr_schedule` on the network's optimiser, stepped
        after each epoch or batch as its `interval` says (`self.schedule_intervals`)."""
        self.schedulers = {"net": build_scheduler(self.optimizers["net"], self.cfg.lr_schedule)}
        self.schedule_intervals = {"net": schedule_interval(self.cfg.lr_schedule)}

    # The test metric a sweep's closing lines show for each run (sweep_callbacks.py).
    summary_metric: str
    # Settings of the paper's recipe that runs outside the tables may change (ablations such as
    # lr_schedule=step or loss=ce), as logged params: where a table neither fixes nor varies one,
    # the report counts only its runs at the table's own value (report/definition/experiment.py), in this order.
    recipe_settings: tuple[str, ...] = ()

    # --- the config, before a job runs -----------------------------------------------------

    @staticmethod
    def check_config(cfg: DictConfig) -> None:
        """Raise config_rules.ConfigError naming the first option this task cannot use (after the
        checks every job gets); by default every value is fine."""

    @staticmethod
    @abc.abstractmethod
    def run_name(cfg: DictConfig) -> str:
        """The run's name: the cell spelt out (MLflow shows it; a cell's identity is its key)."""

    @staticmethod
    @abc.abstractmethod
    def factors(cfg: DictConfig) -> dict[str, str]:
        """The settings this task's tables vary (architecture, encoder, ...), as short strings;
        seed, budget and dataset are added for every task."""

    @staticmethod
    def optimizer_in_name(cfg: DictConfig) -> list[str]:
        """The optimiser's part of a run name: none for the paper's (runs named before the
        optimizer group keep their names), else its name."""
        return [] if cfg.optimizer.name == PAPER_OPTIMIZER else [cfg.optimizer.name]

    @staticmethod
    @abc.abstractmethod
    def pretrained_weights(cfg: DictConfig) -> PretrainedWeights:
        """The pretrained weights this config's init (`init.name`, never random) starts from."""

    # --- the job, before a task object exists ---------------------------------------------

    @staticmethod
    @abc.abstractmethod
    def prepare(cfg: DictConfig) -> Prepared:
        """The prepared data of this config, built on first use."""

    @classmethod
    def training_subset(cls, cfg: DictConfig, prepared: Any) -> Any:
        """`prepared` with the training samples the config keeps (`dataset.train_fraction`,
        `dataset.train_count`; nested subsets chosen by the seed, data/subsets.py), or a
        ConfigError naming the option where too few are left. A task that does not override it
        takes no subset."""
        if subsets.is_subset(cfg):
            raise ConfigError(f"task={cfg.task.name} does not take a training subset: "
                              f"{subsets.FRACTION} must be 1.0 and {subsets.COUNT} null")
        return prepared

    @classmethod
    def folds(cls, cfg: DictConfig) -> list[int] | None:
        """None: a cell is one run. A list: a cell is a parent run with one child run per fold,
        each a task built with that `fold`."""
        return None

    @staticmethod
    @abc.abstractmethod
    def summary(result: dict) -> str:
        """The result line of a finished run, e.g. "test IoU 0.81  pixel accuracy 0.96"."""

    @classmethod
    def folds_summary(cls, summary: dict[str, float], folds: int) -> str:
        """The line of a cell whose folds have all finished (`summary`: each test metric's mean
        over folds, and `<metric>_std`)."""
        return f"{cls.summary(summary)}, mean over {folds} folds"

    # --- training: what the loop calls --------------------------------------------------------

    def training_set(self) -> subsets.TrainingSet | None:
        """The training samples this task trains on (their ids and tile count, logged with the
        run); None: not known."""
        return None

    @abc.abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """Every trained module by name (train/eval mode, checkpoints, torch.compile)."""

    def network(self) -> nn.Module:
        """The network that is evaluated and saved: by default the module named "net"."""
        return self.modules()["net"]

    def describe(self) -> dict[str, float]:
        """Numbers logged once when the run starts."""
        return {f"params_{name}": count_parameters(module) for name, module in self.modules().items()}

    @abc.abstractmethod
    def loader(self, split: str, train: bool, seed: int) -> Iterable:
        """Batches of a split; `train` turns on shuffling and augmentation. The loop sets the
        epoch on `loader.dataset` (draws depend on seed and epoch only)."""

    @abc.abstractmethod
    def new_metrics(self) -> Metrics:
        """Fresh metric accumulators for one pass over a split."""

    @abc.abstractmethod
    def step(self, batch: list[torch.Tensor], metrics: Metrics, train: bool) -> torch.Tensor:
        """The loss of one batch (already on the device); updates `metrics`. The loop does the
        backward pass and the optimiser steps."""

    def end_epoch(self, epoch: int) -> None:
        """After each epoch's validation: step the schedulers stepped per epoch."""
        self.step_schedulers("epoch")

    def end_step(self) -> None:
        """After each training step: step the schedulers stepped per batch."""
        self.step_schedulers("batch")

    def step_schedulers(self, interval: str) -> None:
        # Per scheduler, `epoch` (default) or `batch` (the released notebooks' choice).
        for name, scheduler in self.schedulers.items():
            if self.schedule_intervals.get(name, "epoch") == interval:
                scheduler.step()

    def inference_state(self) -> dict[str, torch.Tensor]:
        """The weights kept when the monitored validation metric improves (without the state
        the network never reads, models.state_to_save)."""
        return state_to_save(self.network())

    # --- checkpoints ----------------------------------------------------------------------------

    def extra_state(self) -> dict:
        """State beyond modules, optimisers, schedulers and RNGs that a resumed run needs."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Restore what `extra_state` returned (empty for checkpoints that hold none)."""

    # --- after training ---------------------------------------------------------------------------

    def final_state(self, best_state: dict, seed: int) -> dict[str, torch.Tensor]:
        """The weights that are tested and saved: by default the best validation epoch's."""
        return best_state

    @abc.abstractmethod
    def test_metrics(self, batch_size: int) -> tuple[dict[str, float], Any]:
        """Test metrics of `network()` (logged as test_<name>) and extras for write_artifacts."""

    def result_extras(self) -> dict[str, float]:
        """More numbers for the run's result (logged as they are)."""
        return {}

    @abc.abstractmethod
    def inference_checkpoint(self, state_dict: dict[str, torch.Tensor]) -> dict:
        """The saved model file's contents: the weights and how to rebuild and feed the network."""

    def write_artifacts(self, out: Path, metrics: dict[str, float], extras: Any) -> list[Path]:
        """Files written into `out` and logged with the run."""
        return []
