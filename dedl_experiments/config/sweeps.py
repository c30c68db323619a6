"""Hydra's composition and sweep expansion, outside a Hydra app: expand command-line overrides
(with `+experiment=...` and `a=x,y` sweeps) into the configs of every job, exactly as Hydra's
basic sweeper would launch them, and compose an experiment for the report.

The one adapter to Hydra's internals: no other module (nor test) imports `hydra._internal`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from hydra import compose, initialize_config_module
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from dedl_experiments.config import config_files

CONFIG_MODULE = "dedl_experiments.conf"


def split(overrides: Iterable[str]) -> list[list[str]]:
    """The override list of each job of a command line with sweeps (`a=x,y`), in the basic
    sweeper's order; a later key replaces an earlier one."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def values(key: str, value: str) -> list[Any]:
    """The values a sweep override `key=value` takes (one for a plain override), typed as
    Hydra reads them (`1e-3` a float, `resnet18` a string)."""
    parsed = OverridesParser.create().parse_override(f"{key}={value}")
    if parsed.is_sweep_override():
        return list(parsed.sweep_iterator())
    return [parsed.value()]


def compose_config(overrides: list[str], hydra: bool = False) -> DictConfig:
    """The config a job with these (non-sweep) overrides gets; `hydra`: with Hydra's own node
    (the sweeper's params, the chosen options in hydra.runtime.choices)."""
    if GlobalHydra.instance().is_initialized():  # within a caller's Hydra context: compose there
        return compose("config", overrides=overrides, return_hydra_config=hydra)
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=hydra)


def searchpath_override(extra: Iterable[str]) -> list[str]:
    """`hydra.searchpath=[...]` with the primary config's entries and then `extra` (folders or
    `file://`/`pkg://` entries); nothing when there are none to add."""
    extra = [entry if "://" in entry else f"file://{config_files.search_folder(entry)}" for entry in extra]
    if not extra:
        return []
    primary = config_files.read(config_files.CONF_DIR / "config.yaml").get("hydra", {}).get("searchpath", [])
    return [f"hydra.searchpath=[{','.join(dict.fromkeys([*primary, *extra]))}]"]


def job_overrides(overrides: list[str]) -> list[list[str]]:
    """The override list of each job: the experiment's hydra.sweeper.params, then the
    command line (a key given on the command line replaces the experiment's value)."""
    parser = OverridesParser.create()
    fixed = [o for o in parser.parse_overrides(overrides) if not o.is_sweep_override()]
    base = compose_config([o.input_line for o in fixed], hydra=True)
    params = [f"{k}={v}" for k, v in (base.hydra.sweeper.params or {}).items()]
    return split(params + overrides)


def checked_configs(config: DictConfig) -> Iterator[tuple[str | None, DictConfig]]:
    """Within a running multirun (`config`: what a callback's on_multirun_start gets), the
    configs whose checks tell that every value of the sweep is valid, at one composition per
    value rather than per job: the config of the fixed overrides (the experiment's
    hydra.sweeper.params, then the command line, as the basic sweeper combines them: a later key
    replaces an earlier one), then, for each value of each swept key, that config with that
    value, each with the override it checks (None for the fixed ones)."""
    params = [f"{k}={v}" for k, v in (config.hydra.sweeper.params or {}).items()]
    loader = GlobalHydra.instance().config_loader()  # the parser lists a glob's group options
    overrides = {o.get_key_element(): o for o in OverridesParser.create(config_loader=loader).parse_overrides(
        params + list(config.hydra.overrides.task))}
    fixed = [o.input_line for o in overrides.values() if not o.is_sweep_override()]
    yield None, loader.load_sweep_config(config, fixed)
    for key, override in overrides.items():
        if override.is_discrete_sweep():  # choice, range, glob (a sweeper refuses the others)
            for value in override.sweep_string_iterator():
                yield f"{key}={value}", loader.load_sweep_config(config, [*fixed, f"{key}={value}"])


def expand(overrides: list[str]) -> list[DictConfig]:
    jobs = job_overrides(overrides)
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):  # once for every job
        return [compose("config", overrides=job) for job in jobs]
