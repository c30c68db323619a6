"""One table's report from run records: which runs count (the table's settings, budget, init,
dataset by content, the paper's recipe), its cells, its paired comparisons, its cost, and the
notes that explain what was left out.

Runs are read from every experiment named `dedl` or `dedl-*` of the store (a cell recorded by
Table 2's sweep is also a cell of Tables 1, 3, 6 and 7) and selected by their params:

- the table's own settings, from its experiment file (experiment.py: fixed settings, rows,
  columns);
- `budget.name` (default paper): smoke and paper runs are never mixed;
- the dataset, by content: one group of runs per dataset digest (datasets.py); `dataset=auto`
  (default) takes real data over the built-in synthetic data, digested runs over runs recorded
  before digests, then the group with the most runs, and a note names the others;
  `dataset=NAME`, a digest prefix or `NAME@DIGEST8` picks one;
- the paper's recipe for settings a user may ablate outside the tables (the spec's `recipe`, the
  task's `recipe_settings`: learning-rate schedule, loss, decoder attention, SWA, ...) where the
  table neither fixes nor varies them;
  `where.KEY=VALUE` changes such a filter or adds one
  on any param (`where.lr_schedule.name=step`), `where.KEY=*` drops it;
- `init=NAME` replaces the table's ImageNet initialisation (smoke runs use init=random); tables
  that compare initialisations (12, 13) ignore it, with a note.

Per cell and seed (and fold) the newest FINISHED run counts (reruns are not double-counted);
FAILED/KILLED runs count as failures only where no run finished. Cells without runs show as
"missing", cells whose runs all failed as "failed (n)", never as zeros. A note flags cells whose
finished runs differ in a setting: what a setting is comes from the cell key's own definition
(tracking.recipe_params), so runs the note calls alike are runs of one cell but for seed and fold.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

from dedl_experiments.report.loading import datasets
from dedl_experiments.report.cells.aggregate import Cell, RunRecord, aggregate, matches
from dedl_experiments.report.analysis.compare import ComparisonRow, compare_table
from dedl_experiments.report.analysis.cost import TableCost, table_cost
from dedl_experiments.report.analysis.curves import CurveReport, analyse
from dedl_experiments.report.options import Options
from dedl_experiments.report.definition.spec import TableSpec
from dedl_experiments.report.analysis.verdicts import Evidence

ANY = ("*", "any")


@dataclass
class TableReport:
    spec: TableSpec  # with the report's filters added to `fixed`
    cells: list[Cell]
    runs: int  # runs that fill the table's cells (failed ones included)
    notes: list[str]
    dataset: datasets.DatasetGroup | None = None
    roots: list[str] = field(default_factory=list)  # the dataset.root params of its runs
    comparisons: list[ComparisonRow] = field(default_factory=list)
    cost: TableCost | None = None
    blocked: str = ""  # why the claims on this table cannot be judged from it
    curves: CurveReport | None = None  # learning curves, where the table sweeps the training-set size

    def counts(self) -> Counter:
        return Counter(cell.status for cell in self.cells)

    def evidence(self) -> Evidence:
        return Evidence(self.spec, self.cells, self.comparisons, self.blocked, self.curves)


def varies(spec: TableSpec, key: str) -> bool:
    selectors = [row.match for row in spec.rows if row.match] + [c.match for c in spec.columns]
    return any(key in selector for selector in selectors)


def select(spec: TableSpec, runs: list[RunRecord]) -> list[RunRecord]:
    """Runs that land in some cell of spec."""
    rows = [row.match for row in spec.rows if row.match is not None]
    return [
        run for run in runs
        if matches(spec.fixed, run.params)
        and any(matches(row, run.params) for row in rows)
        and any(matches(column.match, run.params) for column in spec.columns)
    ]


def build(spec: TableSpec, runs: list[RunRecord], options: Options) -> TableReport:
    notes: list[str] = []
    fixed = dict(spec.fixed)
    blocked = ""
    if options.metric:
        notes.append(f"Metric `{options.metric}` shown instead of the table's `{spec.metric}`.")
        blocked = f"metric={options.metric} replaces the table's metric, which the claim is about"
        spec = dataclasses.replace(spec, metric=options.metric)
    if options.init:
        if varies(spec, "init.name"):
            notes.append(f"init={options.init} ignored: this table compares initialisations.")
        else:
            fixed["init.name"] = options.init
    fixed["budget.name"] = options.budget
    # The recipe fills in what the table leaves open: a table that fixes or varies one of its
    # settings (an experiment of the step schedule, one that sweeps the loss) keeps its own.
    recipe = {key: value for key, value in spec.recipe.items() if key not in spec.fixed and not varies(spec, key)}
    # Settings the report's options set (the rest are the table's own).
    adjustable = {"budget.name", "init.name", "dataset.name", *recipe, *options.where}
    for key, value in {**recipe, **options.where}.items():
        if value in ANY:
            fixed.pop(key, None)
        else:
            fixed[key] = value

    candidates = select(dataclasses.replace(spec, fixed=fixed), runs)
    group, dataset_notes = datasets.choose(candidates, options.dataset)
    notes += dataset_notes
    selected = [run for run in candidates if group is not None and datasets.group_of(run) == group]
    if group is not None:
        fixed["dataset.name"] = group.name
    spec = dataclasses.replace(spec, fixed=fixed)
    if not selected and group is None and not candidates:
        notes += _why_empty(spec, runs, adjustable & set(fixed))
    notes += _mixed_settings(spec, selected)
    cells = aggregate(spec, selected)
    return TableReport(spec, cells, len(selected), notes, group, datasets.roots(selected),
                       compare_table(spec, cells), table_cost(spec, cells), blocked,
                       analyse(spec, selected) if spec.curve is not None else None)


def _why_empty(spec: TableSpec, runs: list[RunRecord], adjustable: set[str]) -> list[str]:
    """For a table without runs: the settings (budget, init, dataset, recipe) of runs that
    would fill its cells but for those settings, and the options that select them."""
    loose = dataclasses.replace(spec, fixed={k: v for k, v in spec.fixed.items() if k not in adjustable})
    found = Counter(
        tuple((key, run.params.get(key, "(not set)")) for key in sorted(adjustable)
              if run.params.get(key, "(not set)") != spec.fixed[key])
        for run in select(loose, runs)
    )
    options_for = {"budget.name": "budget", "init.name": "init", "dataset.name": "dataset"}
    hints = []
    for settings, n in found.most_common(5):
        shown = ", ".join(f"{key}={value}" for key, value in settings)
        chosen = " ".join(f"{options_for.get(key, 'where.' + key)}={value}" for key, value in settings)
        hints.append(f"No runs with this table's settings, but {n} run(s) of its cells with {shown}: "
                     f"`{chosen}` selects them.")
    return hints


def _mixed_settings(spec: TableSpec, selected: list[RunRecord]) -> list[str]:
    """Settings that differ between finished runs of one cell (seed aside): a hint that runs of
    different experiments (say another lr) share a cell; `where.KEY=VALUE` separates them."""
    differing: dict[str, set[str]] = {}
    for row in spec.rows:
        if row.match is None:
            continue
        for column in spec.columns:
            cell = [run for run in selected if run.status == "FINISHED"
                    and matches(row.match, run.params) and matches(column.match, run.params)]
            if len(cell) < 2:
                continue
            # Params every run logged (an older run lacks newer ones) that define a cell for one
            # of them (a setting left out at its default still differs from another value).
            shared = set.intersection(*(set(run.params) for run in cell))
            for key in shared & set().union(*(run.settings for run in cell)):
                values = {run.params[key] for run in cell}
                if len(values) > 1:
                    differing.setdefault(key, set()).update(values)
    if not differing:
        return []
    listed = "; ".join(f"{key}: {', '.join(sorted(values))}" for key, values in sorted(differing.items()))
    return [f"Some cells mix runs with different settings ({listed}); `where.KEY=VALUE` keeps one."]
