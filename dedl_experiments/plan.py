"""`python -m dedl_experiments.plan table=NAME [pilot=3] [max_seeds=10] [effect=paper|NUMBER]
[run=true] [report options ...] [-- sweep overrides ...]`

Plans the seeds each cell of a table needs from a pilot (the first `pilot` seeds of its seed
sequence: the table's seeds, then 1000, 1001, ...), by the rule of report/analysis/planning.py (the pilot's
pooled variance of the paired differences, never its differences or p-values), and prints per
cell the seeds done, needed and still to run, the projected device-hours (the report's cost
section: time per run of the cell, its row, its column or the table) and the sweep commands that
run them. With `run=true` (`make tableN SEEDS=auto`) it first runs the pilot's sweep, then the
plan's commands, and prints the device-hours the extension spent beside the projection. Cells
finished before are skipped by the sweep as always. The report options (budget=, init=,
tracking.uri=, config_dir=, dataset=, where.KEY=) select the runs as the report does; the
overrides after `--` go to every sweep (the Makefile's SMOKE/ARGS).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from dedl_experiments.config import config_files
from dedl_experiments.report.rendering import fmt
from dedl_experiments.report.definition import tables
from dedl_experiments.report.cells.aggregate import RunRecord, pair_key
from dedl_experiments.report.build import build
from dedl_experiments.report.analysis.cost import device_kind, per_run, run_seconds
from dedl_experiments.report.loading.mlflow_runs import load_runs
from dedl_experiments.report.options import USAGE as REPORT_USAGE
from dedl_experiments.report.options import Options, UsageError, parse_args
from dedl_experiments.report.analysis.planning import MAX_SEEDS, PILOT, planned_seeds, seed_sequence
from dedl_experiments.report.analysis.power import effect_of_interest
from dedl_experiments.report.definition.spec import TableSpec

USAGE = f"""\
usage: python -m dedl_experiments.plan table=NAME [pilot={PILOT}] [max_seeds={MAX_SEEDS}] [effect=paper|NUMBER]
                                       [run=true] [report options] [-- sweep overrides]

  pilot=K        the pilot's seeds per cell: the first K of the table's seed sequence
  max_seeds=N    at most N seeds per cell (comparisons needing more keep the pilot)
  effect=...     effect of interest (default: the table's `effect:`, else paper)
  run=true       run the pilot's sweep, then the plan's (make tableN SEEDS=auto)
Report options select the runs (python -m dedl_experiments.report --help):
""" + REPORT_USAGE.split("\n", 2)[2]

Position = tuple[str, str]


@dataclass
class CellPlan:
    position: Position
    done: list[str]  # seeds with a finished value
    needed: int
    extra: list[int]  # seeds of the sequence still to run
    projected: tuple[float, str] | None = None  # seconds, device kind


@dataclass
class Plan:
    spec: TableSpec
    pilot: list[int]
    max_seeds: int
    tests: int
    cells: list[CellPlan] = field(default_factory=list)

    def projected(self) -> dict[str, float]:
        found: dict[str, float] = defaultdict(float)
        for cell in self.cells:
            if cell.projected:
                found[cell.projected[1]] += cell.projected[0]
        return dict(found)


def _cell_seeds(cell) -> list[str]:
    return sorted({pair_key(run)[0] for run in cell.sources}, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))


def make_plan(spec: TableSpec, runs: list[RunRecord], options: Options, pilot: int, max_seeds: int,
              effect: str | float) -> Plan:
    """The plan from the pilot seeds' runs in the store (later seeds are not looked at)."""
    pilot_seeds = seed_sequence(spec.seeds, pilot)
    in_pilot = {str(seed) for seed in pilot_seeds}
    pilot_report = build(spec, [run for run in runs if pair_key(run)[0] in in_pilot], options)
    tested = [row for row in pilot_report.comparisons if row.result is not None and row.result.tested]
    plan = Plan(pilot_report.spec, pilot_seeds, max_seeds, len(tested))
    if not tested:
        return plan
    sds = np.array([np.std(row.differences, ddof=1) for row in tested])
    effects = np.array([effect_of_interest(row, effect) or np.nan for row in tested])
    seeds = planned_seeds(sds, effects, pilot, max_seeds)
    needed: dict[Position, int] = {}
    for row, count in zip(tested, seeds):
        for position in (row.pair.a, row.pair.b):
            needed[position] = max(needed.get(position, 0), int(count))
    full = build(spec, runs, options)
    by_position = {(cell.row, cell.column): cell for cell in full.cells}
    sequence = seed_sequence(spec.seeds, max_seeds)
    runs_per_seed = max(1, full.cost.expected // len(spec.seeds)) if spec.seeds else 1
    for position, count in needed.items():
        done = _cell_seeds(by_position[position])
        extra = [seed for seed in sequence[:count] if str(seed) not in done]
        cell = CellPlan(position, done, count, extra)
        group = next((g for g in full.cost.cells if g.row == position[0] and position[1] in g.views), None)
        per = per_run(full.cost, group) if group is not None and extra else None
        if per is not None:
            cell.projected = (per[0] * len(extra) * runs_per_seed, per[1])
        plan.cells.append(cell)
    return plan


def _overrides(spec: TableSpec, position: Position, extra_dirs: list[str]) -> dict[str, str]:
    """The sweep overrides that select one cell: a config group's choice by its file (G=choice),
    any other param as it is logged."""
    row = next(row for row in spec.rows if row.label == position[0])
    column = next(view.column for view in spec.views() if view.label == position[1])
    found = {}
    for key, value in {**(row.match or {}), **column.match}.items():
        group = key.removesuffix(".name")
        if key.endswith(".name") and config_files.option_file(group, value, extra_dirs) is not None:
            found[group] = value
        else:
            found[key] = value
    return found


def commands(plan: Plan, sweep_overrides: list[str], extra_dirs: list[str]) -> list[list[str]]:
    """One sweep per group of cells that run the same extra seeds and differ in one override
    only (its values joined by commas, as Hydra sweeps them)."""
    grouped: dict[tuple, list[str]] = defaultdict(list)
    seen: set[tuple[str, ...]] = set()
    for cell in plan.cells:
        if not cell.extra:
            continue
        overrides = _overrides(plan.spec, cell.position, extra_dirs)
        if tuple(overrides.items()) in seen:  # views of one column share their runs
            continue
        seen.add(tuple(overrides.items()))
        *fixed, (last_key, last_value) = overrides.items()
        grouped[(tuple(cell.extra), tuple(fixed), last_key)].append(last_value)
    found = []
    for (extra, fixed, last_key), values in grouped.items():
        own = {key for key, _ in fixed} | {last_key, "seed"}
        kept = [o for o in sweep_overrides if o.partition("=")[0].lstrip("+~") not in own]
        found.append([sys.executable, "-m", "dedl_experiments", "-m", f"+experiment={plan.spec.name}", *kept,
                      *(f"{key}={value}" for key, value in fixed), f"{last_key}={','.join(dict.fromkeys(values))}",
                      f"seed={','.join(map(str, extra))}"])
    return found


def _hours(seconds: dict[str, float]) -> str:
    return " + ".join(f"{fmt.hours(s)} {kind}-hours" for kind, s in sorted(seconds.items())) or "nothing timed"


def plan_text(plan: Plan, sweeps: list[list[str]]) -> str:
    lines = [f"### Seed plan for {plan.spec.name}: pilot seeds {', '.join(map(str, plan.pilot))}; at most "
             f"{plan.max_seeds} seeds per cell; {plan.tests} tested comparison(s)", ""]
    if not plan.cells:
        lines.append("No comparison has a pilot test yet (each needs 2 pilot seeds with spread in both cells): "
                     "run the pilot first (run=true).")
        return "\n".join(lines) + "\n"
    lines += ["| Cell | Seeds done | Seeds needed | Extra seeds | Projected |", "|---|---|---|---|---|"]
    for cell in plan.cells:
        projected = f"{fmt.hours(cell.projected[0])} {cell.projected[1]}-hours" if cell.projected else "—"
        lines.append(f"| {cell.position[0]} / {cell.position[1]} | {len(cell.done)} | {cell.needed} | "
                     f"{', '.join(map(str, cell.extra)) or '—'} | {projected} |")
    extra = sum(len(cell.extra) for cell in plan.cells)
    lines += ["", f"Extra seeds: {extra} run(s) over {sum(1 for c in plan.cells if c.extra)} cell(s); projected "
              f"{_hours(plan.projected())}."]
    lines += ["", "Sweep commands:" if sweeps else "Nothing to run: every cell has the seeds it needs."]
    lines += [f"    {shlex.join(command)}" for command in sweeps]
    return "\n".join(lines) + "\n"


def spent(plan: Plan, runs: list[RunRecord], options: Options) -> dict[str, float]:
    """Device seconds of the plan's extra seeds' runs, as they were recorded."""
    report = build(plan.spec, runs, options)
    wanted = {cell.position: {str(seed) for seed in cell.extra} for cell in plan.cells}
    seconds: dict[str, float] = defaultdict(float)
    counted: set[str] = set()
    for cell in report.cells:
        for run in cell.runs:
            if run.run_id not in counted and pair_key(run)[0] in wanted.get((cell.row, cell.column), ()):
                counted.add(run.run_id)
                seconds[device_kind(run)] += run_seconds(run) or 0.0
    return dict(seconds)


def _plan_options(argv: list[str]) -> tuple[dict[str, str], list[str], list[str]]:
    """(plan options, report arguments, sweep overrides)."""
    split = argv.index("--") if "--" in argv else len(argv)
    own, report_args = {}, []
    for arg in argv[:split]:
        key, _, value = arg.partition("=")
        if key in ("pilot", "max_seeds", "run"):
            own[key] = value
        else:
            report_args.append(arg)
    return own, report_args, argv[split + 1:]


def _integer(own: dict[str, str], key: str, default: int, least: int) -> int:
    try:
        value = int(own.get(key, default))
    except ValueError:
        value = least - 1
    if value < least:
        raise UsageError(f"{key}={own.get(key)}: give a whole number of at least {least}")
    return value


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help", "help") for arg in argv):
        print(USAGE)
        return 0
    try:
        own, report_args, sweep_overrides = _plan_options(argv)
        pilot = _integer(own, "pilot", PILOT, 2)
        max_seeds = _integer(own, "max_seeds", MAX_SEEDS, pilot)
        if own.get("run", "false") not in ("true", "false"):
            raise UsageError(f"run={own['run']}: give true or false")
        options = parse_args(report_args)
        if len(options.tables) != 1:
            raise UsageError("table=all: plan one table at a time")
    except UsageError as err:
        print(f"error: {err}\n\n{USAGE}", file=sys.stderr)
        return 2
    try:
        spec = tables.spec(options.tables[0], options.search_path)
    except ValueError as err:  # an experiment file the report cannot read as a table
        print(f"error: {err}", file=sys.stderr)
        return 2
    effect = options.effect or spec.effect
    extra_dirs = options.search_path
    if own.get("run") == "true":
        pilot_sweep = [sys.executable, "-m", "dedl_experiments", "-m", f"+experiment={spec.name}",
                       *[o for o in sweep_overrides if o.partition("=")[0] != "seed"],
                       f"seed={','.join(map(str, seed_sequence(spec.seeds, pilot)))}"]
        print(f"Pilot: {shlex.join(pilot_sweep)}", flush=True)
        subprocess.run(pilot_sweep, check=True)
    plan = make_plan(spec, load_runs(options.uri), options, pilot, max_seeds, effect)
    sweeps = commands(plan, sweep_overrides, extra_dirs)
    print(plan_text(plan, sweeps), flush=True)
    if own.get("run") == "true" and sweeps:
        for command in sweeps:
            subprocess.run(command, check=True)
        print(f"Extra seeds: projected {_hours(plan.projected())}; spent "
              f"{_hours(spent(plan, load_runs(options.uri), options))}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
