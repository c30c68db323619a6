"""Components named in config, not chosen in code: a config node's `_target_` is the class or
function that builds it (`hydra.utils.instantiate`), so a new scheduler, loss, dataset reader or
task is a new YAML file (and, if torch or the package lacks it, a function of your own).

A component's node holds its `_target_` and the target's keyword arguments, plus keys that are
read by the rest of the code and the report but are not arguments (`name`, `label`: how runs
are named, logged and shown). `_target_`, `_partial_` and Hydra's other instantiate keys are not
part of a cell's identity (tracking.cell_values) nor logged as params (loggable_values).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import hydra.utils
from omegaconf import DictConfig, OmegaConf

from dedl_experiments.config.config_rules import ConfigError

# Keys of a component's node that describe it and are never arguments of its `_target_`.
DESCRIPTIVE_KEYS = ("name", "label")


def is_instantiate_key(key: Any) -> bool:
    """`_target_`, `_partial_`, `_convert_`, `_recursive_`, `_args_`: how a node is built."""
    return isinstance(key, str) and key.startswith("_") and key.endswith("_")


def without_instantiate_keys(values: Any) -> Any:
    """Plain config values without the keys that only say how a component is built."""
    if isinstance(values, dict):
        return {k: without_instantiate_keys(v) for k, v in values.items() if not is_instantiate_key(k)}
    if isinstance(values, list):
        return [without_instantiate_keys(v) for v in values]
    return values


# An experiment file's report block: how the report shows the table (its printed numbers, the
# paper's claims), not a setting of the run.
NOT_LOGGED = ("report",)


def loggable_values(cfg: DictConfig) -> dict:
    """The resolved config as a job logs it as params: instantiate keys left out, so that the
    params of a run stay those of runs recorded before components were named in config, and
    the report block (NOT_LOGGED) left out."""
    values = without_instantiate_keys(OmegaConf.to_container(cfg, resolve=True))
    return {key: value for key, value in values.items() if key not in NOT_LOGGED}


def arguments(node: DictConfig, omit: tuple[str, ...] = ()) -> dict[str, Any]:
    """The node as instantiate takes it: resolved, without the descriptive keys and `omit`."""
    values = OmegaConf.to_container(node, resolve=True)
    return {k: v for k, v in values.items() if k not in (*DESCRIPTIVE_KEYS, *omit)}


def factory(node: DictConfig, omit: tuple[str, ...] = ()) -> Callable[..., Any]:
    """The node's `_target_` with the node's arguments bound (a functools.partial): call it
    with the run-time arguments (an optimiser, class weights) to build the component."""
    if "_target_" not in node:
        raise ValueError(f"a component's config names no _target_ (its keys: {', '.join(map(str, node))})")
    return hydra.utils.instantiate(arguments(node, omit), _partial_=True)


def build(node: DictConfig, *args: Any, omit: tuple[str, ...] = (), **kwargs: Any) -> Any:
    """Build the component of `node`: its `_target_` called with its arguments and these. A
    setting the target does not take (or a missing one) is a ConfigError naming both."""
    make = factory(node, omit)
    try:
        signature = inspect.signature(make.func)
    except (TypeError, ValueError):  # a builtin without a signature: let the call tell
        signature = None
    if signature is not None:
        try:
            signature.bind(*make.args, *args, **make.keywords, **kwargs)
        except TypeError as err:
            where = node._get_full_key(None) or "a component"
            raise ConfigError(f"{where}: {node._target_} does not fit its settings "
                              f"({', '.join(map(str, make.keywords)) or 'none'}): {err}") from None
    return make(*args, **kwargs)


def target(node: DictConfig) -> Any:
    """The class or function a node's `_target_` names (for components built by the caller
    with run-time values only, such as a task or a dataset reader)."""
    return hydra.utils.get_object(node._target_)
