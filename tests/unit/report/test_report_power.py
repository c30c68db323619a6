"""How many seeds a question needs: the difference a comparison's n detects and the seeds its
effect of interest needs (report/analysis/power.py), and the line under a table (render_power.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from statsmodels.stats.power import TTestPower
from test_report_generic import TITLED, user_conf, with_report

from dedl_experiments.report.cells.aggregate import Cell, RunRecord
from dedl_experiments.report.analysis.compare import ComparisonRow
from dedl_experiments.report.definition.experiment import experiment_spec
from dedl_experiments.report.options import UsageError, parse_args
from dedl_experiments.report.analysis.power import PAPER, detectable_effect_sizes, parse_effect, power_rows, seeds_needed
from dedl_experiments.report.rendering.render_power import power_markdown
from dedl_experiments.report.definition.schema import ExperimentError
from dedl_experiments.report.definition.spec import Comparison, Pair, Published
from dedl_experiments.report.analysis.stats import paired


def test_seeds_needed_is_statsmodels_sample_size_rounded_up() -> None:
    for effect, level in ((1.2, 0.05), (2.5, 0.05 / 24), (0.8, 0.01)):
        exact = TTestPower().solve_power(effect_size=effect, alpha=level, power=0.8)
        assert int(seeds_needed(effect, level)) == math.ceil(exact)


def test_the_detectable_difference_is_detected_with_80_percent_power() -> None:
    thresholds = detectable_effect_sizes(0.05 / 6, 20)
    power = TTestPower().power(effect_size=thresholds[3:], nobs=np.arange(5, 21), alpha=0.05 / 6)
    assert np.allclose(power, 0.8, atol=2e-3)
    assert (np.diff(thresholds) < 0).all()


def _row(name: str, a: list[float], b: list[float], paper: tuple[float, float] | None, reject: bool = False,
         row: str = "ResNet-18") -> ComparisonRow:
    comparison = Comparison(name, *name.split(" vs "), ())
    pair = Pair(row, (row, comparison.a_name), (row, comparison.b_name))
    found = ComparisonRow(comparison, pair, "test_iou", "ok", result=paired(a, b), reject=reject,
                          differences=[y - x for x, y in zip(a, b)],
                          paper_a=Published(paper[0]) if paper else None, paper_b=Published(paper[1]) if paper else None)
    return found


ROWS = [
    _row("none vs relu", [0.40, 0.41, 0.42], [0.43, 0.445, 0.449], (0.40, 0.43)),
    _row("none vs gelu", [0.40, 0.41, 0.42], [0.405, 0.42, 0.423], (0.40, 0.41)),
    _row("relu vs gelu", [0.43, 0.445, 0.449], [0.50, 0.52, 0.51], (0.43, 0.41), reject=True),
    _row("gelu vs gelu2", [0.5, 0.5, 0.5], [0.6, 0.61, 0.62], None),
]


def test_each_tested_comparison_gets_its_detectable_difference_and_seeds_needed() -> None:
    rows = power_rows(ROWS, PAPER)
    assert len(rows) == 4 and all(row.level == pytest.approx(0.05 / 4) for row in rows)
    first = rows[0]
    sd = float(np.std(ROWS[0].differences, ddof=1))
    assert first.sd == pytest.approx(sd)
    assert first.detectable == pytest.approx(detectable_effect_sizes(0.05 / 4, 3)[1] * sd)
    assert first.effect == pytest.approx(0.03) and first.needed == int(seeds_needed(0.03 / sd, 0.05 / 4))
    assert rows[3].effect is None and rows[3].needed is None  # nothing printed: no effect of interest
    fixed = power_rows(ROWS, 0.02)
    assert [row.effect for row in fixed] == [0.02] * 4 and fixed[3].needed is not None


def _cell(row: str, column: str, seeds: int) -> Cell:
    runs = [RunRecord(f"{column}{seed}", "FINISHED", {"seed": str(seed)}, {}) for seed in range(seeds)]
    return Cell(row, column, seeds, 0.4, 0.01, [0.4] * seeds, 0, None, "ok", "test_iou", runs, runs)


def test_the_table_says_what_settling_its_inconclusive_comparisons_needs() -> None:
    rows = power_rows(ROWS, PAPER)
    cells = [_cell("ResNet-18", column, 3) for column in ("none", "relu", "gelu", "gelu2")]
    text = power_markdown(rows, PAPER, cells, None)
    relu, gelu = rows[0].needed, rows[1].needed  # both compare with `none`; an inconclusive one counts where
    unsettled = [needed for needed in (relu, gelu) if needed > 3]  # 3 seeds are not enough for its effect
    assert unsettled and max(unsettled) > 3
    more = (max(unsettled) - 3) + sum(needed - 3 for needed in unsettled)
    assert "alpha / 4 = 0.013" in text
    assert (f"To settle {len(unsettled)} inconclusive comparison(s) at the paper's effect sizes: up to "
            f"{max(unsettled)} seeds per cell, projected no timed run to project from ({more} more run(s))") in text
    assert "| none vs relu | ResNet-18 | 3 |" in text
    # At an effect its 3 seeds already detect, an inconclusive comparison needs no more seeds.
    large = power_rows(ROWS, 0.5)
    assert all(row.needed <= 3 for row in large)
    assert "No inconclusive comparison that more seeds would settle at an effect of 0.5000." in \
        power_markdown(large, 0.5, cells, None)


@pytest.mark.parametrize("value", ["-0.1", "0", "big", "nan"])
def test_a_bad_effect_of_interest_is_one_line_naming_the_option(value: str) -> None:
    with pytest.raises(UsageError, match=r"^effect: .* is not an effect of interest; give `paper`"):
        parse_args(["table=table2", f"effect={value}"])
    assert parse_args(["table=table2", "effect=0.02"]).effect == 0.02
    assert parse_effect("paper", "x") == PAPER


def test_a_table_declares_its_effect_of_interest(tmp_path: Path) -> None:
    assert experiment_spec("mine", [str(user_conf(tmp_path, with_report(TITLED + "effect: 0.02\n")))]).effect == 0.02
    assert experiment_spec("table2").effect == PAPER
    bad = user_conf(tmp_path / "bad", with_report(TITLED + "effect: large\n"))
    with pytest.raises(ExperimentError, match=r"mine.yaml: report.effect: 'large' is not an effect of interest"):
        experiment_spec("mine", [str(bad)])
