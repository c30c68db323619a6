"""Every table the report knows: the paper's, written by hand with their printed numbers
(report/paper.py), then each experiment file that has no hand-written spec, derived from the
file (report/generic.py): the package's conf/experiment/ and any user folder on the search path
(`config_dir=` or `hydra.searchpath=` of the report)."""

from __future__ import annotations

from collections.abc import Iterable

from dedl_experiments import conf
from dedl_experiments.report.generic import experiment_spec
from dedl_experiments.report.paper import TABLES
from dedl_experiments.report.spec import TableSpec


def names(search_path: Iterable[str] = ()) -> list[str]:
    """The paper's tables in their order, then the other experiment files' names, sorted."""
    return [*TABLES, *(name for name in conf.options("experiment", search_path) if name not in TABLES)]


def spec(name: str, search_path: Iterable[str] = ()) -> TableSpec:
    return TABLES[name] if name in TABLES else experiment_spec(name, search_path)
