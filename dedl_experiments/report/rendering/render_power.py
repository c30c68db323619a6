"""Render how many seeds a table's questions need: per tested comparison the difference its n can
detect and the seeds the effect of interest needs, and the line that says what settling the
inconclusive comparisons would cost (from the cost section's time per run)."""

from __future__ import annotations

from dedl_experiments.report.rendering import fmt
from dedl_experiments.report.cells.aggregate import Cell, pair_key
from dedl_experiments.report.analysis.cost import TableCost, per_run
from dedl_experiments.report.analysis.power import MOST_SEEDS, PAPER, POWER, PowerRow

Position = tuple[str, str]  # (row label, view label)


def _effect_words(effect: str | float, metric: str) -> str:
    return "the paper's effect sizes" if effect == PAPER else f"an effect of {fmt.value(metric, float(effect))}"


def seeds_done(cells: list[Cell]) -> dict[Position, int]:
    """Seeds with a finished value per cell."""
    return {(cell.row, cell.column): len({pair_key(run)[0] for run in cell.sources}) for cell in cells}


def settle(rows: list[PowerRow], cells: list[Cell]) -> tuple[list[PowerRow], list[PowerRow], dict[Position, int]]:
    """The inconclusive comparisons that more seeds (up to MOST_SEEDS) would settle, those that
    would need more than that, and the seeds each of their cells needs (the most any of its
    comparisons needs). One that already has the seeds to detect its effect is left out: more
    seeds would not change what its runs show (an effect that large is not there)."""
    inconclusive = [power for power in rows if not power.row.reject and power.needed is not None
                    and power.needed > power.row.result.n]
    reachable = [power for power in inconclusive if power.needed <= MOST_SEEDS]
    beyond = [power for power in inconclusive if power.needed > MOST_SEEDS]
    needed: dict[Position, int] = {}
    for power in reachable:
        for position in (power.row.pair.a, power.row.pair.b):
            needed[position] = max(needed.get(position, 0), power.needed)
    return reachable, beyond, needed


def extra_seconds(needed: dict[Position, int], done: dict[Position, int], cost: TableCost | None,
                  runs_per_seed: int) -> tuple[dict[str, float], int]:
    """Projected seconds (by device kind) and runs of the seeds the cells still need."""
    seconds: dict[str, float] = {}
    runs = 0
    for (row, view), seeds in needed.items():
        more = max(0, seeds - done.get((row, view), 0)) * runs_per_seed
        runs += more
        if cost is None:
            continue
        group = next((g for g in cost.cells if g.row == row and view in g.views), None)
        projected = per_run(cost, group) if group is not None and more else None
        if projected is not None:
            seconds[projected[1]] = seconds.get(projected[1], 0.0) + more * projected[0]
    return seconds, runs


def power_markdown(rows: list[PowerRow], effect: str | float, cells: list[Cell], cost: TableCost | None,
                   runs_per_seed: int = 1) -> str:
    if not rows:
        return ""
    level = rows[0].level
    lines = [f"#### Seeds needed ({100 * POWER:g} % power, paired t-test at Holm's first level alpha / "
             f"{len(rows)} = {level:.2g}; effect of interest: {_effect_words(effect, rows[0].row.metric)})",
             "", "| Comparison (A vs B) | Pair | n | sd of B - A | Detectable at n | Effect of interest | Seeds needed |",
             "|---|---|---|---|---|---|---|"]
    for power in rows:
        metric = power.row.metric
        wanted = "—" if power.effect is None else fmt.value(metric, power.effect)
        needed = ("—" if power.needed is None else
                  f"more than {MOST_SEEDS}" if power.needed > MOST_SEEDS else str(power.needed))
        lines.append(f"| {power.row.comparison.name} | {power.row.pair.label} | {power.row.result.n} | "
                     f"{fmt.value(metric, power.sd)} | {fmt.value(metric, power.detectable)} | {wanted} | {needed} |")
    reachable, beyond, needed = settle(rows, cells)
    seconds, runs = extra_seconds(needed, seeds_done(cells), cost, runs_per_seed)
    spent = " + ".join(f"{fmt.hours(s)} {kind}-hours" for kind, s in sorted(seconds.items())) or \
        "no timed run to project from"
    most = max((power.needed for power in reachable), default=0)
    effect_words = _effect_words(effect, rows[0].row.metric)
    line = (f"To settle {len(reachable)} inconclusive comparison(s) at {effect_words}: "
            f"up to {most} seeds per cell, projected {spent} ({runs} more run(s))")
    if beyond:
        line += f"; {len(beyond)} more would need over {MOST_SEEDS} seeds per cell"
    if not reachable:
        line = (f"None of the {len(beyond)} inconclusive comparison(s) can be settled at {effect_words} within "
                f"{MOST_SEEDS} seeds per cell" if beyond else
                f"No inconclusive comparison that more seeds would settle at {effect_words}")
    return "\n".join(lines + ["", line + "."]) + "\n"
