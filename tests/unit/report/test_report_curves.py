"""Learning curves of tables that sweep the training-set size (report/analysis/curves.py): the fitted
curves recover a known data saving, the report says in words where it cannot give one, the
learning-curve table and PNG from constructed runs, runs recorded before the sizes were logged,
and a user's table sweeping dataset.train_count."""

from __future__ import annotations

import dataclasses
import math
import random
import re
from pathlib import Path

import pytest
from matplotlib.lines import Line2D
from report_records import TABLES, run_in
from test_report_generic import user_conf

from dedl_experiments.report import cli
from dedl_experiments.report.analysis import curve_fit
from dedl_experiments.report.rendering import render_curves
from dedl_experiments.report.definition import tables
from dedl_experiments.report.analysis.curves import FRACTION, IMAGES, analyse
from dedl_experiments.report.definition.schema import ExperimentError
from dedl_experiments.report.analysis.verdicts import CONTRADICTED, INCONCLUSIVE, SUPPORTED, Evidence, evaluate

BASELINE, APP, IMAGENET, BOTH = ("No APP / random init", "GELU APP / random init", "No APP / ImageNet init",
                                 "GELU APP / ImageNet init")
IMAGES_AT_FULL = 64


def learning(x: float) -> float:
    """The baseline's true curve on the fraction of the images: a saturating power law."""
    return 0.85 - 0.3 * x ** -0.5


def spec_with(resamples: int = 200, table: str = "data_efficiency"):
    spec = TABLES[table]
    return dataclasses.replace(spec, curve=dataclasses.replace(spec.curve, resamples=resamples))


def runs_of(spec, factors: dict[str, float], seeds: int = 5, sizes: tuple[str, ...] | None = None,
            log_images: bool = True, level: dict[str, float] | None = None) -> list:
    """Runs of each variant whose true curve is the baseline's at `factor` times the images
    (factor 2: it needs half the images for any score), plus a per-seed effect shared by the
    seed's runs and a little noise of each run."""
    draw = random.Random(7)
    runs = []
    for seed in range(1, seeds + 1):
        shared = draw.gauss(0, 0.01)
        for size, fraction in zip(spec.curve.sizes, spec.curve.values):
            if sizes is not None and size.label not in sizes:
                continue
            images = {"n_train_images": str(math.ceil(fraction * IMAGES_AT_FULL))} if log_images else {}
            for variant, factor in factors.items():
                value = learning(fraction * factor) if level is None or variant not in level else level[variant]
                runs.append(run_in(spec, size.label, variant, value + shared + draw.gauss(0, 0.004), seed=seed,
                                   **images))
    return runs


def test_a_variant_shifted_in_images_recovers_its_data_saving_within_its_ci() -> None:
    spec = spec_with()
    report = analyse(spec, runs_of(spec, {BASELINE: 1, APP: 2, IMAGENET: 4, BOTH: 0.5}, seeds=8))
    assert report.unit == IMAGES and report.x == {"0.0625": 4, "0.125": 8, "0.25": 16, "0.5": 32, "1.0": 64}
    assert report.form.name == curve_fit.POWER_LAW and report.seeds == 8
    savings = {saving.variant: saving for saving in report.savings}
    assert set(savings) == {APP, IMAGENET, BOTH}  # the baseline saves nothing against itself
    for variant, truth in ((APP, 0.5), (IMAGENET, 0.25), (BOTH, 2.0)):
        saving = savings[variant]
        assert saving.ci[0] <= truth <= saving.ci[1], (variant, saving)
        assert saving.fraction == pytest.approx(truth, rel=0.1)
        assert saving.ci[1] - saving.ci[0] < 0.5 * truth  # the seeds' noise is small
    assert savings[APP].text.startswith(f"{APP} reaches {BASELINE}'s full-data test_iou (0.")
    assert re.search(r" with 0\.(49|50|51) \[0\.\d\d, 0\.\d\d\] of the images$", savings[APP].text)
    assert "more than all of them: extrapolated" in savings[BOTH].text
    # The fitted baseline is the true curve: a = 0.85, b = 0.3, c = 0.5 within the bootstrap CIs.
    baseline = report.curves[0]
    for value, truth, (low, high) in zip(baseline.params, (0.85, 0.3, 0.5), baseline.params_ci):
        assert low - 0.01 <= truth <= high + 0.01
    # The claim: APP and ImageNet init save images, both together need more (as constructed).
    claim = next(c for c in spec.claims if c.id == "data-efficient")
    verdict = evaluate(claim, Evidence(spec, [], [], curves=report))
    assert verdict.ours == CONTRADICTED and verdict.paper == "prints nothing to test it"
    saving_claim = dataclasses.replace(claim, variants=(APP, IMAGENET))
    assert evaluate(saving_claim, Evidence(spec, [], [], curves=report)).ours == SUPPORTED


def test_paired_comparisons_at_every_size_are_holm_corrected_together() -> None:
    spec = spec_with(resamples=20)
    report = analyse(spec, runs_of(spec, {BASELINE: 1, APP: 2, IMAGENET: 1, BOTH: 4}))
    rows = {(row.comparison.name, row.pair.label): row for row in report.comparisons}
    assert len(rows) == 3 * 5  # each variant against the baseline, at each of the 5 sizes
    assert all(row.p_holm is not None and row.p_holm >= row.result.p for row in rows.values())
    assert rows[(f"{BASELINE} vs {APP}", "0.0625")].verdict == f"{APP} > {BASELINE}"
    assert rows[(f"{BASELINE} vs {IMAGENET}", "0.25")].verdict == "no evidence of a difference"


def test_where_the_curves_do_not_allow_a_figure_it_says_so() -> None:
    spec = spec_with(resamples=20)
    runs = runs_of(spec, {BASELINE: 1, APP: 2}) + runs_of(spec, {IMAGENET: 2}, sizes=("0.5", "1.0"))
    runs += runs_of(spec, {BOTH: 1}, level={BOTH: 0.4})  # flat at 0.40: levels off below the target
    texts = {saving.variant: saving.text for saving in analyse(spec, runs).savings}
    assert texts[IMAGENET] == (f"{IMAGENET}: cannot tell whether it reaches {BASELINE}'s full-data test_iou "
                               f"({analyse(spec, runs).target:.4f}): {IMAGENET} has results at 2 size(s); the power law needs 3")
    assert texts[BOTH].startswith(f"{BOTH} never reaches {BASELINE}'s full-data test_iou (")
    assert texts[BOTH].endswith("on its fitted curve (it does not improve with more images)")
    # No baseline at the full data: nothing to reach.
    without = [run for run in runs if not (run.params["app.name"] == "none" and run.params["init.name"] == "random"
                                           and run.params["dataset.train_fraction"] == "1.0")]
    report = analyse(spec, without)
    assert {saving.text for saving in report.savings} == {
        f"{variant}: cannot tell, {BASELINE} has no result at the full data (1.0)" for variant in (APP, IMAGENET, BOTH)}
    claim = next(c for c in spec.claims if c.id == "data-efficient")
    assert evaluate(claim, Evidence(spec, [], [], curves=report)).ours == INCONCLUSIVE


def test_resamples_without_a_figure_are_counted() -> None:
    """A size that one seed alone ran drops out of the resamples that miss that seed: with it
    the variant has too few sizes for a curve, and the line says how many resamples gave none."""
    spec = spec_with(resamples=100)
    runs = runs_of(spec, {BASELINE: 1}) + runs_of(spec, {IMAGENET: 2}, sizes=("0.25", "0.5"))
    runs += runs_of(spec, {IMAGENET: 2}, seeds=1, sizes=("1.0",))
    saving = next(s for s in analyse(spec, runs).savings if s.variant == IMAGENET)
    assert re.search(r"of the images \((\d+) of 100 resamples gave no figure\)$", saving.text)
    assert 20 <= int(re.search(r"\((\d+) of 100", saving.text).group(1)) <= 50  # (4/5)^5 of them miss seed 1


def test_a_failed_fit_and_too_few_sizes_are_said_in_words(monkeypatch) -> None:
    spec = spec_with(resamples=10)
    runs = runs_of(spec, {BASELINE: 1, APP: 2})
    monkeypatch.setattr(curve_fit, "curve_fit", lambda *args, **kwargs: (_ for _ in ()).throw(RuntimeError("no")))
    report = analyse(spec, runs)
    assert report.curves[0].why == f"the power law fit of {BASELINE} failed"
    assert next(s for s in report.savings if s.variant == APP).text.endswith(f": the power law fit of {APP} failed")
    monkeypatch.undo()
    one_size = analyse(spec, [run for run in runs if run.params["dataset.train_fraction"] == "1.0"])
    assert one_size.form is None
    assert one_size.curves[0].why == "1 size(s) with a known number of images: a curve needs at least 2"


def test_the_size_at_which_a_curve_reaches_a_score() -> None:
    power = curve_fit.FORMS[curve_fit.POWER_LAW]
    assert curve_fit.size_reaching(power, (0.8, 0.2, 1.0), 0.4) == pytest.approx(0.5)  # 0.8 - 0.2 / 0.5
    assert curve_fit.size_reaching(power, (0.8, 0.2, 1.0), 0.85) == math.inf  # levels off at 0.8
    assert curve_fit.size_reaching(power, (0.8, -0.2, 1.0), 0.7) == 0.0  # worsens, towards 0.8: always above 0.7
    assert curve_fit.size_reaching(power, (0.8, -0.2, 1.0), 0.9) == math.inf
    # A loss (lower is better) falling with more images reaches 0.3 at x = 0.5 as well.
    assert curve_fit.size_reaching(power, (0.2, -0.05, 1.0), 0.3, better=-1) == pytest.approx(0.5)
    log_linear = curve_fit.FORMS[curve_fit.LOG_LINEAR]
    assert curve_fit.size_reaching(log_linear, (0.7, 0.1), 0.6) == pytest.approx(0.5)  # one halving lower
    assert curve_fit.size_reaching(log_linear, (0.7, -0.1), 0.6) == math.inf


def test_two_sizes_fit_the_log_linear_form() -> None:
    spec = spec_with(resamples=50)
    runs = [run for run in runs_of(spec, {BASELINE: 1, APP: 2}) if run.params["dataset.train_fraction"] in ("0.5", "1.0")]
    report = analyse(spec, runs)
    assert report.form.name == curve_fit.LOG_LINEAR
    saving = next(s for s in report.savings if s.variant == APP)
    assert saving.fraction == pytest.approx(0.5, abs=0.1)  # near full data the two forms agree


def test_runs_that_logged_no_image_count_are_placed_from_the_others() -> None:
    spec = spec_with(resamples=10)
    logged = runs_of(spec, {BASELINE: 1, APP: 2}, sizes=("0.0625", "0.125", "0.25", "0.5"))
    older = runs_of(spec, {BASELINE: 1, APP: 2}, sizes=("1.0",), log_images=False)
    report = analyse(spec, logged + older)
    assert report.unit == IMAGES and report.x["1.0"] == IMAGES_AT_FULL
    assert "ceil(f N), N = 64 training images" in report.notes[0]
    none_logged = analyse(spec, runs_of(spec, {BASELINE: 1, APP: 2}, log_images=False))
    assert none_logged.unit == FRACTION and none_logged.x["0.0625"] == 0.0625
    saving = next(s for s in none_logged.savings if s.variant == APP)
    assert saving.fraction == pytest.approx(0.5, rel=0.1)  # the same figure on either axis


def test_learning_curve_table_and_png(tmp_path: Path) -> None:
    spec = spec_with(resamples=20)
    report = analyse(spec, runs_of(spec, {BASELINE: 1, APP: 2}, seeds=3)
                     + runs_of(spec, {IMAGENET: 4}, seeds=3, sizes=("0.25", "0.5", "1.0")))
    text = render_curves.markdown(report)
    assert text.startswith("#### Learning curves: test_iou against the training-set size (dataset.train_fraction), "
                           f"baseline {BASELINE}")
    assert f"| dataset.train_fraction | {BASELINE} | {IMAGENET} | {APP} | {BOTH} |" in text
    row = next(line for line in text.splitlines() if line.startswith("| 0.0625 (4 images) |"))
    cell = report.cells[0]
    assert row.startswith(f"| 0.0625 (4 images) | {cell.mean:.4f} [") and row.endswith("(n=3) | — |")
    assert "test_iou = a - b (n/N)^-c" in text
    assert "Holm-corrected across the learning curves' 8 test(s)" in text  # 5 sizes of APP, 3 of ImageNet
    assert f"- {APP} reaches {BASELINE}'s full-data test_iou" in text
    figure = render_curves.figure(report)
    axes = figure.axes[0]
    assert axes.get_xscale() == "log" and axes.get_xlabel() == "number of training images (log2 scale)"
    assert axes.get_ylabel() == "test_iou"
    assert [container.get_label() for container in axes.containers] == [BASELINE, IMAGENET, APP]  # points, CIs
    dashed = [line for line in axes.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 3  # one fitted curve per variant with runs
    assert all(isinstance(handle, Line2D) for handle in axes.get_legend().legend_handles[3:])
    render_curves.to_png(report, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 10_000


USER_COUNTS = """\
    # @package _global_
    table: mine
    hydra:
      sweeper:
        params:
          encoder: mynet,resnet18
          dataset.train_count: 8,16,32,64
          seed: 1,2,3
"""


def test_a_users_table_sweeping_train_count_gets_learning_curves(tmp_path: Path, monkeypatch) -> None:
    folder = user_conf(tmp_path, USER_COUNTS + "    report:\n      curve: {resamples: 200}\n")
    spec = tables.spec("mine", [str(folder)])
    assert spec.curve.resamples == 200 and spec.curve.key == "dataset.train_count" and spec.curve.values == (8, 16, 32, 64)
    assert [v.label for v in spec.curve.variants] == ["My Net", "ResNet-18"] and spec.curve.baseline == "My Net"
    draw = random.Random(3)
    recorded = {"budget.name": "paper", "dataset.name": "synthetic",
                **{key: value for key, value in spec.recipe.items() if key != spec.curve.key}}
    runs = [run_in(spec, row.label, size.label, learning(value / 64 * (1 if row.label == "My Net" else 2))
                   + draw.gauss(0, 0.003), seed=seed, **recorded)
            for seed in (1, 2, 3) for row in spec.rows for size, value in zip(spec.curve.sizes, spec.curve.values)]
    monkeypatch.setattr(cli, "_store_missing", lambda uri: False)
    monkeypatch.setattr(cli.store_checks, "check_store", lambda uri: None)
    monkeypatch.setattr(cli, "load_runs", lambda uri: runs)
    monkeypatch.setattr(cli, "log_report", lambda *args: "report-mine-paper")
    assert cli.main(["table=mine", f"config_dir={folder}", f"out={tmp_path / 'out'}"]) == 0
    text = (tmp_path / "out" / "mine" / "mine.md").read_text()
    assert "#### Learning curves: test_iou against the training-set size (dataset.train_count), baseline My Net" in text
    assert "| 8 (8 images) |" in text  # a count is a number of images
    assert re.search(r"- ResNet-18 reaches My Net's full-data test_iou \(0\.\d{4}\) with 0\.(4|5)\d \[", text)
    assert (tmp_path / "out" / "mine" / "mine_learning_curves.png").stat().st_size > 10_000


def test_curve_block_errors_name_the_file_and_what_is_allowed(tmp_path: Path) -> None:
    folder = user_conf(tmp_path, USER_COUNTS + "    report:\n      curve: {baseline: Nope}\n")
    with pytest.raises(ExperimentError, match=r"mine.yaml: report.curve.baseline: no variant 'Nope'; variants: My Net; ResNet-18"):
        tables.spec("mine", [str(folder)])
    folder = user_conf(tmp_path / "b", USER_COUNTS + "    report:\n      curve: {size: encoder.name}\n")
    with pytest.raises(ExperimentError, match=r"report.curve.size: encoder.name is not swept; swept: encoder, "):
        tables.spec("mine", [str(folder)])
    assert TABLES["table2"].curve is None  # the paper's tables sweep no size


def test_the_bootstrap_draws_whole_seeds_where_cells_have_folds() -> None:
    """The fold models of one seed are one replicate: 3 seeds x 2 folds are 3 seeds, not 6."""
    spec = spec_with(resamples=50)
    runs = [dataclasses.replace(run, run_id=f"{run.run_id}-{fold}", params={**run.params, "fold": fold},
                                tags={**run.tags, "dedl.fold": fold, "dedl.folds": "2"})
            for run in runs_of(spec, {BASELINE: 1.0, APP: 2.0}, seeds=3) for fold in ("0", "1")]
    report = analyse(spec, runs)
    assert report.seeds == 3
