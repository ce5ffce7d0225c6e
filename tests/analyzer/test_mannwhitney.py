"""mann_whitney from bucket counts equals scipy's mannwhitneyu on the expanded samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from analyzer.histogram import Histogram
from analyzer.mannwhitney import effect_variance, mann_whitney

INF = math.inf
PODINFO = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, INF)
ALTERNATIVES = ["two-sided", "less", "greater"]


def _expand(counts: list[int]) -> np.ndarray:
    # One value per bucket index: ties within a bucket, order between buckets.
    return np.repeat(np.arange(len(counts), dtype=float), counts)


@settings(max_examples=150, deadline=None)
@given(
    data=st.integers(2, 12).flatmap(
        lambda k: st.tuples(
            st.lists(st.integers(0, 40), min_size=k, max_size=k),
            st.lists(st.integers(0, 40), min_size=k, max_size=k),
        )
    ),
    alternative=st.sampled_from(ALTERNATIVES),
)
def test_equals_scipy_on_expanded_samples(data, alternative) -> None:
    a, b = data
    if sum(a) == 0 or sum(b) == 0:
        res = mann_whitney(a, b, alternative)
        assert math.isnan(res.statistic) and math.isnan(res.pvalue)
        return
    ours = mann_whitney(a, b, alternative)
    ref = stats.mannwhitneyu(
        _expand(a), _expand(b), alternative=alternative, use_continuity=True, method="asymptotic"
    )
    assert ours.statistic == pytest.approx(float(ref.statistic), rel=1e-12, abs=1e-9)
    assert ours.pvalue == pytest.approx(float(ref.pvalue), rel=1e-9, abs=1e-15)
    assert ours.effect == pytest.approx(float(ref.statistic) / (sum(a) * sum(b)))


def test_histograms_and_known_direction() -> None:
    rng = np.random.default_rng(1)
    ga = np.histogram(rng.lognormal(math.log(0.04), 0.5, 3000), bins=[0, *PODINFO[:-1], 1e9])[0]
    slow = np.histogram(1.5 * rng.lognormal(math.log(0.04), 0.5, 3000), bins=[0, *PODINFO[:-1], 1e9])[0]
    res = mann_whitney(Histogram.from_counts(PODINFO, slow), Histogram.from_counts(PODINFO, ga), "greater")
    assert res.effect > 0.6
    assert res.pvalue < 1e-10
    assert mann_whitney(slow, ga, "less").pvalue > 0.99


def test_all_tied_gives_pvalue_one_like_scipy() -> None:
    ours = mann_whitney([0, 5, 0], [0, 7, 0])
    ref = stats.mannwhitneyu([1.0] * 5, [1.0] * 7, method="asymptotic")
    assert ours.pvalue == float(ref.pvalue) == 1.0
    assert ours.effect == 0.5


def test_bad_input_names_the_problem() -> None:
    with pytest.raises(ValueError, match="different bounds"):
        mann_whitney(Histogram.empty(PODINFO), Histogram.empty((1.0, INF)))
    with pytest.raises(ValueError, match="x has 3 buckets but y has 2"):
        mann_whitney([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match=r"y\[1\] is negative"):
        mann_whitney([1, 2], [1, -2])
    with pytest.raises(ValueError, match=r"x\[0\] is NaN"):
        mann_whitney([math.nan, 2], [1, 2])
    with pytest.raises(ValueError, match="alternative"):
        mann_whitney([1, 2], [1, 2], "bigger")  # type: ignore[arg-type]


def test_effect_variance_matches_simulation() -> None:
    """The DeLong variance of θ̂ is close to the spread of θ̂ over repeated samples."""
    rng = np.random.default_rng(7)
    p = np.array([0.1, 0.3, 0.4, 0.2])
    g = np.array([0.2, 0.3, 0.3, 0.2])
    thetas = [mann_whitney(rng.multinomial(300, p), rng.multinomial(500, g)).effect for _ in range(2000)]
    empirical = float(np.var(thetas))
    estimate = effect_variance(rng.multinomial(300, p), rng.multinomial(500, g))
    assert estimate == pytest.approx(empirical, rel=0.2)
