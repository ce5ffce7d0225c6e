"""A scrape target serving Istio-named request metrics for GA and canary, phase by phase.

The test switches the phase when it commits a weight change, so each step of the rollout has its
own traffic: how many requests per tick go to each subset, their latency and their error share.
Prometheus is real and scrapes this over HTTP on loopback; the report then reads what it stored.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

# The mesh's Istio schema (Envoy's buckets, the label names), so both serve the same series.
from rollouts.local.mesh import ENVOY_BUCKETS_MS
from rollouts.local.mesh import ISTIO_LABELS as LABELS

TICK_S = 0.05


@dataclass(frozen=True)
class Traffic:
    """Per tick: ``requests`` to one subset, latency lognormal around ``median_ms``, ``errors`` share."""

    requests: int
    median_ms: float
    errors: float = 0.0


@dataclass
class Exporter:
    """The running exporter; :meth:`set_phase` changes the traffic from the next tick on."""

    address: str
    namespace: str = "test"
    phase: dict[str, Traffic] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set_phase(self, phase: Mapping[str, Traffic]) -> None:
        with self.lock:
            self.phase = dict(phase)


@contextmanager
def serve_istio(port: int, namespace: str = "test", seed: int = 7) -> Iterator[Exporter]:
    """Serve on ``127.0.0.1:port`` until exit; the phase starts empty (no traffic)."""
    registry = CollectorRegistry()
    requests = Counter("istio_requests", "requests", LABELS, registry=registry)
    duration = Histogram(
        "istio_request_duration_milliseconds", "latency", LABELS, buckets=ENVOY_BUCKETS_MS, registry=registry
    )
    exporter = Exporter(address=f"127.0.0.1:{port}", namespace=namespace)
    rng = random.Random(seed)
    stop = threading.Event()

    def tick() -> None:
        with exporter.lock:
            phase = dict(exporter.phase)
        for version, traffic in phase.items():
            for _ in range(traffic.requests):
                code = "503" if rng.random() < traffic.errors else "200"
                labels = ("destination", f"podinfo-{version}", namespace, version, "podinfo", code)
                requests.labels(*labels).inc()
                duration.labels(*labels).observe(rng.lognormvariate(0, 0.25) * traffic.median_ms)
            # The other reporter must never be counted: the report reads reporter="destination".
            other = ("source", f"podinfo-{version}", namespace, version, "podinfo", "500")
            requests.labels(*other).inc(traffic.requests)

    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)

    def run() -> None:
        while not stop.wait(TICK_S):
            tick()

    ticker = threading.Thread(target=run, name="istio-exporter", daemon=True)
    ticker.start()
    try:
        yield exporter
    finally:
        stop.set()
        ticker.join(timeout=5)
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
