"""Render what a table's report concludes: its paired comparisons, the claims it touches, its
cost, and the runs behind each cell (Markdown and CSV)."""

from __future__ import annotations

import csv
from pathlib import Path

from dedl_experiments.report.rendering import fmt
from dedl_experiments.report.cells.aggregate import Cell
from dedl_experiments.report.analysis.compare import ComparisonRow
from dedl_experiments.report.analysis.cost import BASES, TableCost
from dedl_experiments.report.rendering.render import run_link
from dedl_experiments.report.analysis.stats import ALPHA, CONFIDENCE
from dedl_experiments.report.cells.units import UNIT
from dedl_experiments.report.analysis.verdicts import Verdict


def _paper_diff(row: ComparisonRow) -> str:
    diff = row.paper_diff
    if diff is None:
        return "not printed"
    text = fmt.signed(row.metric, diff)
    if fmt.is_duration(row.metric) and row.paper_a.mean:
        text += f" ({fmt.percent(diff / row.paper_a.mean)})"
    return text


def _entries(row: ComparisonRow) -> list[str]:
    result = row.result
    if result is None:
        return ["—"] * 4
    if result.mean_diff is None:
        return [str(result.n)] + ["—"] * 3
    return [str(result.n), fmt.signed(row.metric, result.mean_diff), fmt.interval(row.metric, result.ci),
            fmt.pvalue(result.p)]


def comparisons_markdown(rows: list[ComparisonRow], by_fold: bool = False, family: str = "the table's") -> str:
    """`by_fold`: the table's cells have folds: runs pair by seed and fold, and each seed's mean
    over its folds is one pair; `family`: whose tests Holm's correction runs across."""
    if not rows:
        return ""
    tested = sum(1 for row in rows if row.result is not None and row.result.tested)
    pairing = (f"the {UNIT}: runs paired by seed and fold, n = seeds (each seed's mean over its folds)" if by_fold
               else f"the {UNIT}: runs paired by seed")
    lines = [
        f"#### Paired comparisons (B - A; unit of replication {pairing}; paired t-test, {100 * CONFIDENCE:g} % CI; "
        f"Holm-corrected across {family} {tested} test(s), alpha {ALPHA})",
        "",
        f"| Comparison (A vs B) | Pair | n | B - A (ours) | {100 * CONFIDENCE:g} % CI | p | p (Holm) | Verdict | "
        "B - A (paper) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        n, diff, ci, p = _entries(row)
        lines.append(f"| {row.comparison.name} | {row.pair.label} | {n} | {diff} | {ci} | {p} | "
                     f"{fmt.pvalue(row.p_holm)} | {row.verdict} | {_paper_diff(row)} |")
    return "\n".join(lines) + "\n"


def comparisons_csv(table: str, rows: list[ComparisonRow], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["table", "comparison", "pair", "a", "b", "a_cell", "b_cell", "metric", "status", "n",
                         "mean_a", "mean_b", "mean_diff", "ci_low", "ci_high", "p", "p_holm", "p_wilcoxon",
                         "test", "verdict", "paper_a", "paper_b", "paper_diff", "pairs", "fold_pairs"])
        for row in rows:
            result = row.result
            ci = result.ci if result and result.ci else (None, None)
            writer.writerow([
                table, row.comparison.name, row.pair.label, row.a_name, row.b_name,
                " / ".join(row.pair.a), " / ".join(row.pair.b), row.metric, row.status,
                result.n if result else "", _num(row.mean_a), _num(row.mean_b),
                _num(result.mean_diff if result else None), _num(ci[0]), _num(ci[1]),
                _num(result.p if result else None), _num(row.p_holm), _num(result.p_wilcoxon if result else None),
                result.kind if result else "", row.verdict,
                _num(row.paper_a.mean if row.paper_a else None), _num(row.paper_b.mean if row.paper_b else None),
                _num(row.paper_diff), ";".join(":".join(filter(None, key)) for key in row.keys),
                ";".join(":".join(key) for key in row.fold_keys if key[1]),
            ])


def _num(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _by_kind(seconds: dict[str, float]) -> str:
    return " + ".join(f"{fmt.hours(s)} {kind}-hours" for kind, s in sorted(seconds.items())) or "none"


def cost_markdown(cost: TableCost) -> str:
    devices = "; ".join(f"{kind}: {', '.join(sorted(names))}" for kind, names in sorted(cost.devices.items()))
    lines = ["#### Cost", ""]
    if cost.runs:
        lines.append(f"Measured: {_by_kind(cost.measured)} over {cost.runs} timed run(s) ({devices}); a run's "
                     "time is `train_time_s` + `test_time_s` (older runs: `wall_time_s`).")
    else:
        lines.append("Measured: no run of this table logged its time.")
    if cost.missing:
        if cost.projected:
            bases = ", ".join(f"{basis} for {cost.bases[basis]} cell(s)" for basis in BASES if cost.bases[basis])
            lines.append(f"Missing: {cost.missing} run(s) of a full sweep ({cost.expected} per cell), projected "
                         f"{_by_kind(cost.projected)} at the mean time per run of {bases}.")
        else:
            lines.append(f"Missing: {cost.missing} run(s) of a full sweep ({cost.expected} per cell); no timed run "
                         "to project them from.")
    columns = list(dict.fromkeys(group.column for group in cost.cells))
    rows = list(dict.fromkeys(group.row for group in cost.cells))
    by_position = {(group.row, group.column): group for group in cost.cells}
    if cost.runs or cost.projected:
        lines += ["", "| Model | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
        for row in rows:
            entries = []
            for column in columns:
                group = by_position.get((row, column))
                text = _by_kind(group.seconds).replace("-hours", "-h") if group and group.seconds else "—"
                if group and group.basis:
                    text += f" (+{fmt.hours(group.projected)} {group.projected_kind}-h projected)"
                entries.append(text)
            lines.append(f"| {row} | " + " | ".join(entries) + " |")
    return "\n".join(lines) + "\n"


def runs_markdown(cells: list[Cell], uri: str) -> str:
    """The MLflow runs behind each cell (run ids; links for a tracking server)."""
    lines = ["#### Runs per cell", ""]
    seen: set[tuple[str, ...]] = set()
    for cell in cells:
        ids = tuple(run.run_id for run in cell.runs)
        if not ids or (cell.row, *ids) in seen:  # the views of one column share their runs
            continue
        seen.add((cell.row, *ids))
        listed = ", ".join(f"[{run.run_id}]({run_link(uri, run)})" if run_link(uri, run) else f"`{run.run_id}`"
                           for run in cell.runs)
        lines.append(f"- {cell.row} / {cell.column}: {listed}")
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""


def claim_markdown(verdict: Verdict) -> str:
    claim = verdict.claim
    lines = [f"- **{claim.id}** ({claim.source}; rests on {claim.table}): \"{claim.text}\""]
    if claim.note:
        lines.append(f"  - Read as: {claim.note}")
    paper = verdict.paper + (f": {verdict.paper_detail}" if verdict.paper_detail else "")
    lines.append(f"  - The paper's numbers: {paper}")
    lines.append(f"  - Ours: **{verdict.ours}**: {verdict.ours_detail}")
    lines += [f"  - If {reading}" for reading in verdict.readings]
    return "\n".join(lines)


def claims_markdown(verdicts: list[Verdict], title: str, note: str = "") -> str:
    if not verdicts:
        return ""
    head = [f"#### {title}", ""] + ([note, ""] if note else [])
    return "\n".join(head + [claim_markdown(v) for v in verdicts]) + "\n"


def claims_summary(verdicts: list[Verdict], note: str = "") -> str:
    lines = ["### The paper's claims: verdicts", ""] + ([note, ""] if note else []) + [
        "| Claim | Source | Table | The paper's numbers | Ours |", "|---|---|---|---|---|"]
    for v in verdicts:
        lines.append(f"| {v.claim.id} | {v.claim.source} | {v.claim.table} | {v.paper or '—'} | {v.ours} |")
    return "\n".join(lines) + "\n"


def claims_csv(verdicts: list[Verdict], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["claim", "source", "table", "text", "reading", "paper", "paper_detail", "ours",
                         "ours_detail", "n", "mean_diff", "ci_low", "ci_high", "p", "other_readings"])
        for v in verdicts:
            result = v.result
            ci = result.ci if result and result.ci else (None, None)
            writer.writerow([v.claim.id, v.claim.source, v.claim.table, v.claim.text, v.claim.note, v.paper,
                             v.paper_detail, v.ours, v.ours_detail, result.n if result else "",
                             _num(result.mean_diff if result else None), _num(ci[0]), _num(ci[1]),
                             _num(result.p if result else None), "; ".join(v.readings)])
