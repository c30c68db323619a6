"""Extending by adding files, outside the package: a user's config folder holds a new encoder
(ResNet-18's file under another name and label) and new tables (an experiment file sweeping it
and ResNet-18 over 2 seeds; an Adam-vs-AdamW ablation). The real CLI runs the sweeps with that
folder on Hydra's search path and the report finds the tables there; nothing in the package
changes."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import pytest

from conftest import CONF, TINY, run_cli

pytestmark = pytest.mark.slow

EXPERIMENT = """\
# @package _global_
# A table of my own: my encoder against ResNet-18.
table: mine
hydra:
  sweeper:
    params:
      encoder: mynet,resnet18
      seed: 26,77
report:
  title: My net against ResNet-18
  metric: test_iou
  published:
    resnet18: [0.4347]
"""


def sweep_and_report(conf: Path, cwd: Path, data_dir: Path, table: str):
    """The sweep of the user's experiment `table` on tiny data (the CLI's output), then the
    table's report (its output), from the folder `cwd`."""
    sweep = run_cli(["-m", f"+experiment={table}", f"hydra.searchpath=[file://{conf}]", *TINY,
                     f"data_dir={data_dir}"], cwd)
    report = run_cli([f"table={table}", f"config_dir={conf}", "budget=smoke", "init=random"], cwd,
                     module="dedl_experiments.report")
    return sweep, report


@pytest.fixture(scope="module")
def users_tables(tmp_path_factory, shared_data_dir: Path, empty_store: Path):
    """A user's config folder with an encoder and two tables of their own, both swept into one
    store and reported: `mine` (their encoder against ResNet-18), then `optimizers` (Adam
    against AdamW), whose Adam cells are `mine`'s ResNet-18 cells."""
    root = tmp_path_factory.mktemp("extend")
    conf = root / "my_conf"
    encoder = (CONF / "encoder" / "resnet18.yaml").read_text().replace("name: resnet18", "name: mynet")
    files = {"encoder/mynet.yaml": re.sub(r"(?m)^label: .*$", "label: My Net", encoder),
             "experiment/mine.yaml": EXPERIMENT, "experiment/optimizers.yaml": OPTIMIZERS}
    for name, text in files.items():
        (conf / name).parent.mkdir(parents=True, exist_ok=True)
        (conf / name).write_text(text)
    cwd = root / "work"
    cwd.mkdir()
    shutil.copyfile(empty_store, cwd / "mlflow.db")
    return cwd, {table: sweep_and_report(conf, cwd, shared_data_dir, table)
                 for table in ("mine", "optimizers")}


def test_a_users_encoder_and_table_sweep_and_report(users_tables) -> None:
    cwd, tables = users_tables
    sweep, report = tables["mine"]
    assert "4 runs in sqlite:///mlflow.db" in sweep.stdout
    assert "seg-unet-mynet-app_none-cosine-random-smoke-s77" in sweep.stdout

    assert "### mine: My net against ResNet-18" in report.stdout
    table = report.stdout[:report.stdout.index("#### Cost")]
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()
            if line.startswith(("| My Net |", "| ResNet-18 |"))}
    assert set(rows) == {"My Net", "ResNet-18"}
    assert "Missing:" not in report.stdout  # its sweep's 2 seeds make a full cell
    number = r"\d\.\d{4} ± \d\.\d+ \(n=2\)"
    assert re.search(rf"\| My Net \| {number} \| — \|", rows["My Net"]), rows["My Net"]
    assert re.search(rf"\| ResNet-18 \| {number} \| 0\.4347 \|", rows["ResNet-18"]), rows["ResNet-18"]
    with (cwd / "reports" / "mine" / "mine.csv").open() as handle:
        cells = {line["row"]: line for line in csv.DictReader(handle)}
    assert {row: (cells[row]["status"], cells[row]["n"]) for row in cells} == {
        "My Net": ("ok", "2"), "ResNet-18": ("ok", "2")}
    # Found on the search path, not copied into the package.
    assert not (CONF / "encoder" / "mynet.yaml").exists() and not (CONF / "experiment" / "mine.yaml").exists()


OPTIMIZERS = """\
# @package _global_
# An ablation of my own: the paper's Adam against AdamW, on the default segmentation cell.
table: optimizers
hydra:
  sweeper:
    params:
      optimizer: adam,adamw
      seed: 26,77
report:
  title: Adam against AdamW
  metric: test_iou
  rows: [{label: ResNet-18, match: {encoder.name: resnet18}}]
  columns:
    optimizer: {adam: Adam, adamw: AdamW}
  published:
    ResNet-18: [0.4347, null]
  comparisons:
    - {name: Adam vs AdamW, columns: [Adam, AdamW]}
  claims:
    - id: adamw-beats-adam
      kind: each
      source: my hypothesis
      text: Decoupled weight decay improves test IoU.
      items: [{comparisons: [Adam vs AdamW]}]
"""


def test_a_users_optimizer_ablation_sweeps_and_reports(users_tables) -> None:
    """An Adam-vs-AdamW table from a user's config folder alone: the optimizer group's choices
    are swept like any other group's, and the report shows their columns, compared and claimed.
    Its Adam cells are the paper's optimiser, so the ResNet-18 cells `mine` trained are the
    same cells (old cell keys unchanged): only the AdamW cells train."""
    cwd, tables = users_tables
    sweep, report = tables["optimizers"]
    assert "2 runs in sqlite:///mlflow.db, 2 cells skipped" in sweep.stdout
    # The paper's optimiser is left out of a run's name, another one is named.
    assert "skip seg-unet-resnet18-app_none-cosine-random-smoke-s26" in sweep.stdout + sweep.stderr
    assert "seg-unet-resnet18-app_none-adamw-cosine-random-smoke-s77" in sweep.stdout

    out = report.stdout
    assert "### optimizers: Adam against AdamW" in out
    number = r"\d\.\d{4} ± \d\.\d+ \(n=2\)"
    assert "| Model | Adam (ours) | Adam (paper) | AdamW (ours) |" in out
    assert re.search(rf"\| ResNet-18 \| {number} \| 0\.4347 \| {number} \|\n", out), out
    assert "Missing:" not in out
    assert re.search(r"\| Adam vs AdamW \| ResNet-18 \| 2 \| [+-]\d\.\d{4} \|", out), out
    assert "- **adamw-beats-adam** (my hypothesis; rests on optimizers)" in out
    with (cwd / "reports" / "optimizers" / "optimizers.csv").open() as handle:
        cells = {line["column"]: (line["status"], line["n"]) for line in csv.DictReader(handle)}
    assert cells == {"Adam": ("ok", "2"), "AdamW": ("ok", "2")}
