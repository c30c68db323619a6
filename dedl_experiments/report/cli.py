"""`python -m dedl_experiments.report table=table2 [budget=smoke] [init=random] ...`

Sets our runs beside the paper's numbers and concludes: per table the cells (mean ± std beside
the printed values), the paired comparisons of its ablation axes with Holm-corrected verdicts,
what its runs cost (device-hours, and a projection for missing runs), the paper's claims that
rest on it with the paper's own support and ours; `table=all` ends with every claim's verdict.
Printed as Markdown and written to `<out>/<table>/`: `<table>.md` (also listing each cell's
MLflow runs), `<table>.csv` (one line per cell: raw numbers, run ids, cost),
`<table>_comparisons.csv`, `<table>.png`, `<table>_forest.png` (forest.py), and for a table that
sweeps the training-set size `<table>_learning_curves.png` (report/analysis/curves.py); with `table=all`
also `<out>/claims/claims.md` and
`claims.csv`. All are logged as artifacts of a run `report-<table>-<budget>` in the MLflow
experiment `dedl-reports`. Which runs count: see build.py; datasets by content: datasets.py.
"""

from __future__ import annotations

import sys
import urllib.parse
from pathlib import Path

from dedl_experiments.tracking import mlflow_store, run_tags, store_checks
from dedl_experiments.report.rendering import fmt, render_curves
from dedl_experiments.report.definition import tables
from dedl_experiments.report.cells.aggregate import RunRecord
from dedl_experiments.report.build import TableReport, build
from dedl_experiments.report.analysis.cost import device_kind, run_seconds
from dedl_experiments.report.rendering.forest import to_forest_png
from dedl_experiments.report.loading.mlflow_runs import load_runs
from dedl_experiments.tracking.run_tags import REPORTS_EXPERIMENT
from dedl_experiments.report.options import USAGE, Options, UsageError, parse_args
from dedl_experiments.report.rendering.render import to_csv, to_markdown, to_png
from dedl_experiments.report.rendering.render_analysis import (
    claims_csv, claims_markdown, claims_summary, comparisons_csv, comparisons_markdown, cost_markdown, runs_markdown,
)
from dedl_experiments.report.analysis.power import power_rows
from dedl_experiments.report.rendering.render_power import power_markdown
from dedl_experiments.report.analysis.verdicts import Verdict, evaluate


def _claims_note(options: Options) -> str:
    if options.budget == "paper":
        return ""
    return (f"Our verdicts rest on budget={options.budget} runs, not on the paper's training budget: they "
            "show the machinery, not the paper's results.")


def seeds_markdown(report: TableReport, effect: str | float) -> str:
    """The seeds each tested comparison needs, and what settling the inconclusive ones costs."""
    cost, seeds = report.cost, len(report.spec.seeds)
    runs_per_seed = max(1, cost.expected // seeds) if cost is not None and seeds else 1
    return power_markdown(power_rows(report.comparisons, effect), effect, report.cells, cost, runs_per_seed)


def markdown(report: TableReport, options: Options, verdicts: list[Verdict] = ()) -> str:
    """What is printed for one table (the written .md adds the runs of each cell)."""
    counts = report.counts()
    summary = (f"Runs: {report.runs} from {options.uri}; cells: {counts['ok']} with results, "
               f"{counts['failed']} failed, {counts['missing']} missing"
               + (f", {counts['not_logged']} not logged" if counts["not_logged"] else "") + ".")
    if report.dataset is not None:
        summary += f" Dataset: {report.dataset.describe(report.roots)}."
    notes = "".join(f"\nNote: {note}\n" for note in report.notes)
    parts = [to_markdown(report.spec, report.cells) + f"\n{summary}\n{notes}",
             comparisons_markdown(report.comparisons, by_fold=report.spec.folds is not None),
             seeds_markdown(report, options.effect or report.spec.effect),
             render_curves.markdown(report.curves) if report.curves else "",
             cost_markdown(report.cost) if report.cost else "",
             claims_markdown(list(verdicts), f"The paper's claims on {report.spec.name}", _claims_note(options))]
    return "\n".join(part for part in parts if part)


def write(report: TableReport, text: str, out: Path, uri: str = "") -> Path:
    folder = out / report.spec.name
    folder.mkdir(parents=True, exist_ok=True)
    name = report.spec.name
    runs = runs_markdown(report.cells, uri)
    (folder / f"{name}.md").write_text(text + (f"\n{runs}" if runs else ""))
    to_csv(report.spec, report.cells, folder / f"{name}.csv", report.cost, uri)
    comparisons_csv(name, report.comparisons, folder / f"{name}_comparisons.csv")
    to_png(report.spec, report.cells, folder / f"{name}.png")
    if report.comparisons:
        to_forest_png(report.spec, report.comparisons, folder / f"{name}_forest.png")
    if report.curves is not None:
        render_curves.to_png(report.curves, folder / f"{name}_learning_curves.png")
    return folder


def write_claims(verdicts: list[Verdict], text: str, out: Path) -> Path:
    folder = out / "claims"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "claims.md").write_text(text)
    claims_csv(verdicts, folder / "claims.csv")
    return folder


def all_tables_cost(reports: list[TableReport]) -> str:
    """Each run once, however many tables show it."""
    runs: dict[str, RunRecord] = {run.run_id: run for report in reports for cell in report.cells for run in cell.runs}
    seconds: dict[str, float] = {}
    timed = 0
    for run in runs.values():
        spent = run_seconds(run)
        if spent is not None:
            seconds[device_kind(run)] = seconds.get(device_kind(run), 0.0) + spent
            timed += 1
    spent = " + ".join(f"{fmt.hours(s)} {kind}-hours" for kind, s in sorted(seconds.items())) or "nothing logged"
    return f"All tables' runs (each run once): {spent} over {timed} timed run(s).\n"


def _store_missing(uri: str) -> bool:
    """A local store (SQLite file or folder) that does not exist: read as empty, not created."""
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):].split("?")[0]
        return path != ":memory:" and not Path(path).exists()
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme in ("", "file"):
        return not Path(parsed.path if parsed.scheme else uri).exists()
    return False


def unknown_metric(metric: str | None, runs: list[RunRecord]) -> str | None:
    """Why `metric=` names no metric of the runs (a typo), or None; with no runs it cannot be
    told, and every cell shows as missing anyway."""
    logged = sorted({name for run in runs for name in run.metrics})
    if metric is None or not runs or metric in logged:
        return None
    return f"metric={metric}: no run logged a metric of that name; the runs' metrics: {', '.join(logged)}"


def log_report(options: Options, reports: list[TableReport], folders: list[Path],
               verdicts: list[Verdict] = ()) -> str:
    tracker = mlflow_store.Tracker(options.uri, REPORTS_EXPERIMENT)
    name = f"report-{options.table_arg}-{options.budget}"
    run_id = tracker.start(name, {f"{run_tags.TAG}report": "1",
                                  f"{run_tags.TAG}table": options.table_arg}).info.run_id
    params = {"table": options.table_arg, "budget": options.budget, "init": str(options.init),
              "dataset": options.dataset, "metric": str(options.metric),
              **{f"where.{k}": v for k, v in options.where.items()}}
    metrics: dict[str, float] = {}
    for report in reports:
        params[f"{report.spec.name}.dataset"] = report.spec.fixed.get("dataset.name", "(none)")
        if report.dataset is not None:
            params[f"{report.spec.name}.dataset_group"] = report.dataset.ident
        counts = report.counts()
        metrics |= {f"{report.spec.name}.runs": report.runs,
                    **{f"{report.spec.name}.cells_{s}": counts[s] for s in ("ok", "failed", "missing")}}
        if report.cost is not None:
            metrics |= {f"{report.spec.name}.{kind}_hours": seconds / 3600 for kind, seconds in report.cost.measured.items()}
            metrics |= {f"{report.spec.name}.{kind}_hours_projected": seconds / 3600
                        for kind, seconds in report.cost.projected.items()}
    for verdict in verdicts:
        key = "claims_" + verdict.ours.replace(" ", "_")
        metrics[key] = metrics.get(key, 0) + 1
    tracker.log_params(run_id, params)
    tracker.log_metrics(run_id, metrics)
    try:
        for folder in folders:
            tracker.client.log_artifacts(run_id, str(folder), folder.name)
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

    try:
        store_checks.check_store_uri(options.uri)  # e.g. an in-memory store, which holds no runs
    except store_checks.TrackingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    missing_store = _store_missing(options.uri)
    runs: list[RunRecord] = []
    if not missing_store:
        try:
            store_checks.check_store(options.uri)
            runs = load_runs(options.uri)
        except store_checks.TrackingError as err:  # a bad setting: one line, exit code 2
            print(f"error: {err}", file=sys.stderr)
            return 2
        except Exception as err:  # an unreadable store: one line, no traceback
            print(f"error: cannot read MLflow runs from {options.uri}: {err}", file=sys.stderr)
            return 1
    problem = unknown_metric(options.metric, runs)
    if problem:  # before any file is written: the report would show every cell "not logged"
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if not runs:
        where = "does not exist" if missing_store else "holds no runs in experiments dedl or dedl-*"
        print(f"The MLflow store {options.uri} {where}: every cell shows as missing. Run a table "
              f"first (make tableN, or python -m dedl_experiments -m +experiment=tableN), or pass "
              f"tracking.uri=... (or set MLFLOW_TRACKING_URI).", file=sys.stderr)

    try:
        specs = [tables.spec(name, options.search_path) for name in options.tables]
    except ValueError as err:  # an experiment file the report cannot read as a table
        print(f"error: {err}", file=sys.stderr)
        return 2
    reports = [build(spec, runs, options) for spec in specs]
    evidence = {report.spec.name: report.evidence() for report in reports}
    verdicts = [evaluate(claim, evidence[claim.table]) for report in reports for claim in report.spec.claims]
    folders, texts = [], []
    for report in reports:
        text = markdown(report, options, [v for v in verdicts if v.claim.table == report.spec.name])
        texts.append(text)
        folders.append(write(report, text, options.out, options.uri))
    if options.table_arg == "all":
        summary = claims_summary(verdicts, _claims_note(options)) + "\n" + all_tables_cost(reports)
        texts.append(summary)
        folders.append(write_claims(verdicts, summary, options.out))
    print("\n".join(texts))

    single = len(options.tables) == 1
    where = options.out / (options.tables[0] if single else "<table>")
    curves = ", _learning_curves.png" if any(report.curves for report in reports) else ""
    print(f"Written to {where}/ (.md with the runs of each cell, .csv, _comparisons.csv, .png, _forest.png{curves})"
          + ("" if single else f" and {options.out / 'claims'}/ (claims.md, claims.csv)") + ".")
    if missing_store:
        print("Not logged to MLflow: the store does not exist.")
        return 0
    try:
        name = log_report(options, reports, folders, verdicts)
    except Exception as err:
        print(f"warning: the report was not logged to MLflow ({options.uri}): {err}", file=sys.stderr)
        return 0
    print(f"Logged as MLflow run {name} in experiment {REPORTS_EXPERIMENT} of {options.uri}.")
    return 0
