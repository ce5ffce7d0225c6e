"""Window-to-window variation of each subset, measured on its own past windows.

Why this exists: in production each subset's latency and error rate move from window to window (GC,
noisy neighbours, cache state, a client bursting errors), independently for the GA pods and the
canary pods. Evidence that treats every request as an independent draw reads that movement as a
difference between canary and GA. The window is the unit of variation, so the judge widens each
window's evidence by the variation that windows show (see :mod:`analyzer.sequential`).

What is measured, per subset, against the subset's OWN pooled past (never against the other side,
so a canary that is constantly worse does not widen its own allowance; a constant offset does not
vary from window to window):

* latency: τ² = Var(θ̂_t) − sampling variance, with θ̂_t the Mann–Whitney effect of window t
  against the subset's earlier windows pooled, in θ units (method of moments);
* counts (errors, requests above the tail bound): c² = the squared coefficient of variation of the
  rate, Σ((k_t − e_t)² − e_t) / Σ e_t² with e_t the count the pooled past rate predicts (the
  negative-binomial moment estimator, Var k = μ + c²μ²).

Each estimate is shrunk towards a prior floor from the policy (worth ``PRIOR_WINDOWS`` windows) and
never taken below it: before there are windows the floor is all there is, and a noisy estimate can
only widen the evidence (the conservative direction). The latency floor is given as a log-sd of the
latency scale and turned into θ units with GA's own histogram (:func:`scale_sensitivity`).

This module must never look at the window being judged when it estimates that window's dispersion
(the estimate is predictable: built from earlier windows only), and it never decides anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analyzer.histogram import Histogram
from analyzer.mannwhitney import mann_whitney, null_effect_variance

__all__ = [
    "PRIOR_WINDOWS",
    "ScaleSensitivity",
    "SubsetVariation",
    "floored",
    "scale_sensitivity",
    "scaled_probabilities",
]

#: How many windows' worth of weight the policy's prior floor has against the measured variation.
PRIOR_WINDOWS = 4.0
#: Step (log units) of the numerical derivative in :func:`scale_sensitivity`.
_H = 0.05


def scaled_probabilities(histogram: Histogram, factor: float) -> npt.NDArray[np.float64]:
    """Bucket probabilities when every latency of ``histogram`` is multiplied by ``factor``.

    Values are taken as uniform inside a bucket (lower edge 0 for the first), as Prometheus'
    interpolation assumes; the +Inf bucket stays above the largest finite bound.
    """
    if histogram.total <= 0:
        raise ValueError("the GA histogram has no observations")
    if factor <= 0:
        raise ValueError(f"latency factor must be > 0, got {factor!r}")
    finite = np.asarray(histogram.bounds[:-1], dtype=np.float64)
    cum = np.asarray(histogram.cumulative[:-1], dtype=np.float64) / histogram.total
    edges = np.concatenate([[min(0.0, finite[0])], finite]) if finite.size else np.asarray([0.0])
    cdf_points = np.concatenate([[0.0], cum])
    cdf = np.interp(finite / factor, edges, cdf_points) if finite.size else np.asarray([])
    cdf = np.where(finite / factor > edges[-1], cdf_points[-1], cdf)
    return np.asarray(np.diff(np.concatenate([[0.0], cdf, [1.0]])), dtype=np.float64)


@dataclass(frozen=True)
class ScaleSensitivity:
    """How the judge's statistics move when a subset's latency scale moves by ``exp(δ)``.

    ``theta``: dθ/dδ, θ the binned Mann–Whitney effect against the unscaled histogram;
    ``tail``: d log P(X > bound)/dδ for the tail bound (0 when there is none or no mass above it).
    """

    theta: float
    tail: float


def scale_sensitivity(histogram: Histogram, tail_bound: float | None) -> ScaleSensitivity:
    """Central differences at δ = ±0.05 of the binned statistics, latencies uniform inside buckets."""
    if histogram.total <= 0 or len(histogram.bounds) < 2:
        return ScaleSensitivity(0.0, 0.0)
    p = histogram.counts_array() / histogram.total
    up = scaled_probabilities(histogram, math.exp(_H))
    down = scaled_probabilities(histogram, math.exp(-_H))
    theta = (mann_whitney(up, p).effect - mann_whitney(down, p).effect) / (2 * _H)
    tail = 0.0
    if tail_bound is not None and tail_bound in histogram.bounds:
        i = histogram.bounds.index(tail_bound)
        above_up, above_down = float(up[i + 1 :].sum()), float(down[i + 1 :].sum())
        if above_up > 0 and above_down > 0:
            tail = (math.log(above_up) - math.log(above_down)) / (2 * _H)
    return ScaleSensitivity(max(theta, 0.0), max(tail, 0.0))


def floored(floor: float, excess: float, windows: int, strict: bool = True) -> float:
    """The measured variation shrunk towards ``floor`` (worth PRIOR_WINDOWS windows) and, when
    ``strict``, never below it (``strict=False``: the shrunk estimate itself, which falls below the
    prior on traffic that varies less)."""
    if windows <= 0:
        return floor
    shrunk = max((PRIOR_WINDOWS * floor + excess) / (PRIOR_WINDOWS + windows), 0.0)
    return max(floor, shrunk) if strict else shrunk


@dataclass(frozen=True)
class _Moments:
    """Sums over windows of a count k_t with exposure n_t: Σk, Σn, Σk², Σkn, Σn², windows.

    The squared coefficient of variation of the rate is the negative-binomial moment estimator
    c² = (Σ(k − n r̂)² − Σ n r̂ (1 − Σn²/(Σn)²)) / Σ(n r̂)², with r̂ = Σk/Σn pooled over the windows.
    """

    events: float = 0.0
    exposure: float = 0.0
    events2: float = 0.0
    cross: float = 0.0
    exposure2: float = 0.0
    windows: int = 0

    def update(self, events: float, exposure: float) -> _Moments:
        if exposure <= 0:
            return self
        return _Moments(
            self.events + events,
            self.exposure + exposure,
            self.events2 + events * events,
            self.cross + events * exposure,
            self.exposure2 + exposure * exposure,
            self.windows + 1,
        )

    def cv2(self, floor: float, strict: bool = True) -> float:
        """Squared coefficient of variation: the estimate floored and shrunk (see :func:`floored`)."""
        if self.windows < 2 or self.events <= 0:
            return floor
        r = self.events / self.exposure
        squares = self.events2 - 2 * r * self.cross + r * r * self.exposure2
        poisson = self.events * (1.0 - self.exposure2 / self.exposure**2)
        norm = r * r * self.exposure2 * (1.0 - self.exposure2 / self.exposure**2)
        if norm <= 0:
            return floor
        estimate = max((squares - poisson) / norm, 0.0)
        # One degree of freedom is spent on r̂: the estimate rests on windows - 1 of them.
        return floored(floor, estimate * (self.windows - 1), self.windows - 1, strict)


@dataclass(frozen=True)
class SubsetVariation:
    """Running measurements of one subset's windows against its own pooled past (immutable).

    :meth:`update` takes a window's histogram, requests and errors (and the tail bounds fixed so
    far) and returns the measurements including it; the ``*_variance`` / ``*_cv2`` accessors answer
    for the NEXT window.
    """

    pooled: Histogram | None = None
    requests: float = 0.0
    errors: float = 0.0
    latency_excess: float = 0.0
    latency_windows: int = 0
    error_moments: _Moments = _Moments()
    #: Per tail bound: the moments of the requests above it, from the window the bound was fixed.
    tails: tuple[tuple[float, _Moments], ...] = ()

    def update(
        self, histogram: Histogram, requests: float, errors: float, tail_bounds: tuple[float, ...] = ()
    ) -> SubsetVariation:
        """The measurements after one more window of this subset."""
        excess, windows = self.latency_excess, self.latency_windows
        if histogram.total > 0 and self.pooled is not None and self.pooled.total > 0:
            mw = mann_whitney(histogram, self.pooled)
            sampling = null_effect_variance(histogram, self.pooled)
            if math.isfinite(mw.effect) and math.isfinite(sampling):
                excess, windows = excess + (mw.effect - 0.5) ** 2 - sampling, windows + 1
        known = dict(self.tails)
        tails = tuple(
            (b, known.get(b, _Moments()).update(histogram.exceedance(b), histogram.total))
            for b in tail_bounds
        )
        return SubsetVariation(
            pooled=histogram if self.pooled is None else self.pooled + histogram,
            requests=self.requests + requests,
            errors=self.errors + errors,
            latency_excess=excess,
            latency_windows=windows,
            error_moments=self.error_moments.update(errors, requests),
            tails=tails,
        )

    def latency_variance(self, floor: float, strict: bool = True) -> float:
        """τ² of this subset in θ units for the next window: measured, shrunk to ``floor`` (and,
        when ``strict``, floored by it)."""
        return floored(floor, self.latency_excess, self.latency_windows, strict)

    def error_cv2(self, floor: float, strict: bool = True) -> float:
        """c² of this subset's error rate for the next window."""
        return self.error_moments.cv2(floor, strict)

    def tail_cv2(self, bound: float, floor: float, strict: bool = True) -> float:
        """c² of this subset's rate of requests above ``bound`` for the next window."""
        return dict(self.tails).get(bound, _Moments()).cv2(floor, strict)

    def tail_rate(self, bound: float) -> tuple[float, float]:
        """(requests above ``bound``, requests) since the bound was fixed."""
        moments = dict(self.tails).get(bound, _Moments())
        return moments.events, moments.exposure
