"""GA's windows before the rollout: the tail bounds and the window-to-window variation, measured.

Why this exists: GA has been serving all the traffic for hours before a rollout starts, and
Prometheus still holds those windows. Without them the judge starts blind: the tail bounds can only
be fixed from GA's first window of the rollout (so the tail tests count nothing in it), and the
window-to-window variation is a policy floor (``window_latency_log_sd``, ``window_error_cv``),
an assumption about the traffic that is too wide for a steady service (slow promotion, slow
rollback) and too narrow for a jumpy one (false rollbacks in the first windows). With GA's history
the judge measures both before the first canary request:

* the tail bounds are fixed from GA's pooled history (predictable: nothing of the rollout is used);
* the variation floor of each test is an **upper confidence bound** of GA's own variation over the
  history windows, which replaces the policy's prior. Under the judge's drift assumption (canary and
  GA pods drift independently and alike, docs/analyzer.md) GA's variation is the canary's too; the
  upper bound (level ``history_confidence``) covers the estimation error of a finite history.

The bound: per window t a residual r_t with sampling variance v_t and a variation term w_t, so that
E[r_t²] = v_t + c²·w_t (counts: r_t = k_t − n_t·r̂, v_t = n_t·r̂, w_t = (n_t·r̂)², c² the squared
coefficient of variation of the rate, the negative-binomial moment model of McCullagh & Nelder 1989,
ch. 9; latency: r_t = θ̂_t − ½, θ̂_t the Mann–Whitney effect of window t against the other history
windows pooled, v_t its permutation variance, w_t = 1, c² = τ²). Treating X² = Σ r_t²/v_t as
φ·χ²_df with the overdispersion φ = 1 + c²·Σw/Σv (the quasi-likelihood scale, McCullagh & Nelder
1989, §9.2.4), the upper bound is c²_U = (X²/χ²_df(1 − q) − 1)·Σv/Σw, the chi-square quantile from
the Wilson–Hilferty approximation (Wilson & Hilferty 1931; within 0.3 % of the exact quantile for
df ≥ 9 at the levels allowed, 0.5 to 0.95; a history needs ``history_min_windows`` ≥ 10 windows).

This module never sees a canary and never decides anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING

from analyzer.histogram import Histogram
from analyzer.mannwhitney import mann_whitney, null_effect_variance
from analyzer.noninferiority import tail_bound

if TYPE_CHECKING:
    from analyzer.judge import SubsetWindow
    from analyzer.policy import Policy

__all__ = ["HistoryPrior", "chi2_quantile", "history_prior", "overdispersion_bound"]


def chi2_quantile(df: float, p: float) -> float:
    """The ``p`` quantile of χ²_df, Wilson & Hilferty's (1931) cube-root normal approximation."""
    if df <= 0 or not 0 < p < 1:
        raise ValueError(f"chi2_quantile needs df > 0 and 0 < p < 1, got {df!r}, {p!r}")
    z = NormalDist().inv_cdf(p)
    a = 2.0 / (9.0 * df)
    return df * max(1.0 - a + z * math.sqrt(a), 0.0) ** 3


def overdispersion_bound(
    squares: float, sampling: float, variation: float, df: float, confidence: float
) -> float:
    """Upper ``confidence`` bound of c² in E[r²] = v + c²·w from Σr²/v (``squares``), Σv
    (``sampling``), Σw (``variation``) over ``df`` degrees of freedom; 0 when nothing varies."""
    if df < 1 or sampling <= 0 or variation <= 0:
        return math.inf
    phi_upper = squares / max(chi2_quantile(df, 1.0 - confidence), 1e-12)
    return max(phi_upper - 1.0, 0.0) * sampling / variation


@dataclass(frozen=True)
class HistoryPrior:
    """What GA's history says before the rollout: its windows, pooled histogram and rates, the
    fixed tail bounds and, per test, the upper bound of GA's window-to-window variation (τ² of θ;
    c² of the error rate; c² of the rate above each tail bound)."""

    windows: int
    pooled: Histogram
    requests: float
    errors: float
    tail_bound: float | None
    harm_tail_bound: float | None
    latency_tau2: float
    error_cv2: float
    tail_cv2: tuple[tuple[float, float], ...]

    def tail(self, bound: float) -> float:
        """c² bound of the rate above ``bound`` (inf for a bound the history did not fix)."""
        return dict(self.tail_cv2).get(bound, math.inf)


def _count_bound(events: Sequence[float], exposure: Sequence[float], confidence: float) -> float:
    total_k, total_n = sum(events), sum(n for n in exposure)
    if total_k <= 0 or total_n <= 0:
        # No events at all: the history cannot bound their variation; nothing of it is used.
        return math.inf
    rate = total_k / total_n
    squares = sampling = variation = 0.0
    used = 0
    for k, n in zip(events, exposure, strict=True):
        mu = n * rate
        if mu <= 0:
            continue
        squares += (k - mu) ** 2 / mu
        sampling += mu
        variation += mu * mu
        used += 1
    return overdispersion_bound(squares, sampling, variation, used - 1, confidence)


def _latency_bound(histograms: Sequence[Histogram], pooled: Histogram, confidence: float) -> float:
    squares = sampling = 0.0
    used = 0
    total = pooled.counts_array()
    for h in histograms:
        counts = h.counts_array()
        rest = total - counts
        if h.total <= 0 or rest.sum() <= 0:
            continue
        v = null_effect_variance(counts, rest)
        effect = mann_whitney(counts, rest).effect
        if not (math.isfinite(v) and v > 0 and math.isfinite(effect)):
            continue
        squares += (effect - 0.5) ** 2 / v
        sampling += v
        used += 1
    # Every window is compared with the others pooled: one degree of freedom goes to the pooled shape.
    return overdispersion_bound(squares, sampling, float(used), used - 1, confidence)


def history_prior(history: Sequence[SubsetWindow], policy: Policy) -> HistoryPrior | None:
    """GA's history summarised for the judge, or None when it has fewer than
    ``policy.history_min_windows`` windows with requests (then the policy's floors are the prior)."""
    windows = [w for w in history if w.requests > 0 and w.histogram.total > 0]
    if len(windows) < policy.history_min_windows:
        return None
    bounds = {w.histogram.bounds for w in windows}
    if len(bounds) != 1:
        raise ValueError("history: the GA windows' histogram bounds differ from each other")
    pooled = windows[0].histogram
    for w in windows[1:]:
        pooled = pooled + w.histogram
    fixed = policy.tail_bound
    enough = pooled.total >= policy.tail_min_baseline
    tail = fixed if fixed is not None else (tail_bound(pooled, policy.tail_quantile) if enough else None)
    harm_tail = (
        fixed if fixed is not None else (tail_bound(pooled, policy.harm_tail_quantile) if enough else None)
    )
    q = policy.history_confidence
    requests = [float(w.requests) for w in windows]
    tails = tuple(
        (
            b,
            _count_bound(
                [w.histogram.exceedance(b) for w in windows], [w.histogram.total for w in windows], q
            ),
        )
        for b in sorted({b for b in (tail, harm_tail) if b is not None})
    )
    return HistoryPrior(
        windows=len(windows),
        pooled=pooled,
        requests=sum(requests),
        errors=sum(float(w.errors) for w in windows),
        tail_bound=tail,
        harm_tail_bound=harm_tail,
        latency_tau2=_latency_bound([w.histogram for w in windows], pooled, q),
        error_cv2=_count_bound([float(w.errors) for w in windows], requests, q),
        tail_cv2=tails,
    )
