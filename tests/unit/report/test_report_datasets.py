"""Datasets by content: runs grouped by their dataset digest, never merged across digests, runs
recorded before digests kept apart; the dataset= option and the automatic choice."""

from __future__ import annotations

from report_records import TABLES, run_in

from dedl_experiments.report.build import build
from dedl_experiments.report.cli import markdown
from dedl_experiments.report.loading.datasets import DatasetGroup, choose, group_of
from dedl_experiments.report.options import parse_args

TABLE6 = TABLES["table6"]
FOLDER_A = "a" * 8 + "0" * 56
FOLDER_B = "b" * 8 + "1" * 56
SYNTHETIC = "c" * 8 + "2" * 56
# The paper's segmentation recipe, every setting the report filters on (the spec's recipe).
RECIPE = {"budget.name": "paper", **TABLE6.recipe}


def run(value: float, name: str, digest: str | None, seed: int = 26, root: str | None = None):
    tags = {"dedl.dataset_name": name} | ({"dedl.dataset_digest": digest} if digest else {})
    params = {**RECIPE, "dataset.name": name} | ({"dataset.root": root} if root else {})
    return run_in(TABLE6, "ResNet-18", "Without AE", value, seed=seed, tags=tags, **params)


def cell_values(report) -> list[float]:
    return next(c for c in report.cells if (c.row, c.column) == ("ResNet-18", "Without AE")).values


def report(runs, *args):
    return build(TABLE6, runs, parse_args(["table=table6", *args]))


def test_two_folder_datasets_are_never_merged() -> None:
    runs = [run(0.1, "folder", FOLDER_A, seed=1, root="/data/a"), run(0.2, "folder", FOLDER_A, seed=2, root="/data/a"),
            run(0.9, "folder", FOLDER_B, seed=1, root="/data/b")]
    auto = report(runs)
    assert cell_values(auto) == [0.1, 0.2]  # the group with the most runs
    assert auto.dataset == DatasetGroup("folder", FOLDER_A) and auto.roots == ["/data/a"]
    assert any("folder (digest bbbbbbbb) (1 runs; `dataset=folder@bbbbbbbb`)" in note for note in auto.notes)
    assert "Dataset: folder (digest aaaaaaaa), root /data/a." in markdown(auto, parse_args(["table=table6"]))
    for wanted in ("folder@bbbbbbbb", "bbbb", FOLDER_B):
        assert cell_values(report(runs, f"dataset={wanted}")) == [0.9], wanted
    by_name = report(runs, "dataset=folder")  # both groups are named folder: the auto order picks
    assert cell_values(by_name) == [0.1, 0.2] and any("bbbbbbbb" in note for note in by_name.notes)


def test_runs_before_digests_form_their_own_group() -> None:
    runs = [run(0.5, "myositis", None, seed=1), run(0.6, "myositis", None, seed=2), run(0.7, "myositis", None, seed=3),
            run(0.1, "myositis", FOLDER_A)]
    auto = report(runs)
    assert cell_values(auto) == [0.1]  # a digest group wins over older runs, even with fewer runs
    assert any("myositis, recorded before dataset digests (cannot tell which data) (3 runs; "
               "`dataset=myositis@before-digests`)" in note for note in auto.notes)
    for wanted in ("before-digests", "myositis@before-digests"):
        legacy = report(runs, f"dataset={wanted}")
        assert cell_values(legacy) == [0.5, 0.6, 0.7]
        assert any("recorded before dataset digests: nothing tells which data" in note for note in legacy.notes)
    assert group_of(runs[0]).describe() == "myositis, recorded before dataset digests (cannot tell which data)"


def test_real_data_over_synthetic_and_unknown_dataset() -> None:
    runs = [run(0.4, "synthetic", SYNTHETIC, seed=1), run(0.5, "synthetic", SYNTHETIC, seed=2),
            run(0.1, "myositis", None)]
    assert cell_values(report(runs)) == [0.1]  # real data, even recorded before digests
    missing = report(runs, "dataset=nothere")
    assert missing.runs == 0 and missing.dataset is None
    assert any("No runs of dataset 'nothere'" in note and "`synthetic@cccccccc` (2 runs)" in note
               for note in missing.notes)


def test_choose_without_runs() -> None:
    assert choose([], "auto") == (None, [])
    assert choose([], "myositis") == (None, [])
