"""Benchmark: queries per round with custom metrics, 200 rollouts x 3 custom metrics.

``python -m tests.bench.custom_metrics [--rollouts 200]`` starts a real Prometheus scraping an
exporter of three custom SLIs for N rollouts (GA and canary of each): a gauge (queue lag, kind
``value``), two counters (cache misses over lookups, kind ``rate``) and a histogram (a downstream
call's latency, kind ``histogram``). Every rollout's spec has the same three custom metrics (as a
team's shared definitions would be). One round is read through the controller's own shell
(:class:`rollouts.controller.custom.CustomSource`) twice at the same instant: with one source
shared by all rollouts (batched: what ``rollouts run`` does), and, as the anchor, one source per
rollout. Queries are counted where they arrive, in Prometheus' ``prometheus_http_requests_total``;
both ways must return the same readings. Figures: docs/benchmarks/custom-metrics.md.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from analyzer import Policy
from analyzer.prometheus import MetricsReader, PrometheusClient
from rollouts.controller.custom import CustomSource, wiring
from rollouts.controller.source import PrometheusSource
from rollouts.local.process import free_port
from rollouts.local.prometheus import PrometheusServer, ScrapeTarget
from rollouts.spec import Rollout
from tests.bench.prometheus_batch import query_requests
from tests.controller.machinery import rollout_spec

LABELS = ["namespace", "app", "version"]
BOUNDS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "+Inf")
SHARE = (0.1, 0.4, 0.8, 0.95, 0.99, 1.0, 1.0)
SELECTOR = {"namespace": "namespace", "service": "app", "version": "version"}
METRICS = [
    {
        "name": "queue-lag",
        "kind": "value",
        "selector": SELECTOR,
        "query": "max by ({{ by }}) (max_over_time(queue_lag_seconds{ {{ selector }} }[{{ window }}]))",
        "direction": "higher-is-worse",
    },
    {
        "name": "cache-misses",
        "kind": "rate",
        "selector": SELECTOR,
        "events": "sum by ({{ by }}) (increase(cache_misses_total{ {{ selector }} }[{{ window }}]))",
        "requests": "sum by ({{ by }}) (increase(cache_lookups_total{ {{ selector }} }[{{ window }}]))",
        "direction": "higher-is-worse",
    },
    {
        "name": "downstream-latency",
        "kind": "histogram",
        "selector": SELECTOR,
        "histogram": "sum by ({{ by }}, le) "
        "(increase(downstream_seconds_bucket{ {{ selector }} }[{{ window }}]))",
        "direction": "higher-is-worse",
        "margin": 0.02,
    },
]


class CustomExporter(Collector):
    """The three SLIs for ``rollouts`` rollouts; counters grow at 10 lookups/s per subset."""

    def __init__(self, rollouts: int) -> None:
        self.rollouts = rollouts
        self.started = time.time()

    def collect(self) -> Iterator[Metric]:
        elapsed = time.time() - self.started
        lag = GaugeMetricFamily("queue_lag_seconds", "queue lag", labels=LABELS)
        lookups = CounterMetricFamily("cache_lookups", "cache lookups", labels=LABELS)
        misses = CounterMetricFamily("cache_misses", "cache misses", labels=LABELS)
        downstream = HistogramMetricFamily("downstream_seconds", "downstream call", labels=LABELS)
        for i in range(self.rollouts):
            for version, worse in (("ga", 1.0), ("canary", 1.3)):
                labels = ["bench", f"app-{i:03d}", version]
                n = 10.0 * elapsed
                lag.add_metric(labels, 0.2 * worse)
                lookups.add_metric(labels, n)
                misses.add_metric(labels, n * 0.05 * worse)
                downstream.add_metric(
                    labels, [(b, n * s) for b, s in zip(BOUNDS, SHARE, strict=True)], sum_value=n * 0.01
                )
        yield from (lag, lookups, misses, downstream)


def rollouts(count: int, prometheus_url: str) -> list[Rollout]:
    """``count`` rollouts in namespace bench, each with the three custom metrics."""
    out = []
    for i in range(count):
        spec = rollout_spec(
            "/x.git", analysis={"metrics": ["podinfo", *METRICS], "prometheus": {"url": prometheus_url}}
        )
        meta = spec.metadata.model_copy(update={"name": f"app-{i:03d}", "namespace": "bench"})
        out.append(spec.model_copy(update={"metadata": meta}))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the comparison."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.custom_metrics")
    parser.add_argument("--rollouts", type=int, default=200)
    parser.add_argument("--window", type=float, default=5.0)
    args = parser.parse_args(argv)
    registry = CollectorRegistry()
    registry.register(CustomExporter(args.rollouts))
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with PrometheusServer([ScrapeTarget("custom", f"127.0.0.1:{port}")]) as prom:
            time.sleep(args.window + 2.0)
            end = time.time()
            specs = rollouts(args.rollouts, prom.url)
            rows, answers = [], {}
            for way in ("batched", "per rollout"):
                before = query_requests(prom.url)
                began = time.perf_counter()
                if way == "batched":  # what the controller does: one source for all rollouts
                    shared: dict = {}
                    inner = PrometheusSource(MetricsReader(PrometheusClient(prom.url, timeout=30)))
                    for spec in specs:
                        wiring(shared, inner, spec, Policy())
                    sources = [next(iter(shared.values()))] * len(specs)
                else:
                    sources = [_own(spec, prom.url) for spec in specs]
                readings = [
                    s.readings(spec, args.window, end) for s, spec in zip(sources, specs, strict=True)
                ]
                seconds = time.perf_counter() - began
                served = query_requests(prom.url) - before
                answers[way] = readings
                rows.append((way, served, seconds))
    finally:
        server.shutdown()
        thread.join(5)
    same = answers["batched"] == answers["per rollout"]
    if not same:
        for a, b in zip(answers["batched"], answers["per rollout"], strict=True):
            if a != b:
                print("differs:", a, b)
                break
    complete = all(r.canary is not None and r.baseline is not None for rs in answers["batched"] for r in rs)
    distinct = len(METRICS)
    print(f"{args.rollouts} rollouts x {distinct} custom metrics, windows of {args.window:g}s, one round")
    print(f"{'way':<12} {'queries (Prometheus)':>21} {'seconds':>8}")
    for way, served, seconds in rows:
        print(f"{way:<12} {served:>21.0f} {seconds:>8.3f}")
    print(
        f"queries ratio per rollout/batched: {rows[1][1] / rows[0][1]:.0f}x;"
        f" time ratio {rows[1][2] / rows[0][2]:.1f}x"
    )
    print(f"same readings both ways: {same}; every subset has data: {complete}")
    return 0 if same and complete else 1


def _own(spec: Rollout, url: str) -> CustomSource:
    """A source for ``spec`` alone (the anchor: no batching across rollouts)."""
    shared: dict = {}
    source, _ = wiring(
        shared, PrometheusSource(MetricsReader(PrometheusClient(url, timeout=30))), spec, Policy()
    )
    assert isinstance(source, CustomSource)
    return source


if __name__ == "__main__":
    raise SystemExit(main())
