"""`python -m dedl_experiments.report` over real runs: a tiny Table 2 sweep through the CLI, a
failed run, the report's cells, files and MLflow run; reruns skip finished cells and `force`
reruns are not double-counted. Then the report's run selection on hand-made records (fast).
(Named test_report_cli.py: tests/unit/report/test_report.py exists, and pytest cannot collect two test
modules of one basename from folders without __init__.py.)"""

from __future__ import annotations

import csv
import re
import statistics
from pathlib import Path

import mlflow
import pytest
from omegaconf import OmegaConf

from conftest import TINY, compose_config, run_cli
from dedl_experiments.tracking import cells
from dedl_experiments.report.definition import tables
from dedl_experiments.report.cells.aggregate import RunRecord
from dedl_experiments.report.build import build
from dedl_experiments.report.cli import main
from dedl_experiments.report.options import Options, UsageError, parse_args
from dedl_experiments.report.loading.mlflow_runs import load_runs
from dedl_experiments.tasks import task_class

slow = pytest.mark.slow
# The package's tables, each read from its experiment file, and the claims resting on them.
TABLES = {name: tables.spec(name) for name in tables.names()}
CLAIMS = tables.claims()
# The paper's segmentation recipe (Table 2's): runs of ablations outside the tables differ in it.
RECIPE = TABLES["table2"].recipe

REPORT = "dedl_experiments.report"
CELL = ("ResNet-18", "UNet / Without AE")
FAILED_CELL = ("ResNet-18", "UNet / With ReLU AE")


def client_for(cwd: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")


def job_runs(cwd: Path) -> list:
    client = client_for(cwd)
    experiment = client.get_experiment_by_name("dedl-table2")
    return [] if experiment is None else client.search_runs([experiment.experiment_id])


def log_failed_run(cwd: Path, overrides: list[str]) -> str:
    """A FAILED run of the cell `overrides` compose to, recorded as a job records one: on the
    data (digest) and device of the sweep's finished runs."""
    cfg = compose_config(overrides)
    client = client_for(cwd)
    experiment_id = client.get_experiment_by_name("dedl-table2").experiment_id
    finished = job_runs(cwd)[0].data.tags
    digest = finished.get("dedl.dataset_digest")
    tags = {"dedl.cell_key": cells.cell_key(cfg, digest), "dedl.table": "table2", "dedl.task": "segmentation",
            "dedl.seed": str(cfg.seed), "dedl.failure": "NonFiniteLoss: loss is nan",
            **{k: v for k, v in finished.items()
               if k in ("dedl.dataset_digest", "dedl.dataset_name", "dedl.device", "dedl.device_name")}}
    run = client.create_run(experiment_id, run_name=task_class(cfg).run_name(cfg), tags=tags)
    params = [mlflow.entities.Param(k, v) for k, v in
              cells.flatten(OmegaConf.to_container(cfg, resolve=True)).items()]
    for i in range(0, len(params), 100):
        client.log_batch(run.info.run_id, params=params[i:i + 100])
    client.set_terminated(run.info.run_id, status="FAILED")
    return run.info.run_id


def read_csv(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    with path.open() as handle:
        return {(line["row"], line["column"]): line for line in csv.DictReader(handle)}


def newest_values(runs: list, app: str) -> dict[str, float]:
    """test_iou of the newest FINISHED run per seed of one app."""
    values = {}
    for run in sorted(runs, key=lambda r: r.info.start_time):
        if run.info.status == "FINISHED" and run.data.params["app.name"] == app:
            values[run.data.params["seed"]] = run.data.metrics["test_iou"]
    return values


def check_report(cwd: Path, expected: dict[str, float], run_ids: set[str]) -> str:
    proc = run_cli(["table=table2", "budget=smoke", "init=random"], cwd, module=REPORT)
    lines = read_csv(cwd / "reports" / "table2" / "table2.csv")
    ours = lines[CELL]
    assert (ours["status"], int(ours["n"]), int(ours["failed"])) == ("ok", 2, 0)
    assert set(ours["run_ids"].split(";")) == run_ids and ours["run_links"] == ""  # links: servers only
    assert (ours["device"], ours["runs_timed"], ours["missing_runs"]) == ("CPU", "2", "3")
    assert ours["device_hours"].startswith("CPU=") and ours["projection_basis"] == "the cell's own runs"
    assert float(ours["mean"]) == pytest.approx(statistics.fmean(expected.values()))
    assert float(ours["std"]) == pytest.approx(statistics.stdev(expected.values()))
    assert sorted(float(v) for v in ours["values"].split(";")) == pytest.approx(sorted(expected.values()))
    failed = lines[FAILED_CELL]
    assert (failed["status"], failed["n"], failed["failed"], failed["mean"]) == ("failed", "0", "1", "")
    others = [line for key, line in lines.items() if key not in (CELL, FAILED_CELL)]
    assert len(others) == 22 and {line["status"] for line in others} == {"missing"}
    assert {line["mean"] for line in others} == {""}

    row = next(line for line in proc.stdout.splitlines() if line.startswith("| ResNet-18 |"))
    entries = [entry.strip() for entry in row.strip("|").split("|")]
    assert entries[1].startswith(f"{statistics.fmean(expected.values()):.4f} ± ") and entries[1].endswith("(n=2)")
    assert entries[3] == "failed (1)" and entries[5] == "missing"
    assert "| ResNet-34 | missing | 0.4774 |" in proc.stdout
    assert "`budget.name=smoke`" in proc.stdout and "`init.name=random`" in proc.stdout
    assert "`dataset.name=synthetic`" in proc.stdout
    digest = job_runs(cwd)[0].data.tags["dedl.dataset_digest"]
    assert f"Dataset: synthetic (digest {digest[:8]})" in proc.stdout

    # The comparisons under the table: n pairs, difference, CI, p, Holm verdict, the paper's delta.
    assert "#### Paired comparisons (B - A; unit of replication the seed: runs paired by seed;" in proc.stdout
    assert "| UNet: none vs ReLU | ResNet-18 | — | — | — | — | — | failed (ReLU) | +0.0261 |" in proc.stdout
    assert "| UNet: none vs GELU | ResNet-18 | — | — | — | — | — | missing (GELU) | +0.0441 |" in proc.stdout
    # Its cost, measured and projected, by device kind.
    assert "#### Cost" in proc.stdout and "CPU-hours over 2 timed run(s) (CPU: " in proc.stdout
    assert "Missing: 118 run(s) of a full sweep (5 per cell), projected" in proc.stdout
    # The claims resting on Table 2: the paper's support and ours.
    assert "#### The paper's claims on table2" in proc.stdout
    assert "budget=smoke runs, not on the paper's training budget" in proc.stdout
    for claim in (c for c in CLAIMS if c.table == "table2"):
        assert f"- **{claim.id}** ({claim.source}; rests on table2)" in proc.stdout
    assert "  - Ours: **inconclusive**: " in proc.stdout

    folder = cwd / "reports" / "table2"
    written = (folder / "table2.md").read_text()
    assert written.startswith("### table2:") and "#### Runs per cell" in written
    assert all(run_id in written for run_id in run_ids) and "#### Runs per cell" not in proc.stdout
    comparisons = list(csv.DictReader((folder / "table2_comparisons.csv").open()))
    assert len(comparisons) == 24 and {line["status"] for line in comparisons} == {"failed", "missing"}
    assert (folder / "table2.png").read_bytes().startswith(b"\x89PNG")
    return proc.stdout


@slow
def test_report_over_a_tiny_table2_sweep(tmp_path: Path, shared_data_dir: Path) -> None:
    sweep = ["-m", *TINY, f"data_dir={shared_data_dir}", "+experiment=table2", "encoder=resnet18",
             "architecture=unet", "app=none", "seed=26,77"]
    run_cli(sweep, tmp_path)
    runs = job_runs(tmp_path)
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["dedl.table"] for r in runs} == {"table2"}
    log_failed_run(tmp_path, [*TINY, f"data_dir={shared_data_dir}", "+experiment=table2",
                              "encoder=resnet18", "architecture=unet", "app=relu", "seed=26"])

    finished = {r.info.run_id for r in job_runs(tmp_path) if r.info.status == "FINISHED"}
    check_report(tmp_path, newest_values(job_runs(tmp_path), "none"), finished)
    client = client_for(tmp_path)
    reports = client.get_experiment_by_name("dedl-reports")
    [report] = client.search_runs([reports.experiment_id])
    assert report.info.run_name == "report-table2-smoke" and report.info.status == "FINISHED"
    assert report.data.params["table2.dataset"] == "synthetic"
    assert report.data.metrics["table2.cells_ok"] == 1 and report.data.metrics["table2.cells_failed"] == 1
    artifacts = {a.path for a in client.list_artifacts(report.info.run_id, "table2")}
    assert artifacts == {"table2/table2.md", "table2/table2.csv", "table2/table2_comparisons.csv", "table2/table2.png",
                         "table2/table2_forest.png"}

    # The same sweep again runs nothing: both cells are FINISHED.
    again = run_cli(sweep, tmp_path)
    assert (again.stdout + again.stderr).count("skip seg-") == 2
    assert "0 runs in sqlite:///mlflow.db, 2 cells skipped" in again.stdout
    assert len(job_runs(tmp_path)) == 3  # two jobs and the failed run

    # force=true reruns a cell; the report counts its newest run only (n stays 2).
    run_cli([*sweep[:-1], "seed=26", "force=true"], tmp_path)
    runs = job_runs(tmp_path)
    assert len(runs) == 4
    newest = {run.data.params["seed"]: run for run in sorted(runs, key=lambda r: r.info.start_time)
              if run.info.status == "FINISHED"}
    check_report(tmp_path, newest_values(runs, "none"), {run.info.run_id for run in newest.values()})


@slow
@pytest.mark.fresh_store
def test_report_of_an_empty_store_shows_every_cell_missing(tmp_path: Path) -> None:
    proc = run_cli(["table=tiling", f"out={tmp_path / 'out'}"], tmp_path, module=REPORT)
    assert "does not exist: every cell shows as missing" in proc.stderr
    assert "| UNet++ ResNet-34 | missing | 0.9834 | missing | missing | missing | missing |" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert {p.name for p in (tmp_path / "out" / "tiling").iterdir()} == {
        "tiling.md", "tiling.csv", "tiling_comparisons.csv", "tiling.png", "tiling_forest.png"}
    assert not (tmp_path / "mlflow.db").exists()  # a report does not create a store


@slow
def test_report_rejects_an_unknown_table(tmp_path: Path) -> None:
    proc = run_cli(["table=table14"], tmp_path, module=REPORT, check=False)
    assert proc.returncode == 2
    assert "unknown table 'table14'" in proc.stderr and "table13, tiling, all" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- run selection (no subprocess) ------------------------------------------------------------


def record(status: str = "FINISHED", value: float = 0.5, **params: str) -> RunRecord:
    """A run of Table 2's UNet / ResNet-18 / no-APP cell as a smoke job records it."""
    base = {"task.name": "segmentation", "init.name": "random", "tiling.size": "480",
            "app_lr_schedule.name": "constant", "architecture.name": "unet", "encoder.name": "resnet18",
            "app.name": "none", "budget.name": "smoke", "dataset.name": "synthetic",
            **RECIPE, "train.patience": "5", "optimizer.lr": "0.00036", "seed": "26"}
    return RunRecord(run_id=str(id(params)) + str(value), status=status, params={**base, **params},
                     metrics={"test_iou": value, "train_time_s": 60.0})


def options(*args: str) -> Options:
    return parse_args(["table=table2", *args])


def cell(report, row: str = CELL[0], column: str = CELL[1]):
    return next(c for c in report.cells if (c.row, c.column) == (row, column))


def test_budgets_and_datasets_are_never_mixed() -> None:
    runs = [record(value=0.4), record(value=0.6, seed="77"), record(value=0.9, **{"budget.name": "paper"}),
            record(value=0.1, **{"dataset.name": "myositis"})]
    smoke = build(TABLES["table2"], runs, options("budget=smoke", "init=random"))
    # Real data wins over synthetic data; the note names what was left out.
    assert cell(smoke).values == [0.1] and smoke.spec.fixed["dataset.name"] == "myositis"
    assert any("synthetic, recorded before dataset digests (cannot tell which data) (2 runs;" in note
               for note in smoke.notes)
    synthetic = build(TABLES["table2"], runs, options("budget=smoke", "init=random", "dataset=synthetic"))
    assert cell(synthetic).values == [0.4, 0.6]
    paper = build(TABLES["table2"], runs, options("init=random"))
    assert cell(paper).values == [0.9]
    assert build(TABLES["table2"], runs, options("budget=smoke")).runs == 0  # init stays imagenet


def test_init_option_and_tables_that_compare_inits() -> None:
    effnet = {"encoder.name": "efficientnet_b0"}
    runs = [record(**effnet), record(**effnet, **{"init.name": "advprop"})]
    report = build(TABLES["table12"], runs, options("budget=smoke", "init=random"))
    assert any("init=random ignored" in note for note in report.notes)
    assert cell(report, "EfficientNet-B0", "Advprop").n == 1
    assert cell(report, "EfficientNet-B0", "ImageNet").status == "missing"


def test_recipe_filter_where_and_mixed_settings() -> None:
    runs = [record(value=0.4), record(value=0.2, seed="334", **{"lr_schedule.name": "step"}),
            record(value=0.3, seed="77", **{"optimizer.lr": "0.001"})]
    report = build(TABLES["table2"], runs, options("budget=smoke", "init=random"))
    assert sorted(cell(report).values) == [0.3, 0.4]  # the step-schedule ablation is left out
    assert any("optimizer.lr: 0.00036, 0.001" in note for note in report.notes)
    step = build(TABLES["table2"], runs, options("budget=smoke", "init=random", "where.lr_schedule.name=step"))
    assert cell(step).values == [0.2]
    both = build(TABLES["table2"], runs, options("budget=smoke", "init=random", "where.lr_schedule.name=*",
                                                 "where.optimizer.lr=0.00036"))
    assert sorted(cell(both).values) == [0.2, 0.4]


def test_empty_table_says_which_options_select_runs() -> None:
    report = build(TABLES["table6"], [record()], options())
    assert report.runs == 0
    assert any("`budget=smoke init=random` selects them" in note for note in report.notes)
    # A table's own settings get no such hint: UNet runs do not belong in the UNet++ table.
    assert build(TABLES["table7"], [record()], options("budget=smoke", "init=random")).notes == []


@pytest.mark.parametrize("args, message", [
    (["table=table14"], "unknown table 'table14'"),
    ([], "which table?"),
    (["table=table2", "budget=huge"], "unknown budget 'huge'; valid: paper, smoke"),
    (["table=table2", "colour=red"], "unknown option(s) colour"),
    (["table2"], "is not key=value"),
])
def test_bad_arguments(args: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_args(args)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_one_run_per_cell_seed_and_fold(tmp_path: Path) -> None:
    """force=true reruns and retried failures count once; classification folds count each."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("dedl-table2")
    other = client.create_experiment("dedl")
    client.create_experiment("dedl-reports")

    def run(experiment_id, start, status, value=None, **tags):
        created = client.create_run(experiment_id, start_time=start, tags=tags)
        if value is not None:
            client.log_metric(created.info.run_id, "test_iou", value)
        client.set_terminated(created.info.run_id, status=status)
        return created.info.run_id

    run(experiment, 1, "FINISHED", 0.1, **{"dedl.cell_key": "a"})
    newest = run(other, 3, "FINISHED", 0.3, **{"dedl.cell_key": "a"})  # force rerun, other experiment
    run(experiment, 4, "FAILED", **{"dedl.cell_key": "a"})  # a later failure does not hide it
    run(experiment, 1, "FAILED", **{"dedl.cell_key": "b"})
    failed = run(experiment, 2, "KILLED", **{"dedl.cell_key": "b"})
    old_parent = run(experiment, 1, "FINISHED", **{"dedl.cell_key": "c", "dedl.parent": "1"})
    parent = run(experiment, 5, "FINISHED", **{"dedl.cell_key": "c", "dedl.parent": "1"})
    for p in (old_parent, parent):
        for fold in "01":
            run(experiment, 6 if p == parent else 2, "FINISHED", 0.5,
                **{"mlflow.parentRunId": p, "dedl.fold": fold})
    records = load_runs(uri)
    by_cell = {}
    for r in records:
        key = r.tags.get("dedl.cell_key") or r.tags["mlflow.parentRunId"]
        by_cell.setdefault(key, []).append(r.run_id)
    assert by_cell["a"] == [newest] and by_cell["b"] == [failed]
    assert len(by_cell[parent]) == 2 and old_parent not in by_cell
    assert len(records) == 4


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_report_of_all_tables_ends_with_every_claims_verdict(tmp_path: Path, capsys) -> None:
    """`table=all` in-process over a hand-made store: per table its comparisons and claims, then
    the verdict of every claim, written to claims/claims.md and .csv and logged with the rest."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("dedl-table2")
    base = {"task.name": "segmentation", "init.name": "imagenet", "tiling.size": "480",
            "app_lr_schedule.name": "constant", "architecture.name": "unet", "encoder.name": "resnet18",
            "budget.name": "paper", "dataset.name": "synthetic", "train.patience": "5", **RECIPE}
    for app, gain in (("none", 0.0), ("gelu", 0.05)):
        for seed, noise in zip((26, 77, 334), (0.0, 0.002, -0.001)):
            run = client.create_run(experiment, tags={"dedl.seed": str(seed), "dedl.device": "cpu",
                                                      "dedl.dataset_digest": "ab" * 32, "dedl.dataset_name": "synthetic"})
            run_id = run.info.run_id
            client.log_batch(run_id, params=[mlflow.entities.Param(k, v) for k, v in
                                             {**base, "app.name": app, "seed": str(seed)}.items()])
            for key, value in {"test_iou": 0.40 + gain + noise, "train_time_s": 100.0, "test_time_s": 5.0}.items():
                client.log_metric(run_id, key, value)
            client.set_terminated(run_id)

    assert main(["table=all", f"tracking.uri={uri}", f"out={tmp_path / 'out'}"]) == 0
    out = capsys.readouterr().out
    summary = out[out.index("### The paper's claims: verdicts"):]
    assert all(f"| {claim.id} |" in summary for claim in CLAIMS)
    assert "| UNet: none vs GELU | ResNet-18 | 3 | +0.0500 |" in out
    assert "| none vs GELU | ResNet-18 | 3 | +0.0500 |" in out  # Table 6 shows the same runs
    assert "All tables' runs (each run once): 0.175 CPU-hours over 6 timed run(s)." in summary
    claims = (tmp_path / "out" / "claims" / "claims.md").read_text()
    assert claims.startswith("### The paper's claims: verdicts")
    with (tmp_path / "out" / "claims" / "claims.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == len(CLAIMS)
    [report] = client.search_runs([client.get_experiment_by_name("dedl-reports").experiment_id])
    assert report.data.metrics["claims_inconclusive"] == len(CLAIMS)
    assert "claims/claims.csv" in {a.path for a in client.list_artifacts(report.info.run_id, "claims")}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_an_unknown_metric_is_named_and_nothing_is_written(tmp_path: Path, capsys) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    run = client.create_run(client.create_experiment("dedl-table2"))
    for key, value in {"test_iou": 0.5, "test_dice": 0.6}.items():
        client.log_metric(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id)
    out = tmp_path / "out"
    assert main(["table=table2", "metric=nosuch", f"tracking.uri={uri}", f"out={out}"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == "error: metric=nosuch: no run logged a metric of that name; the runs' metrics: test_dice, test_iou"
    assert not out.exists() and client.get_experiment_by_name("dedl-reports") is None


@pytest.mark.parametrize("given_by", ["tracking.uri", "MLFLOW_TRACKING_URI"])
@pytest.mark.parametrize("uri, problem", [("sqlite://", " is an in-memory SQLite store"),
                                          ("sqlite:///:memory:", " is an in-memory SQLite store"),
                                          ("bogus://x", ": unknown scheme 'bogus'")])
def test_a_store_the_report_cannot_use_is_one_line_naming_where_it_was_set(
        tmp_path: Path, capsys, monkeypatch, given_by: str, uri: str, problem: str) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    args = ["table=table2", f"out={tmp_path / 'out'}"]
    if given_by == "tracking.uri":
        args.append(f"tracking.uri={uri}")
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert main(args) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {given_by}={uri}{problem}"), line
    assert not (tmp_path / "out").exists()
