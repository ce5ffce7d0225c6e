"""A test exporter on loopback: a gauge and counters per subset that a test moves, scraped by the
real Prometheus of the tests (the custom metrics' data)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from rollouts.local.process import free_port

LABELS = ("namespace", "app", "version", "pod")


@dataclass
class Exporter:
    """``queue_lag_seconds`` (gauge), ``cache_requests_total`` and ``cache_misses_total`` (counters)."""

    registry: CollectorRegistry
    queue_lag: Gauge
    cache_requests: Counter
    cache_misses: Counter
    address: str

    def set_lag(self, version: str, value: float, *, namespace: str = "test", pod: str = "p0") -> None:
        self.queue_lag.labels(namespace, "podinfo", version, pod).set(value)

    def serve(self, version: str, requests: float, misses: float, *, namespace: str = "test") -> None:
        self.cache_requests.labels(namespace, "podinfo", version, "p0").inc(requests)
        self.cache_misses.labels(namespace, "podinfo", version, "p0").inc(misses)


@contextmanager
def exporter() -> Iterator[Exporter]:
    """Serve the exporter on a free loopback port until the block ends."""
    registry = CollectorRegistry()
    made = Exporter(
        registry,
        Gauge("queue_lag_seconds", "queue lag", LABELS, registry=registry),
        Counter("cache_requests", "cache lookups", LABELS, registry=registry),
        Counter("cache_misses", "cache misses", LABELS, registry=registry),
        "",
    )
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    made.address = f"127.0.0.1:{port}"
    try:
        yield made
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
