"""The report's paired comparisons: statistics checked against values computed by hand, the
degenerate cases (n < 2, ties, zero variance, failed cells) and Holm's correction."""

from __future__ import annotations

import math

import pytest
from report_records import TABLES, evidence, run_in, seeds

from dedl_experiments.report.render_analysis import comparisons_csv, comparisons_markdown
from dedl_experiments.report.stats import holm, paired, versus

TABLE6 = TABLES["table6"]
# Student's t quantile for a two-sided 95 % interval with 2 degrees of freedom. With df = 2 the
# t distribution has a closed form: t = q * sqrt(2 / (1 - q^2)) with q = 0.95, i.e.
# 0.95 * sqrt(2 / 0.0975) = 4.3026527...
T_975_DF2 = 4.302652729749462


def test_paired_t_test_by_hand() -> None:
    a = [0.40, 0.41, 0.42]
    b = [0.41, 0.44, 0.44]  # deltas 0.01, 0.03, 0.02
    result = paired(a, b)
    mean, sd, n = 0.02, 0.01, 3  # the deltas' mean and sample std
    se = sd / math.sqrt(n)
    assert (result.kind, result.n) == ("test", 3)
    assert result.mean_diff == pytest.approx(mean)
    assert result.ci == pytest.approx((mean - T_975_DF2 * se, mean + T_975_DF2 * se))
    # df = 2: two-sided p = 1 - |t| / sqrt(t^2 + 2), t = 0.02 / (0.01 / sqrt(3)) = 2 sqrt(3).
    t = mean / se
    assert result.p == pytest.approx(1 - t / math.sqrt(t * t + 2))
    assert result.p == pytest.approx(0.0742, abs=1e-4)
    assert result.p_wilcoxon == pytest.approx(0.25)  # exact: 2 of the 2^3 sign patterns as extreme


def test_one_sample_against_a_printed_value() -> None:
    result = versus([0.80, 0.82, 0.84], 0.63)
    se = 0.02 / math.sqrt(3)
    assert result.mean_diff == pytest.approx(0.19)
    assert result.ci == pytest.approx((0.19 - T_975_DF2 * se, 0.19 + T_975_DF2 * se))


def test_degenerate_cases_give_no_nan() -> None:
    one = paired([0.4], [0.5])
    assert (one.kind, one.n, one.mean_diff, one.ci, one.p) == ("too_few", 1, None, None, None)
    ties = paired([0.4, 0.5, 0.6], [0.4, 0.5, 0.6])
    assert (ties.kind, ties.mean_diff, ties.ci, ties.p) == ("identical", 0.0, (0.0, 0.0), None)
    constant = paired([0.4, 0.5, 0.6], [0.45, 0.55, 0.65])
    assert constant.kind == "constant" and constant.p is None
    assert constant.mean_diff == pytest.approx(0.05) and constant.ci[0] == constant.ci[1] == constant.mean_diff


def test_holm_by_hand() -> None:
    # Sorted p: 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> max(0.06, 0.04) = 0.06.
    reject, corrected = holm([0.01, 0.04, 0.03])
    assert corrected == pytest.approx([0.03, 0.06, 0.06])
    assert reject == [True, False, False]
    assert holm([]) == ([], [])


def rows_by(spec, runs):
    return {(row.comparison.name, row.pair.label): row for row in evidence(spec, runs).rows}


def test_table_comparisons_with_every_kind_of_cell() -> None:
    runs = (seeds(TABLE6, "ResNet-18", "Without AE", [0.40, 0.41, 0.42])
            + seeds(TABLE6, "ResNet-18", "With GELU AE", [0.41, 0.44, 0.44])
            + seeds(TABLE6, "ResNet-34", "Without AE", [0.40])
            + seeds(TABLE6, "ResNet-34", "With GELU AE", [0.42])
            + seeds(TABLE6, "ResNet-50", "Without AE", [0.40, 0.50])
            + seeds(TABLE6, "ResNet-50", "With GELU AE", [0.40, 0.50])
            + seeds(TABLE6, "ResNet-101", "Without AE", [0.40, 0.50])
            + seeds(TABLE6, "ResNet-101", "With GELU AE", [0.43, 0.53])
            + [run_in(TABLE6, "ResNet-18", "With ReLU AE", None, status="FAILED")])
    rows = rows_by(TABLE6, runs)
    tested = rows[("none vs GELU", "ResNet-18")]
    assert tested.result.mean_diff == pytest.approx(0.02)
    assert tested.p_holm == pytest.approx(tested.result.p)  # the table's only test
    assert tested.verdict == "no evidence of a difference"
    assert rows[("none vs GELU", "ResNet-34")].verdict == "not enough runs (1 pair)"
    assert rows[("none vs GELU", "ResNet-50")].verdict == "no difference (identical results)"
    constant = rows[("none vs GELU", "ResNet-101")]
    assert constant.verdict == "GELU > none in every pair (zero variance: test undefined)"
    assert constant.result.ci == pytest.approx((0.03, 0.03)) and constant.p_holm is None
    assert rows[("none vs ReLU", "ResNet-18")].verdict == "failed (ReLU)"
    assert rows[("ReLU vs GELU", "ResNet-18")].verdict == "failed (ReLU)"
    assert rows[("none vs ReLU", "ResNet-34")].verdict == "missing (ReLU)"
    assert all(row.direction is None for key, row in rows.items() if key[1] == "ResNet-34")

    text = comparisons_markdown(list(rows.values()))
    assert "nan" not in text.lower()
    assert "| none vs GELU | ResNet-18 | 3 | +0.0200 | [-0.0048, +0.0448] | 0.074 | 0.074 | " \
           "no evidence of a difference | +0.0441 |" in text
    assert "| none vs ReLU | ResNet-18 | — | — | — | — | — | failed (ReLU) | +0.0261 |" in text
    assert "| none vs GELU | ResNet-34 | 1 | — | — | — | — | not enough runs (1 pair) |" in text
    assert "| none vs GELU | ResNet-101 | 2 | +0.0300 | [+0.0300, +0.0300] | — | — | GELU > none in every pair" in text


def test_holm_across_the_table_decides_the_verdict() -> None:
    # Two clear effects, 5 seeds each: raw p values well below 0.05 stay significant after Holm.
    runs = []
    for row, gain in (("ResNet-18", 0.05), ("ResNet-34", -0.04)):
        base = [0.40, 0.42, 0.41, 0.43, 0.40]
        noise = [0.001, -0.002, 0.002, 0.0, -0.001]
        runs += seeds(TABLE6, row, "With ReLU AE", base)
        runs += seeds(TABLE6, row, "With GELU AE", [x + gain + e for x, e in zip(base, noise)])
    rows = rows_by(TABLE6, runs)
    up, down = rows[("ReLU vs GELU", "ResNet-18")], rows[("ReLU vs GELU", "ResNet-34")]
    low, high = sorted((up.result.p, down.result.p))
    assert sorted((up.p_holm, down.p_holm)) == pytest.approx([2 * low, max(2 * low, high)])
    assert (up.verdict, up.direction) == ("GELU > ReLU", 1)
    assert (down.verdict, down.direction) == ("GELU < ReLU", -1)


def test_classification_pairs_by_seed_and_fold_and_newest_run_counts(tmp_path) -> None:
    table13 = TABLES["table13"]
    row = "EfficientNet-B0"
    runs = [run_in(table13, row, "ImageNet", 0.80 + 0.01 * seed + 0.001 * fold, seed=seed, fold=fold)
            for seed in (1, 2) for fold in (0, 1)]
    runs += [run_in(table13, row, "Advprop", 0.82 + 0.01 * seed, seed=seed, fold=0) for seed in (1, 2, 3)]
    # A rerun of seed 1 fold 0: the newer one counts.
    runs.append(run_in(table13, row, "Advprop", 0.90, seed=1, fold=0, start=10))
    [row_result] = [r for r in evidence(table13, runs).rows if r.comparison.name == "ImageNet vs AdvProp"
                    and r.pair.label == row]
    assert row_result.keys == [("1", "0"), ("2", "0")]
    assert row_result.mean_a == pytest.approx((0.81 + 0.82) / 2)
    assert row_result.mean_b == pytest.approx((0.90 + 0.84) / 2)
    path = tmp_path / "table13_comparisons.csv"
    comparisons_csv("table13", [row_result], path)
    text = path.read_text()
    assert "pairs" in text.splitlines()[0] and "1:0;2:0" in text
