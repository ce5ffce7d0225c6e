"""The simulator: a small seeded run that checks the judge's targets loosely, and its parts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analyzer import Histogram, Policy
from analyzer.simulate import (
    PODINFO_BOUNDS,
    Scenario,
    Traffic,
    lognormal_probabilities,
    run_simulation,
    scaled_probabilities,
)


def test_small_simulation_keeps_false_rollbacks_low_and_catches_the_slow_canary() -> None:
    """300 seeded rollouts per scenario (a few seconds). Fails if the judge loses either property."""
    results = run_simulation(
        Traffic(),
        [Scenario("identical"), Scenario("slow", slowdown=1.5)],
        rollouts=300,
        seed=7,
        rules=["judge", "kayenta"],
    )
    by = {(r.scenario, r.rule): r for r in results}
    identical = by[("identical", "judge")]
    assert identical.rolled_back <= 0.03  # α = 1 %; loose bound for 300 rollouts
    assert identical.promoted >= 0.9
    assert 2 <= identical.median_minutes_to_promote <= 30
    assert by[("slow", "judge")].rolled_back >= 0.95
    # The anchor without a correction for repeated looks rolls back identical canaries far more often.
    assert by[("identical", "kayenta")].rolled_back > identical.rolled_back


#: Harm margins off: any difference is harm (the round-1 defaults).
NO_MARGINS = {"harm_error_ratio": 1.0, "harm_latency_margin": 0.0, "harm_tail_ratio": 1.0}
#: ... and no prior floor on the window-to-window variation: the per-request model.
PER_REQUEST = {**NO_MARGINS, "window_latency_log_sd": 0.0, "window_error_cv": 0.0}
DRIFT = Traffic(rate=200, latency_drift=0.05, error_cv=0.5, ga_lognormal=(0.04, 0.5))


def _allowance(n: int, alpha: float) -> int:
    """Most rollbacks of n that a rate of alpha explains (one-sided, 0.1 %): the check's bar."""
    return int(stats.binom.ppf(0.999, n, alpha))


def test_a_harm_blind_policy_would_fail_the_test() -> None:
    """Sanity check that the assertions above can fail: α near 1 rolls back identical canaries."""
    results = run_simulation(
        Traffic(),
        [Scenario("identical")],
        policy=Policy(alpha=0.9, **NO_MARGINS),
        rollouts=100,
        seed=7,
        rules=["judge"],
    )
    assert results[0].rolled_back > 0.03


@pytest.mark.parametrize("rate", [20.0, 200.0])
def test_false_rollback_budget_holds_when_windows_vary(rate: float) -> None:
    """Identical canary, each subset's latency scale varying by 5 % and its error rate with CV 0.5
    from window to window: rolled back in at most α of rollouts (binomial allowance). 300 rollouts."""
    n, policy = 300, Policy(max_windows_per_step=10)
    traffic = Traffic(rate=rate, latency_drift=0.05, error_cv=0.5, ga_lognormal=(0.04, 0.5))
    r = run_simulation(traffic, [Scenario("identical")], policy=policy, rollouts=n, seed=11, rules=["judge"])[
        0
    ]
    assert round(r.rolled_back * n) <= _allowance(n, policy.alpha)
    assert r.promoted >= 0.9


def test_the_per_request_model_fails_that_check() -> None:
    """The same check fails for evidence that treats every request as independent (no floors, no
    margins): the window, not the request, is the unit of variation."""
    n, policy = 100, Policy(max_windows_per_step=10, **PER_REQUEST)
    r = run_simulation(DRIFT, [Scenario("identical")], policy=policy, rollouts=n, seed=11, rules=["judge"])[0]
    assert round(r.rolled_back * n) > _allowance(n, policy.alpha)


def test_small_offset_is_not_harm_but_real_regressions_are_caught_under_drift() -> None:
    """3 % slower is inside the harm margin (rarely rolled back); 1.5x slower, 6x errors and a slow
    tail (3 % of requests 10x slower) are rolled back before 100 %. 100 rollouts each at 200 req/s."""
    scenarios = [
        Scenario("offset", slowdown=1.03),
        Scenario("slow", slowdown=1.5),
        Scenario("errors", error_rate=0.03),
        Scenario("tail", tail_share=0.03, tail_factor=10),
    ]
    results = run_simulation(
        DRIFT, scenarios, policy=Policy(max_windows_per_step=10), rollouts=100, seed=5, rules=["judge"]
    )
    by = {r.scenario: r for r in results}
    assert by["offset"].rolled_back <= 0.05
    for name in ("slow", "errors", "tail"):
        assert by[name].rolled_back >= 0.9, name
        assert by[name].promoted == 0.0, name


def test_flagger_rule_rolls_back_one_interval_after_the_threshold() -> None:
    """2 failed checks, rollback at the next check: three windows of canary traffic at 10 %."""
    traffic = Traffic(ga_error_rate=0.0)
    results = run_simulation(traffic, [Scenario("broken", error_rate=0.5)], rollouts=20, rules=["flagger"])
    r = results[0]
    assert r.rolled_back == 1.0
    assert r.median_canary_requests_at_rollback == pytest.approx(3 * 120, rel=0.15)
    generous = run_simulation(
        traffic, [Scenario("broken", error_rate=0.5)], rollouts=20, rules=["flagger"], flagger_immediate=True
    )[0]
    assert generous.median_canary_requests_at_rollback == pytest.approx(2 * 120, rel=0.15)


def test_scaled_probabilities_match_lognormal_scaling() -> None:
    base = lognormal_probabilities(PODINFO_BOUNDS, 0.04, 0.5)
    exact = lognormal_probabilities(PODINFO_BOUNDS, 0.06, 0.5)
    approx = scaled_probabilities(Histogram.from_counts(PODINFO_BOUNDS, base * 1e9), 1.5)
    assert approx.sum() == pytest.approx(1.0)
    assert np.abs(approx - exact).max() < 0.08  # linear interpolation inside buckets
    assert float(np.dot(approx, np.arange(12))) > float(np.dot(base, np.arange(12)))
    with pytest.raises(ValueError, match="no observations"):
        scaled_probabilities(Histogram.empty(PODINFO_BOUNDS), 1.5)


def test_scenario_parsing_and_traffic_validation() -> None:
    s = Scenario.parse("bad:latency=1.2,errors=0.02")
    assert (s.name, s.slowdown, s.error_rate, s.is_regression) == ("bad", 1.2, 0.02, True)
    assert not Scenario.parse("same").is_regression
    with pytest.raises(ValueError, match="unknown key 'speed'"):
        Scenario.parse("x:speed=2")
    with pytest.raises(ValueError, match="is not a number"):
        Scenario.parse("x:latency=fast")
    with pytest.raises(ValueError, match="steps"):
        Traffic(steps=(60.0, 10.0))
    assert Traffic().analysed_steps == (10.0, 60.0)
    assert math.isclose(sum(Traffic().ga_probabilities), 1.0)
