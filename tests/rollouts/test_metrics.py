"""A rollout's counters exist at zero from the start, so dashboards show 0 and see the first increase."""

from __future__ import annotations

import pytest

from rollouts.metrics import ACTIONS, COMMIT_VERDICTS, ControllerMetrics


def test_track_creates_every_counter_of_the_rollout_at_zero_and_no_gauge() -> None:
    metrics = ControllerMetrics()
    metrics.track("test/podinfo")
    sample = metrics.registry.get_sample_value
    labels = {"rollout": "test/podinfo"}
    for name in ("git_errors", "git_push_retries", "prometheus_errors"):
        assert sample(f"rollouts_{name}_total", labels) == 0.0, name
    for action in ACTIONS:
        assert sample("rollouts_verdicts_total", {**labels, "action": action}) == 0.0
    for verdict in COMMIT_VERDICTS:
        assert sample("rollouts_commits_total", {**labels, "verdict": verdict}) == 0.0
    assert sample("rollouts_analysis_duration_seconds_count", labels) == 0.0
    # A weight or an evidence figure of 0 would be a claim: gauges wait for a real value.
    assert sample("rollouts_canary_weight", labels) is None
    assert sample("rollouts_evidence", {**labels, "test": "latency", "kind": "harm"}) is None
    assert sample("rollouts_git_errors_total", {"rollout": "other/app"}) is None
    metrics.forget("test/podinfo")
    assert sample("rollouts_git_errors_total", labels) is None


def test_evidence_thresholds_and_the_combined_harm_are_series_of_their_own() -> None:
    metrics = ControllerMetrics()
    sample = metrics.registry.get_sample_value
    metrics.set_evidence("test/podinfo", "combined", "harm", 3.5)
    metrics.set_threshold("test/podinfo", "harm", 100.0)
    metrics.set_threshold("test/podinfo", "safety", 2.0)
    labels = {"rollout": "test/podinfo"}
    assert sample("rollouts_evidence", {**labels, "test": "combined", "kind": "harm"}) == 3.5
    assert sample("rollouts_evidence_threshold", {**labels, "kind": "harm"}) == 100.0
    assert sample("rollouts_evidence_threshold", {**labels, "kind": "safety"}) == 2.0
    with pytest.raises(ValueError, match="threshold kind"):
        metrics.set_threshold("test/podinfo", "promote", 1.0)
    metrics.forget("test/podinfo")
    assert sample("rollouts_evidence_threshold", {**labels, "kind": "harm"}) is None
    assert sample("rollouts_evidence", {**labels, "test": "combined", "kind": "harm"}) is None
