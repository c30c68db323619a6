"""Checks a composed config before any data or model work starts.

Hydra already rejects an unknown group option (`encoder=resnet19`) with the list of available
options, and, when composing, a misspelt key or a value of the wrong type in the groups with a
schema (schemas.py). What it cannot know is which *values* make sense: this module checks ranges
and the combinations that only fail deep inside training otherwise (an init the encoder has no
weights for, a tile size the UNet cannot halve three times), keys added to a schema's group with
`+`, and that every `_target_` names something importable.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Iterator
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dedl_experiments.config.config_rules import (ConfigError, Rule, check_rules, non_negative, optional, positive,
                                           positive_int)
from dedl_experiments.data import subsets
from dedl_experiments.run.folders import writable_folder_problem

_CUDA_DEVICE = re.compile(r"^cuda(?::(?P<index>\d+))?$")


# Rules of every job; a task adds its own (Task.check_config).
_VALUE_RULES: list[Rule] = [
    ("seed", lambda x: isinstance(x, int) and not isinstance(x, bool) and x >= 0, "an integer >= 0"),
    ("train.epochs", positive_int, "an integer >= 1"),
    ("train.batch_size", positive_int, "an integer >= 1"),
    ("train.patience", optional(positive_int), "null (no early stopping) or an integer >= 1"),
    ("train.monitor_mode", lambda x: x in ("min", "max"), "one of: min, max"),
    ("train.checkpoint_every", lambda x: isinstance(x, int) and x >= 0, "an integer >= 0"),
    ("optimizer.lr", positive, "a number > 0"),
    ("optimizer.weight_decay", non_negative, "a number >= 0"),
    ("optimizer.momentum", non_negative, "a number >= 0"),
    ("optimizer.nesterov", lambda x: isinstance(x, bool), "true or false"),
    ("loader.num_workers", lambda x: isinstance(x, int) and x >= 0, "an integer >= 0"),
    ("budget.scale", lambda x: positive(x) and x <= 1, "a number in (0, 1]"),
    ("force", lambda x: isinstance(x, bool), "true or false"),
    ("speed.amp", lambda x: x in ("bf16", "fp16", "none"), "one of: bf16, fp16, none"),
    ("speed.channels_last", lambda x: x in (True, False, "auto"), "true, false or auto"),
    ("speed.compile", lambda x: isinstance(x, bool), "true or false"),
    ("resume", lambda x: isinstance(x, bool), "true or false"),
    ("adopt_legacy_runs", lambda x: isinstance(x, bool), "true or false"),
    # Absent (a user's schedule file without it): once per epoch.
    ("lr_schedule.interval", lambda x: x in (None, "epoch", "batch"), "one of: epoch, batch"),
    ("app_lr_schedule.interval", lambda x: x in (None, "epoch", "batch"), "one of: epoch, batch"),
    ("loader.device_data", lambda x: x == "auto" or isinstance(x, bool), "auto, true or false"),
    ("loader.device_data_fraction", lambda x: positive(x) and x <= 1, "a number in (0, 1]"),
    ("speed.jobs_per_gpu", lambda x: x == "auto" or positive_int(x), "auto or an integer >= 1"),
    ("speed.cpu_threads", lambda x: x == "auto" or positive_int(x), "auto or an integer >= 1"),
    ("speed.slurm_gpu_shards", optional(positive_int), "null or an integer >= 1"),
    ("speed.compile_cache", lambda x: x is None or isinstance(x, str), "null or a folder path"),
    ("claim.heartbeat_s", positive, "a number of seconds > 0"),
    ("claim.lease_s", positive, "a number of seconds > 0"),
    ("claim.on_busy", lambda x: x in ("skip", "wait"), "one of: skip, wait"),
    ("speed.tf32", lambda x: isinstance(x, bool), "true or false"),
    ("augment.rotation_fill", lambda x: x in ("ignore", "background"), "one of: ignore, background"),
    ("augment.perspective_p", lambda x: non_negative(x) and x <= 1, "a probability in [0, 1]"),
    ("device", lambda x: isinstance(x, str) and (x in ("auto", "cpu") or bool(_CUDA_DEVICE.match(x))),
     "auto, cpu, cuda or cuda:N"),
]



def _check_device(cfg: DictConfig) -> None:
    """cuda / cuda:N must exist here: otherwise the job would fail only after preparing data."""
    match = _CUDA_DEVICE.match(cfg.device)
    if match is None:
        return
    import torch  # here, so that reading a config does not load torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ConfigError(f"device={cfg.device} is not available: this machine has no CUDA device; "
                          "use device=auto or device=cpu")
    index = match["index"]
    if index is not None and int(index) >= count:
        raise ConfigError(f"device={cfg.device} is not available: this machine has {count} CUDA "
                          f"device(s), cuda:0..cuda:{count - 1}; use one of them, cuda or auto")


def _check_data_dir(cfg: DictConfig) -> None:
    """data_dir gets the synthetic data and the tile caches: it must be creatable and writable
    before any work starts. Nothing is created yet: a later check (the tracking store) may
    still stop the job, and a failed job leaves nothing behind."""
    problem = writable_folder_problem(Path(cfg.data_dir), create=False)
    if problem:
        raise ConfigError(f"data_dir={cfg.data_dir} cannot be used: {problem}; it must be a folder "
                          "this user can create and write (set data_dir=... or DEDL_DATA_DIR)")


def _check_schema_keys(cfg: DictConfig) -> None:
    """A key added with `+group.key=...` to a group with a schema (Hydra lets `+` add it)."""
    for group in cfg:
        if group == "hydra" or not OmegaConf.is_dict(cfg[group]):
            continue
        schema = OmegaConf.get_type(cfg, group)
        if not dataclasses.is_dataclass(schema):
            continue
        known = [f.name for f in dataclasses.fields(schema)]
        for key in cfg[group]:
            if key not in known:
                settings = ", ".join(k for k in known if not k.startswith("_"))
                raise ConfigError(f"{group}.{key} is not a setting of {group} (its settings: "
                                  f"{settings})")


def _check_report_block(cfg: DictConfig) -> None:
    """An experiment file's report block, by the report's schema (its keys): a misspelt key fails
    the sweep before any job trains, not the table's report after the sweep."""
    if not OmegaConf.is_dict(cfg.get("report")):
        return
    from dedl_experiments.report.definition.schema import ExperimentError, ReportBlock, check

    try:
        check(OmegaConf.to_container(cfg.report, resolve=True), ReportBlock, f"experiment {cfg.get('table', '')}")
    except ExperimentError as err:
        raise ConfigError(str(err)) from None


def _targets(values: object, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(values, dict):
        for key, value in values.items():
            if key == "_target_":
                yield path, value
            elif key != "hydra":
                yield from _targets(value, f"{path}.{key}" if path else str(key))


def _check_targets(cfg: DictConfig) -> None:
    """Every component's `_target_` (components.py) names a class or function that imports."""
    import hydra.utils  # here: reading a config does not need hydra's instantiate machinery

    for path, target in _targets(OmegaConf.to_container(cfg, resolve=False)):
        try:
            hydra.utils.get_object(str(target))
        except Exception as err:
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ConfigError(f"{path}._target_={target} cannot be imported: {reason}") from None


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first bad option; returns quietly for a usable config."""
    try:
        OmegaConf.resolve(OmegaConf.create(OmegaConf.to_container(cfg, resolve=False)))
    except Exception as err:  # an interpolation that cannot resolve is a config error too
        raise ConfigError(f"config does not resolve: {err}") from err
    _check_schema_keys(cfg)
    _check_report_block(cfg)
    check_rules(cfg, _VALUE_RULES)
    subsets.check_settings(cfg)
    if cfg.dataset.name != "synthetic" and OmegaConf.is_missing(cfg.dataset, "root"):
        raise ConfigError(f"dataset={cfg.dataset.name} needs dataset.root=/path/to/the/data")
    if cfg.dataset.get("colour", "grey") not in ("grey", "rgb"):
        raise ConfigError(f"dataset.colour={cfg.dataset.colour!r} is invalid: it must be one "
                          "of: grey, rgb")
    task = cfg.task.name
    if cfg.dataset.get("task", task) != task:
        raise ConfigError(f"dataset={cfg.dataset.name} is a {cfg.dataset.task} dataset, not one for "
                          f"task={task}; pick a {task} dataset")
    if cfg.init.name != "random" and cfg.init.name not in cfg.encoder.inits:
        valid = ", ".join(["random", *cfg.encoder.inits])
        raise ConfigError(f"init={cfg.init.name} is not available for encoder={cfg.encoder.name}; "
                          f"valid inits for it: {valid}")
    _check_targets(cfg)
    # The task's own rules, once its class is known to import.
    from dedl_experiments.tasks import task_class  # here, as hydra.utils in _check_targets

    task_class(cfg).check_config(cfg)
    # Last: these look at the machine, once the values themselves are fine.
    _check_device(cfg)
    _check_data_dir(cfg)


def scaled_tile_size(cfg: DictConfig) -> int:
    """Tile size after the budget's scale, rounded up to a multiple of 8 (480 -> 64 at 1/8)."""
    size = cfg.tiling.size * cfg.budget.scale
    return int(math.ceil(size / 8) * 8)


# --- a config that does not compose: Hydra's error as one line -----------------------------

_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _allowed(schema: type, key: str) -> str | None:
    """What a schema's field takes, in words ("an integer", "null or a number")."""
    try:
        hint = typing.get_type_hints(schema)[key]
    except (KeyError, TypeError, NameError):
        return None
    args = set(typing.get_args(hint)) or {hint}
    optional = type(None) in args
    args.discard(type(None))
    words = "a number" if args == {int, float} else _TYPE_WORDS.get(args.pop()) if len(args) == 1 else None
    return None if words is None else f"null or {words}" if optional else words


def _settings(cause: Exception) -> str:
    schema = getattr(cause, "object_type", None)
    if dataclasses.is_dataclass(schema):
        keys = [f.name for f in dataclasses.fields(schema)]
    else:
        parent = getattr(cause, "parent_node", None)
        keys = [str(k) for k in parent.keys()] if OmegaConf.is_dict(parent) else []
    return ", ".join(k for k in keys if not (k.startswith("_") and k.endswith("_")))


def _quoted_forms(value: str) -> list[str]:
    """`value` in Hydra's quotes: each sweep element quoted (`"x","y"`), then the whole."""
    def quote(text: str) -> str:
        return f"'{text}'" if '"' in text else f'"{text}"'
    return ([",".join(quote(v) for v in value.split(","))] if "," in value else []) + [quote(value)]


def _unparsed_override_message(err: Exception) -> str:
    """An override Hydra's grammar does not read: the reason, and the quoted form that reads
    when quoting is the fix (non-ASCII letters, parentheses, ... in a value)."""
    import shlex

    from hydra.core.override_parser.overrides_parser import OverridesParser

    override = str(getattr(err, "override", "") or "")
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    reason = next((line for line in lines if line != override and not line.startswith(
        ("^", "See https", "Error parsing override"))), lines[0] if lines else type(err).__name__)
    message = f"{override} is not a valid override ({reason.split(':', 1)[0] if reason.startswith('Lexer') else reason})"
    key, is_pair, value = override.partition("=")
    if not is_pair or not value or value.startswith(("[", "{")):  # a list or dict: not a quoting matter
        return message
    for quoted in _quoted_forms(value):
        try:
            OverridesParser.create().parse_override(f"{key}={quoted}")
        except Exception:
            continue
        what = "non-ASCII characters" if not value.isascii() else "special characters"
        return f"{message}; {what} in an override must be quoted: {shlex.quote(f'{key}={quoted}')}"
    return message


def compose_error_message(err: Exception) -> str:
    """One line for Hydra's error about overrides or option files that do not compose: an
    unknown option (with the group's options), a misspelt key (with the group's settings), a
    value of the wrong type for a schema (with the type it must have)."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    if isinstance(err, OverrideParseException):
        return _unparsed_override_message(err)
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if isinstance(err, MissingConfigException) and err.options and err.missing_cfg_file:
        group, _, name = err.missing_cfg_file.rpartition("/")
        return f"{group}={name} is not an option of {group}; its options: {', '.join(err.options)}"
    # An override's error is the cause; an option file's, the context Hydra raised it in.
    cause = err.__cause__ or err.__context__
    full_key = getattr(cause, "full_key", None)
    if cause is None or not full_key:
        return "; ".join(line for line in lines if not line.startswith(("Config search path", "provider=")))
    reason = (str(getattr(cause, "msg", cause)).splitlines() or [""])[0]
    override = re.match(r"^Error merging override (?P<override>\S+)$", lines[0] if lines else "")
    if isinstance(cause, ValidationError) and override:
        allowed = _allowed(getattr(cause, "object_type", None), str(cause.key))
        return f"{override['override']} is invalid: {f'it must be {allowed}' if allowed else reason}"
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)):
        group = full_key.rpartition(".")[0] or "the config"
        settings = _settings(cause)
        in_file = re.match(r"^In '(?P<file>[^']+)'", lines[0] if lines else "")
        where = f" (in {in_file['file']}.yaml)" if in_file else ""
        return (f"{full_key} is not a setting of {group}"
                + (f" (its settings: {settings})" if settings else "") + where)
    return f"{lines[0] if lines else type(err).__name__}: {reason}"
