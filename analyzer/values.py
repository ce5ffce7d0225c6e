"""Anytime-valid evidence on a per-window value (a gauge, a ratio): canary against GA, window by window.

Why this exists: custom metrics such as queue lag, cache hit ratio or CPU per request give one
number per subset and window, not counts or a histogram. Their unit of variation is the window, so
the evidence is built on per-window differences of the two subsets, on the log scale (a value
that doubles is "2×" whatever its unit):

    d_t = s · (log(canary_t + floor) − log(GA_t + floor)),   s = +1 when higher is worse, −1 else.

:class:`ValueEProcess` tests the mean of d_t against a null ``null`` (``log(1 + margin)``):

* ``direction="harm"``: evidence that E[d_t] > null (the canary is worse than GA by more than the
  margin); rolls back at 1/α.
* ``direction="safety"``: evidence that E[d_t] < null (the canary is within the margin); promotes
  at 1/promote_alpha.

How much windows vary is not known in advance and differs per metric, so the e-process must not
depend on it: it is the **sequential t-test** (Lai 1976, "On confidence sequences", Ann. Statist.;
Pérez-Ortiz, Lardy, de Heide & Grünwald 2024, "E-statistics, group invariance and anytime-valid
testing", Ann. Statist.): with x_t = ±(d_t − null), the likelihood ratio of the scale-invariant
statistic (x_1, ..., x_n)/|x| for a standardized drift δ = μ/σ against δ = 0, mixed over a
half-normal prior on δ > 0 (scale ``prior_scale``). With the right-Haar prior dσ/σ that ratio is

    E_n(δ) = ∫ u^(n−1) exp(−(A u² − 2δ B u + n δ²)/2) du / ∫ u^(n−1) exp(−A u²/2) du,
    A = Σ x_t², B = Σ x_t,

computed by quadrature (one dimension per δ, on a grid of δ). Guarantee: if the windows' d_t are
independent and normal with any common variance, then under E[d_t] = null,
P(sup_n E_n ≥ 1/α) ≤ α (a test martingale in the invariant filtration, Ville's inequality). For
E[d_t] below the null the one-sided mixture's expectation at each n is smaller still (the
noncentral t has a monotone likelihood ratio); the simulation checks the false-alarm rate at the
boundary and below it. A first window gives at most a factor 2 (its sign), so
evidence needs a few windows; a 1.8× regression whose windows vary by 5 % crosses 100 in 6.
The simulation in ``tests/analyzer/test_values.py`` checks the false-alarm rate under an identical
canary at two levels of window-to-window variation, and the power.

This module is pure: no I/O, frozen results, and it never decides anything itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.special import logsumexp

__all__ = ["ValueEProcess", "log_difference"]

Direction = Literal["harm", "safety"]


def log_difference(canary: float, baseline: float, *, floor: float, higher_is_worse: bool) -> float:
    """d = ±(log(canary + floor) − log(baseline + floor)): positive when the canary is worse.

    ``ValueError`` for negative, NaN or infinite values, or a zero without a ``floor``."""
    for name, value in (("canary", canary), ("GA", baseline)):
        if not math.isfinite(value):
            raise ValueError(f"{name} value is {value!r}")
        if value + floor <= 0:
            raise ValueError(
                f"{name} value is {value!r}: ratios need positive values (set floor for values that can be 0)"
            )
    d = math.log(canary + floor) - math.log(baseline + floor)
    return d if higher_is_worse else -d


_DELTAS = np.linspace(0.0, 8.0, 81)[1:]  # standardized drifts of the prior grid (δ > 0)
_U_POINTS = 201


@dataclass(frozen=True)
class ValueEProcess:
    """Sequential one-sided t-test e-process on per-window differences ``d`` (see the module docs).

    ``null``: the boundary of the null for E[d]; ``prior_scale``: the half-normal prior's scale of
    the standardized drift. ``windows``, ``sum_x``, ``sum_x2``: n, B and A of the module docs.
    """

    direction: Direction
    null: float
    prior_scale: float = 1.0
    windows: int = 0
    sum_x: float = 0.0
    sum_x2: float = 0.0

    def __post_init__(self) -> None:
        if self.direction not in ("harm", "safety"):
            raise ValueError(f"direction must be harm or safety, got {self.direction!r}")
        if not (self.prior_scale > 0 and math.isfinite(self.null)):
            raise ValueError("prior_scale must be > 0 and null finite")

    def update(self, d: float) -> ValueEProcess:
        """The e-process after one more window with difference ``d`` (pure)."""
        if not math.isfinite(d):
            raise ValueError(f"difference must be finite, got {d!r}")
        x = (d - self.null) if self.direction == "harm" else (self.null - d)
        return replace(self, windows=self.windows + 1, sum_x=self.sum_x + x, sum_x2=self.sum_x2 + x * x)

    @cached_property
    def log_evalue(self) -> float:
        """log E (0 before any window, and while every x is 0); computed once per state."""
        n, a, b = self.windows, self.sum_x2, self.sum_x
        if n == 0 or a <= 0:
            return 0.0
        # Scale-free: only b/sqrt(a) matters; set a = 1.
        b = b / math.sqrt(a)
        log_num = _log_integrals(n, b, _DELTAS)
        log_den = _log_integrals(n, b, np.zeros(1))[0]
        prior = np.exp(-0.5 * (_DELTAS / self.prior_scale) ** 2)
        log_w = np.log(prior / prior.sum())
        return float(logsumexp(log_num - log_den + log_w))

    @property
    def evalue(self) -> float:
        """E (``inf`` when it overflows)."""
        return math.exp(min(self.log_evalue, 700.0))


def _log_integrals(n: int, b: float, deltas: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """log ∫_0^∞ u^(n−1) exp(−(u² − 2δ b u + n δ²)/2) du (A = 1) for each δ, by the trapezoid rule
    on a grid around each integrand's mode (smooth and unimodal); vectorised over δ."""
    g = deltas * b
    mode = (g + np.sqrt(g * g + 4.0 * (n - 1))) / 2.0
    safe = np.where(mode > 0, mode, 1.0)
    width = np.where(mode > 0, 1.0 / np.sqrt(1.0 + (n - 1) / safe**2), 1.0)
    lo = np.maximum(mode - 12.0 * width, 0.0)
    hi = mode + 12.0 * width
    grid = np.linspace(0.0, 1.0, _U_POINTS)
    u = lo[:, None] + (hi - lo)[:, None] * grid[None, :]
    log_f = -(u * u - 2.0 * g[:, None] * u + n * (deltas**2)[:, None]) / 2.0
    if n > 1:
        with np.errstate(divide="ignore"):
            log_f = log_f + (n - 1) * np.log(u)
    step = (hi - lo) / (_U_POINTS - 1)
    weights = np.ones(_U_POINTS)
    weights[0] = weights[-1] = 0.5
    return np.asarray(logsumexp(log_f, b=weights[None, :], axis=1) + np.log(step), dtype=np.float64)
