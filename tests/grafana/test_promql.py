"""Every expression of the dashboards is valid PromQL for a real Prometheus, and returns data.

Prometheus (the real one, on loopback) scrapes ``contract_exporter``: the metric names and labels
that the local mesh and the controller are specified to emit. When the local stack can run in a
test, point the ``prometheus`` fixture's scrape configuration at the stack's mesh and the
controller's ``/metrics`` instead; these tests stay as they are.
"""

from __future__ import annotations

import pytest

from tests.grafana.panels import DashboardQuery, dashboard_queries
from tests.grafana.promserver import Prometheus

QUERIES = dashboard_queries()


def test_the_dashboards_have_queries() -> None:
    wheres = {(q.dashboard, q.where.split(" ")[0]) for q in QUERIES}
    assert {("canary", "panel"), ("canary", "variable"), ("canary", "annotation")} <= wheres
    assert {("controller", "panel"), ("controller", "variable")} <= wheres
    assert len(QUERIES) >= 20


@pytest.mark.integration
@pytest.mark.parametrize("query", QUERIES, ids=str)
def test_every_expression_is_accepted_by_prometheus(prometheus: Prometheus, query: DashboardQuery) -> None:
    answer = prometheus.query(query.promql)
    assert answer["status"] == "success", f"{query}: {answer.get('error')}\n{query.promql}"
    assert answer["data"]["resultType"] in {"vector", "matrix", "scalar"}


@pytest.mark.integration
@pytest.mark.parametrize("query", QUERIES, ids=str)
def test_every_expression_returns_data(prometheus: Prometheus, query: DashboardQuery) -> None:
    answer = prometheus.query(query.promql)
    assert answer["status"] == "success", answer.get("error")
    assert answer["data"]["result"], f"{query}: no data\n{query.promql}"


@pytest.mark.integration
def test_ga_and_canary_are_told_apart(prometheus: Prometheus) -> None:
    by_title = {q.where: q for q in QUERIES if q.dashboard == "canary"}
    for where in ("panel 'Request rate' A", "panel 'Latency p99' A"):
        result = prometheus.query(by_title[where].promql)["data"]["result"]
        assert sorted(r["metric"]["destination_version"] for r in result) == ["canary", "ga"], where


@pytest.mark.integration
def test_a_query_for_another_namespace_returns_nothing(prometheus: Prometheus) -> None:
    # Proves the data check can fail: the same panel for a namespace without traffic is empty.
    (query,) = [q for q in QUERIES if q.where == "panel 'Request rate' A"]
    assert prometheus.query(query.promql.replace('"test"', '"elsewhere"'))["data"]["result"] == []


@pytest.mark.integration
@pytest.mark.parametrize(
    "broken",
    [
        'sum by (destination_version (rate(istio_requests_total{reporter="destination"}[1m]))',
        "histogram_quantile(0.99, rate(istio_request_duration_milliseconds_bucket[$__rate_interval]))",
        "rate(rollouts_verdicts_total[5m]) +",
    ],
)
def test_prometheus_rejects_broken_expressions(prometheus: Prometheus, broken: str) -> None:
    # Proves the check above can fail: an unbalanced parenthesis, an unsubstituted Grafana
    # variable, a dangling operator.
    assert prometheus.query(broken)["status"] == "error"
