"""Synthetic analysis windows for judge tests: multinomial bucket counts from a lognormal latency."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from analyzer.histogram import Histogram
from analyzer.judge import SubsetWindow, Window

PODINFO = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf)


def bucket_probabilities(median: float = 0.04, sigma: float = 0.5) -> np.ndarray:
    cdf = stats.lognorm.cdf(np.asarray(PODINFO[:-1]), s=sigma, scale=median)
    return np.diff(np.concatenate([[0.0], cdf, [1.0]]))


def make_window(
    rng: np.random.Generator,
    weight: float,
    *,
    slowdown: float = 1.0,
    canary_error_rate: float = 0.005,
    ga_error_rate: float = 0.005,
    requests: int = 1200,
) -> Window:
    n = int(rng.poisson(requests))
    nc = int(rng.binomial(n, weight / 100))
    ng = n - nc
    can = Histogram.from_counts(PODINFO, rng.multinomial(nc, bucket_probabilities(0.04 * slowdown)))
    ga = Histogram.from_counts(PODINFO, rng.multinomial(ng, bucket_probabilities()))
    return Window(
        baseline=SubsetWindow(ga, ng, int(rng.binomial(ng, ga_error_rate))),
        canary=SubsetWindow(can, nc, int(rng.binomial(nc, canary_error_rate))),
        weight=weight,
    )
