"""Extending by adding files: a choice's display name is its YAML's `label:`, and an experiment
file whose report block leaves out rows, columns or comparisons gets them derived from its sweep
(report/definition/experiment.py), in the package or in a user's config folder given to the report as
`config_dir=`."""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import pytest
from report_records import TABLES, run_in

from conftest import CONF
from dedl_experiments.config import config_files
from dedl_experiments.report.definition import tables
from dedl_experiments.report.build import build
from dedl_experiments.report.definition.experiment import experiment_spec
from dedl_experiments.report.options import UsageError, parse_args
from dedl_experiments.report.definition.schema import ExperimentError
from dedl_experiments.report.definition.spec import ColumnSpec, Published, RowSpec, TableSpec


def user_conf(tmp_path: Path, experiment: str, encoder_label: str | None = "My Net") -> Path:
    """A user's config folder: encoder `mynet` (ResNet-18's file under another name and label)
    and experiment `mine`."""
    folder = tmp_path / "conf"
    (folder / "encoder").mkdir(parents=True)
    (folder / "experiment").mkdir()
    text = (CONF / "encoder" / "resnet18.yaml").read_text().replace("name: resnet18", "name: mynet")
    text = re.sub(r"(?m)^label: .*$", f"label: {encoder_label}" if encoder_label else "", text)
    (folder / "encoder" / "mynet.yaml").write_text(text)
    (folder / "experiment" / "mine.yaml").write_text(textwrap.dedent(experiment))
    return folder


MINE = """\
    # @package _global_
    table: mine
    defaults:
      - override /lr_schedule: step
    train:
      patience: 3
    hydra:
      sweeper:
        params:
          encoder: mynet,resnet18
          app: none,gelu
          seed: 26,77
    report:
      title: My net against ResNet-18
      published:
        resnet18: [0.43, [0.47, 0.01]]
"""


def test_labels_come_from_the_yaml_files(tmp_path: Path) -> None:
    assert config_files.label("encoder", "swin_base") == "Swin-B (patch 4, window 12)"
    assert config_files.label("architecture", "unetplusplus") == "UNet++"
    # The paper's rows are labelled from there: no label table in the report.
    assert [row.label for row in TABLES["table2"].rows] == [config_files.label("encoder", f"resnet{d}") for d in (18, 34, 50, 101)]
    folder = user_conf(tmp_path, MINE)
    assert config_files.label("encoder", "mynet", [str(folder)]) == "My Net"
    assert "mynet" in config_files.options("encoder", [f"file://{folder}"]) and "mynet" not in config_files.options("encoder")
    assert config_files.label("app", "gelu") == "gelu"  # no label: the choice's name
    assert config_files.label("encoder", "mynet") == "mynet"  # not on the search path: not found


def test_a_user_experiment_is_a_table_derived_from_its_file(tmp_path: Path) -> None:
    folder = user_conf(tmp_path, MINE)
    assert "mine" in tables.names([str(folder)]) and "mine" not in tables.names()
    spec = tables.spec("mine", [str(folder)])
    # The task's main metric; a segmentation cell is one run per seed (no folds).
    assert (spec.name, spec.title, spec.metric, spec.folds) == ("mine", "My net against ResNet-18", "test_iou", None)
    assert spec.rows == (RowSpec("My Net", {"encoder.name": "mynet"}), RowSpec("ResNet-18", {"encoder.name": "resnet18"}))
    assert spec.columns == (ColumnSpec("none", {"app.name": "none"}), ColumnSpec("gelu", {"app.name": "gelu"}))
    assert spec.published == {("ResNet-18", "none"): Published(0.43), ("ResNet-18", "gelu"): Published(0.47, 0.01)}
    assert spec.seeds == (26, 77)  # a full cell: a run per seed of its sweep
    # The experiment's own choices and settings, and the defaults it leaves: what its jobs ran.
    assert {k: spec.fixed[k] for k in ("lr_schedule.name", "train.patience", "init.name", "architecture.name",
                                       "task.name")} == {
        "lr_schedule.name": "step", "train.patience": "3", "init.name": "imagenet", "architecture.name": "unet",
        "task.name": "segmentation"}
    assert not {"encoder.name", "app.name", "dataset.name", "budget.name"} & set(spec.fixed)
    [comparison] = spec.comparisons
    assert comparison.name == "none vs gelu" and [p.label for p in comparison.pairs] == ["My Net", "ResNet-18"]


def test_the_report_block_is_optional_and_checked(tmp_path: Path) -> None:
    folder = user_conf(tmp_path, """\
        # @package _global_
        defaults:
          - override /task: classification
        hydra:
          sweeper:
            params:
              seed: 26,77
        """)
    spec = experiment_spec("mine", [str(folder)])
    assert spec.metric == "test_f1_micro" and spec.published == {}
    assert [row.label for row in spec.rows] == ["mine"] and spec.rows[0].match == {}
    bad = user_conf(tmp_path / "bad", MINE.replace("[0.43, [0.47, 0.01]]", "[0.43]"))
    with pytest.raises(ExperimentError, match=r"report.published.resnet18 must list 2 value\(s\)"):
        experiment_spec("mine", [str(bad)])


def with_report(block: str) -> str:
    """MINE's sweep with this report block (indented as under `report:`)."""
    head = textwrap.dedent(MINE)[:textwrap.dedent(MINE).index("report:")]
    return head + "report:\n" + textwrap.indent(textwrap.dedent(block), "  ")


TITLED = "title: Mine\n"


@pytest.mark.parametrize(("block", "message"), [
    ("titel: Mine\n", "unknown key report.titel; valid keys: title, metric, fixed, rows, columns, also, "
                       "published, comparisons, timed, note, effect, claims"),
    ("columns: [{label: none, match: {app.name: none}, metrik: x}]\n",
     "unknown key report.columns[0].metrik; valid keys: label, match, metric, also"),
    ("claims: [{kind: each, id: x, source: y, text: z, items: [{comparison: [a]}]}]\n",
     "unknown key report.claims[0].items[0].comparison; valid keys: comparisons, rows, expect"),
    ("claims: [{kind: best, id: x, source: y, text: z, among: {}, winner: {}}]\n",
     "unknown key report.claims[0].winner; valid keys: kind, id, source, text, note, readings, among, winners"),
    ("claims: [{kind: every, id: x}]\n", "report.claims[0].kind must be one of each, average, contrast, best"),
    ("comparisons: [{name: none vs gelu, columns: [none, GELU]}]\n",
     "report.comparisons[0]: give columns: [A, B] of none; gelu, or rows: [A, B] of mynet, resnet18 and a column"),
    ("published: {resnet18: [0.43, 0.47+-0.01]}\n", "'0.47+-0.01' is not a number as printed"),
    ("published: [0.43, 0.47]\n", "report.published must be a mapping"),
])
def test_a_wrong_report_block_fails_in_one_line_naming_file_and_key(tmp_path: Path, block: str, message: str) -> None:
    folder = user_conf(tmp_path, with_report(TITLED + block))
    with pytest.raises(ExperimentError) as error:
        experiment_spec("mine", [str(folder)])
    text = str(error.value)
    assert "\n" not in text and text.startswith(f"{folder / 'experiment' / 'mine.yaml'}: ") and message in text, text


def test_a_report_block_lists_rows_columns_comparisons_and_claims(tmp_path: Path) -> None:
    """The paper tables' form in a user's file: its own labels, numbers as printed, a measure
    beside each column, a comparison and claims on it."""
    folder = user_conf(tmp_path, with_report("""\
        rows: encoder
        columns:
          app: {none: Without, gelu: With GELU}
        also: [{label: "{column}, time", metric: train_time_s}]
        published:
          resnet18: [0.43±0.01, 1h 2m 03s]
        comparisons: [{name: "APP: none vs GELU", columns: [Without, With GELU]}]
        claims:
          - {kind: each, id: gelu-helps, source: mine, text: GELU helps, items: [{comparisons: ["APP: none vs GELU"]}]}
          - {kind: spread, id: tight, source: mine, text: tight, cells: {rows: [mynet], columns: [Without]}, below: 0.1}
        """))
    spec = experiment_spec("mine", [str(folder)])
    assert [view.label for view in spec.views()] == ["Without", "Without, time", "With GELU", "With GELU, time"]
    assert spec.published == {("ResNet-18", "Without"): Published(0.43, 0.01), ("ResNet-18", "With GELU"): Published(3723.0)}
    [comparison] = spec.comparisons
    assert (comparison.name, comparison.a_name, comparison.b_name) == ("APP: none vs GELU", "none", "GELU")
    each, spread = spec.claims
    assert [(item.comparison, item.row) for item in each.items] == [("APP: none vs GELU", "My Net"),
                                                                    ("APP: none vs GELU", "ResNet-18")]
    assert spread.cells == (("My Net", "Without"),) and spread.table == "mine"


def test_runs_of_a_user_table_fill_its_cells(tmp_path: Path) -> None:
    """Its step schedule is the table's own: the paper's recipe (cosine) does not filter it out."""
    folder = user_conf(tmp_path, MINE)
    options = parse_args(["table=mine", f"config_dir={folder}", "budget=smoke", "init=random"])
    spec = tables.spec("mine", options.search_path)
    recipe = {k: v for k, v in spec.recipe.items() if k not in spec.fixed}
    recorded = {"budget.name": "smoke", "init.name": "random", "dataset.name": "synthetic", **recipe}
    runs = [run_in(spec, "My Net", "gelu", 0.5, seed=seed, **recorded) for seed in (26, 77)]
    report = build(spec, runs, options)
    cell = next(c for c in report.cells if (c.row, c.column) == ("My Net", "gelu"))
    assert (cell.status, cell.n) == ("ok", 2)


def test_recipe_gives_way_to_a_tables_own_settings() -> None:
    """A hand-written table that varies a recipe setting (the loss) keeps both columns."""
    spec = TableSpec(name="losses", title="", metric="test_iou",
                     rows=(RowSpec("ResNet-18", {"encoder.name": "resnet18"}),),
                     columns=(ColumnSpec("weighted", {"loss.name": "weighted_ce"}), ColumnSpec("plain", {"loss.name": "ce"})),
                     published={}, recipe=TABLES["table2"].recipe)
    recipe = {k: v for k, v in spec.recipe.items() if k != "loss.name"}
    runs = [run_in(spec, "ResNet-18", column, 0.5, **recipe, **{"budget.name": "paper", "dataset.name": "synthetic"})
            for column in ("weighted", "plain")]
    report = build(spec, runs, parse_args(["table=table2"]))
    assert [cell.n for cell in report.cells] == [1, 1]


def test_the_recipe_is_the_tables_own_composition(tmp_path: Path) -> None:
    """A table whose experiment composes another loss, with a `fixed:` block that leaves the loss
    out, holds its runs to that loss: the recipe's values are what its jobs run, and its cells
    have as many folds per seed as its task runs (`task.folds`)."""
    folder = user_conf(tmp_path, with_report("fixed: {task.name: segmentation, init.name: imagenet}\n")
                       .replace("override /lr_schedule: step", "override /loss: ce"))
    spec = tables.spec("mine", [str(folder)])
    assert (spec.recipe["loss.name"], spec.recipe["lr_schedule.name"], spec.folds) == ("ce", "cosine", None)
    recorded = {"budget.name": "paper", "dataset.name": "synthetic", **spec.recipe}
    runs = [run_in(spec, "My Net", "gelu", 0.5, seed=seed, **recorded) for seed in (26, 77)]
    cell = next(c for c in build(spec, runs, parse_args(["table=table2"])).cells if (c.row, c.column) == ("My Net", "gelu"))
    assert (cell.status, cell.n) == ("ok", 2)
    folds = user_conf(tmp_path / "folds", "# @package _global_\ndefaults:\n  - override /task: classification\n"
                                          "task:\n  folds: 4\nhydra:\n  sweeper:\n    params:\n      seed: 26,77\n")
    classification = experiment_spec("mine", [str(folds)])
    assert classification.folds == 4 and classification.recipe["loss.name"] == "focal"


def test_report_options_find_a_users_config_folder(tmp_path: Path) -> None:
    folder = user_conf(tmp_path, MINE)
    assert parse_args(["table=mine", f"config_dir={folder}"]).tables == ["mine"]
    same = parse_args(["table=mine", f"hydra.searchpath=[pkg://multirun_launchers/conf,file://{folder}]"])
    assert same.tables == ["mine"]
    assert parse_args(["table=all", f"config_dir={folder}"]).tables == [*TABLES, "mine"]
    with pytest.raises(UsageError, match=r"unknown table 'mine' \(no experiment/mine.yaml; config_dir=DIR adds yours\)"):
        parse_args(["table=mine"])
    with pytest.raises(UsageError, match="does not exist"):
        parse_args(["table=table2", f"config_dir={tmp_path / 'absent'}"])


def test_packaged_experiments_are_listed_from_their_files(tmp_path: Path, monkeypatch) -> None:
    """A table is its file: one more file in the package's conf/experiment/ is one more table."""
    package = tmp_path / "package"
    shutil.copytree(CONF, package)
    (package / "experiment" / "extra.yaml").write_text((package / "experiment" / "table2.yaml").read_text())
    monkeypatch.setattr(config_files, "CONF_DIR", package)
    first, *others = TABLES  # data_efficiency, then table1, table2, ..., table10, ...: by their names
    assert tables.names() == [first, "extra", *others]
