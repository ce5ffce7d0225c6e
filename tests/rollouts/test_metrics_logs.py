"""The controller's /metrics and /healthz, and the JSON decision log."""

from __future__ import annotations

import io
import json
import logging

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from rollouts.logs import configure, decision
from rollouts.metrics import ControllerMetrics, MetricsServer

ARCHITECTURE_NAMES = {
    "rollouts_canary_weight": "gauge",
    "rollouts_phase": "gauge",
    "rollouts_verdicts": "counter",  # exposed as rollouts_verdicts_total
    "rollouts_analysis_duration_seconds": "histogram",
    "rollouts_evidence": "gauge",
    "rollouts_git_push_retries": "counter",
    "rollouts_git_errors": "counter",
    "rollouts_prometheus_errors": "counter",
    "rollouts_commits": "counter",
}


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(f"{url}/metrics", timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_names_types_and_values_over_http() -> None:
    metrics = ControllerMetrics()
    rollout = "test/podinfo"
    metrics.set_weight(rollout, 60)
    metrics.set_phase(rollout, "progressing")
    metrics.verdict(rollout, "hold", seconds=0.2)
    metrics.verdict(rollout, "promote", seconds=0.3)
    metrics.set_evidence(rollout, "latency", "harm", 3.5)
    metrics.commits.labels(rollout=rollout, verdict="promote").inc()
    metrics.git_push_retries.labels(rollout=rollout).inc()
    metrics.prometheus_errors.labels(rollout=rollout).inc(2)
    metrics.git_errors.labels(rollout=rollout).inc(0)
    server = MetricsServer(metrics, port=0).start()
    try:
        samples = scrape(server.url)
        text = requests.get(f"{server.url}/metrics", timeout=5).text
        health = requests.get(f"{server.url}/healthz", timeout=5)
    finally:
        server.stop()
    for name, kind in ARCHITECTURE_NAMES.items():
        exposed = f"{name}_total" if kind == "counter" else name
        assert f"# TYPE {exposed} {kind}" in text or f"# TYPE {name} {kind}" in text
    r = (("rollout", rollout),)
    assert samples[("rollouts_canary_weight", r)] == 60
    assert samples[("rollouts_phase", (("phase", "progressing"), ("rollout", rollout)))] == 1
    assert samples[("rollouts_phase", (("phase", "paused"), ("rollout", rollout)))] == 0
    assert samples[("rollouts_verdicts_total", (("action", "promote"), ("rollout", rollout)))] == 1
    assert samples[("rollouts_analysis_duration_seconds_count", r)] == 2
    assert (
        samples[("rollouts_evidence", (("kind", "harm"), ("rollout", rollout), ("test", "latency")))] == 3.5
    )
    assert samples[("rollouts_prometheus_errors_total", r)] == 2
    assert samples[("rollouts_commits_total", (("rollout", rollout), ("verdict", "promote")))] == 1
    assert health.status_code == 200


def test_registries_are_not_shared_and_forget_drops_a_rollout() -> None:
    one, two = ControllerMetrics(), ControllerMetrics()
    one.set_weight("a/b", 10)
    one.set_phase("a/b", "paused")
    one.set_evidence("a/b", "tail", "safety", 2.0)
    assert two.registry.get_sample_value("rollouts_canary_weight", {"rollout": "a/b"}) is None
    assert one.registry.get_sample_value("rollouts_canary_weight", {"rollout": "a/b"}) == 10
    one.forget("a/b")
    assert one.registry.get_sample_value("rollouts_canary_weight", {"rollout": "a/b"}) is None
    assert one.registry.get_sample_value("rollouts_phase", {"rollout": "a/b", "phase": "paused"}) is None
    assert (
        one.registry.get_sample_value(
            "rollouts_evidence", {"rollout": "a/b", "test": "tail", "kind": "safety"}
        )
        is None
    )


def test_unknown_labels_are_refused() -> None:
    metrics = ControllerMetrics()
    with pytest.raises(ValueError, match="unknown phase 'running'"):
        metrics.set_phase("a/b", "running")
    with pytest.raises(ValueError, match="unknown action"):
        metrics.verdict("a/b", "maybe")
    with pytest.raises(ValueError, match="evidence must be one of"):
        metrics.set_evidence("a/b", "p99", "harm", 1)


def test_unhealthy_answers_503() -> None:
    server = MetricsServer(ControllerMetrics(), port=0, health=lambda: (False, "git unreachable")).start()
    try:
        answer = requests.get(f"{server.url}/healthz", timeout=5)
        missing = requests.get(f"{server.url}/nope", timeout=5)
    finally:
        server.stop()
    assert (answer.status_code, answer.text) == (503, "git unreachable\n")
    assert missing.status_code == 404


def test_json_decision_lines() -> None:
    stream = io.StringIO()
    handler = configure("json", stream=stream)
    try:
        decision(
            logging.getLogger("rollouts.controller"),
            "test/podinfo",
            "rollback",
            ["canary p99 above the SLO"],
            step="1/3",
            weight=10,
        )
        logging.getLogger("other").warning("plain %s", "line")
    finally:
        logging.getLogger().removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["rollout"] == "test/podinfo" and first["action"] == "rollback"
    assert first["reasons"] == ["canary p99 above the SLO"]
    assert (first["step"], first["weight"]) == ("1/3", 10)
    assert first["message"] == "test/podinfo: rollback because canary p99 above the SLO"
    assert second["message"] == "plain line" and second["level"] == "warning"
    with pytest.raises(ValueError, match="'xml'"):
        configure("xml")
