"""Learning curves of a table that sweeps the training-set size (spec.CurveSpec): per variant
and size the metric's mean and 95 % CI; each variant against the baseline at every size (the
table's paired comparisons, compare.py, Holm-corrected across the curves' tests); a curve fitted
per variant (curve_fit.py); and the headline, the data-saving figure: the fraction of the
training images a variant needs to reach the baseline's full-data score, read off its fitted
curve.

The x axis is the number of training images a run trained on (its param `n_train_images`, the
same for every seed of a size). A size none of whose runs logged it (runs recorded before the
size settings existed, at the whole training set) takes, for `dataset.train_count`, the count;
for a fraction f, ceil(f N) with N estimated from a size that logged it (N = n / f); where no run
logged a count, the axis is the fraction itself. The full data is the largest size.

Uncertainty is a bootstrap over seeds (the experiment's unit of replication): seeds are drawn
with replacement, all of a seed's runs together (so the pairing of variants by seed is kept),
each curve is refitted and the figure recomputed; the 95 % CIs are the 2.5 and 97.5 %
percentiles. The fit's own covariance is not used: it rests on 2-5 points and knows nothing of
the spread between seeds, and the figure is a nonlinear function of the fitted parameters and of
the baseline's full-data mean, whose uncertainty the bootstrap carries along.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from dedl_experiments.report.analysis import curve_fit
from dedl_experiments.report.cells import units
from dedl_experiments.report.cells.aggregate import Cell, RunRecord, aggregate
from dedl_experiments.report.analysis.compare import ComparisonRow, compare_table
from dedl_experiments.report.analysis.curve_fit import Form
from dedl_experiments.report.definition.spec import Comparison, CurveSpec, Pair, TableSpec
from dedl_experiments.report.analysis.stats import CONFIDENCE

IMAGES_PARAM = "n_train_images"
IMAGES, FRACTION = "training images", "fraction of the training images"
_QUANTILES = ((1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2)


@dataclass
class Curve:
    variant: str
    x: list[float]  # the sizes with results, as fractions of the full data
    y: list[float]  # the variant's mean at each
    params: tuple[float, ...] | None = None  # of the fitted form, on the fraction of the full data
    params_ci: list[tuple[float, float]] = field(default_factory=list)
    why: str = ""  # why it has no fit


@dataclass
class Saving:
    """The fraction of the images a variant needs to reach the baseline's full-data score:
    `fraction` (math.inf: never) with its bootstrap CI, or `why` not."""

    variant: str
    fraction: float | None = None
    ci: tuple[float, float] | None = None
    text: str = ""


@dataclass
class CurveReport:
    spec: CurveSpec
    table: TableSpec  # sizes (rows) x variants (columns)
    cells: list[Cell]
    comparisons: list[ComparisonRow]
    x: dict[str, float | None]  # each size's number of images (or fraction), None: unknown
    unit: str  # IMAGES or FRACTION
    form: Form | None
    curves: list[Curve]
    savings: list[Saving]
    target: float | None  # the baseline's full-data mean
    seeds: int  # seeds resampled
    notes: list[str]

    @property
    def full(self) -> float | None:
        known = [x for x in self.x.values() if x is not None]
        return max(known) if known else None


def curve_table(spec: TableSpec) -> TableSpec:
    """The curves as a table: sizes x variants; each variant against the baseline at every size."""
    curve = spec.curve
    baseline = next(v for v in curve.variants if v.label == curve.baseline)
    comparisons = tuple(
        Comparison(f"{baseline.label} vs {variant.label}", baseline.label, variant.label,
                   tuple(Pair(size.label, (size.label, baseline.label), (size.label, variant.label)) for size in curve.sizes))
        for variant in curve.variants if variant is not baseline)
    return dataclasses.replace(spec, rows=curve.sizes, columns=curve.variants, published={}, comparisons=comparisons,
                               claims=(), title=f"{spec.metric} against the training-set size ({curve.key})")


def _images(spec: CurveSpec, cells: list[Cell]) -> tuple[dict[str, float | None], str, list[str]]:
    """Each size's number of training images, the axis' unit and how sizes without a logged
    count were placed."""
    logged: dict[str, int] = {}
    with_runs = {cell.row for cell in cells if cell.values}
    for size in spec.sizes:
        counts = Counter(int(float(run.params[IMAGES_PARAM])) for cell in cells if cell.row == size.label
                         for run in cell.runs if IMAGES_PARAM in run.params)
        if counts:
            logged[size.label] = counts.most_common(1)[0][0]
    fraction = spec.key == "dataset.train_fraction"
    known = [(value, logged[size.label]) for size, value in zip(spec.sizes, spec.values) if size.label in logged]
    whole = known and fraction and max(known)[1] / max(known)[0]
    x: dict[str, float | None] = {}
    placed = []
    for size, value in zip(spec.sizes, spec.values):
        if size.label not in with_runs:  # nothing to place
            x[size.label] = None
        elif size.label in logged:
            x[size.label] = float(logged[size.label])
        elif not fraction:
            x[size.label] = value  # a count is a number of images; None (the whole set) stays unknown
        elif whole:
            x[size.label] = float(math.ceil(value * whole - 1e-9))
            placed.append(size.label)
        else:
            x[size.label] = value
    if fraction and not logged:
        return x, FRACTION, [f"No run logged `{IMAGES_PARAM}`: the curves' x axis is the {FRACTION}."] if with_runs else []
    notes = []
    if placed:
        notes.append(f"Runs of {spec.key} = {', '.join(placed)} logged no `{IMAGES_PARAM}` (recorded before it was "
                     f"logged): their size is ceil(f N), N = {whole:g} training images from the sizes that logged it.")
    unknown = [label for label, value in x.items() if value is None and label in with_runs]
    if unknown:
        notes.append(f"Size(s) {', '.join(unknown)} left out of the curves: no run logged `{IMAGES_PARAM}`.")
    return x, IMAGES, notes


def _means(cells: dict[tuple[str, str], dict], weights: np.ndarray | None) -> dict[tuple[str, str], float]:
    """Each cell's mean over its seeds, each seed weighted by how often a resample drew it."""
    means = {}
    for position, (index, values) in cells.items():
        w = np.ones(len(index)) if weights is None else weights[index]
        if w.sum() > 0:
            means[position] = float(np.dot(w, values) / w.sum())
    return means


def _quantiles(samples: list[float]) -> tuple[float, float] | None:
    if not samples:
        return None
    low, high = np.quantile(np.asarray(samples), _QUANTILES, method="inverted_cdf")  # values drawn, inf kept
    return float(low), float(high)


class _Analysis:
    def __init__(self, spec: CurveSpec, cells: list[Cell], x: dict[str, float | None], form: Form | None):
        self.spec, self.form = spec, form
        full = max((v for v in x.values() if v is not None), default=None)
        self.better = 1  # the way scores improve: the way the baseline's curve moves with more images
        self.sizes = [(size.label, x[size.label] / full) for size in spec.sizes if x[size.label] is not None]
        self.full_size = max(self.sizes, key=lambda s: s[1])[0] if self.sizes else None
        # Resampled by seed, the unit of replication: a seed's fold models are one draw.
        by_key = {(c.row, c.column): units.by_seed(c) for c in cells}
        self.keys = sorted({key for values in by_key.values() for key in values})
        position = {key: i for i, key in enumerate(self.keys)}
        self.cells = {p: (np.array([position[k] for k in v], dtype=int), np.array(list(v.values()), dtype=float))
                      for p, v in by_key.items() if v}

    def fits(self, means: dict, start: dict | None = None) -> tuple[dict[str, tuple | None], float | None]:
        """Each variant's fitted parameters (None: too few sizes or a failed fit) and the baseline's
        full-data mean, from the cells' means."""
        fitted = {}
        for variant in self.spec.variants:
            points = [(x, means[(size, variant.label)]) for size, x in self.sizes if (size, variant.label) in means]
            ok = self.form is not None and len(points) >= len(self.form.parameters)
            fitted[variant.label] = (curve_fit.fit(self.form, *zip(*points), (start or {}).get(variant.label))
                                     if ok else None)
        return fitted, means.get((self.full_size, self.spec.baseline))

    def saving(self, params: tuple | None, target: float | None) -> float | None:
        if params is None or target is None:
            return None
        return curve_fit.size_reaching(self.form, params, target, self.better)


def analyse(spec: TableSpec, runs: list[RunRecord]) -> CurveReport:
    """The learning curves of spec's runs (those of the table's cells)."""
    curve = spec.curve
    table = curve_table(spec)
    cells = aggregate(table, runs)
    comparisons = compare_table(table, cells)
    x, unit, notes = _images(curve, cells)
    known = sum(value is not None for value in x.values())
    form = curve_fit.form_for(known)
    analysis = _Analysis(curve, cells, x, form)
    means = _means(analysis.cells, None)
    fitted, target = analysis.fits(means)
    if fitted.get(curve.baseline) is not None:
        analysis.better = curve_fit.improves(form, fitted[curve.baseline]) or 1
    samples: dict[str, list[tuple]] = {v.label: [] for v in curve.variants}
    savings: dict[str, list[float]] = {v.label: [] for v in curve.variants}
    rng = np.random.default_rng(0)  # the same report from the same runs
    if form is not None and len(analysis.keys) >= 2 and any(fitted.values()):
        for _ in range(curve.resamples):
            drawn = np.bincount(rng.integers(len(analysis.keys), size=len(analysis.keys)), minlength=len(analysis.keys))
            resampled, resampled_target = analysis.fits(_means(analysis.cells, drawn), fitted)
            for label, params in resampled.items():
                if params is not None and fitted[label] is not None:
                    samples[label].append(params)
                    reached = analysis.saving(params, resampled_target)
                    if reached is not None:
                        savings[label].append(reached)
    curves = []
    for variant in curve.variants:
        points = [(xs, means[(size, variant.label)]) for size, xs in analysis.sizes if (size, variant.label) in means]
        found = Curve(variant.label, [p[0] for p in points], [p[1] for p in points], fitted[variant.label])
        if found.params is None:
            found.why = _no_fit(form, len(points), known, variant.label)
        elif samples[variant.label]:
            found.params_ci = [_quantiles(list(column)) for column in zip(*samples[variant.label])]
        curves.append(found)
    if 2 <= len(analysis.keys) < 5:
        notes.append(f"Only {len(analysis.keys)} seeds: the bootstrap draws from few distinct resamples, so its "
                     "CIs are rough.")
    report = CurveReport(curve, table, cells, comparisons, x, unit, form, curves, [], target, len(analysis.keys), notes)
    report.savings = [_saving(report, found, analysis, savings[found.variant])
                      for found in curves if found.variant != curve.baseline]
    return report


def _no_fit(form: Form | None, points: int, known: int, variant: str) -> str:
    if form is None:
        return f"{known} size(s) with a known number of images: a curve needs at least 2"
    if points == 0:
        return f"{variant} has no finished run"
    if points < len(form.parameters):
        return f"{variant} has results at {points} size(s); the {form.name} needs {len(form.parameters)}"
    return f"the {form.name} fit of {variant} failed"


def share(value: float) -> str:
    """A fraction of the images: 0.55, 0.062, never."""
    return "never" if math.isinf(value) else f"{value:.2f}" if value >= 0.1 else f"{value:.2g}"


def _saving(report: CurveReport, found: Curve, analysis: _Analysis, samples: list[float]) -> Saving:
    spec, metric = report.spec, report.table.metric
    baseline = next(c for c in report.curves if c.variant == spec.baseline)
    reaches = f"{baseline.variant}'s full-data {metric}"
    if analysis.full_size is None:
        return Saving(found.variant, text=f"{found.variant}: cannot tell, no finished run of the curves' sizes yet")
    if report.target is None:
        return Saving(found.variant, text=f"{found.variant}: cannot tell, {baseline.variant} has no result at the "
                                          f"full data ({analysis.full_size})")
    reaches += f" ({report.target:.4f})"
    if found.params is None:
        return Saving(found.variant, text=f"{found.variant}: cannot tell whether it reaches {reaches}: {found.why}")
    fraction = analysis.saving(found.params, report.target)
    ci = _quantiles(samples)
    if math.isinf(fraction):
        level = (" (it does not improve with more images)" if curve_fit.improves(report.form, found.params) != analysis.better
                 else f" (it levels off at {found.params[0]:.4f})")
        return Saving(found.variant, fraction, ci, f"{found.variant} never reaches {reaches} on its fitted curve{level}")
    interval = f" [{share(ci[0])}, {share(ci[1])}]" if ci else " (no CI: fewer than 2 seeds)"
    text = f"{found.variant} reaches {reaches} with {share(fraction)}{interval} of the images"
    if ci and len(samples) < spec.resamples:  # the CI rests on the resamples whose curves could be fitted
        text += f" ({spec.resamples - len(samples)} of {spec.resamples} resamples gave no figure)"
    smallest = min(found.x)
    if fraction < smallest:
        text += f" (extrapolated below the smallest size run, {share(smallest)})"
    elif fraction > 1:
        text += " (more than all of them: extrapolated beyond the sizes run)"
    return Saving(found.variant, fraction, ci, text)
