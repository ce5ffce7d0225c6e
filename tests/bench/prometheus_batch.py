"""Benchmark: Prometheus queries per analysis round, batched vs one rollout at a time.

``python -m tests.bench.prometheus_batch [--rollouts 200]`` starts a real Prometheus scraping an
exporter of Istio's standard metrics for N rollouts (GA and canary workloads each, growing
counters), then reads one round (every rollout's GA and canary window) twice at the same instant:
batched by ``MetricsReader.read`` over all requests, and rollout by rollout. HTTP requests are
counted where they arrive, in Prometheus' own ``prometheus_http_requests_total``; both ways must
return the same numbers. Figures: docs/benchmarks/local-stack.md.
"""

from __future__ import annotations

import argparse
import time
import urllib.request
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from analyzer.prometheus import ISTIO, MetricsReader, PrometheusClient, Subset, SubsetMetrics, WindowRequest
from rollouts.local.mesh import ISTIO_LABELS
from rollouts.local.process import free_port
from rollouts.local.prometheus import PrometheusServer, ScrapeTarget

BOUNDS_MS = ("0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "+Inf")
SHARE = (0.0, 0.01, 0.1, 0.3, 0.7, 0.9, 0.97, 0.99, 0.995, 0.999, 1.0)  # cumulative fraction per bound
LABELS = list(ISTIO_LABELS)  # the mesh's: the same series the controller reads


class IstioExporter(Collector):
    """Istio's metrics for ``rollouts`` rollouts, counters growing at 10 requests/s per workload."""

    def __init__(self, rollouts: int) -> None:
        self.rollouts = rollouts
        self.started = time.time()

    def collect(self) -> Iterator[Metric]:
        elapsed = time.time() - self.started
        requests = CounterMetricFamily("istio_requests", "requests", labels=LABELS)
        duration = HistogramMetricFamily("istio_request_duration_milliseconds", "duration", labels=LABELS)
        for i in range(self.rollouts):
            for version, slow in (("primary", 1.0), ("canary", 1.5)):
                total = 10.0 * elapsed * slow
                for code, share in (("200", 0.99), ("500", 0.01)):
                    labels = ["destination", f"app-{i:03d}-{version}", "bench", version, f"app-{i:03d}", code]
                    n = total * share
                    requests.add_metric(labels, n)
                    duration.add_metric(
                        labels,
                        [(b, n * s) for b, s in zip(BOUNDS_MS, SHARE, strict=True)],
                        sum_value=n * 30.0,
                    )
        yield requests
        yield duration


def query_requests(prometheus_url: str) -> float:
    """Instant queries Prometheus has answered so far, from its own metrics."""
    with urllib.request.urlopen(prometheus_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "prometheus_http_requests_total"
                and sample.labels.get("handler") == "/api/v1/query"
            ):
                total += sample.value
    return total


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the comparison."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.prometheus_batch")
    parser.add_argument("--rollouts", type=int, default=200)
    parser.add_argument("--window", type=float, default=5.0)
    args = parser.parse_args(argv)
    registry = CollectorRegistry()
    registry.register(IstioExporter(args.rollouts))
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with PrometheusServer([ScrapeTarget("istio", f"127.0.0.1:{port}")]) as prom:
            time.sleep(args.window + 2.0)
            end = time.time()
            subsets = [
                Subset("bench", workload=f"app-{i:03d}-{version}")
                for i in range(args.rollouts)
                for version in ("primary", "canary")
            ]
            requests = [WindowRequest(s, ISTIO, args.window, end) for s in subsets]
            rows = []
            answers = {}
            for way in ("batched", "per rollout"):
                reader = MetricsReader(PrometheusClient(prom.url, timeout=30))
                before = query_requests(prom.url)
                began = time.perf_counter()
                if way == "batched":
                    results = reader.read(requests)
                else:
                    results = [
                        r for k in range(0, len(requests), 2) for r in reader.read(requests[k : k + 2])
                    ]
                seconds = time.perf_counter() - began
                served = query_requests(prom.url) - before
                answers[way] = results
                rows.append((way, served, reader.client.requests_sent, seconds))
    finally:
        server.shutdown()
        thread.join(5)
    same = answers["batched"] == answers["per rollout"]
    complete = all(isinstance(r, SubsetMetrics) and r.requests > 0 for r in answers["batched"])
    print(f"{args.rollouts} rollouts, {len(requests)} subset windows of {args.window:g}s, one round")
    print(f"{'way':<12} {'queries (Prometheus)':>21} {'queries (client)':>17} {'seconds':>8}")
    for way, served, sent, seconds in rows:
        print(f"{way:<12} {served:>21.0f} {sent:>17} {seconds:>8.3f}")
    print(
        f"queries ratio per rollout/batched: {rows[1][1] / rows[0][1]:.0f}x;"
        f" time ratio {rows[1][3] / rows[0][3]:.1f}x"
    )
    print(f"same results both ways: {same}; every subset has data: {complete}")
    return 0 if same and complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
