"""The Hydra configs: the folder conf/ at the repository's root, installed as the package
`dedl_experiments.conf` (pyproject.toml's package-dir), so `pkg://dedl_experiments.conf` finds
them from a checkout, an editable install or a wheel. User config folders join through Hydra's
search path (`hydra.searchpath=[file:///my/conf]`).

The report reads the same files without composing a job: `options(group)` lists a group's
choices and `label(group, name)` gives a choice's display name (its YAML's `label:`, shown in
the tables), both over the package's folder and any user folders, in Hydra's order (the
package's folder first, so a user's file of the same name does not shadow it)."""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Iterable
from pathlib import Path

from omegaconf import OmegaConf

CONFIG_PATH = "pkg://dedl_experiments.conf"
CONF_DIR = Path(str(importlib.resources.files("dedl_experiments.conf"))).resolve()
# A choice's display name in its group's YAML (`label: ResNet-18`): the report's, not the job's.
DISPLAY_KEY = "label"
# The paper's optimiser (conf/optimizer/adam.yaml, the default): runs recorded before the
# optimizer group trained with it, so a cell's key and a run's name leave it out.
PAPER_OPTIMIZER = "adam"


def search_folder(entry: str | Path) -> Path:
    """A folder of Hydra's search path: `file:///a/conf`, `pkg://package.conf` or a plain path."""
    entry = str(entry)
    if entry.startswith("pkg://"):
        return Path(str(importlib.resources.files(entry.removeprefix("pkg://").replace("/", "."))))
    return Path(entry.removeprefix("file://")).expanduser().resolve()


def folders(extra: Iterable[str | Path] = ()) -> tuple[Path, ...]:
    return (CONF_DIR, *(search_folder(entry) for entry in extra))


def options(group: str, extra: Iterable[str | Path] = ()) -> list[str]:
    """Every choice of a config group (`encoder`, `experiment`, ...), sorted."""
    return sorted({path.stem for folder in folders(extra) for path in (folder / group).glob("*.yaml")})


def option_file(group: str, name: str, extra: Iterable[str | Path] = ()) -> Path | None:
    """The file Hydra composes for `group=name` (the first folder that has it), or None."""
    for folder in folders(extra):
        path = folder / group / f"{name}.yaml"
        if path.is_file():
            return path
    return None


@functools.cache
def read(path: Path) -> dict:
    """A config file as plain data, interpolations unresolved (a group's file is not composed)."""
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}


def label(group: str, name: str, extra: Iterable[str | Path] = ()) -> str:
    """How the report names a choice: its YAML's `label`, else the choice's name."""
    path = option_file(group, name, tuple(extra))
    found = read(path).get(DISPLAY_KEY) if path is not None else None
    return str(found) if found else name
