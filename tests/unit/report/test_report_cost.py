"""What a table cost: device-hours per cell and per table, and the projection of missing runs."""

from __future__ import annotations

import pytest
from report_records import TABLES, run_in

from dedl_experiments.report.cells.aggregate import aggregate
from dedl_experiments.report.analysis.cost import device_kind, run_seconds, table_cost
from dedl_experiments.report.rendering.render_analysis import cost_markdown

GPU = {"dedl.device": "cuda:0", "dedl.device_name": "NVIDIA H200"}
CPU = {"dedl.device": "cpu", "dedl.device_name": "AMD EPYC 9654"}
TABLE9 = TABLES["table9"]


def timed(spec, row, column, seconds, seed, tags=GPU, **metrics):
    return run_in(spec, row, column, {"test_iou": 0.4, "train_time_s": seconds - 600.0, "test_time_s": 600.0,
                                      **metrics}, seed=seed, tags=tags)


def cost_of(spec, runs):
    return table_cost(spec, aggregate(spec, runs))


def test_run_time_and_device_kind() -> None:
    run = timed(TABLE9, "EfficientNet-B0", "Without APP", 3600.0, 1)
    assert (run_seconds(run), device_kind(run)) == (3600.0, "GPU")
    older = run_in(TABLE9, "EfficientNet-B0", "Without APP", {"train_time_s": 3000.0, "wall_time_s": 3500.0})
    assert run_seconds(older) == 3500.0  # no test_time_s: wall - train is the test's share
    assert run_seconds(run_in(TABLE9, "EfficientNet-B0", "Without APP", {"test_iou": 0.4})) is None
    assert device_kind(run_in(TABLE9, "EfficientNet-B0", "Without APP", tags=CPU)) == "CPU"
    assert device_kind(run_in(TABLE9, "EfficientNet-B0", "Without APP")) == "unknown-device"


def test_cost_per_cell_per_table_and_projection() -> None:
    runs = [timed(TABLE9, "EfficientNet-B0", column, 3600.0, seed) for column in ("Without APP", "With APP")
            for seed in range(1, 6)]
    runs += [timed(TABLE9, "EfficientNet-B1", "Without APP", 7200.0, seed) for seed in (1, 2)]
    runs += [timed(TABLE9, "EfficientNet-B2", "With APP", 1800.0, 1, tags=CPU)]
    cost = cost_of(TABLE9, runs)
    cells = {(c.row, c.column): c for c in cost.cells}
    b0 = cells[("EfficientNet-B0", "Without APP")]
    assert (b0.seconds, b0.timed, b0.missing, b0.projected) == ({"GPU": 18000.0}, 5, 0, 0.0)
    assert cost.measured == {"GPU": 10 * 3600.0 + 2 * 7200.0, "CPU": 1800.0}
    assert cost.devices == {"GPU": {"NVIDIA H200"}, "CPU": {"AMD EPYC 9654"}}
    assert (cost.runs, cost.expected) == (13, 5)
    # Missing runs, projected at the mean time per run of: the cell's own runs,
    b1 = cells[("EfficientNet-B1", "Without APP")]
    assert (b1.missing, b1.basis, b1.projected) == (3, "the cell's own runs", 3 * 7200.0)
    # else the same row (the encoder),
    b1_app = cells[("EfficientNet-B1", "With APP")]
    assert (b1_app.basis, b1_app.projected) == ("the same row", 5 * 7200.0)
    # else the same column, where the kind of device follows the runs it is projected from,
    b3 = cells[("EfficientNet-B3", "Without APP")]
    assert b3.basis == "the same column"
    assert b3.projected == pytest.approx(5 * (5 * 3600.0 + 2 * 7200.0) / 7) and b3.projected_kind == "GPU"
    b2 = cells[("EfficientNet-B2", "With APP")]
    assert (b2.basis, b2.projected_kind, b2.projected) == ("the cell's own runs", "CPU", 4 * 1800.0)
    assert cost.missing == 16 * 5 - 13
    assert sum(cost.projected.values()) == pytest.approx(sum(c.projected for c in cost.cells))

    text = cost_markdown(cost)
    assert "Measured: 0.5 CPU-hours + 14 GPU-hours over 13 timed run(s) (CPU: AMD EPYC 9654; GPU: NVIDIA H200)" in text
    assert "Missing: 67 run(s) of a full sweep (5 per cell), projected" in text
    assert "the cell's own runs for 2 cell(s), the same row for 2 cell(s), the same column for 10 cell(s)" in text
    assert "| EfficientNet-B0 | 5 GPU-h | 5 GPU-h |" in text
    assert "| EfficientNet-B1 | 4 GPU-h (+6 GPU-h projected) | — (+10 GPU-h projected) |" in text
    assert "| EfficientNet-B2 | — (+2.5 CPU-h projected) | 0.5 CPU-h (+2 CPU-h projected) |" in text


def test_views_of_one_column_share_its_runs() -> None:
    """The tiling table shows accuracy and IoU of the same runs: one cost cell, each run once."""
    tiling = TABLES["tiling"]
    runs = [timed(tiling, "UNet++ ResNet-34", "256 px accuracy, padding counted", 3600.0, seed,
                  test_pixel_accuracy_padded=0.98) for seed in (1, 2)]
    cost = cost_of(tiling, runs)
    assert [(c.row, c.column, c.timed) for c in cost.cells] == [
        ("UNet++ ResNet-34", "256 px", 2), ("UNet++ ResNet-34", "480 px", 0)]
    assert cost.measured == {"GPU": 7200.0} and cost.missing == 3 + 5


def test_classification_cell_needs_every_fold_of_every_seed() -> None:
    table4 = TABLES["table4"]
    runs = [run_in(table4, "NFNet-F3", "Test F1-Score", {"train_time_s": 100.0}, seed=seed, fold=fold, tags=GPU)
            for seed in (1, 2) for fold in range(6)]
    cost = cost_of(table4, runs)
    nfnet = next(c for c in cost.cells if c.row == "NFNet-F3")
    assert (cost.expected, nfnet.missing, nfnet.timed) == (30, 18, 12)


@pytest.mark.parametrize("tags, expected", [
    ({"dedl.folds": "3"}, 5 * 3),  # the fold count the runs recorded (task.folds=3)
    ({}, 5 * 6),  # runs recorded before that tag: the table's own (its task's folds)
])
def test_a_full_cell_has_the_fold_count_its_runs_recorded(tags: dict, expected: int) -> None:
    table4 = TABLES["table4"]
    runs = [run_in(table4, "NFNet-F3", "Test F1-Score", {"train_time_s": 100.0}, fold=fold, tags=GPU | tags)
            for fold in range(3)]
    for run in runs:
        run.tags = {k: v for k, v in run.tags.items() if k != "dedl.folds"} | tags
    assert table4.folds == 6 and cost_of(table4, runs).expected == expected
    assert cost_of(TABLE9, []).expected == 5  # no folds: a run per seed


def test_no_timed_runs() -> None:
    text = cost_markdown(cost_of(TABLE9, []))
    assert "no run of this table logged its time" in text and "no timed run to project them from" in text


def test_projection_never_averages_gpu_and_cpu_seconds() -> None:
    # Two GPU runs of an hour and one CPU run of ten: the 2 missing runs are projected from the GPU runs alone.
    runs = [timed(TABLE9, "EfficientNet-B0", "Without APP", 3600.0, seed) for seed in (1, 2)]
    runs.append(timed(TABLE9, "EfficientNet-B0", "Without APP", 36000.0, 3, tags=CPU))
    group = next(g for g in cost_of(TABLE9, runs).cells if (g.row, g.column) == ("EfficientNet-B0", "Without APP"))
    assert (group.missing, group.projected_kind) == (2, "GPU")
    assert group.projected == pytest.approx(2 * 3600.0)
