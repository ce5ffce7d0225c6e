"""A scrape target serving Istio-named request metrics for GA and canary, phase by phase.

The test switches the phase at each weight change (after the commit that raises the canary's
weight, before the one that takes it back to 0 %), so each step of the rollout has its own
traffic: how many requests per tick go to each subset, their latency and their error share.
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
    # Phases set, and the newest phase a whole tick has counted (under ``ticked``'s lock).
    set_count: int = 0
    counted: int = 0
    ticked: threading.Condition = field(default_factory=threading.Condition)

    def set_phase(self, phase: Mapping[str, Traffic]) -> None:
        with self.lock:
            self.phase = dict(phase)
            self.set_count += 1

    def wait_counted(self, timeout: float = 30.0) -> None:
        """Until a tick that began after the last :meth:`set_phase` has counted its requests: from
        then on no increment of an earlier phase can arrive (a tick copies the phase, then counts)."""
        with self.lock:
            wanted = self.set_count
        with self.ticked:
            if not self.ticked.wait_for(lambda: self.counted >= wanted, timeout=timeout):
                raise TimeoutError(f"the exporter counted no tick of the new phase in {timeout:g} s")


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
            phase, number = dict(exporter.phase), exporter.set_count
        for version, traffic in phase.items():
            for _ in range(traffic.requests):
                code = "503" if rng.random() < traffic.errors else "200"
                labels = ("destination", f"podinfo-{version}", namespace, version, "podinfo", code)
                requests.labels(*labels).inc()
                duration.labels(*labels).observe(rng.lognormvariate(0, 0.25) * traffic.median_ms)
            # The other reporter must never be counted: the report reads reporter="destination".
            other = ("source", f"podinfo-{version}", namespace, version, "podinfo", "500")
            requests.labels(*other).inc(traffic.requests)
        with exporter.ticked:
            exporter.counted = number
            exporter.ticked.notify_all()

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
