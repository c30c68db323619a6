"""Verdicts on the paper's claims (claims.py): the paper's own support, from its printed
numbers, and ours, from the runs of the table the claim rests on. Every test is on the seed, the
replication unit (units.py).

Ours is worded by what the runs show (effects.py for one test's words; "not evaluated" where the
report cannot judge it, e.g. with metric=... replacing the table's metric):

- EachClaim reads the table's Holm-corrected comparison verdicts. "Always": supported when every
  pair shows the claimed direction, contradicted when any shows the opposite. "Most": supported
  when more than half do, contradicted when at least half show the opposite (so that no outcome
  of the rest could make a majority). Pairs a claim exempts are not among its pairs.
- Average, contrast, best and reference claims are one t-test each (alpha 0.05, no correction),
  worded by what its 95 % CI excludes (effects.py): supported / contradicted / inconclusive for
  a direction, smaller than claimed / consistent with the claim / larger than claimed for a size.
  An average claimed to hold "consistently" also needs each of its pairs of cells the claimed way:
  one significantly the other way (Holm) contradicts it, one whose mean difference is the other
  way leaves it inconclusive.
- A SpreadClaim compares each cell's std with its bound.
- A SavingClaim reads the learning curves' data-saving figures (curves.py): supported when every
  listed variant's 95 % bootstrap CI of the fraction of the images lies below 1, contradicted
  when any lies above 1 (it needs more images, or never reaches the score), inconclusive otherwise.
Zero-variance and identical pairs, missing, failed, invalid and unlogged cells, n < 2:
inconclusive, with the reason. A claim's other readings (`readings:` in its file) are judged too,
and shown under its verdict where they would change it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from dedl_experiments.report.rendering import fmt
from dedl_experiments.report.cells import units
from dedl_experiments.report.cells.aggregate import Cell
from dedl_experiments.report.analysis.claims import (
    AverageClaim, BestClaim, Claim, ContrastClaim, EachClaim, Item, ReferenceClaim, SavingClaim, SpreadClaim,
)
from dedl_experiments.report.analysis.curves import CurveReport, analyse
from dedl_experiments.report.analysis.compare import ComparisonRow, paired_values
from dedl_experiments.report.analysis.effects import (
    CONSISTENT, CONTRADICTED, HOLDS, INCONCLUSIVE, LARGER, NOT_EVALUATED, SMALLER, SUPPORTED, judge,
)
from dedl_experiments.report.definition.spec import TableSpec
from dedl_experiments.report.analysis.stats import ALPHA, TestResult, paired, versus

__all__ = ["CONSISTENT", "CONTRADICTED", "INCONCLUSIVE", "LARGER", "NOT_EVALUATED", "SMALLER", "SUPPORTED",
           "Evidence", "Verdict", "evaluate"]
SUPPORTS, DOES_NOT, NOTHING = "supports it", "does not support it", "prints nothing to test it"


@dataclass
class Verdict:
    claim: Claim
    paper: str
    paper_detail: str
    ours: str
    ours_detail: str
    result: TestResult | None = None  # the single test behind ours, where there is one
    readings: list[str] = field(default_factory=list)  # other readings that would change a verdict


@dataclass
class Evidence:
    """What a table's report offers a claim."""

    spec: TableSpec
    cells: list[Cell]
    rows: list[ComparisonRow]
    blocked: str = ""  # why claims on this table cannot be judged (e.g. another metric shown)
    curves: CurveReport | None = field(default=None, repr=False)  # its learning curves, where it has them

    def learning_curves(self) -> CurveReport | None:
        if self.curves is None and self.spec.curve is not None:
            self.curves = analyse(self.spec, [run for cell in self.cells for run in cell.runs])
        return self.curves

    def row(self, item: Item) -> ComparisonRow:
        for row in self.rows:
            if row.comparison.name == item.comparison and row.pair.label == item.row:
                return row
        raise KeyError(f"{self.spec.name}: no comparison {item.comparison!r} for {item.row!r}")

    def cell(self, position: tuple[str, str]) -> Cell:
        return next(c for c in self.cells if (c.row, c.column) == position)


def evaluate(claim: Claim, evidence: Evidence | None) -> Verdict:
    if evidence is None:
        return Verdict(claim, "", "", NOT_EVALUATED, f"{claim.table} is not in this report")
    verdict = _JUDGES[type(claim)](claim, evidence)
    if evidence.blocked:
        verdict.ours, verdict.ours_detail, verdict.result = NOT_EVALUATED, evidence.blocked, None
    for reading in claim.readings:
        other = evaluate(reading.claim, evidence)
        if (other.paper, other.ours) != (verdict.paper, verdict.ours):
            verdict.readings.append(f"read as {reading.label}: the paper's numbers: {other.paper}; ours: {other.ours}")
    return verdict


def _sign(expect: str) -> int:
    return 1 if expect == ">" else -1


def _where(row: ComparisonRow) -> str:
    return f"{row.pair.label}, {row.comparison.name}"


def _each(claim: EachClaim, ev: Evidence) -> Verdict:
    rows = [(item, ev.row(item)) for item in claim.items]
    total = len(rows)
    printed = [(item, row) for item, row in rows if row.paper_diff is not None]
    against = [(item, row) for item, row in printed if row.paper_diff * _sign(item.expect) <= 0]
    agree = len(printed) - len(against)
    if not printed:
        paper, paper_detail = NOTHING, ""
    else:
        holds = agree > len(printed) / 2 if claim.most else not against and len(printed) == total
        paper = SUPPORTS if holds else DOES_NOT
        listed = "; ".join(f"{_where(r)}: {fmt.signed(r.metric, r.paper_diff)}" for _, r in against)
        paper_detail = f"{agree} of {len(printed)} printed pairs as claimed" + (f"; not: {listed}" if listed else "")
    tally = {"as claimed": [], "against": [], "without evidence": [], "with invalid values": [],
             "not comparable": [], "without enough runs": []}
    for item, row in rows:
        direction = row.direction
        key = ("with invalid values" if row.status == "invalid" or (row.result and row.result.kind == "invalid")
               else "not comparable" if row.status == "not_comparable" else "without enough runs" if direction is None else "without evidence" if direction == 0
               else "as claimed" if direction == _sign(item.expect) else "against")
        tally[key].append(row)
    n_agree, n_against = len(tally["as claimed"]), len(tally["against"])
    if claim.most:
        ours = SUPPORTED if n_agree > total / 2 else CONTRADICTED if n_against >= total / 2 else INCONCLUSIVE
    else:
        ours = CONTRADICTED if n_against else SUPPORTED if n_agree == total else INCONCLUSIVE
    counts = ", ".join(f"{len(found)} {key}" for key, found in tally.items() if found)
    detail = f"{counts} of {total} pair(s) (Holm-corrected paired t-tests, alpha {ALPHA})"
    shown = tally["against"] + tally["with invalid values"] + tally["not comparable"] + (tally["without evidence"] if ours == INCONCLUSIVE else [])
    if shown:
        detail += "; " + "; ".join(f"{_where(row)}: {_numbers(row.metric, row.result, row.p_holm)} -> {row.verdict}"
                                   for row in shown[:6]) + (" ..." if len(shown) > 6 else "")
    return Verdict(claim, paper, paper_detail, ours, detail)


def _numbers(metric: str, result: TestResult | None, p_holm: float | None = None, relative_to: float | None = None) -> str:
    if result is None or result.mean_diff is None:
        return f"n={result.n if result else 0}"
    if relative_to:
        diff = fmt.percent(result.mean_diff / relative_to)
        ci = f"[{fmt.percent(result.ci[0] / relative_to)}, {fmt.percent(result.ci[1] / relative_to)}]"
    else:
        diff, ci = fmt.signed(metric, result.mean_diff), fmt.interval(metric, result.ci)
    p = f", p {fmt.pvalue(result.p)}" if result.p is not None else ""
    p += f", Holm {fmt.pvalue(p_holm)}" if p_holm is not None else ""
    return f"{diff} {ci}{p}, n={result.n}"


@dataclass
class _Pool:
    """B - A over several pairs of cells: per pair key present in each used pair, the mean
    over those pairs of A and of B. Pairs of cells with fewer than 2 paired runs are not used."""

    keys: list
    a: list[float]
    b: list[float]
    metric: str
    used: int
    total: int


def _pooled(ev: Evidence, items: tuple[Item, ...]) -> _Pool:
    per_item = []
    for item in items:
        row = ev.row(item)
        keys, a, b = paired_values(ev.cell(row.pair.a), ev.cell(row.pair.b))
        if len(keys) >= 2:
            per_item.append({k: (x, y) for k, x, y in zip(keys, a, b)})
    keys = sorted(set.intersection(*(set(values) for values in per_item))) if per_item else []
    a = [statistics.fmean(values[k][0] for values in per_item) for k in keys]
    b = [statistics.fmean(values[k][1] for values in per_item) for k in keys]
    return _Pool(keys, a, b, ev.row(items[0]).metric if items else "", len(per_item), len(items))


def _pool_of(ev: Evidence, items: tuple[Item, ...], fallback: tuple[Item, ...]) -> tuple[_Pool, str]:
    """The items' pool, or the fallback measure's where that has more pairs of cells with runs."""
    pool = _pooled(ev, items)
    if fallback and pool.used < pool.total:
        other = _pooled(ev, fallback)
        if other.used > pool.used:
            return other, f" on {fallback[0].comparison} ({items[0].comparison} not logged)"
    return pool, ""


def _partial(ours: str, why: str, used: int, total: int) -> tuple[str, str]:
    """A verdict on some of a claim's pairs of cells is no verdict on the claim."""
    if used == total or ours == INCONCLUSIVE:
        return ours, why
    return INCONCLUSIVE, f"{why}, but only {used} of {total} pairs of cells have runs (it would be {ours})"


def _printed(ev: Evidence, items: tuple[Item, ...]) -> tuple[float, float] | None:
    """Mean printed A and mean printed B-A over the items with both numbers printed."""
    rows = [ev.row(item) for item in items]
    rows = [row for row in rows if row.paper_diff is not None]
    if not rows:
        return None
    return statistics.fmean(r.paper_a.mean for r in rows), statistics.fmean(r.paper_diff for r in rows)


def _size_text(claim, metric: str) -> str:
    if claim.size is None:
        return ""
    tolerance = claim.tolerance if claim.tolerance is not None else claim.size / 2
    if getattr(claim, "relative", False):
        low, high = 100 * (claim.size - tolerance), 100 * (claim.size + tolerance)
        return f" (claimed about {100 * claim.size:g} %, read as {low:.3g}-{high:.3g} %)"
    return f" (claimed about {fmt.value(metric, claim.size)}, read as {fmt.value(metric, claim.size - tolerance)}-{fmt.value(metric, claim.size + tolerance)})"


def _judge_effect(claim, sign: int, result: TestResult, scale: float) -> tuple[str, str]:
    return judge(getattr(claim, "size", None), sign, result, scale)


def _claimed(claim, sign: int, metric: str) -> str:
    """The claimed B - A our CI is set against (the paper's numbers are read with its tolerance)."""
    if claim.size is None:
        return ""
    if getattr(claim, "relative", False):
        return f" (claimed {fmt.percent(sign * claim.size)})"
    return f" (claimed {fmt.signed(metric, sign * claim.size)})"


def _paper_effect(claim, sign: int, diff: float, a_mean: float, metric: str) -> tuple[str, str]:
    relative = getattr(claim, "relative", False)
    effect = sign * (diff / a_mean if relative else diff)
    shown = fmt.percent(diff / a_mean) if relative else fmt.signed(metric, diff)
    holds = effect > 0
    if claim.size is not None:
        tolerance = claim.tolerance if claim.tolerance is not None else claim.size / 2
        holds = holds and abs(effect - claim.size) <= tolerance
    return (SUPPORTS if holds else DOES_NOT), f"its numbers give {shown}{_size_text(claim, metric)}"


def _average(claim: AverageClaim, ev: Evidence) -> Verdict:
    sign = _sign(claim.items[0].expect)
    printed = _printed(ev, claim.items)
    pool, measure = _pool_of(ev, claim.items, claim.fallback)
    paper, paper_detail = ((NOTHING, "") if printed is None
                           else _paper_effect(claim, sign, printed[1], printed[0], pool.metric))
    result = paired(pool.a, pool.b)
    scale = statistics.fmean(pool.a) if claim.relative and pool.a else 1.0
    ours, why = _partial(*_judge_effect(claim, sign, result, scale), pool.used, pool.total)
    if claim.consistently:
        ours, why = _consistently(ev, claim.items, ours, why)
    numbers = _numbers(pool.metric, result, relative_to=scale if claim.relative else None)
    detail = (f"B - A averaged over {pool.used} of {pool.total} pair(s) of cells, per seed{measure}: {numbers}"
              f"{_claimed(claim, sign, pool.metric)}; {why}")
    return Verdict(claim, paper, paper_detail, ours, detail, result)


def _consistently(ev: Evidence, items: tuple[Item, ...], ours: str, why: str) -> tuple[str, str]:
    """"Consistently" is more than the mean: each pair of cells must go the claimed way. One
    significantly the other way (Holm) contradicts; one whose mean difference is the other way,
    or that has no test, leaves at best inconclusive."""
    rows = [(item, ev.row(item)) for item in items]
    against = [row for item, row in rows if row.direction == -_sign(item.expect)]
    if against:
        return CONTRADICTED, why + "; not consistent: " + "; ".join(f"{_where(row)}: {row.verdict}" for row in against)
    astray = [row for item, row in rows if row.result is None or row.result.mean_diff is None
              or row.result.mean_diff * _sign(item.expect) <= 0]
    if astray and ours in HOLDS:
        listed = "; ".join(f"{_where(row)}: {_numbers(row.metric, row.result)}" for row in astray[:4])
        return INCONCLUSIVE, f"{why}, but not every pair of cells goes the claimed way ({listed}) (it would be {ours})"
    return ours, why + ("; every pair of cells goes the claimed way" if ours in HOLDS else "")


def _contrast(claim: ContrastClaim, ev: Evidence) -> Verdict:
    first, second = _printed(ev, claim.items), _printed(ev, claim.others)
    one, measure = _pool_of(ev, claim.items, claim.fallback)
    two = _pooled(ev, claim.fallback_others if measure else claim.others)
    gap1 = {k: y - x for k, x, y in zip(one.keys, one.a, one.b)}
    gap2 = {k: y - x for k, x, y in zip(two.keys, two.a, two.b)}
    if first is None or second is None:
        paper, paper_detail = NOTHING, ""
    else:
        paper = SUPPORTS if first[1] > second[1] else DOES_NOT
        paper_detail = f"its numbers give {fmt.signed(one.metric, first[1])} against {fmt.signed(one.metric, second[1])}"
    keys = sorted(set(gap1) & set(gap2))
    result = paired([gap2[k] for k in keys], [gap1[k] for k in keys])
    ours, why = _partial(*_judge_effect(claim, 1, result, 1.0), one.used + two.used, one.total + two.total)
    detail = f"the first group's B - A minus the second's, per seed{measure}: {_numbers(one.metric, result)}; {why}"
    return Verdict(claim, paper, paper_detail, ours, detail, result)


def _best(claim: BestClaim, ev: Evidence) -> Verdict:
    winners = set(claim.winners)

    def label(position):
        return position[0] if len({c for _, c in claim.among}) == 1 else f"{position[0]} / {position[1]}"

    printed = {p: ev.spec.published.get(p) for p in claim.among}
    printed = {p: v.mean for p, v in printed.items() if v is not None}
    if printed:
        top = max(printed, key=printed.get)
        rest = [p for p in printed if (p in winners) != (top in winners)]
        runner = max(rest, key=printed.get) if rest else None
        paper = SUPPORTS if top in winners else DOES_NOT
        paper_detail = f"it prints {label(top)} best ({printed[top]:g})" + (
            f", then {label(runner)} ({printed[runner]:g})" if runner else "")
    else:
        paper, paper_detail = NOTHING, ""
    cells = {p: ev.cell(p) for p in claim.among}
    empty = [p for p, c in cells.items() if c.mean is None]
    if empty:
        return Verdict(claim, paper, paper_detail, INCONCLUSIVE,
                       f"{len(empty)} of {len(cells)} cells without results (e.g. {label(empty[0])})")
    best_w = max((p for p in cells if p in winners), key=lambda p: cells[p].mean)
    best_o = max((p for p in cells if p not in winners), key=lambda p: cells[p].mean)
    _, other, winner = paired_values(cells[best_o], cells[best_w])
    result = paired(other, winner)
    metric = cells[best_w].metric
    ours, why = _judge_effect(claim, 1, result, 1.0) if len(winner) else (INCONCLUSIVE, "no runs to pair")
    if ours == SUPPORTED:
        why = "significantly best"
    detail = (f"best claimed {label(best_w)} {fmt.value(metric, cells[best_w].mean)}, best other {label(best_o)} "
              f"{fmt.value(metric, cells[best_o].mean)}; paired difference {_numbers(metric, result)}; {why}")
    return Verdict(claim, paper, paper_detail, ours, detail, result)


def _reference(claim: ReferenceClaim, ev: Evidence) -> Verdict:
    cell = ev.cell(claim.cell)
    published = ev.spec.published.get(claim.cell)
    if published is None:
        paper, paper_detail = NOTHING, ""
    else:
        paper, paper_detail = _paper_effect(claim, 1, published.mean - claim.reference, 1.0, cell.metric)
    result = versus(units.seed_values(cell), claim.reference)
    ours, why = _judge_effect(claim, 1, result, 1.0)
    detail = (f"{claim.cell[0]} against {claim.reference:g}: {_numbers(cell.metric, result)} (one-sample t-test "
              f"of the per-seed values){_claimed(claim, 1, cell.metric)}; {why}")
    return Verdict(claim, paper, paper_detail, ours, detail, result)


def _spread(claim: SpreadClaim, ev: Evidence) -> Verdict:
    printed = [ev.spec.published.get(p) for p in claim.cells]
    stds = [p.std for p in printed if p is not None and p.std is not None]
    if stds:
        paper = SUPPORTS if max(stds) < claim.below else DOES_NOT
        paper_detail = f"largest printed std {max(stds):g}"
    else:
        paper, paper_detail = NOTHING, "no spread printed"
    cells = [ev.cell(p) for p in claim.cells]
    measured = [c for c in cells if c.std is not None]
    above = [c for c in measured if c.std >= claim.below]
    metric = cells[0].metric if cells else ""
    if above:
        ours = CONTRADICTED
    elif measured and len(measured) == len(cells):
        ours = SUPPORTED
    else:
        ours = INCONCLUSIVE
    detail = f"{len(measured)} of {len(cells)} cells with n >= 2"
    if measured:
        widest = max(measured, key=lambda c: c.std)
        detail += f"; largest std {fmt.value(metric, widest.std)} ({widest.row}, {widest.column})"
    if above:
        detail += f"; {len(above)} cell(s) at or above {fmt.value(metric, claim.below)}"
    return Verdict(claim, paper, paper_detail, ours, detail)


def _saving(claim: SavingClaim, ev: Evidence) -> Verdict:
    report = ev.learning_curves()
    found = {saving.variant: saving for saving in report.savings} if report else {}
    states, parts = [], []
    for variant in claim.variants:
        saving = found.get(variant)
        ci = saving.ci if saving is not None and saving.fraction is not None else None
        states.append(None if ci is None else 1 if ci[1] < 1 else -1 if ci[0] > 1 else 0)
        parts.append(saving.text if saving is not None else f"{variant}: no learning curve")
    ours = (CONTRADICTED if -1 in states else SUPPORTED if all(state == 1 for state in states)
            else INCONCLUSIVE)
    detail = "; ".join(parts)
    if report is not None and report.seeds:
        detail += f" (95 % bootstrap CIs over {report.seeds} seeds; a saving is a CI below 1)"
    return Verdict(claim, NOTHING, "", ours, detail)


_JUDGES = {EachClaim: _each, AverageClaim: _average, ContrastClaim: _contrast, BestClaim: _best,
           ReferenceClaim: _reference, SpreadClaim: _spread,
           SavingClaim: _saving}
