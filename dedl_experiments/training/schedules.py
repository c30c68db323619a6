"""Learning-rate schedules, built from `conf/lr_schedule/<name>.yaml` (the network's) and
`conf/app_lr_schedule/<name>.yaml` (the APP's): the node's `_target_` is called with the
optimiser, then with the node's other keys but `name`.

The functions here keep the config's key names (`t_max`, part of every cell's identity); any
torch scheduler whose arguments are its YAML keys needs no code, e.g.

    # conf/lr_schedule/exponential.yaml
    _target_: torch.optim.lr_scheduler.ExponentialLR
    _partial_: true
    name: exponential
    gamma: 0.95
"""

from __future__ import annotations

from omegaconf import DictConfig
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LRScheduler, StepLR

from dedl_experiments.config import components


def build_scheduler(optimizer: Optimizer, schedule: DictConfig) -> LRScheduler:
    """The scheduler the config node names; the task steps it once per epoch or, with
    `interval: batch`, after every training step (Task.schedule_intervals)."""
    return components.build(schedule, optimizer, omit=("interval",))


def schedule_interval(schedule: DictConfig) -> str:
    """`epoch` or `batch`: when the task steps this schedule (a file without `interval`: epoch)."""
    return schedule.get("interval") or "epoch"


def cosine(optimizer: Optimizer, t_max: int, eta_min: float) -> CosineAnnealingLR:
    """Cosine annealing over `t_max` epochs down to `eta_min`."""
    return CosineAnnealingLR(optimizer, T_max=t_max, eta_min=eta_min)


def step(optimizer: Optimizer, step_size: int, gamma: float) -> StepLR:
    """The learning rate times `gamma` every `step_size` epochs."""
    return StepLR(optimizer, step_size=step_size, gamma=gamma)


def constant(optimizer: Optimizer) -> ConstantLR:
    """The optimiser's learning rate throughout (a scheduler all the same, so that every
    optimiser has one to checkpoint)."""
    return ConstantLR(optimizer, factor=1.0, total_iters=0)

