"""Our verdicts' words, each pinned to a constructed case: by what the 95 % CI excludes for a
claimed direction or size; "consistently" tested on every pair, not only the mean; exceptions a
claim's text makes left out of it; other readings shown where they change a verdict."""

from __future__ import annotations

import random

import pytest
from report_records import CLAIMS, TABLES, evidence, seeds

from dedl_experiments.report.analysis import claims
from dedl_experiments.report.analysis.effects import judge
from dedl_experiments.report.definition.schema import ExperimentError
from dedl_experiments.report.analysis import stats
from dedl_experiments.report.analysis.verdicts import evaluate

BY_ID = {claim.id: claim for claim in CLAIMS}


def ci_result(low: float, high: float) -> stats.TestResult:
    return stats.TestResult("test", 5, (low + high) / 2, (low, high), 0.01)


@pytest.mark.parametrize("size, sign, ci, word", [
    # a claimed size: what the CI excludes
    (3.0, 1, (0.3, 2.1), "smaller than claimed"),  # reaches "about 3" read as 1.5-4.5, excludes 3
    (3.0, 1, (-0.5, 2.1), "smaller than claimed"),
    (3.0, 1, (2.5, 3.6), "consistent with the claim"),
    (3.0, 1, (3.2, 4.0), "larger than claimed"),
    (3.0, 1, (-0.5, 3.5), "inconclusive"),  # both the claimed size and zero
    (3.0, 1, (-2.0, -0.1), "contradicted"),
    (3.0, -1, (-3.5, -2.5), "consistent with the claim"),  # a claimed decrease of about 3
    # a claimed direction (average, contrast, best, reference and each pair of each/most claims)
    (None, 1, (0.1, 2.0), "supported"),
    (None, 1, (-0.1, 2.0), "inconclusive"),
    (None, 1, (-2.0, -0.1), "contradicted"),
    (None, -1, (-2.0, -0.1), "supported"),
])
def test_each_word_by_what_the_ci_excludes(size, sign, ci, word) -> None:
    assert judge(size, sign, ci_result(*ci))[0] == word


@pytest.mark.parametrize("kind", ["too_few", "identical", "constant", "invalid"])
def test_no_test_no_word_but_inconclusive(kind: str) -> None:
    ours, why = judge(3.0, 1, stats.TestResult(kind, 1))
    assert ours == "inconclusive" and why


def table2_gelu(gains: dict[tuple[str, str], float], default: float = 0.03, noise: float = 0.002) -> list:
    """Table 2's none vs GELU cells, GELU `gains[(architecture, encoder)]` above no APP."""
    table2, rng, runs = TABLES["table2"], random.Random(2), []
    for architecture in ("UNet", "UNet++"):
        for row in ("ResNet-18", "ResNet-34", "ResNet-50", "ResNet-101"):
            base = [0.40 + rng.gauss(0, 0.01) for _ in range(5)]
            gain = gains.get((architecture, row), default)
            runs += seeds(table2, row, f"{architecture} / Without AE", base)
            runs += seeds(table2, row, f"{architecture} / With GELU AE", [x + gain + rng.gauss(0, noise) for x in base])
            runs += seeds(table2, row, f"{architecture} / With ReLU AE", [x + gain + rng.gauss(0, noise) for x in base])
    return runs


def test_consistently_tests_every_pair_not_only_the_mean() -> None:
    claim = BY_ID["app-gain-3"]
    ev = evidence(TABLES["table2"], table2_gelu({}))
    assert evaluate(claim, ev).ours == "consistent with the claim"
    # The mean stays near 3 points, but one pair goes the other way: not "consistently".
    against = evaluate(claim, evidence(TABLES["table2"], table2_gelu({("UNet", "ResNet-18"): -0.01},
                                                                     default=0.0343)))
    assert against.ours == "contradicted" and "not consistent: ResNet-18, UNet: none vs GELU" in against.ours_detail
    astray = evaluate(claim, evidence(TABLES["table2"], table2_gelu({("UNet", "ResNet-18"): -0.0005},
                                                                    default=0.0343, noise=0.01)))
    assert astray.ours == "inconclusive" and "not every pair of cells goes the claimed way" in astray.ours_detail


def test_an_exception_of_the_text_is_left_out_of_the_claim() -> None:
    # "Except for ResNet-18 and 101 with UNet++, the APP always improves": an APP gain there is no
    # evidence against the claim; read as "the APP lowers IoU there" it would contradict it.
    verdict = evaluate(BY_ID["app-improves-except-unetpp-18-101"], evidence(TABLES["table2"], table2_gelu({})))
    assert verdict.ours == "supported" and "12 as claimed of 12 pair(s)" in verdict.ours_detail
    assert verdict.paper == "does not support it"
    assert verdict.readings == [
        "read as GELU only: the paper's numbers: supports it; ours: supported",
        "read as the APP lowering IoU at the exceptions: the paper's numbers: does not support it; ours: contradicted"]


def test_a_reading_that_would_flip_a_verdict_is_shown() -> None:
    lags = evaluate(BY_ID["unetpp-18-lags-5"], evidence(TABLES["table7"], []))
    assert lags.paper == "does not support it"
    assert lags.readings == ["read as GELU only: the paper's numbers: supports it; ours: inconclusive"]
    relative = evaluate(BY_ID["effnet-unetpp-app-5"], evidence(TABLES["table11"], []))
    assert relative.paper == "does not support it"
    assert relative.readings == ["read as relative %: the paper's numbers: supports it; ours: inconclusive"]
    same = evaluate(BY_ID["app-improves-except-unetpp-18"], evidence(TABLES["table2"], []))
    assert same.readings == []  # no runs: both readings inconclusive, both unsupported by the paper


def test_a_claims_readings_and_expect_are_checked_in_one_line() -> None:
    table7 = TABLES["table7"]
    keys = {"resnet18": "ResNet-18", "resnet34": "ResNet-34", "resnet50": "ResNet-50", "resnet101": "ResNet-101"}
    base = {"id": "x", "kind": "average", "source": "s", "text": "t",
            "items": [{"comparisons": ["none vs GELU"], "rows": ["resnet18"], "expect": "sideways"}]}
    with pytest.raises(ExperimentError, match=r"^f.yaml: report.claims\[0\].items\[0\].expect must be '>', '<' or exempt"):
        claims.read([base], table7, keys, "f.yaml")
    good = {**base, "items": [{"comparisons": ["none vs GELU"]}]}
    with pytest.raises(ExperimentError, match=r"readings\[0\] must be a mapping with a label"):
        claims.read([{**good, "readings": [{"relative": True}]}], table7, keys, "f.yaml")
    with pytest.raises(ExperimentError, match=r"unknown key report.claims\[0\].readings\[0\].sizes"):
        claims.read([{**good, "readings": [{"label": "r", "sizes": 1}]}], table7, keys, "f.yaml")
    [claim] = claims.read([{**good, "readings": [{"label": "relative %", "relative": True}]}], table7, keys, "f.yaml")
    assert claim.readings[0].label == "relative %" and claim.readings[0].claim.relative
