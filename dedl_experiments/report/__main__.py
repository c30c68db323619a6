"""`python -m dedl_experiments.report table=table2 [budget=smoke] [init=random] ...`

Sets our runs beside the paper's numbers: one table (or all of them) as Markdown on stdout, and
CSV, Markdown and a PNG chart per table in `<out>/<table>/`, also logged as artifacts of a run
`report-<table>-<budget>` in the MLflow experiment `dedl-reports`.

Runs are read from every experiment named `dedl` or `dedl-*` of the store (a cell recorded by
Table 2's sweep is also a cell of Tables 1, 3, 6 and 7) and selected by their params:

- the table's own settings (report/paper.py: fixed settings, rows, columns);
- `budget.name` (default paper): smoke and paper runs are never mixed;
- `dataset.name`: one dataset per table. `dataset=auto` (default) takes the only one the runs
  have; when runs of several datasets match, real data wins over the built-in synthetic data,
  then the dataset with the most runs, and a note names the others (`dataset=NAME` picks one);
- the paper's recipe for settings a user may ablate outside the tables (`RECIPE`: learning-rate
  schedule, loss, decoder attention, SWA); `where.KEY=VALUE` changes such a filter or adds one
  on any param (`where.lr_schedule.name=step`), `where.KEY=*` drops it;
- `init=NAME` replaces the table's ImageNet initialisation (smoke runs use init=random); tables
  that compare initialisations (12, 13) ignore it, with a note.

Per cell and seed (and fold) the newest FINISHED run counts (reruns are not double-counted);
FAILED/KILLED runs count as failures only where no run finished. Cells without runs show as
"missing", cells whose runs all failed as "failed (n)", never as zeros.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from dedl_experiments import tracking
from dedl_experiments.report.aggregate import Cell, RunRecord, aggregate, matches
from dedl_experiments.report.mlflow_runs import REPORTS_EXPERIMENT, load_runs
from dedl_experiments.report.paper import TABLES, TableSpec
from dedl_experiments.report.render import to_csv, to_markdown, to_png

CONF = Path(__file__).resolve().parents[2] / "conf"

# The paper's recipe, for settings that runs outside the tables may change (ablations such as
# lr_schedule=step or loss=ce): such runs must not land in the paper's cells. Equal to the
# composed defaults (tests/unit/test_experiments.py checks it). Values as logged (strings).
RECIPE: dict[str, dict[str, str]] = {
    "segmentation": {
        "lr_schedule.name": "cosine",
        "loss.name": "weighted_ce",
        "architecture.attention": "scse",
    },
    "classification": {
        "lr_schedule.name": "cosine",
        "loss.name": "focal",
        "task.swa.enabled": "True",
    },
}
ANY = ("*", "any")
# Params that do not make two runs of one cell different experiments (besides the seed).
_NOT_SETTINGS = ("seed", "fold", "table", "force", "resume", "device", "data_dir", "dataset.root")
_NOT_SETTINGS_PREFIXES = ("tracking.", "loader.", "speed.", "hydra.")
OPTIONS = ("table", "budget", "init", "dataset", "metric", "out", "tracking.uri", "where.KEY")

USAGE = f"""\
usage: python -m dedl_experiments.report table=NAME [key=value ...]

  table=NAME          {', '.join(TABLES)}, or all
  budget=NAME         paper (default) or smoke: only runs of this budget count
  init=NAME           replaces the table's ImageNet init (smoke runs: init=random);
                      ignored by tables that compare inits (table12, table13)
  dataset=NAME|auto   the dataset whose runs count (default auto: see the docs)
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
        dataset=flat.get("dataset", "auto"), metric=flat.get("metric"),
        out=Path(flat.get("out") or "reports"), where=where,
    )


# --- selection --------------------------------------------------------------------------------


def varies(spec: TableSpec, key: str) -> bool:
    selectors = [row.match for row in spec.rows if row.match] + [c.match for c in spec.columns]
    return any(key in selector for selector in selectors)


@dataclass
class TableReport:
    spec: TableSpec  # with the report's filters added to `fixed`
    cells: list[Cell]
    runs: int  # runs that fill the table's cells (failed ones included)
    notes: list[str]

    def counts(self) -> Counter:
        return Counter(cell.status for cell in self.cells)


def _select(spec: TableSpec, runs: list[RunRecord]) -> list[RunRecord]:
    """Runs that land in some cell of spec."""
    rows = [row.match for row in spec.rows if row.match is not None]
    return [
        run for run in runs
        if matches(spec.fixed, run.params)
        and any(matches(row, run.params) for row in rows)
        and any(matches(column.match, run.params) for column in spec.columns)
    ]


def _pick_dataset(names: Counter) -> str:
    real = {name: n for name, n in names.items() if not name.startswith("synthetic")}
    pool = real or dict(names)
    return sorted(pool, key=lambda name: (-pool[name], name))[0]


def build(spec: TableSpec, runs: list[RunRecord], options: Options) -> TableReport:
    notes: list[str] = []
    fixed = dict(spec.fixed)
    if options.metric:
        notes.append(f"Metric `{options.metric}` shown instead of the table's `{spec.metric}`.")
        spec = dataclasses.replace(spec, metric=options.metric)
    if options.init:
        if varies(spec, "init.name"):
            notes.append(f"init={options.init} ignored: this table compares initialisations.")
        else:
            fixed["init.name"] = options.init
    fixed["budget.name"] = options.budget
    # Settings the report's options set (the rest are the table's own).
    adjustable = {"budget.name", "init.name", "dataset.name", *RECIPE.get(spec.task, {}), *options.where}
    for key, value in {**RECIPE.get(spec.task, {}), **options.where}.items():
        if value in ANY:
            fixed.pop(key, None)
        else:
            fixed[key] = value

    candidates = _select(dataclasses.replace(spec, fixed=fixed), runs)
    datasets = Counter(run.params.get("dataset.name", "?") for run in candidates)
    if options.dataset != "auto":
        fixed["dataset.name"] = options.dataset
    elif datasets:
        chosen = _pick_dataset(datasets)
        fixed["dataset.name"] = chosen
        others = {name: n for name, n in datasets.items() if name != chosen}
        if others:
            listed = ", ".join(f"{name} ({n} runs)" for name, n in sorted(others.items()))
            notes.append(f"Runs of other datasets are left out: {listed}; dataset=NAME shows them.")
    spec = dataclasses.replace(spec, fixed=fixed)
    selected = _select(spec, runs)
    if not selected:
        notes += _why_empty(spec, runs, adjustable & set(fixed))
    notes += _mixed_settings(spec, selected)
    return TableReport(spec, aggregate(spec, runs), len(selected), notes)


def _why_empty(spec: TableSpec, runs: list[RunRecord], adjustable: set[str]) -> list[str]:
    """For a table without runs: the settings (budget, init, dataset, recipe) of runs that
    would fill its cells but for those settings, and the options that select them."""
    loose = dataclasses.replace(spec, fixed={k: v for k, v in spec.fixed.items() if k not in adjustable})
    found = Counter(
        tuple((key, run.params.get(key, "(not set)")) for key in sorted(adjustable)
              if run.params.get(key, "(not set)") != spec.fixed[key])
        for run in _select(loose, runs)
    )
    options_for = {"budget.name": "budget", "init.name": "init", "dataset.name": "dataset"}
    hints = []
    for settings, n in found.most_common(5):
        shown = ", ".join(f"{key}={value}" for key, value in settings)
        select = " ".join(f"{options_for.get(key, 'where.' + key)}={value}" for key, value in settings)
        hints.append(f"No runs with this table's settings, but {n} run(s) of its cells with {shown}: "
                     f"`{select}` selects them.")
    return hints


def _is_setting(key: str) -> bool:
    return key not in _NOT_SETTINGS and not key.startswith(_NOT_SETTINGS_PREFIXES)


def _mixed_settings(spec: TableSpec, selected: list[RunRecord]) -> list[str]:
    """Settings that differ between finished runs of one cell (seed aside): a hint that runs of
    different experiments (say another lr) share a cell; `where.KEY=VALUE` separates them."""
    differing: dict[str, set[str]] = {}
    for row in spec.rows:
        if row.match is None:
            continue
        for column in spec.columns:
            cell = [run for run in selected if run.status == "FINISHED"
                    and matches(row.match, run.params) and matches(column.match, run.params)]
            if len(cell) < 2:
                continue
            shared = set.intersection(*(set(run.params) for run in cell))
            for key in filter(_is_setting, shared):
                values = {run.params[key] for run in cell}
                if len(values) > 1:
                    differing.setdefault(key, set()).update(values)
    if not differing:
        return []
    listed = "; ".join(f"{key}: {', '.join(sorted(values))}" for key, values in sorted(differing.items()))
    return [f"Some cells mix runs with different settings ({listed}); `where.KEY=VALUE` keeps one."]


# --- output -----------------------------------------------------------------------------------


def markdown(report: TableReport, options: Options) -> str:
    counts = report.counts()
    summary = (f"Runs: {report.runs} from {options.uri}; cells: {counts['ok']} with results, "
               f"{counts['failed']} failed, {counts['missing']} missing.")
    notes = "".join(f"\nNote: {note}\n" for note in report.notes)
    return to_markdown(report.spec, report.cells) + f"\n{summary}\n{notes}"


def write(report: TableReport, text: str, out: Path) -> Path:
    folder = out / report.spec.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{report.spec.name}.md").write_text(text)
    to_csv(report.spec, report.cells, folder / f"{report.spec.name}.csv")
    to_png(report.spec, report.cells, folder / f"{report.spec.name}.png")
    return folder


def _store_missing(uri: str) -> bool:
    """A local store (SQLite file or folder) that does not exist: read as empty, not created."""
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):].split("?")[0]
        return path != ":memory:" and not Path(path).exists()
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme in ("", "file"):
        return not Path(parsed.path if parsed.scheme else uri).exists()
    return False


def log_report(options: Options, reports: list[TableReport], folders: list[Path]) -> str:
    tracker = tracking.Tracker(options.uri, REPORTS_EXPERIMENT)
    name = f"report-{options.table_arg}-{options.budget}"
    run_id = tracker.start(name, {f"{tracking.TAG}report": "1",
                                  f"{tracking.TAG}table": options.table_arg}).info.run_id
    params = {"table": options.table_arg, "budget": options.budget, "init": str(options.init),
              "dataset": options.dataset, "metric": str(options.metric),
              **{f"where.{k}": v for k, v in options.where.items()}}
    metrics: dict[str, float] = {}
    for report in reports:
        params[f"{report.spec.name}.dataset"] = report.spec.fixed.get("dataset.name", "(none)")
        counts = report.counts()
        metrics |= {f"{report.spec.name}.runs": report.runs,
                    **{f"{report.spec.name}.cells_{s}": counts[s] for s in ("ok", "failed", "missing")}}
    tracker.log_params(run_id, params)
    tracker.log_metrics(run_id, metrics)
    try:
        for report, folder in zip(reports, folders):
            tracker.client.log_artifacts(run_id, str(folder), report.spec.name)
    except BaseException:
        tracker.end(run_id, "FAILED")
        raise
    tracker.end(run_id, "FINISHED")
    return name


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help", "help") for arg in argv):
        print(USAGE)
        return 0
    try:
        options = parse_args(argv)
    except UsageError as err:
        print(f"error: {err}\n\n{USAGE}", file=sys.stderr)
        return 2

    missing_store = _store_missing(options.uri)
    runs: list[RunRecord] = []
    if not missing_store:
        try:
            tracking._check_reachable(options.uri)
            runs = load_runs(options.uri)
        except Exception as err:  # an unreadable store: one line, no traceback
            print(f"error: cannot read MLflow runs from {options.uri}: {err}", file=sys.stderr)
            return 1
    if not runs:
        where = "does not exist" if missing_store else "holds no runs in experiments dedl or dedl-*"
        print(f"The MLflow store {options.uri} {where}: every cell shows as missing. Run a table "
              f"first (make tableN, or python -m dedl_experiments -m +experiment=tableN), or pass "
              f"tracking.uri=... (or set MLFLOW_TRACKING_URI).", file=sys.stderr)

    reports, folders, texts = [], [], []
    for name in options.tables:
        report = build(TABLES[name], runs, options)
        text = markdown(report, options)
        reports.append(report)
        texts.append(text)
        folders.append(write(report, text, options.out))
    print("\n".join(texts))

    where = options.out / (options.tables[0] if len(options.tables) == 1 else "<table>")
    print(f"Written to {where}/ (.md, .csv, .png).")
    if missing_store:
        print("Not logged to MLflow: the store does not exist.")
        return 0
    try:
        name = log_report(options, reports, folders)
    except Exception as err:
        print(f"warning: the report was not logged to MLflow ({options.uri}): {err}", file=sys.stderr)
        return 0
    print(f"Logged as MLflow run {name} in experiment {REPORTS_EXPERIMENT} of {options.uri}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
