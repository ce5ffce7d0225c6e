"""Custom metrics read from a real Prometheus (a test exporter's gauge and counters), batched: one
query per metric and round however many subsets; and the same metrics from recorded Datadog data."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from analyzer.custom import CustomSide, custom_metric_from_mapping
from analyzer.prometheus import NoData, PrometheusClient, Subset
from analyzer.prometheus.custom import CustomReader
from analyzer.providers import DatadogClient, DatadogConfig, ProviderUnavailableError
from rollouts.local.prometheus import ScrapeTarget
from tests.providers.exporter import exporter
from tests.providers.files import write
from tests.providers.servers import RecordedApi

pytestmark = pytest.mark.integration

SELECTOR = {"namespace": "namespace", "service": "app", "version": "version"}
LAG = custom_metric_from_mapping(
    {
        "name": "queue-lag",
        "selector": SELECTOR,
        "query": "max by ({{ by }}) (max_over_time(queue_lag_seconds{ {{ selector }} }[{{ window }}]))",
        "direction": "higher-is-worse",
    }
)
RAW_LAG = LAG.model_copy(
    update={"name": "raw-lag", "query": "queue_lag_seconds{ {{ selector }} } # {{ by }}"}
)
MISSES = custom_metric_from_mapping(
    {
        "name": "cache-misses",
        "kind": "rate",
        "selector": SELECTOR,
        "events": "sum by ({{ by }}) (increase(cache_misses_total{ {{ selector }} }[{{ window }}]))",
        "requests": "sum by ({{ by }}) (increase(cache_requests_total{ {{ selector }} }[{{ window }}]))",
        "direction": "higher-is-worse",
    }
)
GA, CANARY = (
    Subset("test", service="podinfo", version="ga"),
    Subset("test", service="podinfo", version="canary"),
)


def wait_for(client: PrometheusClient, query: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not client.query(query, time.time()) and time.monotonic() < deadline:
        time.sleep(0.5)


@pytest.fixture(scope="module")
def exported(prometheus):
    with exporter() as made:
        made.set_lag("ga", 0.40)
        made.set_lag("canary", 0.74)
        made.set_lag("broken", float("nan"))
        made.set_lag("twice", 1.0, pod="a")
        made.set_lag("twice", 2.0, pod="b")
        for version in ("ga", "canary"):
            made.serve(version, 0, 0)
        prometheus.add_target(ScrapeTarget("exporter", made.address))
        client = PrometheusClient(prometheus.url)
        wait_for(client, 'queue_lag_seconds{version="canary"}')
        time.sleep(2.5)  # two scrapes with the counters at zero, then traffic
        made.serve("ga", 1000, 50)
        made.serve("canary", 1000, 150)
        wait_for(client, 'increase(cache_misses_total{version="canary"}[20s]) > 100')
        time.sleep(1.5)
        yield made


def test_values_per_subset_in_one_query_per_round(prometheus, exported):
    client = PrometheusClient(prometheus.url)
    reader = CustomReader({"prometheus": client})
    end = time.time()
    many = [GA, CANARY] + [Subset(f"ns{i}", service="podinfo", version="ga") for i in range(10)]
    read = reader.read(LAG, many, 10.0, end)
    assert client.requests_sent == 1  # twelve subsets, one query
    assert read[GA] == CustomSide(0.40) and read[CANARY] == CustomSide(0.74)
    assert isinstance(read[many[5]], NoData)
    assert read[many[5]].reason == "queue lag: no series for namespace='ns3', app='podinfo', version='ga'"

    rates = reader.read(MISSES, [GA, CANARY], 20.0, time.time())
    assert client.requests_sent == 3  # events and requests
    ga, canary = rates[GA], rates[CANARY]
    assert isinstance(ga, CustomSide) and isinstance(canary, CustomSide)
    assert canary.value == pytest.approx(0.15, rel=1e-6) and ga.value == pytest.approx(0.05, rel=1e-6)
    assert canary.requests > 0 and canary.events == pytest.approx(canary.requests * 0.15, rel=1e-6)


def test_several_series_nan_and_unavailable_are_holds_naming_the_metric(prometheus, exported):
    reader = CustomReader({"prometheus": PrometheusClient(prometheus.url)})
    twice, broken = (
        Subset("test", service="podinfo", version="twice"),
        Subset("test", service="podinfo", version="broken"),
    )
    read = reader.read(RAW_LAG, [twice, broken, GA], 10.0, time.time())
    assert isinstance(read[twice], NoData)
    assert read[twice].reason.startswith("raw lag: 2 series (aggregate the query by ({{ by }}))")
    assert isinstance(read[broken], NoData) and read[broken].reason.startswith("raw lag: value nan")
    assert read[GA] == CustomSide(0.40)
    down = CustomReader(
        {"prometheus": PrometheusClient("http://127.0.0.1:1", timeout=0.5, attempts=2, backoff=0.01)}
    )
    with pytest.raises(ProviderUnavailableError, match=r"^queue lag \(query\): Prometheus at"):
        down.read(LAG, [GA], 10.0, time.time())


def test_flagger_template_as_written(prometheus, exported):
    ceiling = custom_metric_from_mapping(
        {
            "name": "lag-ceiling",
            "templateRef": {"name": "queue-lag"},
            "thresholdRange": {"max": 0.5},
            "templateVariables": {"app": "podinfo"},
        }
    )
    query = (  # as a Flagger MetricTemplate's spec.query is written
        'max(max_over_time(queue_lag_seconds{namespace="{{ namespace }}", app="{{ variables.app }}", '
        'version="{{ target }}"}[{{ interval }}]))'
    )
    reader = CustomReader({"prometheus": PrometheusClient(prometheus.url)})
    values = {"namespace": "test", "target": "canary", "interval": "10s"}
    side = reader.read_flagger(ceiling, query, values, window=10.0, end=time.time(), subset=CANARY)
    assert side == CustomSide(0.74)
    assert (
        ceiling.threshold_range is not None
        and ceiling.threshold_range.broken_by(side.value) == "0.74 > max 0.5"
    )


def test_datadog_selector_and_series(tmp_path):
    api = RecordedApi()
    api.load(Path(__file__).parent / "recorded" / "datadog_query.json")
    lag = custom_metric_from_mapping(
        {
            "name": "queue-lag",
            "provider": "datadog",
            "selector": {"namespace": "kube_namespace", "version": "version"},
            "query": "sum:queue.lag{ {{ selector }} } by { {{ by }} }.rollup(avg, {{ window }})",
            "direction": "higher-is-worse",
        }
    )
    with api.running() as url:
        client = DatadogClient(
            DatadogConfig(write(tmp_path / "a", "k1"), write(tmp_path / "b", "k2"), url=url, timeout=5)
        )
        read = CustomReader({"datadog": client}).read(
            lag, [Subset("test", version="ga"), Subset("test", version="canary")], 60.0, 1764583200.0
        )
    assert api.seen[-1].query["query"] == [
        "sum:queue.lag{ kube_namespace:test,version IN (canary,ga) } by { kube_namespace,version }"
        ".rollup(avg, 60)"
    ]
    assert read[Subset("test", version="ga")] == CustomSide(0.41)
    assert read[Subset("test", version="canary")] == CustomSide(0.74)
