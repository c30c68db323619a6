"""The paper's claims as data, the paper's own support for them (from its printed numbers) and
our verdicts on hand-made runs built to support, contradict or leave each kind of claim open."""

from __future__ import annotations

import random

import pytest
from report_records import CLAIMS, TABLES, evidence, run_in, seeds

from dedl_experiments.report.cells.aggregate import aggregate
from dedl_experiments.report.analysis.claims import AverageClaim, ContrastClaim, EachClaim
from dedl_experiments.report.analysis.compare import compare_table
from dedl_experiments.report.rendering.render_analysis import claims_summary
from dedl_experiments.report.analysis.verdicts import Evidence, evaluate

BY_ID = {claim.id: claim for claim in CLAIMS}
SEEDS5 = 5

# What the paper's printed numbers say of its own text (see each table's note).
PAPER_SUPPORT = {
    "supports it": {
        "app-gain-3", "gelu-beats-relu-3", "app-beneficial-most", "unet-gelu-beats-relu-except-50",
        "unetpp-app-most-except-18", "unetpp-34-gains-10", "constant-lr-beats-cosine", "app-time-1.875",
        "app-time-smaller-encoders", "effnet-unet-time-2.93", "effnet-unet-app-2.75", "effnet-unetpp-time-2.6",
        "seg-imagenet-most", "seg-large-models-imagenet", "cls-imagenet-best-overall", "swin-b-best",
        "nfnet-f3-best-cnn", "transformers-slightly-better", "cls-beats-van-buren", "seg-beats-van-buren",
    },
    "does not support it": {
        "app-improves-except-unetpp-18-101", "app-improves-except-unetpp-18", "unet-app-always",
        "unetpp-18-lags-5", "effnet-unet-app-consistent", "seg-small-models-gain", "cls-imagenet-most",
        "effnet-unetpp-app-5",
    },
    "prints nothing to test it": {"effnet-unet-time-spread", "small-tiles-inflate-accuracy", "padding-inflates-accuracy",
                                  "data-efficient"},
}


def empty(table: str) -> Evidence:
    return evidence(TABLES[table], [])


def verdict(claim_id: str, runs: list) -> object:
    claim = BY_ID[claim_id]
    return evaluate(claim, evidence(TABLES[claim.table], runs))


def test_claims_are_well_formed() -> None:
    assert len({claim.id for claim in CLAIMS}) == len(CLAIMS)
    assert {claim.table for claim in CLAIMS} <= set(TABLES)
    for claim in CLAIMS:
        ev = empty(claim.table)
        for item in getattr(claim, "items", ()) + getattr(claim, "others", ()):
            ev.row(item)  # names a comparison and pair of the table
            assert item.expect in (">", "<")
        if isinstance(claim, (AverageClaim, ContrastClaim)):
            assert len({item.expect for item in claim.items}) == 1, claim.id
        assert evaluate(claim, ev).ours == "inconclusive", claim.id  # no runs: no verdict


def test_every_table_with_a_claim_in_the_text_has_one() -> None:
    assert {claim.table for claim in CLAIMS} == set(TABLES) - {"table5"}  # Table 5 repeats Table 4


@pytest.mark.parametrize("support, ids", PAPER_SUPPORT.items())
def test_the_papers_numbers_against_its_text(support: str, ids: set[str]) -> None:
    assert {c.id for c in CLAIMS if evaluate(c, empty(c.table)).paper == support} == ids


def test_paper_support_details() -> None:
    each = evaluate(BY_ID["app-improves-except-unetpp-18-101"], empty("table2"))
    # The caption's exceptions (UNet++ with ResNet-18 and 101) are left out: 12 pairs, not 16.
    assert each.paper_detail == "11 of 12 printed pairs as claimed; not: ResNet-34, UNet: none vs ReLU: -0.0307"
    average = evaluate(BY_ID["effnet-unetpp-app-5"], empty("table11"))
    assert average.paper_detail.startswith("its numbers give +0.0132 (claimed about 0.0500")
    time = evaluate(BY_ID["app-time-1.875"], empty("table1"))
    assert time.paper_detail.startswith("its numbers give +1.97 %")


# --- an "always" claim with an exception: Table 6, GELU beats ReLU except with ResNet-50 -------


def gelu_vs_relu(gains: dict[str, float], noise: float = 0.002, seed: int = 0) -> list:
    rng = random.Random(seed)
    table6, runs = TABLES["table6"], []
    for row, gain in gains.items():
        base = [0.40 + rng.gauss(0, 0.01) for _ in range(SEEDS5)]
        runs += seeds(table6, row, "With ReLU AE", base)
        runs += seeds(table6, row, "With GELU AE", [x + gain + rng.gauss(0, noise) for x in base])
    return runs


def test_each_claim_supported_contradicted_inconclusive() -> None:
    claim = "unet-gelu-beats-relu-except-50"
    claimed = {"ResNet-18": 0.03, "ResNet-34": 0.03, "ResNet-50": -0.03, "ResNet-101": 0.03}
    assert verdict(claim, gelu_vs_relu(claimed)).ours == "supported"
    against = verdict(claim, gelu_vs_relu({**claimed, "ResNet-18": -0.03}))
    assert against.ours == "contradicted"
    assert "1 against" in against.ours_detail and "ResNet-18, ReLU vs GELU" in against.ours_detail
    noisy = verdict(claim, gelu_vs_relu({**claimed, "ResNet-34": 0.0}, noise=0.05))
    assert noisy.ours == "inconclusive" and "without evidence" in noisy.ours_detail


def test_most_claim_needs_a_majority() -> None:
    """Table 7: "in most cases APP improves, except ResNet-18": 8 pairs of cells."""
    table7 = TABLES["table7"]
    rng = random.Random(3)

    def runs_with(gains: dict[str, float]) -> list:
        runs = []
        for row, gain in gains.items():
            base = [0.40 + rng.gauss(0, 0.01) for _ in range(SEEDS5)]
            runs += seeds(table7, row, "Without AE", base)
            for column in ("With ReLU AE", "With GELU AE"):
                runs += seeds(table7, row, column, [x + gain + rng.gauss(0, 0.002) for x in base])
        return runs

    rows = ("ResNet-18", "ResNet-34", "ResNet-50", "ResNet-101")
    assert verdict("unetpp-app-most-except-18", runs_with(dict(zip(rows, (-0.05, 0.05, 0.05, 0.0))))).ours == "supported"
    assert verdict("unetpp-app-most-except-18", runs_with(dict(zip(rows, (0.05, -0.05, 0.05, 0.0))))).ours == "contradicted"
    assert verdict("unetpp-app-most-except-18", runs_with(dict(zip(rows, (-0.05, 0.05, 0.0, 0.0))))).ours == "inconclusive"


# --- an average claim with a size: Table 7, "almost 10 % better" with ResNet-34 -----------------


def resnet34_gains(gain: float, noise: float = 0.002, columns=("With ReLU AE", "With GELU AE")) -> list:
    table7, rng = TABLES["table7"], random.Random(5)
    base = [0.40 + rng.gauss(0, 0.01) for _ in range(SEEDS5)]
    runs = seeds(table7, "ResNet-34", "Without AE", base)
    for column in columns:
        runs += seeds(table7, "ResNet-34", column, [x + gain + rng.gauss(0, noise) for x in base])
    return runs


def test_average_claim_direction_and_size() -> None:
    claim = "unetpp-34-gains-10"
    supported = verdict(claim, resnet34_gains(0.10))
    assert supported.ours == "consistent with the claim" and supported.result.mean_diff == pytest.approx(0.10, abs=0.005)
    assert "averaged over 2 of 2 pair(s) of cells" in supported.ours_detail
    # 9 points where 10 are claimed, measured tightly: the CI excludes the claimed size.
    assert verdict(claim, resnet34_gains(0.09)).ours == "smaller than claimed"
    smaller = verdict(claim, resnet34_gains(0.01))
    assert (smaller.ours, "below the claimed size" in smaller.ours_detail) == ("smaller than claimed", True)
    assert verdict(claim, resnet34_gains(0.2)).ours == "larger than claimed"
    opposite = verdict(claim, resnet34_gains(-0.05))
    assert opposite.ours == "contradicted" and "other direction" in opposite.ours_detail
    noisy = verdict(claim, resnet34_gains(0.08, noise=0.1))
    assert noisy.ours == "inconclusive"
    partial = verdict(claim, resnet34_gains(0.10, columns=("With GELU AE",)))
    assert partial.ours == "inconclusive"
    assert "only 1 of 2 pairs of cells have runs (it would be consistent with the claim)" in partial.ours_detail


def app_times(ratio: float, epochs: bool = False) -> list:
    """Table 1's cells, the APP taking `ratio` x the time; wall time only unless `epochs`."""
    table1, rng, runs = TABLES["table1"], random.Random(7), []
    for row in ("ResNet-18", "ResNet-34", "ResNet-50", "ResNet-101"):
        for seed in range(1, SEEDS5 + 1):
            base = 5000 + rng.gauss(0, 30)
            for column, seconds in (("Without APP", base), ("With APP", base * ratio + rng.gauss(0, 2))):
                metrics = {"train_time_s": seconds} | ({"train_epoch_time_mean_s": seconds / 60} if epochs else {})
                runs.append(run_in(table1, row, column, metrics, seed=seed))
    return runs


def test_relative_time_claim_on_time_per_epoch_else_wall_time() -> None:
    """Table 1: +1.875 % training time, read on 50 x the epoch time; runs without it: wall time."""
    wall = verdict("app-time-1.875", app_times(1.01875))
    assert wall.ours == "consistent with the claim"
    assert "on none vs GELU APP (wall)" in wall.ours_detail and "+1.8" in wall.ours_detail
    epochs = verdict("app-time-1.875", app_times(1.01875, epochs=True))
    assert epochs.ours == "consistent with the claim" and "(wall)" not in epochs.ours_detail
    assert verdict("app-time-1.875", app_times(1.10)).ours == "larger than claimed"
    smaller = verdict("app-time-smaller-encoders", app_times(1.02))
    assert smaller.ours == "inconclusive"  # the same relative cost for every encoder: no contrast


# --- best, reference and spread claims ----------------------------------------------------------


def classifiers(scores: dict[str, float], missing: str = "") -> list:
    table4, rng, runs = TABLES["table4"], random.Random(11), []
    for row in table4.rows:
        if row.label in ("CoAtNet", missing):
            continue
        mean = scores.get(row.label, 0.80)
        runs += [run_in(table4, row.label, "Test F1-Score", mean + rng.gauss(0, 0.003), seed=seed, fold=fold)
                 for seed in (1, 2) for fold in (0, 1)]
    return runs


def test_best_claim() -> None:
    swin_b, nfnet = "Swin-B (patch 4, window 12)", "NFNet-F3"
    best = verdict("swin-b-best", classifiers({swin_b: 0.90, nfnet: 0.85}))
    # 2 seeds x 2 folds: n is the 2 seeds, each the mean over its folds.
    assert best.ours == "supported" and "best other NFNet-F3" in best.ours_detail and "n=2" in best.ours_detail
    assert verdict("swin-b-best", classifiers({swin_b: 0.85, nfnet: 0.90})).ours == "contradicted"
    assert verdict("swin-b-best", classifiers({swin_b: 0.851, nfnet: 0.850})).ours == "inconclusive"
    missing = verdict("swin-b-best", classifiers({swin_b: 0.90}, missing="ViT-B/16"))
    assert missing.ours == "inconclusive" and "1 of 29 cells without results" in missing.ours_detail
    assert verdict("nfnet-f3-best-cnn", classifiers({swin_b: 0.95, nfnet: 0.90})).ours == "supported"


def test_reference_claim_against_prior_work() -> None:
    tiling = TABLES["tiling"]
    row, column = "UNet++ ResNet-34", "256 px accuracy, padding counted"

    def accuracy(values):
        return [run_in(tiling, row, column, {"test_pixel_accuracy_padded": v}, seed=i) for i, v in enumerate(values)]

    assert verdict("seg-beats-van-buren", accuracy([0.981, 0.984, 0.986])).ours == "consistent with the claim"
    assert verdict("seg-beats-van-buren", accuracy([0.940, 0.941, 0.942])).ours == "smaller than claimed"
    assert verdict("seg-beats-van-buren", accuracy([0.920, 0.921, 0.922])).ours == "contradicted"
    assert verdict("seg-beats-van-buren", accuracy([0.98])).ours == "inconclusive"


def test_spread_claim() -> None:
    table8 = TABLES["table8"]
    rows = [row.label for row in table8.rows]

    def times(spread: float, skip: str = "") -> list:
        return [run_in(table8, row, column, 5000 + spread * seed, seed=seed)
                for row in rows if row != skip for column in ("Without APP", "With APP") for seed in (1, 2, 3)]

    assert verdict("effnet-unet-time-spread", times(2.0)).ours == "supported"
    assert verdict("effnet-unet-time-spread", times(20.0)).ours == "contradicted"
    assert verdict("effnet-unet-time-spread", times(2.0, skip="EfficientNet-B7")).ours == "inconclusive"


def test_metric_override_blocks_verdicts_and_summary_lists_all() -> None:
    spec = TABLES["table6"]
    cells = aggregate(spec, gelu_vs_relu({"ResNet-18": 0.03}))
    blocked = Evidence(spec, cells, compare_table(spec, cells), blocked="metric=x replaces the table's metric")
    result = evaluate(BY_ID["unet-app-always"], blocked)
    assert (result.ours, result.paper) == ("not evaluated", "does not support it")
    verdicts = [evaluate(claim, empty(claim.table)) for claim in CLAIMS]
    text = claims_summary(verdicts)
    assert text.count("\n| ") == len(CLAIMS) + 1  # header + one line per claim
    assert "| effnet-unetpp-app-5 | Section 7.2 (Table 11) | table11 | does not support it | inconclusive |" in text


def test_each_claims_only_name_their_tables_comparisons() -> None:
    for claim in CLAIMS:
        if isinstance(claim, EachClaim):
            names = {c.name for c in TABLES[claim.table].comparisons}
            assert {item.comparison for item in claim.items} <= names
