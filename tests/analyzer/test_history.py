"""GA's history before the rollout: the chi-square bound, its coverage by simulation, what the judge
does with it, and what it buys on traffic the judge's floors were not tuned for."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analyzer import Histogram, Judge, Policy, SubsetWindow, Window
from analyzer.history import chi2_quantile, history_prior, overdispersion_bound
from analyzer.simulate import PODINFO_BOUNDS, Scenario, Traffic, lognormal_probabilities, run_simulation


@pytest.mark.parametrize("df", [9, 30, 59, 119, 500])
@pytest.mark.parametrize("p", [0.05, 0.1, 0.25, 0.5])
def test_wilson_hilferty_quantile_is_within_a_third_of_a_percent_of_scipy(df: int, p: float) -> None:
    """At the levels the policy allows (0.5 to 0.95) and a history of at least 10 windows."""
    exact = stats.chi2.ppf(p, df)
    assert abs(chi2_quantile(df, p) - exact) <= 0.003 * exact


def _gamma_poisson(rng: np.random.Generator, windows: int, exposure: float, rate: float, cv: float):
    mix = rng.gamma(1 / cv**2, cv**2, windows) if cv > 0 else np.ones(windows)
    return rng.poisson(exposure * rate * mix)


@pytest.mark.parametrize(("cv", "mean_events"), [(0.5, 6.0), (0.5, 60.0), (1.0, 20.0)])
def test_the_upper_bound_covers_the_true_variation_as_often_as_its_level(
    cv: float, mean_events: float
) -> None:
    """The guarantee by simulation: over 400 histories of 60 windows of gamma-mixed Poisson counts,
    the bound at level 0.75 is at least the true c² in 75 % of them, give or take the approximation
    (here: between 60 % and 95 %; the chi-square model of the Pearson statistic is approximate for
    gamma-mixed counts, and heavy mixing, CV 1, covers about 63 %: docs/analyzer.md)."""
    rng = np.random.default_rng(3)
    covered = 0
    for _ in range(400):
        k = _gamma_poisson(rng, 60, 1000.0, mean_events / 1000.0, cv)
        r = k.sum() / 60000.0
        mu = np.full(60, 1000.0 * r)
        bound = overdispersion_bound(
            float(((k - mu) ** 2 / mu).sum()), float(mu.sum()), float((mu**2).sum()), 59, 0.75
        )
        covered += bound >= cv**2
    assert 0.6 <= covered / 400 <= 0.95


def _mean_bound(rng: np.random.Generator, exposure: float, rate: float) -> float:
    bounds = []
    for _ in range(50):
        k = _gamma_poisson(rng, 60, exposure, rate, 0.0)
        mu = np.full(60, max(k.mean(), 1e-9))
        bounds.append(
            overdispersion_bound(
                float(((k - mu) ** 2 / mu).sum()), float(mu.sum()), float((mu**2).sum()), 59, 0.75
            )
        )
    return float(np.mean(bounds))


def test_steady_traffic_gets_a_small_bound_and_rare_events_a_loose_one() -> None:
    """No variation at all: with 50 errors a window the bound is far below the floor's CV 0.5
    (c² 0.25); with half an error a window the history cannot show that the rate does not vary."""
    rng = np.random.default_rng(4)
    tight = _mean_bound(rng, 10_000.0, 0.005)
    assert tight < 0.1**2
    assert _mean_bound(rng, 100.0, 0.005) > 10 * tight


def _ga_windows(n: int, requests: int, sigma: float = 0.5, seed: int = 1) -> list[SubsetWindow]:
    rng = np.random.default_rng(seed)
    p = lognormal_probabilities(PODINFO_BOUNDS, 0.04, sigma)
    return [
        SubsetWindow(
            Histogram.from_counts(PODINFO_BOUNDS, rng.multinomial(requests, p)),
            requests,
            int(rng.binomial(requests, 0.005)),
        )
        for _ in range(n)
    ]


def test_too_short_a_history_is_not_used() -> None:
    policy = Policy()
    assert history_prior(_ga_windows(policy.history_min_windows - 1, 1000), policy) is None
    # Windows without requests do not count.
    empty = SubsetWindow(Histogram.from_counts(PODINFO_BOUNDS, [0] * len(PODINFO_BOUNDS)), 0, 0)
    assert history_prior([*_ga_windows(policy.history_min_windows - 1, 1000), empty], policy) is None
    assert history_prior(_ga_windows(policy.history_min_windows, 1000), policy) is not None


def test_history_with_other_buckets_is_refused() -> None:
    other = SubsetWindow(Histogram.from_counts((0.1, math.inf), [5, 5]), 10, 0)
    with pytest.raises(ValueError, match="history"):
        history_prior([*_ga_windows(10, 1000), other], Policy())


def test_the_judge_fixes_the_tail_bounds_from_history_and_counts_tail_evidence_from_the_first_window() -> (
    None
):
    history = _ga_windows(60, 1200)
    with_history, without = Judge(Policy(), history=history), Judge(Policy())
    assert with_history.history is not None
    first = _ga_windows(1, 1080, seed=9)[0], _ga_windows(1, 120, seed=10)[0]
    window = Window(baseline=first[0], canary=first[1], weight=10)
    a, b = with_history.judge(window), without.judge(window)
    assert a.evidence["tail_bound"] == with_history.history.tail_bound
    # Without a history the tail bound is fixed from this window's GA and counts only from the next.
    assert b.evidence["e_safety_tail"] == 1.0
    assert a.evidence["e_safety_tail"] != 1.0
    # GA's measured variation replaced the floor: much narrower than CV 0.5 on steady traffic.
    assert a.evidence["window_error_cv"] < b.evidence["window_error_cv"]


def test_history_protects_where_the_floors_are_wrong_and_speeds_up_steady_traffic() -> None:
    """Traffic the floors were not tuned for (latency log-sd 0.1, error CV 1.0 at 200 req/s): without
    a history the floors are too narrow and identical canaries are rolled back far more often than α;
    GA's measured variation cuts that several times. On steady (iid) traffic the history makes the
    floors narrower, and a 6x error regression is caught with fewer canary requests. 100 rollouts."""
    policy = Policy(max_windows_per_step=10)
    jumpy = Traffic(rate=200, latency_drift=0.1, error_cv=1.0, ga_lognormal=(0.04, 0.5), history_windows=60)
    blind = Traffic(rate=200, latency_drift=0.1, error_cv=1.0, ga_lognormal=(0.04, 0.5))
    n = 100
    seen = run_simulation(jumpy, [Scenario("identical")], policy=policy, rollouts=n, seed=2, rules=["judge"])[
        0
    ]
    unseen = run_simulation(
        blind, [Scenario("identical")], policy=policy, rollouts=n, seed=2, rules=["judge"]
    )[0]
    assert unseen.rolled_back > 2 * policy.alpha
    assert seen.rolled_back < unseen.rolled_back / 2

    steady = Traffic(rate=200, ga_lognormal=(0.04, 0.5), history_windows=60)
    errors = [Scenario("errors", error_rate=0.03)]
    fast = run_simulation(steady, errors, policy=policy, rollouts=40, seed=3, rules=["judge"])[0]
    slow = run_simulation(
        Traffic(rate=200, ga_lognormal=(0.04, 0.5)),
        errors,
        policy=policy,
        rollouts=60,
        seed=3,
        rules=["judge"],
    )[0]
    assert fast.rolled_back == slow.rolled_back == 1.0
    assert fast.median_canary_requests_at_rollback < slow.median_canary_requests_at_rollback
