"""Every table the report knows: each experiment file (report/definition/experiment.py), the package's
conf/experiment/ and any user folder on the search path (`config_dir=` or `hydra.searchpath=` of
the report), and the claims resting on them."""

from __future__ import annotations

import re
from collections.abc import Iterable

from dedl_experiments.config import config_files
from dedl_experiments.report.analysis.claims import Claim
from dedl_experiments.report.definition.experiment import experiment_spec
from dedl_experiments.report.definition.spec import TableSpec


def _natural(name: str) -> list:
    """table2 before table10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def names(search_path: Iterable[str] = ()) -> list[str]:
    """The package's tables in the order of their names (table1, table2, ..., table10), then
    those only in the user's folders."""
    package = config_files.options("experiment")
    users = [name for name in config_files.options("experiment", search_path) if name not in package]
    return sorted(package, key=_natural) + sorted(users, key=_natural)


def spec(name: str, search_path: Iterable[str] = ()) -> TableSpec:
    return experiment_spec(name, search_path)


def claims(search_path: Iterable[str] = ()) -> list[Claim]:
    """Every table's claims, in the tables' order."""
    return [claim for name in names(search_path) for claim in spec(name, search_path).claims]
