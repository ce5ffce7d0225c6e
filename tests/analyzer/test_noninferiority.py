"""Fixed-sample non-inferiority tests: direction, calibration at the margin, tail bound."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analyzer import (
    Histogram,
    error_rate_noninferiority,
    latency_noninferiority,
    rate_noninferiority,
    tail_bound,
    tail_noninferiority,
)
from tests.analyzer.windows import PODINFO, bucket_probabilities


def test_rate_direction_and_limit() -> None:
    good = error_rate_noninferiority(3, 1000, 5, 1000, margin_ratio=1.5, margin_abs=0.01)
    assert good.limit == pytest.approx(1.5 * 0.005 + 0.01)
    assert good.noninferior and good.pvalue < 0.001 and good.statistic > 0
    bad = error_rate_noninferiority(30, 1000, 5, 1000)
    assert not bad.noninferior and bad.pvalue > 0.9


def test_rate_calibrated_at_the_margin() -> None:
    """At the null boundary the test rejects about alpha of the time, not much more."""
    rng = np.random.default_rng(0)
    pg, ratio, offset = 0.02, 1.5, 0.01
    pc = ratio * pg + offset
    rejections = sum(
        rate_noninferiority(
            rng.binomial(2000, pc), 2000, rng.binomial(4000, pg), 4000, margin_ratio=ratio, margin_abs=offset
        ).noninferior
        for _ in range(400)
    )
    assert rejections / 400 <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 400)


def test_rate_bad_input() -> None:
    with pytest.raises(ValueError, match=r"canary_events .* exceed canary_requests"):
        rate_noninferiority(5, 3, 0, 10)
    with pytest.raises(ValueError, match="baseline_requests must be a finite non-negative number"):
        rate_noninferiority(0, 3, 0, math.nan)
    with pytest.raises(ValueError, match="margin_ratio"):
        rate_noninferiority(0, 3, 0, 3, margin_ratio=0.5)
    assert rate_noninferiority(0, 0, 0, 10).pvalue == 1.0


def _hist(n: int, slowdown: float, rng: np.random.Generator) -> Histogram:
    return Histogram.from_counts(PODINFO, rng.multinomial(n, bucket_probabilities(0.04 * slowdown)))


def test_tail_bound_is_nearest_bucket_bound_to_ga_p99() -> None:
    ga = Histogram.from_cumulative(PODINFO, [0, 0, 10, 500, 900, 990, 1000, 1000, 1000, 1000, 1000, 1000])
    assert ga.quantile(0.99) == pytest.approx(0.25)
    assert tail_bound(ga) == 0.25
    with pytest.raises(ValueError, match="no observations"):
        tail_bound(Histogram.empty(PODINFO))


def test_tail_and_latency_noninferiority() -> None:
    rng = np.random.default_rng(1)
    ga, same, slow = _hist(5000, 1.0, rng), _hist(3000, 1.0, rng), _hist(3000, 1.5, rng)
    assert tail_noninferiority(same, ga, bound=0.1).noninferior
    t = tail_noninferiority(slow, ga, bound=0.1)
    assert not t.noninferior and t.canary_exceedance / 3000 > 2 * t.baseline_exceedance / 5000
    assert latency_noninferiority(same, ga).noninferior
    lat = latency_noninferiority(slow, ga)
    assert not lat.noninferior and lat.effect > 0.6 and lat.upper > lat.effect
    with pytest.raises(ValueError, match="bounds differ"):
        tail_noninferiority(Histogram.empty((1.0, math.inf)), ga)
    with pytest.raises(ValueError, match="margin"):
        latency_noninferiority(same, ga, margin=0.7)
