"""The report's command line: key=value options, checked before any run is read."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dedl_experiments import tracking
from dedl_experiments.conf import CONF_DIR
from dedl_experiments.report.paper import TABLES

CONF = CONF_DIR
OPTIONS = ("table", "budget", "init", "dataset", "metric", "out", "tracking.uri", "where.KEY")

USAGE = f"""\
usage: python -m dedl_experiments.report table=NAME [key=value ...]

  table=NAME          {', '.join(TABLES)}, or all
  budget=NAME         paper (default) or smoke: only runs of this budget count
  init=NAME           replaces the table's ImageNet init (smoke runs: init=random);
                      ignored by tables that compare inits (table12, table13)
  dataset=WHICH       the dataset whose runs count (default auto: real data over synthetic,
                      digested over older runs, then the most runs); a name, a digest
                      prefix, NAME@DIGEST8, NAME@before-digests or before-digests
  metric=NAME         show this MLflow metric instead of the table's (e.g.
                      test_recall_as_released, the released code's 'F1')
  where.KEY=VALUE     also require param KEY=VALUE (KEY=* drops a recipe filter)
  out=DIR             report folder (default reports/)
  tracking.uri=URI    MLflow store (default $MLFLOW_TRACKING_URI or {tracking.DEFAULT_URI})
"""


class UsageError(ValueError):
    """Bad command-line arguments: exit status 2."""


@dataclass
class Options:
    tables: list[str]
    table_arg: str
    uri: str
    budget: str = "paper"
    init: str | None = None
    dataset: str = "auto"
    metric: str | None = None
    out: Path = Path("reports")
    where: dict[str, str] = field(default_factory=dict)


def _names(group: str) -> list[str] | None:
    folder = CONF / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else None


def parse_args(argv: list[str]) -> Options:
    """key=value arguments, kept as strings (compared with the logged params, which are
    strings; a YAML parse would turn `*` into an alias and `1e-3` into a float)."""
    flat: dict[str, str] = {}
    where: dict[str, str] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise UsageError(f"{arg!r} is not key=value")
        if key.startswith("where."):
            where[key[len("where."):]] = value
        else:
            flat[key] = value
    if "where" in flat or "" in where:
        raise UsageError("where needs a param name: where.KEY=VALUE, e.g. where.lr_schedule.name=step")
    unknown = sorted(set(flat) - set(OPTIONS))
    if unknown:
        raise UsageError(f"unknown option(s) {', '.join(unknown)}; valid: {', '.join(OPTIONS)}")
    table = flat.get("table")
    if not table:
        raise UsageError(f"which table? table=NAME with NAME one of: {', '.join(TABLES)}, all")
    if table != "all" and table not in TABLES:
        raise UsageError(f"unknown table {table!r}; valid: {', '.join(TABLES)}, all")
    budget = flat.get("budget", "paper")
    init = flat.get("init")
    init = None if init in (None, "", "null") else init
    for group, value in (("budget", budget), ("init", init)):
        valid = _names(group)
        if value is not None and valid is not None and value not in valid:
            raise UsageError(f"unknown {group} {value!r}; valid: {', '.join(valid)}")
    uri = flat.get("tracking.uri")
    if uri in (None, "", "null"):
        uri = os.environ.get("MLFLOW_TRACKING_URI") or tracking.DEFAULT_URI
    return Options(
        tables=list(TABLES) if table == "all" else [table], table_arg=table, uri=uri,
        budget=budget, init=init,
        dataset=flat.get("dataset") or "auto", metric=flat.get("metric"),
        out=Path(flat.get("out") or "reports"), where=where,
    )
