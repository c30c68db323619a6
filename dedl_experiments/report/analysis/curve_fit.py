"""Learning-curve forms fitted with scipy.optimize.curve_fit, on x = training images / the
baseline's full-data count (so x = 1 is the full data and the parameters read in the metric's
units), and the size at which a fitted curve reaches a score.

- "power law", metric = a - b x^-c (c > 0): the saturating power law of learning curves
  (Hestness et al. 2017, Rosenfeld et al. 2020): a is the score the variant levels off at, a - b its
  score at full data. Three parameters need at least 3 sizes.
- "log-linear", metric = a + b log2(x): the same curve far from saturation (each doubling of the
  data adds b), the one form 2 sizes determine; a is the score at full data.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit

POWER_LAW, LOG_LINEAR = "power law", "log-linear"


def _power_law(x, a, b, c):
    return a - b * np.power(x, -c)


def _log_linear(x, a, b):
    return a + b * np.log2(x)


@dataclass(frozen=True)
class Form:
    name: str
    function: Callable
    parameters: tuple[str, ...]
    formula: str  # with N the baseline's full-data count of images


FORMS = {
    POWER_LAW: Form(POWER_LAW, _power_law, ("a", "b", "c"), "a - b (n/N)^-c"),
    LOG_LINEAR: Form(LOG_LINEAR, _log_linear, ("a", "b"), "a + b log2(n/N)"),
}


def form_for(sizes: int) -> Form | None:
    """The form fitted to curves of this many sizes: the power law from 3, log-linear with 2."""
    return FORMS[POWER_LAW] if sizes >= 3 else FORMS[LOG_LINEAR] if sizes == 2 else None


def fit(form: Form, x: Sequence[float], y: Sequence[float], start: Sequence[float] | None = None) -> tuple[float, ...] | None:
    """Least-squares parameters of `form` through the points (Levenberg-Marquardt), None where
    the fit fails. The power law's exponent is fitted as log c, which keeps it positive without
    the slower bounded solver (a bootstrap fits each curve a thousand times)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(np.unique(x)) < len(form.parameters):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an exact fit has no covariance (unused); overflow in a trial step
            if form.name == LOG_LINEAR:
                params, _ = curve_fit(form.function, x, y, p0=start or (y[np.argmax(x)], 0.0))
            else:
                a, b, c = start or _power_start(x, y)
                (a, b, log_c), _ = curve_fit(_power_law_log_exponent, x, y, p0=(a, b, np.log(c)))
                params = np.array([a, b, np.exp(log_c)])
    except (RuntimeError, ValueError, OverflowError):
        return None
    return tuple(float(p) for p in params) if np.all(np.isfinite(params)) else None


def _power_law_log_exponent(x, a, b, log_c):
    return _power_law(x, a, b, np.exp(log_c))


def _power_start(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """a, b, c of the curve with c = 0.5 through the smallest and the largest size's points."""
    small, large = np.argmin(x), np.argmax(x)
    spread = x[small] ** -0.5 - x[large] ** -0.5
    b = (y[large] - y[small]) / spread if spread else 0.0
    return float(y[large] + b * x[large] ** -0.5), float(b), 0.5


def value_at(form: Form, params: Sequence[float], x: float) -> float:
    return float(form.function(np.asarray([x], dtype=float), *params)[0])


def improves(form: Form, params: Sequence[float]) -> int:
    """+1 where the curve rises with more images, -1 where it falls, 0 where it is flat (the
    sign of b in both forms)."""
    return int(np.sign(params[1]))


def size_reaching(form: Form, params: Sequence[float], target: float, better: int = 1) -> float:
    """The smallest x from which on the curve is at least as good as `target` (`better`: +1 where
    higher scores are better, -1 where lower are): where it crosses the target moving the better
    way; 0 where it is better at every size, math.inf where it never gets there (a power law
    levelling off short of it, a curve moving the other way)."""
    a, b = params[0], params[1]
    if form.name == LOG_LINEAR:
        if improves(form, params) != better:
            return 0.0 if b == 0 and better * (a - target) >= 0 else math.inf
        exponent = (target - a) / b
        return math.inf if exponent > 1000 else 2.0 ** exponent
    beyond = better * (a - target) > 0  # it levels off better than the target
    if improves(form, params) != better:  # it worsens (or stays) with more images, towards a
        return 0.0 if beyond else math.inf
    if not beyond:
        return math.inf
    log_x = math.log(b / (a - target)) / params[2]
    return math.inf if log_x > 700 else math.exp(log_x)  # beyond a float: never, in practice
