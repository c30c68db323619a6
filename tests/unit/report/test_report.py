"""Aggregation of run records into paper tables, and the rendered outputs."""

import csv
import itertools
import statistics

import pytest
from report_records import SEEDS, TABLES, run_in

from conftest import compose_config
from dedl_experiments.config import components
from dedl_experiments.report.cells.aggregate import Cell, RunRecord, aggregate
from dedl_experiments.report.build import build
from dedl_experiments.report.options import parse_args
from dedl_experiments.report.definition.spec import TableSpec
from dedl_experiments.report.rendering.render import format_duration, run_link, to_csv, to_markdown, to_png
from dedl_experiments.tracking.cells import cell_values, flatten

TABLE6 = TABLES["table6"]  # UNet IoU: rows ResNet-18..101, columns no/ReLU/GELU APP
_seeds = itertools.count(1000)


def make_run(
    spec: TableSpec, row: str, column: str, value: float | None, status: str = "FINISHED",
    metrics: dict[str, float] | None = None, **overrides: str
) -> RunRecord:
    """A run whose params place it in (row, column) of spec, unless overridden; a seed of its own
    unless given (a cell counts one run per seed and fold)."""
    overrides.setdefault("seed", str(next(_seeds)))
    row_match = next(r.match for r in spec.rows if r.label == row)
    column_match = next(c.match for c in spec.columns if c.label == column)
    params = {**spec.fixed, **row_match, **column_match, **overrides}
    metrics = dict(metrics or {}) if value is None else {spec.metric: value}
    return RunRecord(run_id=f"{row}/{column}/{value}", status=status, params=params, metrics=metrics)


def cell_at(cells: list[Cell], row: str, column: str) -> Cell:
    return next(cell for cell in cells if (cell.row, cell.column) == (row, column))


def test_finished_runs_give_mean_sample_std_and_n() -> None:
    runs = [make_run(TABLE6, "ResNet-18", "Without AE", value) for value in (0.40, 0.42, 0.44)]
    cell = cell_at(aggregate(TABLE6, runs), "ResNet-18", "Without AE")
    assert (cell.status, cell.n, cell.failed) == ("ok", 3, 0)
    assert cell.mean == pytest.approx(0.42)
    assert cell.std == pytest.approx(0.02)  # ddof=1
    assert cell.values == [0.40, 0.42, 0.44]
    assert cell.published == TABLE6.published[("ResNet-18", "Without AE")]


def test_single_run_has_no_std() -> None:
    cell = aggregate(TABLE6, [make_run(TABLE6, "ResNet-18", "Without AE", 0.4)])[0]
    assert (cell.n, cell.mean, cell.std) == (1, 0.4, None)


def test_cells_follow_table_order_and_default_to_missing() -> None:
    cells = aggregate(TABLE6, [])
    assert [(cell.row, cell.column) for cell in cells] == [
        (row.label, column.label) for row in TABLE6.rows for column in TABLE6.columns
    ]
    assert all(cell.status == "missing" and cell.n == 0 and cell.mean is None for cell in cells)


def test_failed_runs_are_counted_but_not_averaged() -> None:
    runs = [
        make_run(TABLE6, "ResNet-18", "Without AE", 0.4),
        make_run(TABLE6, "ResNet-18", "Without AE", None, status="FAILED"),
        make_run(TABLE6, "ResNet-34", "Without AE", None, status="FAILED"),
        make_run(TABLE6, "ResNet-34", "Without AE", None, status="KILLED"),
        make_run(TABLE6, "ResNet-50", "Without AE", 0.9, status="RUNNING"),
    ]
    cells = aggregate(TABLE6, runs)
    with_value = cell_at(cells, "ResNet-18", "Without AE")
    assert (with_value.status, with_value.n, with_value.failed, with_value.mean) == ("ok", 1, 1, 0.4)
    only_failed = cell_at(cells, "ResNet-34", "Without AE")
    assert (only_failed.status, only_failed.n, only_failed.failed, only_failed.mean) == ("failed", 0, 2, None)
    still_running = cell_at(cells, "ResNet-50", "Without AE")
    assert (still_running.status, still_running.failed) == ("missing", 0)


def test_finished_run_without_the_metric_is_not_logged() -> None:
    """A run older than its metric: "not logged", neither a value nor "missing"."""
    cell = aggregate(TABLE6, [make_run(TABLE6, "ResNet-18", "Without AE", None)])[0]
    assert (cell.status, cell.n, cell.mean) == ("not_logged", 0, None)


def test_runs_outside_fixed_settings_or_any_cell_are_ignored() -> None:
    runs = [
        make_run(TABLE6, "ResNet-18", "Without AE", 0.5, **{"architecture.name": "unetplusplus"}),
        make_run(TABLE6, "ResNet-18", "Without AE", 0.5, **{"tiling.size": "256"}),
        make_run(TABLE6, "ResNet-18", "Without AE", 0.5, **{"encoder.name": "resnet152"}),
        make_run(TABLE6, "ResNet-18", "Without AE", 0.5, **{"app.name": "silu"}),
    ]
    assert all(cell.status == "missing" for cell in aggregate(TABLE6, runs))


def test_ablation_column_selects_its_setting() -> None:
    table3 = TABLES["table3"]
    runs = [
        make_run(table3, "ResNet-18", "UNet / Without Cosine LR", 0.46),
        make_run(table3, "ResNet-18", "UNet / With Cosine LR", 0.41),
        make_run(table3, "ResNet-18", "UNet / With Cosine LR", 0.40, **{"app.name": "gelu"}),  # not table 3
    ]
    cells = aggregate(table3, runs)
    assert cell_at(cells, "ResNet-18", "UNet / Without Cosine LR").values == [0.46]
    assert cell_at(cells, "ResNet-18", "UNet / With Cosine LR").values == [0.41]
    assert cell_at(cells, "ResNet-18", "UNet++ / With Cosine LR").status == "missing"


def test_classification_pools_all_folds_of_all_seeds() -> None:
    table4 = TABLES["table4"]
    runs = [
        make_run(table4, "NFNet-F3", "Test F1-Score", 0.88 + 0.001 * fold, seed=str(seed), fold=str(fold))
        for seed in SEEDS
        for fold in range(6)
    ]
    cell = cell_at(aggregate(table4, runs), "NFNet-F3", "Test F1-Score")
    assert cell.n == 30
    assert cell.mean == pytest.approx(statistics.fmean(0.88 + 0.001 * fold for fold in range(6)))


def test_published_only_row_is_a_reference_cell() -> None:
    table5 = TABLES["table5"]
    any_run = make_run(table5, "NFNet-F3", "Test F1-Score", 0.8)
    cell = cell_at(aggregate(table5, [any_run]), "Van Buren et al. [23]", "Test F1-Score")
    assert (cell.status, cell.n, cell.published.mean) == ("reference", 0, 0.63)


def test_column_metric_override_and_views_of_the_same_runs() -> None:
    """Section 5.1: accuracy and IoU, each with the padding counted (as the paper) and excluded;
    a run older than the padded metrics shows them as not logged."""
    tiling = TABLES["tiling"]
    row = {"architecture.name": "unetplusplus", "encoder.name": "resnet34"}
    params = {**tiling.fixed, **row, "tiling.size": "256"}
    run = RunRecord("r", "FINISHED", params, {"test_pixel_accuracy": 0.95, "test_pixel_accuracy_padded": 0.98,
                                              "test_iou": 0.45})
    cells = aggregate(tiling, [run])
    row = "UNet++ ResNet-34"
    assert cell_at(cells, row, "256 px accuracy, padding counted").mean == 0.98
    assert cell_at(cells, row, "256 px accuracy, padding counted").published.mean == 0.9834
    assert cell_at(cells, row, "256 px accuracy, padding excluded").mean == 0.95
    assert cell_at(cells, row, "256 px accuracy, padding excluded").published is None
    assert cell_at(cells, row, "256 px IoU, padding excluded").mean == 0.45
    assert cell_at(cells, row, "256 px IoU, padding counted").status == "not_logged"
    assert cell_at(cells, row, "480 px IoU, padding excluded").status == "missing"
    text = to_markdown(tiling, cells)
    assert "| 256 px accuracy, padding counted (ours) | 256 px accuracy, padding counted (paper) | " \
           "256 px accuracy, padding excluded (ours) | 256 px IoU, padding counted (ours) | " \
           "256 px IoU, padding excluded (ours) |" in text  # a paper column only where it printed values
    assert f"| {row} | 0.9800 (n=1) | 0.9834 | 0.9500 (n=1) | not logged | 0.4500 (n=1) | missing |" in text


def test_timing_views_time_per_epoch_times_50() -> None:
    """Timing tables show the wall training time and 50 x the mean training epoch, each beside
    the printed time, and say exactly what is timed."""
    table1 = TABLES["table1"]
    runs = [make_run(table1, "ResNet-18", "With APP", None, seed="26",
                     metrics={"train_time_s": 5300.0, "train_epoch_time_mean_s": 100.0,
                              "train_epoch_time_warm_mean_s": 98.0}),
            make_run(table1, "ResNet-18", "Without APP", None, seed="26", metrics={"train_time_s": 5100.0})]
    cells = aggregate(table1, runs)
    assert cell_at(cells, "ResNet-18", "With APP, 50 × epoch").mean == 5000.0
    assert cell_at(cells, "ResNet-18", "Without APP, 50 × epoch").status == "not_logged"
    text = to_markdown(table1, cells)
    assert ("| ResNet-18 | 1h 25m 00s (n=1) | 1h 24m 44s | not logged | 1h 24m 44s | not logged | 1h 24m 44s | "
            "1h 28m 20s (n=1) | 1h 27m 40s | 1h 23m 20s (n=1) | 1h 27m 40s | 1h 21m 40s (n=1) | 1h 27m 40s |") in text
    assert "Timed: `train_time_s` is the wall time of the training loop" in text


@pytest.mark.parametrize(
    ("seconds", "text"), [(5084, "1h 24m 44s"), (5344.4, "1h 29m 04s"), (187.4, "3m 07s"), (5.6, "6s")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def table6_cells() -> list[Cell]:
    runs = [make_run(TABLE6, "ResNet-18", "Without AE", value) for value in (0.40, 0.42, 0.44)]
    runs += [make_run(TABLE6, "ResNet-34", "With GELU AE", None, status="FAILED")] * 2
    return aggregate(TABLE6, runs)


def test_markdown_shows_ours_paper_missing_and_failed() -> None:
    text = to_markdown(TABLE6, table6_cells())
    lines = text.splitlines()
    assert "| Model | Without AE (ours) | Without AE (paper) |" in text
    resnet18 = next(line for line in lines if line.startswith("| ResNet-18 |"))
    assert "| 0.4200 ± 0.020 (n=3) | 0.4347 ± 0.0006 |" in resnet18
    resnet34 = next(line for line in lines if line.startswith("| ResNet-34 |"))
    assert resnet34.endswith("| failed (2) | 0.4983 ± 0.0008 |")
    assert "| missing | 0.3718 ± 0.0001 |" in text
    assert TABLE6.note in text


def test_markdown_formats_times_and_reference_rows() -> None:
    table1 = TABLES["table1"]
    text = to_markdown(table1, aggregate(table1, [make_run(table1, "ResNet-18", "With APP", 5300.0)]))
    assert ("| ResNet-18 | missing | 1h 24m 44s | missing | 1h 24m 44s | missing | 1h 24m 44s | 1h 28m 20s (n=1) | "
            "1h 27m 40s |") in text
    table5 = TABLES["table5"]
    assert "| Van Buren et al. [23] | — | 0.63 |" in to_markdown(table5, aggregate(table5, []))


def test_csv_has_one_line_per_cell(tmp_path) -> None:
    path = tmp_path / "nested" / "table6.csv"
    to_csv(TABLE6, table6_cells(), path)
    with path.open(newline="") as handle:
        lines = list(csv.DictReader(handle))
    assert len(lines) == len(TABLE6.rows) * len(TABLE6.columns)
    first = lines[0]
    assert (first["status"], first["n"], first["metric"]) == ("ok", "3", "test_iou")
    assert float(first["mean"]) == pytest.approx(0.42)
    assert [float(value) for value in first["values"].split(";")] == [0.40, 0.42, 0.44]
    assert (float(first["paper_mean"]), float(first["paper_std"])) == (0.4347, 0.0006)
    missing = next(line for line in lines if line["status"] == "missing")
    assert (missing["mean"], missing["std"], missing["values"]) == ("", "", "")
    failed = next(line for line in lines if line["status"] == "failed")
    assert failed["failed"] == "2"
    assert first["run_ids"] == "ResNet-18/Without AE/0.4;ResNet-18/Without AE/0.42;ResNet-18/Without AE/0.44"
    assert first["run_links"] == ""  # a SQLite store has no UI links


def test_csv_links_runs_of_a_tracking_server(tmp_path) -> None:
    run = make_run(TABLE6, "ResNet-18", "Without AE", 0.4)
    run.run_id, run.experiment_id = "abc123", "7"
    path = tmp_path / "table6.csv"
    to_csv(TABLE6, aggregate(TABLE6, [run]), path, uri="http://mlflow.example:5000/")
    with path.open(newline="") as handle:
        first = next(csv.DictReader(handle))
    assert first["run_ids"] == "abc123"
    assert first["run_links"] == "http://mlflow.example:5000/#/experiments/7/runs/abc123"
    assert run_link("sqlite:///mlflow.db", run) == ""


@pytest.mark.parametrize("name", ["table6", "table1", "tiling"])
def test_png_written_even_with_empty_cells(tmp_path, name: str) -> None:
    spec = TABLES[name]
    cells = table6_cells() if name == "table6" else aggregate(spec, [])
    path = tmp_path / f"{name}.png"
    to_png(spec, cells, path)
    assert path.read_bytes().startswith(b"\x89PNG")


# MLflow's own SQLAlchemy store raises a deprecation warning that is not ours to fix.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_load_runs_skips_parent_runs(tmp_path) -> None:
    from mlflow import MlflowClient

    from dedl_experiments.report.loading.mlflow_runs import load_runs
    from dedl_experiments.tracking.run_tags import PARENT_TAG

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment("report-test")
    client.create_run(experiment_id, tags={PARENT_TAG: "1"})
    child = client.create_run(experiment_id, tags={"mlflow.parentRunId": "p"})
    client.log_param(child.info.run_id, "encoder.name", "resnet18")
    client.log_metric(child.info.run_id, "test_iou", 0.4)
    client.set_terminated(child.info.run_id)
    failed = client.create_run(experiment_id)
    client.set_terminated(failed.info.run_id, status="FAILED")

    runs = {run.run_id: run for run in load_runs(uri, "report-test")}
    assert set(runs) == {child.info.run_id, failed.info.run_id}
    loaded = runs[child.info.run_id]
    assert loaded.status == "FINISHED"
    assert loaded.params["encoder.name"] == "resnet18" and loaded.metrics == {"test_iou": 0.4}
    # A setting added after the run was recorded reads as the default it then had.
    assert loaded.params["tiling.padding_label"] == "ignore"
    # Runs recorded before the training-set size settings trained on all the training images.
    assert (loaded.params["dataset.train_fraction"], loaded.params["dataset.train_count"]) == ("1.0", "None")
    assert runs[failed.info.run_id].status == "FAILED"
    with pytest.raises(ValueError, match="no MLflow experiment"):
        load_runs(uri, "absent")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_load_runs_reads_only_the_experiments_that_hold_cells(tmp_path) -> None:
    """The reports' and the claims' experiments (tracking's names) hold no cells."""
    from mlflow import MlflowClient

    from dedl_experiments.tracking import mlflow_store, run_tags
    from dedl_experiments.report.loading.mlflow_runs import load_runs

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    runs = {}
    for name in ("dedl", "dedl-table2", run_tags.REPORTS_EXPERIMENT, run_tags.CLAIMS_EXPERIMENT, "other"):
        run = client.create_run(client.create_experiment(name))
        client.set_terminated(run.info.run_id)
        runs[name] = run.info.run_id
    assert {run.run_id for run in load_runs(uri)} == {runs["dedl"], runs["dedl-table2"]}
    assert [name for name in runs if mlflow_store.is_cell_experiment(name)] == ["dedl", "dedl-table2"]


def test_a_runs_settings_are_what_its_cell_key_reads() -> None:
    """What the report compares between runs of one cell is what the job's cell key is made of
    (cells.cell_values), seed and fold aside, read back from the params the job logged."""
    cfg = compose_config(["+experiment=table2", "budget=smoke", "init=random"])
    logged = RunRecord("r", "FINISHED", flatten(components.loggable_values(cfg)), {})
    keyed = {k: v for k, v in flatten(cell_values(cfg, "0" * 64)).items() if k not in ("seed", "fold", "dataset_digest")}
    assert logged.settings == keyed
    assert not {"table", "tracking.uri", "dataset.root", "encoder.label", "speed.amp"} & set(logged.settings)


def test_mixed_settings_are_settings_of_the_cell_key() -> None:
    """Runs of one cell that differ only where the cell key does not look (a checkpoint interval,
    a display name, claims on cells, a data folder) are alike; another learning rate is not."""
    alike = {"train.checkpoint_every": "5", "encoder.label": "RN-18", "claim.lease_s": "60", "dataset.root": "/b"}
    recorded = {**TABLE6.recipe, "budget.name": "paper", "dataset.name": "synthetic", "optimizer.lr": "0.00036",
                "train.checkpoint_every": "1", "encoder.label": "ResNet-18", "claim.lease_s": "30", "dataset.root": "/a"}
    data = {"dedl.dataset_name": "synthetic", "dedl.dataset_digest": "ab" * 32}
    runs = [run_in(TABLE6, "ResNet-18", "Without AE", 0.4, seed=1, tags=data, **recorded),
            run_in(TABLE6, "ResNet-18", "Without AE", 0.5, seed=2, tags=data, **{**recorded, **alike})]
    assert build(TABLE6, runs, parse_args(["table=table6"])).notes == []
    runs.append(run_in(TABLE6, "ResNet-18", "Without AE", 0.6, seed=3, tags=data,
                       **{**recorded, "optimizer.lr": "0.001"}))
    [note] = build(TABLE6, runs, parse_args(["table=table6"])).notes
    assert "(optimizer.lr: 0.00036, 0.001)" in note


def test_forest_plot_of_the_comparisons(tmp_path) -> None:
    """One row per comparison: ours with its CI, the paper's difference, untested ones by status."""
    from matplotlib.figure import Figure

    from dedl_experiments.report.rendering import forest
    from dedl_experiments.report.analysis.compare import compare_table

    runs = [run_in(TABLE6, "ResNet-18", column, 0.40 + gain + 0.01 * seed, seed=seed)
            for seed in (1, 2, 3) for column, gain in (("Without AE", 0.0), ("With ReLU AE", 0.02),
                                                       ("With GELU AE", 0.03 + 0.001 * seed))]
    rows = compare_table(TABLE6, aggregate(TABLE6, runs))
    drawn: list = []
    original = Figure.savefig
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Figure, "savefig", lambda self, *a, **k: (drawn.append(self), original(self, *a, **k)))
        forest.to_forest_png(TABLE6, rows, tmp_path / "table6_forest.png")
    assert (tmp_path / "table6_forest.png").read_bytes().startswith(b"\x89PNG")
    axes = drawn[0].axes[0]
    assert [label.get_text() for label in axes.get_yticklabels()] == [
        f"{row.comparison.name}: {row.pair.label}" for row in rows]
    tested = sum(row.result is not None and row.result.ci is not None for row in rows)
    assert len(axes.collections) == tested == 3  # a CI per tested comparison of ResNet-18
    assert any(text.get_text().startswith("missing") for text in axes.texts)
