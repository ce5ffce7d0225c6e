"""Every expression of the dashboards is valid PromQL for a real Prometheus.

This runs against an empty Prometheus, so it proves the expressions parse and evaluate, not that
they return data. Once the local stack can be started in a test, give ``run_prometheus`` its scrape
configuration (or use the stack's Prometheus) and assert ``answer["data"]["result"]`` is non-empty
for each of ``dashboard_queries()``: the collection and the query helper are shared for that.
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
