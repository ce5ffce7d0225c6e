"""Fixed-sample non-inferiority tests: error rate, latency tail and stochastic order, with margins.

Each answers one question about one sample of windows (pooled counts): "is the canary no worse than
GA by more than the margin?" The p-value is that of the null "the canary IS worse than the margin",
so a small p-value establishes non-inferiority. They are the per-look building blocks and the
human-readable summary; decisions across repeated looks use :mod:`analyzer.sequential`, which keeps
the false-rollback budget however often one looks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analyzer import special  # the standard library's, not scipy's: see analyzer/special.py
from analyzer.histogram import Histogram
from analyzer.mannwhitney import effect_variance, mann_whitney

__all__ = [
    "LatencyNonInferiorityResult",
    "RateNonInferiorityResult",
    "TailNonInferiorityResult",
    "error_rate_noninferiority",
    "latency_noninferiority",
    "rate_noninferiority",
    "tail_bound",
    "tail_noninferiority",
]


@dataclass(frozen=True)
class RateNonInferiorityResult:
    """Result of :func:`rate_noninferiority`.

    ``limit`` is the largest canary rate still acceptable given the baseline estimate
    (``margin_ratio * baseline_rate + margin_abs``); ``statistic`` the signed root of the likelihood
    ratio (positive when the canary is below the limit); ``pvalue`` that of the null "canary rate >=
    margin_ratio * baseline rate + margin_abs".
    """

    canary_rate: float
    baseline_rate: float
    limit: float
    statistic: float
    pvalue: float
    noninferior: bool


def _check_counts(events: float, n: float, name: str) -> None:
    for value, field in ((events, f"{name}_events"), (n, f"{name}_requests")):
        if math.isnan(value) or value < 0 or math.isinf(value):
            raise ValueError(f"{field} must be a finite non-negative number, got {value!r}")
    if events > n:
        raise ValueError(f"{name}_events ({events!r}) exceed {name}_requests ({n!r})")


def _binomial_loglik(events: float, n: float, p: float) -> float:
    return float(special.xlogy(events, p) + special.xlog1py(n - events, -p))


def rate_noninferiority(
    canary_events: float,
    canary_requests: float,
    baseline_events: float,
    baseline_requests: float,
    *,
    margin_ratio: float = 1.0,
    margin_abs: float = 0.0,
    alpha: float = 0.05,
) -> RateNonInferiorityResult:
    """Is the canary's event rate below ``margin_ratio * baseline + margin_abs``? (binomial LR test)

    Null: ``p_canary >= margin_ratio * p_baseline + margin_abs``. The statistic is the signed root
    of the likelihood ratio against the null maximised on its boundary (asymptotically normal);
    ``noninferior`` is ``pvalue < alpha``. With no canary requests the p-value is 1.
    """
    _check_counts(canary_events, canary_requests, "canary")
    _check_counts(baseline_events, baseline_requests, "baseline")
    if margin_ratio < 1 or margin_abs < 0:
        raise ValueError("margin_ratio must be >= 1 and margin_abs >= 0")
    pc = canary_events / canary_requests if canary_requests else math.nan
    pg = baseline_events / baseline_requests if baseline_requests else math.nan
    if canary_requests == 0 or baseline_requests == 0:
        return RateNonInferiorityResult(pc, pg, math.nan, math.nan, 1.0, False)
    limit = margin_ratio * pg + margin_abs
    if limit >= 1:
        return RateNonInferiorityResult(pc, pg, limit, math.inf, 0.0, True)

    def restricted(p_base: float) -> float:
        p_can = margin_ratio * p_base + margin_abs
        return -(
            _binomial_loglik(canary_events, canary_requests, p_can)
            + _binomial_loglik(baseline_events, baseline_requests, p_base)
        )

    # Imported here: scipy.optimize costs more start-up than the rest of the judge's imports together,
    # and the judge itself never calls this (``analyzer judge`` answers its first line sooner).
    from scipy import optimize

    upper = (1 - margin_abs) / margin_ratio
    best = optimize.minimize_scalar(
        restricted, bounds=(0.0, upper), method="bounded", options={"xatol": 1e-12}
    )
    candidates = [float(best.x), 0.0, upper]
    restricted_max = -min(restricted(p) for p in candidates)
    full_max = _binomial_loglik(canary_events, canary_requests, pc) + _binomial_loglik(
        baseline_events, baseline_requests, pg
    )
    root = math.sqrt(max(2 * (full_max - restricted_max), 0.0))
    statistic = root if pc < limit else -root
    pvalue = float(special.ndtr(-statistic))
    return RateNonInferiorityResult(pc, pg, limit, statistic, pvalue, pvalue < alpha)


def error_rate_noninferiority(
    canary_errors: float,
    canary_requests: float,
    baseline_errors: float,
    baseline_requests: float,
    *,
    margin_ratio: float = 1.5,
    margin_abs: float = 0.01,
    alpha: float = 0.05,
) -> RateNonInferiorityResult:
    """Error-rate non-inferiority: canary error rate below ``margin_ratio`` × GA's + ``margin_abs``."""
    return rate_noninferiority(
        canary_errors,
        canary_requests,
        baseline_errors,
        baseline_requests,
        margin_ratio=margin_ratio,
        margin_abs=margin_abs,
        alpha=alpha,
    )


def tail_bound(baseline: Histogram, quantile: float = 0.99) -> float:
    """The finite bucket bound nearest to the baseline's ``quantile`` (Prometheus interpolation).

    Raises ``ValueError`` when the baseline has no observations (its quantile is NaN).
    """
    value = baseline.quantile(quantile)
    if math.isnan(value):
        raise ValueError("baseline histogram has no observations: no tail bound")
    return baseline.nearest_bound(value)


@dataclass(frozen=True)
class TailNonInferiorityResult:
    """Result of :func:`tail_noninferiority`: exceedances of ``bound`` and the rate test on them."""

    bound: float
    baseline_quantile: float
    canary_exceedance: float
    baseline_exceedance: float
    test: RateNonInferiorityResult

    @property
    def noninferior(self) -> bool:
        """Whether the canary's share above ``bound`` is established below the margin."""
        return self.test.noninferior

    @property
    def pvalue(self) -> float:
        """p-value of the null "the canary exceeds the bound more often than the margin allows"."""
        return self.test.pvalue


def tail_noninferiority(
    canary: Histogram,
    baseline: Histogram,
    *,
    quantile: float = 0.99,
    bound: float | None = None,
    margin_ratio: float = 1.5,
    margin_abs: float = 0.01,
    alpha: float = 0.05,
) -> TailNonInferiorityResult:
    """Latency-tail non-inferiority at a bucket bound (default: the one nearest GA's p99).

    Compares the share of requests above ``bound`` — counts at a bucket bound, no interpolation —
    with :func:`rate_noninferiority`.
    """
    if canary.bounds != baseline.bounds:
        raise ValueError(f"canary and baseline bounds differ: {canary.bounds} and {baseline.bounds}")
    chosen = tail_bound(baseline, quantile) if bound is None else float(bound)
    ce, be = canary.exceedance(chosen), baseline.exceedance(chosen)
    test = rate_noninferiority(
        ce, canary.total, be, baseline.total, margin_ratio=margin_ratio, margin_abs=margin_abs, alpha=alpha
    )
    return TailNonInferiorityResult(chosen, baseline.quantile(quantile), ce, be, test)


@dataclass(frozen=True)
class LatencyNonInferiorityResult:
    """Result of :func:`latency_noninferiority`.

    ``effect`` θ = P(canary > GA) + ½ P(tie) from bucket counts, ``upper`` its one-sided upper
    confidence bound at level ``1 - alpha`` (DeLong standard error), ``pvalue`` that of the null
    θ >= 0.5 + margin.
    """

    effect: float
    standard_error: float
    upper: float
    margin: float
    pvalue: float
    noninferior: bool


def latency_noninferiority(
    canary: Histogram, baseline: Histogram, *, margin: float = 0.06, alpha: float = 0.05
) -> LatencyNonInferiorityResult:
    """Stochastic-order non-inferiority: is θ = P(canary slower) + ½ P(tie) below 0.5 + ``margin``?"""
    if not 0 <= margin < 0.5:
        raise ValueError(f"margin must be in [0, 0.5), got {margin!r}")
    mw = mann_whitney(canary, baseline)
    var = effect_variance(canary, baseline)
    if math.isnan(mw.effect) or math.isnan(var):
        return LatencyNonInferiorityResult(mw.effect, math.nan, math.nan, margin, 1.0, False)
    se = math.sqrt(var)
    upper = mw.effect + float(special.ndtri(1 - alpha)) * se
    with np.errstate(divide="ignore"):
        z = float(np.float64(0.5 + margin - mw.effect) / np.float64(se))
    pvalue = float(special.ndtr(-z))
    return LatencyNonInferiorityResult(mw.effect, se, upper, margin, pvalue, pvalue < alpha)
