"""Every expression of the dashboards is valid PromQL for a real Prometheus, and returns data.

The data is real (see ``conftest.live``): the local stack's Prometheus scrapes the local mesh (Istio
telemetry of traffic sent through it at the committed split), the GA and canary services, and the
controller's ``/metrics`` while its state machine runs one rollout on the stack's Git repo.
"""

from __future__ import annotations

import math

import pytest

from tests.grafana.live import TOTAL, Live
from tests.grafana.panels import DashboardQuery, dashboard_queries
from tests.grafana.promserver import Prometheus

QUERIES = dashboard_queries()


def test_the_dashboards_have_queries() -> None:
    wheres = {(q.dashboard, q.where.split(" ")[0]) for q in QUERIES}
    assert {("canary", "panel"), ("canary", "variable"), ("canary", "annotation")} <= wheres
    assert {("controller", "panel"), ("controller", "variable")} <= wheres
    assert any("rollouts_pipeline_revision" in q.expr for q in QUERIES if q.where.startswith("panel"))
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
    # NaN is what histogram_quantile and 0/0 give without observations: not data either.
    values = [float(r["value"][1]) for r in answer["data"]["result"]]
    assert any(math.isfinite(v) for v in values), f"{query}: only {values}\n{query.promql}"


@pytest.mark.integration
def test_the_controller_really_ran_the_rollout(live: Live) -> None:
    # The data above comes from these ticks: the start commit, the sync gate, a judged window.
    actions = [t.action for t in live.ticks]
    assert actions[0] == "start" and live.ticks[0].commit
    # One window judged: usually a hold, but both subsets answer 10 % of the bursts with 500s, and on
    # a loaded machine one window's few canary requests can carry enough of them for a rollback
    # (seen once in a full parallel run); either is the judge at work on real data.
    assert actions[-1] in ("hold", "rollback") and live.ticks[-1].windows >= 1, live.ticks
    assert {subset for subset, _ in live.served} == {"ga", "canary"}
    # The pipeline job read both environments: staging runs 6.5.1, nothing finalized to hand over.
    assert live.pipeline.reasons[0].startswith("staging -> production: idle"), live.pipeline
    assert {status for _, status in live.served} == {200, 500}
    # What Prometheus holds is exactly the traffic that went through the mesh, per subset and code.
    totals = live.prometheus.query(f"sum by (destination_version, response_code) ({TOTAL})")["data"]["result"]
    scraped = {(r["metric"]["destination_version"], int(r["metric"]["response_code"])): float(r["value"][1])
               for r in totals}  # fmt: skip
    assert scraped == {key: float(n) for key, n in live.served.items()}


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
