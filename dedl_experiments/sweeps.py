"""Expand command-line overrides (with `+experiment=...` and `a=x,y` sweeps) into the
configs of every job, exactly as Hydra's basic sweeper would launch them."""

from __future__ import annotations

from hydra import compose, initialize_config_module
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

def job_overrides(overrides: list[str]) -> list[list[str]]:
    """The override list of each job: the experiment's hydra.sweeper.params, then the
    command line (a key given on the command line replaces the experiment's value)."""
    parser = OverridesParser.create()
    fixed = [o for o in parser.parse_overrides(overrides) if not o.is_sweep_override()]
    with initialize_config_module("dedl_experiments.conf", version_base="1.3"):
        base = compose("config", overrides=[o.input_line for o in fixed], return_hydra_config=True)
    params = [f"{k}={v}" for k, v in (base.hydra.sweeper.params or {}).items()]
    batches = BasicSweeper.split_arguments(parser.parse_overrides(params + overrides), None)
    return [list(job) for batch in batches for job in batch]


def expand(overrides: list[str]) -> list[DictConfig]:
    jobs = job_overrides(overrides)
    with initialize_config_module("dedl_experiments.conf", version_base="1.3"):
        return [compose("config", overrides=job) for job in jobs]
