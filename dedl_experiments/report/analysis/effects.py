"""How one test of a claimed difference is worded: by what its 95 % confidence interval
excludes. The interval is of the difference in the claimed direction (B - A, or A - B for a
claimed decrease), relative to A for relative claims.

- A claim of direction only: "supported" where the CI lies above zero, "contradicted" where it
  lies below zero, "inconclusive" where it includes zero.
- A claim of a size ("by about 3 points"): "contradicted" where the CI lies below zero;
  "smaller than claimed" where it lies below the claimed size, "larger than claimed" where it lies
  above it; "consistent with the claim" where it includes the claimed size and excludes zero;
  "inconclusive" where it includes both. A CI that excludes the claimed size never confirms it.
- No test (too few runs, identical results, zero variance, an invalid value): "inconclusive",
  with the reason.
"""

from __future__ import annotations

from dedl_experiments.report.analysis.stats import TestResult

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_EVALUATED = "supported", "contradicted", "inconclusive", "not evaluated"
SMALLER, LARGER, CONSISTENT = "smaller than claimed", "larger than claimed", "consistent with the claim"
# Verdicts under which the claim holds (a claimed size: within the CI).
HOLDS = (SUPPORTED, CONSISTENT)

_UNTESTED = {
    "too_few": "not enough runs",
    "identical": "identical results (no difference), test undefined",
    "constant": "the same difference in every pair: zero variance, test undefined",
    "invalid": "an invalid value (NaN or infinite) among the runs: not tested",
}


def judge(size: float | None, sign: int, result: TestResult, scale: float = 1.0) -> tuple[str, str]:
    """Verdict and reason for one test of a difference claimed in direction `sign` (+1: B > A),
    of about `size` (None: direction only), in units of the metric divided by `scale`."""
    if not result.tested:
        return INCONCLUSIVE, _UNTESTED[result.kind]
    low, high = sorted(sign * bound / scale for bound in result.ci)
    if high < 0:
        return CONTRADICTED, "the 95 % CI lies in the other direction"
    if size is None:
        if low > 0:
            return SUPPORTED, "the 95 % CI lies in the claimed direction"
        return INCONCLUSIVE, "the 95 % CI includes zero"
    if high < size:
        return SMALLER, "the 95 % CI lies below the claimed size" + ("" if low > 0 else " and includes zero")
    if low > size:
        return LARGER, "the 95 % CI lies above the claimed size"
    if low > 0:
        return CONSISTENT, "the 95 % CI includes the claimed size and excludes zero"
    return INCONCLUSIVE, "the 95 % CI includes both the claimed size and zero"
