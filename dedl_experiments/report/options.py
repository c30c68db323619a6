"""The report's command line: key=value options, checked before any run is read."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dedl_experiments.config import config_files
from dedl_experiments.tracking import mlflow_store
from dedl_experiments.report.analysis import power
from dedl_experiments.report.definition import tables

OPTIONS = ("table", "budget", "init", "dataset", "metric", "out", "tracking.uri", "config_dir",
           "hydra.searchpath", "where.KEY", "effect")

USAGE = f"""\
usage: python -m dedl_experiments.report table=NAME [key=value ...]

  table=NAME          {', '.join(tables.names())}, or all; or any experiment file
                      (experiment/NAME.yaml) in a config_dir
  config_dir=DIR      your config folder (experiment/, encoder/, ... as in the package),
                      the one the sweep had on its search path; DIR,DIR for several.
                      hydra.searchpath=[file:///DIR,...] (the sweep's override) works too
  budget=NAME         paper (default) or smoke: only runs of this budget count
  init=NAME           replaces the table's ImageNet init (smoke runs: init=random);
                      ignored by tables that compare inits (table12, table13)
  dataset=WHICH       the dataset whose runs count (default auto: real data over synthetic,
                      digested over older runs, then the most runs); a name, a digest
                      prefix, NAME@DIGEST8, NAME@before-digests or before-digests
  metric=NAME         show this MLflow metric instead of the table's (e.g.
                      test_recall_as_released, the released code's 'F1')
  where.KEY=VALUE     also require param KEY=VALUE (KEY=* drops a recipe filter)
  effect=WHAT         effect of interest for the seeds each comparison needs: paper
                      (the paper's printed difference of the pair) or a number, e.g.
                      0.02; default: the table's `effect:`, else paper
  out=DIR             report folder (default reports/)
  tracking.uri=URI    MLflow store (default $MLFLOW_TRACKING_URI or {mlflow_store.DEFAULT_URI})
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
    search_path: list[str] = field(default_factory=list)  # user config folders, after the package's
    effect: str | float | None = None  # replaces the tables' effect of interest


def _search_path(flat: dict[str, str]) -> list[str]:
    """config_dir=A,B and hydra.searchpath=[file:///A,...] as folders; each must exist."""
    entries = [e for e in flat.get("config_dir", "").split(",") if e]
    entries += [e.strip() for e in flat.get("hydra.searchpath", "").strip("[]").split(",") if e.strip()]
    for entry in entries:
        try:
            folder = config_files.search_folder(entry)
        except (ImportError, ValueError) as err:
            raise UsageError(f"config folder {entry}: {err}") from err
        if not folder.is_dir():
            raise UsageError(f"config folder {entry} does not exist")
    return entries


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
    search_path = _search_path(flat)
    known = tables.names(search_path)
    table = flat.get("table")
    if not table:
        raise UsageError(f"which table? table=NAME with NAME one of: {', '.join(known)}, all")
    if table != "all" and table not in known:
        raise UsageError(f"unknown table {table!r} (no experiment/{table}.yaml"
                         f"{'' if search_path else '; config_dir=DIR adds yours'}); valid: {', '.join(known)}, all")
    budget = flat.get("budget", "paper")
    init = flat.get("init")
    init = None if init in (None, "", "null") else init
    for group, value in (("budget", budget), ("init", init)):
        valid = config_files.options(group, search_path)
        if value is not None and valid and value not in valid:
            raise UsageError(f"unknown {group} {value!r}; valid: {', '.join(valid)}")
    effect = flat.get("effect")
    if effect is not None:
        try:
            effect = power.parse_effect(effect, "effect")
        except ValueError as err:
            raise UsageError(str(err)) from None
    uri = flat.get("tracking.uri")
    if uri in (None, "", "null"):
        uri = os.environ.get("MLFLOW_TRACKING_URI") or mlflow_store.DEFAULT_URI
    return Options(
        tables=known if table == "all" else [table], table_arg=table, uri=uri,
        budget=budget, init=init,
        dataset=flat.get("dataset") or "auto", metric=flat.get("metric"),
        out=Path(flat.get("out") or "reports"), where=where, search_path=search_path, effect=effect,
    )
