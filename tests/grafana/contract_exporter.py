"""A scrape target that serves the metrics the dashboards read, in the shapes the contracts fix.

The Istio series carry the labels the local mesh emits (issue 5: ``reporter="destination"``,
``destination_workload``, ``destination_workload_namespace``, ``destination_version``,
``destination_service_name``, ``response_code``; Envoy's default millisecond buckets); the
controller's series are those of the table in docs/architecture.md. Prometheus itself is real and
scrapes this over HTTP on loopback. When the local stack and the controller's own ``/metrics`` can
be started in a test, scrape those instead: the dashboard queries and their checks stay the same.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# fmt: off
ENVOY_BUCKETS_MS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
                    600000, 1800000, 3600000)
# fmt: on
ISTIO_LABELS = (
    "reporter",
    "destination_workload",
    "destination_workload_namespace",
    "destination_version",
    "destination_service_name",
    "response_code",
)
ROLLOUT = "test/podinfo"
TICK_S = 0.2


@dataclass(frozen=True)
class Target:
    """Where Prometheus finds the exporter."""

    address: str  # host:port


def _registry() -> tuple[CollectorRegistry, dict[str, object]]:
    registry = CollectorRegistry()
    metrics: dict[str, object] = {
        "requests": Counter("istio_requests", "requests", ISTIO_LABELS, registry=registry),
        "duration": Histogram(
            "istio_request_duration_milliseconds",
            "latency",
            ISTIO_LABELS,
            buckets=ENVOY_BUCKETS_MS,
            registry=registry,
        ),
        "weight": Gauge("rollouts_canary_weight", "weight", ["rollout"], registry=registry),
        "phase": Gauge("rollouts_phase", "phase", ["rollout", "phase"], registry=registry),
        "verdicts": Counter("rollouts_verdicts", "verdicts", ["rollout", "action"], registry=registry),
        "analysis": Histogram(
            "rollouts_analysis_duration_seconds", "analysis", ["rollout"], registry=registry
        ),
        "evidence": Gauge("rollouts_evidence", "evidence", ["rollout", "test", "kind"], registry=registry),
        "push_retries": Counter("rollouts_git_push_retries", "retries", ["rollout"], registry=registry),
        "git_errors": Counter("rollouts_git_errors", "git errors", ["rollout"], registry=registry),
        "prom_errors": Counter("rollouts_prometheus_errors", "prom errors", ["rollout"], registry=registry),
        "commits": Counter("rollouts_commits", "commits", ["rollout", "verdict"], registry=registry),
    }
    return registry, metrics


def _tick(metrics: dict[str, object], rng: random.Random) -> None:
    """One step of a canary at 10 %: traffic on both subsets, some errors, the controller working."""
    requests, duration = metrics["requests"], metrics["duration"]
    assert isinstance(requests, Counter) and isinstance(duration, Histogram)
    for version, share in (("ga", 9), ("canary", 1)):
        workload = f"podinfo-{version}"
        for _ in range(share):
            code = "500" if rng.random() < 0.05 else "200"
            labels = ("destination", workload, "test", version, "podinfo", code)
            requests.labels(*labels).inc()
            duration.labels(*labels).observe(rng.lognormvariate(3.0, 0.5))
    for name in ("verdicts", "commits"):
        counter = metrics[name]
        assert isinstance(counter, Counter)
        counter.labels(ROLLOUT, "promote").inc()
    for name in ("push_retries", "git_errors", "prom_errors"):
        counter = metrics[name]
        assert isinstance(counter, Counter)
        counter.labels(ROLLOUT).inc()
    analysis = metrics["analysis"]
    assert isinstance(analysis, Histogram)
    analysis.labels(ROLLOUT).observe(rng.uniform(0.05, 0.5))


@contextmanager
def serve_contract_metrics(port: int) -> Iterator[Target]:
    """Serve the metrics on ``127.0.0.1:port``, updating them every ``TICK_S`` until exit."""
    registry, metrics = _registry()
    weight, phase, evidence = metrics["weight"], metrics["phase"], metrics["evidence"]
    assert isinstance(weight, Gauge) and isinstance(phase, Gauge) and isinstance(evidence, Gauge)
    weight.labels(ROLLOUT).set(10)
    for name in ("idle", "progressing", "paused", "promoted", "rolledback", "failed"):
        phase.labels(ROLLOUT, name).set(1 if name == "progressing" else 0)
    for test in ("latency", "errors", "tail"):
        for kind, value in (("harm", 0.8), ("safety", 3.5)):
            evidence.labels(ROLLOUT, test, kind).set(value)
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    stop = threading.Event()
    rng = random.Random(7)

    def run() -> None:
        while not stop.wait(TICK_S):
            _tick(metrics, rng)

    _tick(metrics, rng)
    ticker = threading.Thread(target=run, name="contract-metrics", daemon=True)
    ticker.start()
    try:
        yield Target(f"127.0.0.1:{port}")
    finally:
        stop.set()
        ticker.join(timeout=5)
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
