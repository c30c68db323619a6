"""The error a bad config value raises and the rules that check values: ranges, types, and
`check_rules`, which names the option the user really set (following plain interpolations).

A leaf: it imports nothing of the package, so that the components, the tasks (their own rules,
Task.check_config) and the device placement can raise and check without importing config.py,
which asks the tasks for their rules.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf


class ConfigError(ValueError):
    """A config value is invalid; the message names the option and what is allowed."""


def positive(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def non_negative(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0


def positive_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x > 0


def optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda x: x is None or check(x)


def percentile_pair(x: Any) -> bool:
    if not isinstance(x, (list, tuple, ListConfig)) or len(x) != 2:
        return False
    low, high = x
    return non_negative(low) and non_negative(high) and low < high <= 100


# (option path, check, what the option must be): check_rules raises a ConfigError naming the
# option and what it must be for the first value the check refuses.
Rule = tuple[str, Callable[[Any], bool], str]


def _get(cfg: DictConfig, path: str) -> Any:
    return OmegaConf.select(cfg, path, throw_on_missing=True)


# `${budget.epochs}` or `${.sibling}`: a node that only copies another option's value.
_PLAIN_INTERPOLATION = re.compile(r"^\$\{(?P<dots>\.*)(?P<path>[\w-]+(?:\.[\w-]+)*)\}$")


def _copied_from(cfg: DictConfig, path: str) -> str | None:
    """The option that `path` copies (`train.epochs: ${budget.epochs}` -> budget.epochs), or None."""
    parent_path, _, key = path.rpartition(".")
    parent = OmegaConf.select(cfg, parent_path) if parent_path else cfg
    if not isinstance(parent, DictConfig) or key not in parent or not OmegaConf.is_interpolation(parent, key):
        return None
    match = _PLAIN_INTERPOLATION.match(str(OmegaConf.to_container(parent, resolve=False)[key]))
    if match is None:  # a resolver (${oc.env:...}) or a string with text around the reference
        return None
    dots = len(match["dots"])
    if dots == 0:
        return match["path"]
    base = parent_path.split(".") if parent_path else []
    base = base[: len(base) - (dots - 1)] if dots > 1 else base
    return ".".join([*base, match["path"]])


def _source_option(cfg: DictConfig, path: str) -> str:
    """The option a value really comes from, following plain interpolations: the user
    typed `budget.epochs=0`, so that is what an error about `train.epochs` must name."""
    seen = {path}
    while (source := _copied_from(cfg, path)) is not None and source not in seen:
        seen.add(source)
        path = source
    return path


# Arguments of only some options of a component's group (a loss's reduction, epsilon) and
# settings a user's dataset YAML may leave out (non_finite): checked where they are given.
_OPTION_ARGUMENTS = ("loss.reduction", "loss.epsilon", "dataset.non_finite", "optimizer.momentum",
                     "optimizer.nesterov")
_ABSENT = object()


def check_rules(cfg: DictConfig, rules) -> None:
    for path, check, allowed in rules:
        if path in _OPTION_ARGUMENTS and OmegaConf.select(cfg, path, default=_ABSENT) is _ABSENT:
            continue
        value = _get(cfg, path)
        if not check(value):
            source = _source_option(cfg, path)
            used_as = f" (it sets {path})" if source != path else ""
            raise ConfigError(f"{source}={value!r} is invalid: it must be {allowed}{used_as}")
