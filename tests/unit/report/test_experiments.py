"""The tables' sweeps (conf/experiment/<table>.yaml, each file a table): they compose, expand
exactly as Hydra's basic sweeper does (sweeps.py), and their jobs fill every cell of the table the
report reads from the same file (report/definition/experiment.py), one job per cell and seed. Also the
Makefile's table targets, read from the experiment files, and `make demo`."""

from __future__ import annotations

import functools
import itertools
import re
import shlex
import subprocess
from collections import Counter

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from report_records import SEEDS, TABLES

from conftest import CONF, REPO
from dedl_experiments.config import components, sweeps
from dedl_experiments.config.checks import validate
from dedl_experiments.report.cells.aggregate import matches
from dedl_experiments.report.build import varies
from dedl_experiments.tasks import task_class
from dedl_experiments.tracking.cells import NOT_CELL_KEYS, NOT_CELL_PATHS, flatten

# Every experiment file is a table.
EXPERIMENTS = sorted(path.stem for path in (CONF / "experiment").glob("*.yaml"))
# Timing tables: the paper timed full 50-epoch runs, so they train without early stopping.
TIMING = ("table1", "table8", "table10")
# Each timing table and the IoU table(s) over the same grid: the same sweep, but other cells
# (the IoU tables keep the paper's early stopping).
TIMING_GRID = {"table1": "table2", "table8": "table9", "table10": "table11"}


@pytest.fixture(scope="module", autouse=True)
def hydra_context():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield


def sweep_params(table: str) -> dict[str, str]:
    cfg = compose(config_name="config", overrides=[f"+experiment={table}"], return_hydra_config=True)
    return dict(cfg.hydra.sweeper.params or {})


def expand(params: dict[str, str], command_line: list[str] = ()) -> list[list[str]]:
    """The jobs' overrides, as the basic sweeper builds them: its params first, then the
    command line's overrides, a later key replacing an earlier one."""
    return sweeps.split([*(f"{k}={v}" for k, v in params.items()), *command_line])


def sweep_values(key: str, value: str) -> list[str]:
    return [str(v) for v in sweeps.values(key, value)]


def makefile_job_counts() -> dict[str, int]:
    """The job counts the Makefile's help lines state, e.g. `table2: ## ... (120 jobs)`."""
    text = (REPO / "Makefile").read_text()
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+): ## .*?\((\d+) jobs", text, re.M)}


def job_params(table: str, job: list[str]) -> dict[str, str]:
    return dict(_job_params(table, tuple(job)))


@functools.cache  # tables that share a sweep (8 and 9, 10 and 11) compose the same jobs
def _job_params(table: str, job: tuple[str, ...]) -> dict[str, str]:
    cfg = compose(config_name="config", overrides=[f"+experiment={table}", *job])
    validate(cfg)
    return flatten(components.loggable_values(cfg))  # the params the job logs


def test_every_experiment_file_is_a_table_with_its_report_block() -> None:
    assert set(TABLES) == set(EXPERIMENTS)
    # In the order of their names; data_efficiency is not in the paper (no printed numbers).
    assert list(TABLES) == ["data_efficiency", *(f"table{i}" for i in range(1, 14)), "tiling"]
    for table in EXPERIMENTS:
        cfg = compose(config_name="config", overrides=[f"+experiment={table}"])
        assert cfg.report.title and cfg.report.note, table
        assert cfg.report.get("published") or table == "data_efficiency", table


@pytest.mark.parametrize("table", EXPERIMENTS)
def test_sweep_size_and_seeds(table: str) -> None:
    cfg = compose(config_name="config", overrides=[f"+experiment={table}"], return_hydra_config=True)
    assert cfg.table == table
    if table in TABLES:
        assert cfg.task.name == TABLES[table].fixed["task.name"]
    jobs = expand(dict(cfg.hydra.sweeper.params))
    assert len({tuple(job) for job in jobs}) == len(jobs)
    seeds = Counter(override for job in jobs for override in job if override.startswith("seed="))
    assert set(seeds) == {f"seed={seed}" for seed in SEEDS}
    assert set(seeds.values()) == {len(jobs) // len(SEEDS)}
    # What `make help` says a table costs is what its file sweeps.
    assert makefile_job_counts().get(table, len(jobs)) == len(jobs)


def test_timing_tables_train_the_full_budget() -> None:
    for table in TIMING:
        cfg = compose(config_name="config", overrides=[f"+experiment={table}"])
        assert cfg.train.patience is None, table
        validate(cfg)
    for table in set(EXPERIMENTS) - set(TIMING):
        cfg = compose(config_name="config", overrides=[f"+experiment={table}"])
        assert cfg.train.patience == 5, table


def test_timing_cells_are_not_the_iou_tables_cells() -> None:
    """Same grid as their IoU tables, other cells: no timing job skips as an IoU table's cell
    (which may have stopped early), and no IoU job as a timing cell (trained without stopping)."""
    assert sweep_params("table8") == sweep_params("table9")
    assert sweep_params("table10") == sweep_params("table11")
    for timing, iou in TIMING_GRID.items():
        iou_jobs = {tuple(job) for job in expand(sweep_params(iou))}
        for job in expand(sweep_params(timing))[:4]:
            assert tuple(job) in iou_jobs
            timed = job_params(timing, job)
            other = job_params(iou, job)
            differ = {k for k in set(timed) | set(other) if timed.get(k) != other.get(k)}
            assert differ == {"table", "train.patience"}, (timing, iou, job)
    # train.patience is part of a cell's identity, `table` is not.
    assert "train" not in NOT_CELL_KEYS and "train.patience" not in NOT_CELL_PATHS
    assert "table" in NOT_CELL_KEYS


def test_views_share_their_tables_sweep() -> None:
    table2 = {tuple(job) for job in expand(sweep_params("table2"))}
    for half in ("table6", "table7"):
        assert {tuple(job) for job in expand(sweep_params(half))} < table2


@pytest.mark.parametrize("table", EXPERIMENTS)
def test_jobs_fill_every_cell_of_the_spec(table: str) -> None:
    """Every job lands in exactly one cell, and every cell gets one job per seed of the table
    its experiment file defines. Each value of each swept key is
    composed (and validated) once, in a covering set of jobs; a job's params are the base
    config's with each chosen group's (or key's) params from those composes."""
    spec = TABLES[table]
    params = sweep_params(table)
    if "dataset.train_fraction" in params and "train_fraction" not in compose(config_name="config").dataset:
        pytest.skip("the dataset settings have no train_fraction")
    values = {key: sweep_values(key, value) for key, value in params.items()}
    by_choice: dict[tuple[str, str], dict[str, str]] = {}
    for i in range(max(len(v) for v in values.values())):
        chosen = {key: options[i % len(options)] for key, options in values.items()}
        flat = job_params(table, [f"{key}={value}" for key, value in chosen.items()])
        for key, value in chosen.items():
            by_choice[(key, value)] = {k: v for k, v in flat.items() if k == key or k.startswith(key + ".")}
    base = job_params(table, [])

    hits: Counter = Counter()
    for combo in itertools.product(*([(key, v) for v in options] for key, options in values.items())):
        flat = dict(base)
        for choice in combo:
            flat = {k: v for k, v in flat.items() if not (k == choice[0] or k.startswith(choice[0] + "."))}
            flat.update(by_choice[choice])
        assert matches(spec.fixed, flat), (combo, spec.fixed)
        # The recipe where the table neither fixes nor varies a setting (the report's rule).
        assert matches({k: v for k, v in spec.recipe.items() if k not in spec.fixed and not varies(spec, k)}, flat)
        cells = [(row.label, column.label) for row in spec.rows if row.match is not None
                 for column in spec.columns if matches(row.match, flat) and matches(column.match, flat)]
        # Table 5 also runs Swin-B (the model the paper's text names), whose cells are Table 4's.
        extra = table == "table5" and flat["encoder.name"] == "swin_base"
        # Section 5.1 shows accuracy and IoU of the same runs: two columns per tiling.
        shared = table == "tiling"
        assert len(cells) == (0 if extra else 1) or (len(cells) == 2 and shared), (combo, cells)
        hits.update(cells)
    wanted = {(row.label, column.label) for row in spec.rows if row.match is not None for column in spec.columns}
    assert set(hits) == wanted
    assert set(hits.values()) == {len(spec.seeds)}


@pytest.mark.parametrize("table", EXPERIMENTS)
def test_recipe_filter_is_the_default_config(table: str) -> None:
    """The paper's tables hold their runs to the paper's recipe: their task's recipe settings at
    the defaults, which no table changes."""
    task = TABLES[table].fixed["task.name"]
    cfg = compose(config_name="config", overrides=[f"task={task}"])
    flat = flatten(OmegaConf.to_container(cfg, resolve=True))
    settings = task_class(cfg).recipe_settings
    assert settings and TABLES[table].recipe == {key: flat[key] for key in settings}


def demo_sweep() -> list[str]:
    """The overrides of `make demo`'s sweep, read from the Makefile."""
    text = (REPO / "Makefile").read_text()
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", text, re.M).group(1)
    line = next(line for line in recipe.splitlines() if "+experiment=" in line)
    return shlex.split(line.split(" -m ", 1)[1])


def test_demo_is_six_cells_of_table2() -> None:
    command_line = demo_sweep()
    assert "+experiment=table2" in command_line
    jobs = expand(sweep_params("table2"), command_line)
    assert len(jobs) == 6
    cells = {tuple(sorted(o for o in job if o.split("=")[0] in ("architecture", "encoder", "app", "seed")))
             for job in jobs}
    assert cells == {
        tuple(sorted(("architecture=unet", "encoder=resnet18", f"app={app}", f"seed={seed}")))
        for app in ("none", "relu", "gelu") for seed in (26, 77)
    }
    for job in jobs:
        assert "budget=smoke" in job and "init=random" in job


def make_dry_run(*args: str) -> list[str]:
    """The commands `make` would run for `args`, the install left out (-o install)."""
    proc = subprocess.run(["make", "-n", "-s", "-o", "install", *args], cwd=REPO, capture_output=True, text=True, check=True)
    return [line for line in proc.stdout.splitlines() if "dedl_experiments" in line]


@pytest.mark.parametrize(("table", "sweep", "report"), [
    ("table2", "budget=smoke init=random dataset=myositis dataset.root=/seg",
     "budget=smoke init=random"),
    ("table12", "budget=smoke dataset=myositis dataset.root=/seg", "budget=smoke init=random"),
    ("table4", "budget=smoke init=random dataset=autofluorescence dataset.root=/cls",
     "budget=smoke init=random"),
    ("table13", "budget=smoke dataset=autofluorescence dataset.root=/cls", "budget=smoke init=random"),
])
def test_make_table_targets(table: str, sweep: str, report: str) -> None:
    lines = make_dry_run(table, "SMOKE=1", "DATA=/seg", "CLS_DATA=/cls", "ARGS=tracking.uri=sqlite:///t.db")
    assert lines[0].endswith(f"-m dedl_experiments -m +experiment={table} {sweep} tracking.uri=sqlite:///t.db")
    assert lines[1].endswith(f"-m dedl_experiments.report table={table} {report} tracking.uri=sqlite:///t.db")
    assert make_dry_run("tiling")[1].endswith("report table=tiling budget=paper")


def test_make_has_a_target_per_experiment_file() -> None:
    lines = make_dry_run("tables")
    assert sorted(line.split("+experiment=")[1].split()[0] for line in lines if "+experiment=" in line) == EXPERIMENTS


def test_make_targets_of_a_users_config_folder(tmp_path) -> None:
    """CONF=/path: its experiment files are targets, on Hydra's search path for the sweep and
    given to the report; a classification experiment takes CLS_DATA, one sweeping inits keeps them."""
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /task: classification\n"
        "hydra:\n  sweeper:\n    params:\n      init: imagenet,advprop\n")
    sweep, report = make_dry_run("mine", f"CONF={tmp_path}", "SMOKE=1", "CLS_DATA=/cls")
    assert sweep.endswith(f"-m dedl_experiments -m +experiment=mine budget=smoke dataset=autofluorescence "
                          f"dataset.root=/cls 'hydra.searchpath=[pkg://multirun_launchers/conf,file://{tmp_path}]'")
    assert report.endswith(f"-m dedl_experiments.report table=mine budget=smoke init=random config_dir={tmp_path}")


def test_make_table_seeds_auto_plans_from_a_pilot() -> None:
    """SEEDS=auto: the planner runs the pilot and the planned seeds with the sweep's overrides
    (after --) and takes the report's options; then the report."""
    plan, report = make_dry_run("table2", "SEEDS=auto", "SMOKE=1", "ARGS=encoder=resnet18", "PLAN_ARGS=max_seeds=5")
    assert plan.endswith("-m dedl_experiments.plan table=table2 run=true budget=smoke init=random max_seeds=5 -- "
                         "budget=smoke init=random encoder=resnet18")
    assert report.endswith("-m dedl_experiments.report table=table2 budget=smoke init=random")
