"""The report's paired comparisons: statistics checked against values computed by hand, the
degenerate cases (n < 2, ties, zero variance, failed cells) and Holm's correction."""

from __future__ import annotations

import csv
import gc
import math
import statistics

import numpy as np
import pytest
from report_records import TABLES, evidence, run_in, seeds
from scipy import stats
from statsmodels.stats.multitest import multipletests

from dedl_experiments.report.cells.aggregate import aggregate

from dedl_experiments.report.rendering.render_analysis import comparisons_csv, comparisons_markdown
from dedl_experiments.report.analysis.stats import holm, holm_step_down, paired, versus

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


def test_holm_is_statsmodels_holm_for_every_row_at_once() -> None:
    """Families with ties, p-values on the thresholds alpha / (m - i), values whose corrected p
    passes 1, and one-test families: the same rejections and corrected p-values, to the bit, as
    statsmodels' multipletests (run with the heap frozen: it collects garbage at each call)."""
    rng = np.random.default_rng(3)
    families = rng.uniform(0, 0.05, size=(300, 11)) ** rng.uniform(0.5, 2, size=(300, 1))
    families[:40, 3] = families[:40, 5]  # ties
    # Every p on its threshold (with 11 tests, 0.05 / 11 * 11 > 0.05 in floats: the comparison
    # must be statsmodels' p <= alpha / (m - i)).
    families[40:80, :] = 0.05 / np.arange(11, 0, -1)
    families[80:120, 2] = 0.9  # corrected past 1
    gc.freeze()
    try:
        for family in (families, families[:, :1]):
            expected = [multipletests(row, alpha=0.05, method="holm")[:2] for row in family]
            reject, corrected = holm_step_down(family, 0.05)
            assert (reject == np.array([e[0] for e in expected])).all()
            assert (corrected == np.array([e[1] for e in expected])).all()
            assert holm(list(family[0])) == ([bool(r) for r in expected[0][0]],
                                             [float(p) for p in expected[0][1]])
    finally:
        gc.unfreeze()


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


def test_classification_pairs_per_seed_means_over_folds_and_newest_run_counts(tmp_path) -> None:
    # The seed is the replication unit: 2 seeds x 2 folds are 2 pairs (df 1), not 4.
    table13 = TABLES["table13"]
    row = "EfficientNet-B0"
    runs = [run_in(table13, row, "ImageNet", 0.80 + 0.01 * seed + 0.001 * fold, seed=seed, fold=fold)
            for seed in (1, 2) for fold in (0, 1)]
    runs += [run_in(table13, row, "Advprop", 0.82 + 0.01 * seed + 0.003 * fold, seed=seed, fold=fold)
             for seed in (1, 2) for fold in (0, 1)]
    runs.append(run_in(table13, row, "Advprop", 0.83, seed=3, fold=0))  # no partner: left out
    # A rerun of seed 1 fold 0: the newer one counts.
    runs.append(run_in(table13, row, "Advprop", 0.90, seed=1, fold=0, start=10))
    [row_result] = [r for r in evidence(table13, runs).rows if r.comparison.name == "ImageNet vs AdvProp"
                    and r.pair.label == row]
    assert row_result.result.n == 2
    assert row_result.keys == [("1", ""), ("2", "")]
    assert row_result.fold_keys == [("1", "0"), ("1", "1"), ("2", "0"), ("2", "1")]
    a = [statistics.fmean([0.81, 0.811]), statistics.fmean([0.82, 0.821])]
    b = [statistics.fmean([0.90, 0.833]), statistics.fmean([0.84, 0.843])]
    assert row_result.result.p == pytest.approx(stats.ttest_rel(b, a).pvalue)
    assert row_result.mean_a == pytest.approx(statistics.fmean(a))
    path = tmp_path / "table13_comparisons.csv"
    comparisons_csv("table13", [row_result], path)
    lines = list(csv.DictReader(path.open()))
    assert (lines[0]["n"], lines[0]["pairs"], lines[0]["fold_pairs"]) == ("2", "1;2", "1:0;1:1;2:0;2:1")
    assert "n = seeds" in comparisons_markdown([row_result], by_fold=True)


def test_a_cells_n_mean_and_std_count_the_newest_run_per_seed_and_fold() -> None:
    table13 = TABLES["table13"]
    runs = [run_in(table13, "EfficientNet-B0", "ImageNet", value, seed=1, fold=0, start=start)
            for value, start in ((0.5, 0), (0.9, 5), (0.7, 3))]
    runs.append(run_in(table13, "EfficientNet-B0", "ImageNet", 0.8, seed=1, fold=1))
    cell = next(c for c in aggregate(table13, runs) if (c.row, c.column) == ("EfficientNet-B0", "ImageNet"))
    assert (cell.n, cell.values) == (2, [0.9, 0.8])
    assert cell.mean == pytest.approx(0.85) and cell.std == pytest.approx(statistics.stdev([0.9, 0.8]))


def test_nan_is_its_own_status_never_tested_nor_in_holms_family() -> None:
    runs = []
    for row, gain in (("ResNet-18", 0.05), ("ResNet-34", 0.04)):
        base = [0.40, 0.42, 0.41, 0.43, 0.40]
        noise = [0.001, -0.002, 0.002, 0.0, -0.001]
        runs += seeds(TABLE6, row, "With ReLU AE", base)
        runs += seeds(TABLE6, row, "With GELU AE", [x + gain + e for x, e in zip(base, noise)])
    clean = rows_by(TABLE6, runs)[("ReLU vs GELU", "ResNet-18")]
    runs += seeds(TABLE6, "ResNet-50", "With ReLU AE", [0.4, 0.41, float("nan")])
    runs += seeds(TABLE6, "ResNet-50", "With GELU AE", [0.5, float("inf"), 0.52])
    rows = rows_by(TABLE6, runs)
    bad = rows[("ReLU vs GELU", "ResNet-50")]
    assert (bad.status, bad.result, bad.p_holm, bad.verdict) == ("invalid", None, None, "invalid value in 2 runs")
    # Holm's family is the two clean tests: the NaN one does not inflate their p-values.
    assert rows[("ReLU vs GELU", "ResNet-18")].p_holm == pytest.approx(clean.p_holm)
    cell = next(c for c in aggregate(TABLE6, runs) if (c.row, c.column) == ("ResNet-50", "With ReLU AE"))
    assert (cell.n, cell.invalid, cell.mean) == (2, 1, pytest.approx(0.405))
    assert paired([0.1, float("nan")], [0.2, 0.3]).kind == "invalid"


def test_times_pair_only_runs_of_one_device_and_speed_settings() -> None:
    table1 = TABLES["table1"]
    h100, h200 = {"dedl.device_name": "NVIDIA H100"}, {"dedl.device_name": "NVIDIA H200"}

    def times(column, seconds, tags, **params):
        return [run_in(table1, "ResNet-18", column, {"train_time_s": s}, seed=seed, tags=tags, **params)
                for seed, s in zip((1, 2, 3), seconds)]

    def wall(runs):
        return rows_by(table1, runs)[("none vs GELU APP (wall)", "ResNet-18")]

    same = wall(times("Without APP", [5000, 5010, 4990], h100) + times("With APP", [5100, 5105, 5092], h100))
    assert same.status == "ok" and same.result.n == 3
    other_gpu = wall(times("Without APP", [5000, 5010, 4990], h100) + times("With APP", [4100, 4105, 4092], h200))
    assert (other_gpu.status, other_gpu.result) == ("not_comparable", None)
    assert other_gpu.verdict == "not comparable (device/settings differ: device: NVIDIA H100 vs NVIDIA H200)"
    compile_off = wall(times("Without APP", [5000, 5010, 4990], h100, **{"speed.compile": "True"})
                       + times("With APP", [5100, 5105, 5092], h100, **{"speed.compile": "False"}))
    assert compile_off.verdict == "not comparable (device/settings differ: speed.compile: True vs False)"
    # Some seeds on another GPU: those are left out, and named.
    mixed = wall(times("Without APP", [5000, 5010, 4990], h100)
                 + times("With APP", [5100, 5105], h100) + [run_in(table1, "ResNet-18", "With APP",
                                                                   {"train_time_s": 4000}, seed=3, tags=h200)])
    assert mixed.result.n == 2 and "runs left out, device/settings differ: device: NVIDIA H100 vs NVIDIA H200" in mixed.verdict
