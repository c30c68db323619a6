"""The seed planner from a store of runs (report_golden's fixed runs; nothing trains): the plan,
its commands, and that it reads only the pilot's variance."""

from __future__ import annotations

import dataclasses

import pytest
from report_golden import load_runs

from dedl_experiments import plan as planner
from dedl_experiments.report.definition import tables
from dedl_experiments.report.options import parse_args
from dedl_experiments.report.analysis.planning import seed_sequence


@pytest.fixture(scope="module")
def table2():
    return tables.spec("table2"), load_runs(), parse_args(["table=table2"])


def _plan(table2, runs=None, **kwargs):
    spec, stored, options = table2
    settings = {"pilot": 3, "max_seeds": 10, "effect": "paper", **kwargs}
    return planner.make_plan(spec, stored if runs is None else runs, options, settings["pilot"],
                             settings["max_seeds"], settings["effect"])


def _summary(plan) -> list[tuple]:
    return [(cell.position, cell.needed, tuple(cell.extra)) for cell in plan.cells]


def test_the_plan_gives_each_cell_seeds_of_the_sequence_up_to_max_seeds(table2) -> None:
    plan = _plan(table2)
    sequence = seed_sequence(table2[0].seeds, 10)
    assert plan.pilot == [26, 77, 334] and plan.tests == 22 and plan.cells
    for cell in plan.cells:
        assert 3 <= cell.needed <= 10 and list(cell.extra) == sequence[3:cell.needed]
    assert any(cell.needed > 3 for cell in plan.cells) and plan.projected()["GPU"] > 0
    sweeps = planner.commands(plan, ["budget=smoke", "encoder=resnet18"], [])
    text = planner.plan_text(plan, sweeps)
    assert "| ResNet-18 / UNet / Without AE | 3 |" in text and "Sweep commands:" in text
    first = sweeps[0]
    assert first[3:5] == ["-m", "+experiment=table2"] and "budget=smoke" in first
    assert first.count("encoder=resnet18") <= 1 and first[-1].startswith("seed=517,")
    # A smaller max_seeds caps every cell.
    assert max(cell.needed for cell in _plan(table2, max_seeds=5).cells) <= 5


def test_the_plan_reads_the_pilots_variance_only(table2) -> None:
    """Shifting a column's pilot values (its differences, not their spread) or adding runs of later
    seeds leaves the plan as it was: no optional stopping."""
    spec, runs, _ = table2
    shifted = [dataclasses.replace(run, metrics={**run.metrics, "test_iou": run.metrics["test_iou"] + 0.2})
               if run.params.get("app.name") == "gelu" and "test_iou" in run.metrics else run for run in runs]
    later = [dataclasses.replace(run, run_id=run.run_id + "-later", params={**run.params, "seed": "517"},
                                 tags={**run.tags, "dedl.seed": "517"},
                                 metrics={**run.metrics, "test_iou": 0.9})
             for run in runs if run.params.get("seed") == "26" and run.params.get("architecture.name") == "unet"]
    assert later
    plan = _summary(_plan(table2))
    assert _summary(_plan(table2, shifted)) == plan
    widened = _summary(_plan(table2, runs + later))
    assert [(position, needed) for position, needed, _ in widened] == [(position, needed) for position, needed, _ in plan]


def test_a_fixed_effect_of_interest_changes_the_plan(table2) -> None:
    assert _summary(_plan(table2, effect=0.2)) != _summary(_plan(table2))
    assert all(cell.needed == 3 for cell in _plan(table2, effect=0.5).cells)


@pytest.mark.parametrize(("args", "message"), [
    (["table=table2", "pilot=1"], "pilot=1: give a whole number of at least 2"),
    (["table=table2", "max_seeds=2"], "max_seeds=2: give a whole number of at least 3"),
    (["table=table2", "run=yes"], "run=yes: give true or false"),
    (["table=all"], "table=all: plan one table at a time"),
])
def test_bad_planner_options_are_one_line(args, message, capsys) -> None:
    assert planner.main(args) == 2
    assert capsys.readouterr().err.startswith(f"error: {message}\n")
