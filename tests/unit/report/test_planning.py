"""The planning rule keeps the final Holm-corrected tests honest and reaches its power: whole
sweeps simulated at once (report/analysis/planning.py), and its parts."""

from __future__ import annotations

import numpy as np
import pytest

from dedl_experiments.report.analysis import planning
from dedl_experiments.report.analysis.planning import (
    monte_carlo_error, planned_seeds, seed_sequence, simulate,
)
from dedl_experiments.report.analysis.power import POWER, detectable_effect_sizes, holm_first_level
from dedl_experiments.report.analysis.stats import ALPHA

SWEEPS = 2000
TESTS = 24
DISJOINT = np.array([(2 * i, 2 * i + 1) for i in range(TESTS)])  # each comparison its own two cells


def _effect_planned_at(seeds: int) -> float:
    """The standardised effect the plan gives `seeds` seeds at the level of TESTS comparisons."""
    return float(detectable_effect_sizes(holm_first_level(TESTS), planning.MAX_SEEDS)[seeds - 2])


@pytest.mark.parametrize("planned", [4, 7])
def test_null_sweeps_keep_the_family_wise_error_at_alpha(planned: int) -> None:
    """No comparison has an effect; each plans seeds from its pilot. With each comparison's own
    pilot variance this rate was 0.08 (planned 7): seeds tied to the pilot's noise."""
    effect = _effect_planned_at(planned)
    result = simulate(np.zeros(TESTS), np.ones(TESTS), np.full(TESTS, effect), DISJOINT, sweeps=SWEEPS, seed=planned)
    assert result.sweeps >= 2000
    assert result.any_rejected <= ALPHA + monte_carlo_error(ALPHA, SWEEPS)


@pytest.mark.parametrize("planned", [4, 7])
def test_a_true_effect_of_the_planned_size_is_detected_with_the_target_power(planned: int) -> None:
    """One comparison has the effect of interest, the other 23 none."""
    effect = _effect_planned_at(planned)
    true_diff = np.zeros(TESTS)
    true_diff[0] = effect
    sweeps = 4000
    result = simulate(true_diff, np.ones(TESTS), np.full(TESTS, effect), DISJOINT, sweeps=sweeps, seed=10 + planned)
    assert result.detected[0] >= POWER - monte_carlo_error(POWER, sweeps)


def test_fixed_seeds_spend_seeds_times_cells() -> None:
    result = simulate(np.zeros(TESTS), np.ones(TESTS), np.ones(TESTS), DISJOINT, sweeps=50, fixed=5)
    assert result.runs == 5 * 2 * TESTS


def test_the_plan_reads_the_pilots_variance_not_its_differences() -> None:
    sds = np.array([0.01, 0.02, 0.015])
    effects = np.array([0.03, 0.03, 0.01])
    plan = planned_seeds(sds, effects, 3, 10)
    assert ((plan >= 3) & (plan <= 10)).all()
    # The pooled variance decides: the same pooled spread, the same plan.
    assert planned_seeds(sds[::-1], effects, 3, 10).tolist() == plan.tolist()
    # Beyond max_seeds: the pilot, not max_seeds; no spread or no effect: the pilot.
    assert planned_seeds(np.array([0.05, 0.05]), np.array([0.001, 0.3]), 3, 10).tolist()[0] == 3
    assert planned_seeds(np.array([0.0, 0.0]), np.array([0.01, 0.01]), 3, 10).tolist() == [3, 3]
    assert planned_seeds(np.array([0.01, 0.01]), np.array([np.nan, 0.02]), 3, 10)[0] == 3


def test_larger_effects_need_fewer_seeds() -> None:
    sds = np.full(4, 0.01)
    plan = planned_seeds(sds, np.array([0.2, 0.05, 0.03, 0.02]), 3, 10)
    assert plan.tolist() == sorted(plan.tolist())
    assert plan[0] == 3 and plan[-1] > 3


def test_seed_sequence_is_the_tables_seeds_then_a_fixed_list() -> None:
    assert seed_sequence((26, 77, 334, 517, 994), 3) == [26, 77, 334]
    assert seed_sequence((26, 77, 334, 517, 994), 7) == [26, 77, 334, 517, 994, 1000, 1001]
    assert seed_sequence((1000, 5), 4) == [1000, 5, 1001, 1002]
