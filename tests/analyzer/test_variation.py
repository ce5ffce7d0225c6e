"""Window-to-window variation measured on a subset's own windows: estimators and the prior floor."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analyzer.histogram import Histogram
from analyzer.variation import (
    PRIOR_WINDOWS,
    ScaleSensitivity,
    SubsetVariation,
    floored,
    scale_sensitivity,
    scaled_probabilities,
)
from tests.analyzer.windows import PODINFO, bucket_probabilities


def _windows(
    rng: np.random.Generator, count: int, *, log_sd: float, cv: float, n: int = 5000
) -> SubsetVariation:
    v = SubsetVariation()
    shape = 1 / cv**2 if cv > 0 else math.inf
    for _ in range(count):
        scale = math.exp(rng.normal(0, log_sd)) if log_sd > 0 else 1.0
        hist = Histogram.from_counts(PODINFO, rng.multinomial(n, bucket_probabilities(0.04 * scale)))
        rate = 0.01 * (rng.gamma(shape, 1 / shape) if cv > 0 else 1.0)
        v = v.update(hist, n, float(rng.poisson(n * rate)), (0.1,))
    return v


def test_error_cv_is_recovered_from_the_windows() -> None:
    v = _windows(np.random.default_rng(1), 60, log_sd=0.0, cv=0.5)
    assert math.sqrt(v.error_cv2(0.0)) == pytest.approx(0.5, abs=0.15)
    quiet = _windows(np.random.default_rng(2), 60, log_sd=0.0, cv=0.0)
    assert quiet.error_cv2(0.0) < 0.02
    assert quiet.error_cv2(0.25) == 0.25  # never below the prior floor
    assert quiet.error_cv2(0.25, strict=False) < 0.25  # the safety side may go below it


def test_latency_variation_is_recovered_in_theta_units() -> None:
    rng = np.random.default_rng(3)
    drifting, still = _windows(rng, 60, log_sd=0.1, cv=0.0), _windows(rng, 60, log_sd=0.0, cv=0.0)
    sens = scale_sensitivity(drifting.pooled).theta  # type: ignore[arg-type]
    assert math.sqrt(drifting.latency_variance(0.0)) == pytest.approx(sens * 0.1, rel=0.35)
    assert still.latency_variance(0.0) < (sens * 0.02) ** 2
    assert drifting.tail_cv2(0.1, 0.0) > still.tail_cv2(0.1, 0.0)


def test_floored_shrinks_towards_the_prior() -> None:
    assert floored(0.25, 0.0, 0) == 0.25
    assert floored(0.25, 4.0, 4) == pytest.approx((PRIOR_WINDOWS * 0.25 + 4.0) / (PRIOR_WINDOWS + 4))
    assert floored(0.25, 0.0, 10) == 0.25
    assert floored(0.25, 0.0, 10, strict=False) == pytest.approx(PRIOR_WINDOWS * 0.25 / (PRIOR_WINDOWS + 10))


def test_scale_sensitivity_and_scaled_probabilities() -> None:
    hist = Histogram.from_counts(PODINFO, bucket_probabilities(0.04, 0.5) * 1e9)
    wide = Histogram.from_counts(PODINFO, bucket_probabilities(0.04, 1.0) * 1e9)
    # dθ/dδ ≈ φ(0)/(σ√2) for a lognormal: larger for a narrow distribution.
    assert scale_sensitivity(hist).theta > scale_sensitivity(wide).theta > 0
    both = scale_sensitivity(hist, (0.1, 0.25))
    assert both.tail(0.1) > 0 and both.tail(0.25) > 0 and both.tail(0.5) == 0.0
    assert both.theta == scale_sensitivity(hist).theta
    assert scale_sensitivity(Histogram.empty(PODINFO), (0.1,)) == ScaleSensitivity(0.0, ((0.1, 0.0),))
    assert scaled_probabilities(hist, 1.0) == pytest.approx(hist.counts_array() / hist.total)
