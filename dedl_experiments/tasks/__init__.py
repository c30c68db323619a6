"""What differs between the two tasks: data, model, loss and metrics; the loop is shared."""

from __future__ import annotations

from typing import TYPE_CHECKING

from omegaconf import DictConfig

from dedl_experiments.config import components

if TYPE_CHECKING:
    from dedl_experiments.tasks.base import Task


def task_class(cfg: DictConfig) -> type[Task]:
    """The task the config names (`task._target_`)."""
    return components.target(cfg.task)
