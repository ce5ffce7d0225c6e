"""The Prometheus source's configuration: templates, subsets, credentials."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import requests

from analyzer.prometheus import MetricsReader, PrometheusClient, Subset
from rollouts.controller.machine import MetricsUnavailableError
from rollouts.controller.providers import prometheus_config
from rollouts.controller.source import PrometheusSource, subsets_of, template_of
from rollouts.spec_controller import PrometheusSpec
from tests.controller.machinery import rollout_spec
from tests.support import free_port


def test_default_subsets_follow_the_guide_naming() -> None:
    spec = rollout_spec("/x.git")
    stable, canary = subsets_of(spec)
    assert stable == Subset(namespace="test", workload="podinfo-ga", version="ga", service="podinfo")
    assert canary == Subset(namespace="test", workload="podinfo-canary", version="canary", service="podinfo")
    assert template_of(spec).name == "istio"
    own = rollout_spec("/x.git", analysis={"subsets": {"canary": {"workload": "podinfo-next"}}})
    assert subsets_of(own)[1].workload == "podinfo-next"


def test_a_template_of_its_own() -> None:
    template = {
        "selector": {"namespace": "kubernetes_namespace", "version": "version"},
        "histogram": "sum by ({{ by }}, le) "
        "(increase(http_request_duration_seconds_bucket{ {{ selector }} }[{{ window }}]))",
        "requests": "sum by ({{ by }}) (increase(http_requests_total{ {{ selector }} }[{{ window }}]))",
        "errors": "sum by ({{ by }}) "
        '(increase(http_requests_total{ {{ selector }}, status=~"5.." }[{{ window }}]))',
    }
    spec = rollout_spec("/x.git", analysis={"metrics": template})
    assert template_of(spec).name == "rollout:test/podinfo"
    with pytest.raises(Exception, match="missing variable"):
        rollout_spec("/x.git", analysis={"metrics": {**template, "errors": "sum(http_requests_total)"}})


def authorization(spec: PrometheusSpec) -> str | None:
    """The Authorization header the spec's Prometheus client sends (read from the files now)."""
    auth = prometheus_config(spec).auth()
    if auth is None:
        return None
    request = auth(requests.Request("GET", "http://prometheus:9090/api/v1/query").prepare())
    return request.headers.get("Authorization")


def test_credentials_come_from_files(tmp_path: Path) -> None:
    token, password = tmp_path / "token", tmp_path / "password"
    token.write_text("s3cret-token\n")
    password.write_text("hunter2\n")
    assert (
        authorization(PrometheusSpec.model_validate({"bearerTokenFile": str(token)})) == "Bearer s3cret-token"
    )
    basic = authorization(
        PrometheusSpec.model_validate({"username": "rollouts", "passwordFile": str(password)})
    )
    assert basic == "Basic " + base64.b64encode(b"rollouts:hunter2").decode()
    assert authorization(PrometheusSpec()) is None


def test_prometheus_down_is_unavailable_and_not_hammered() -> None:
    client = PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout=0.5, attempts=1)
    source = PrometheusSource(MetricsReader(client))
    spec = rollout_spec("/x.git")
    source.register(spec)
    for _ in range(3):
        with pytest.raises(MetricsUnavailableError, match="did not answer"):
            source.window(spec, 0.0, 10.0, 10)
    assert client.requests_sent == 1  # the failed round is remembered for a moment
    unknown = rollout_spec("/y.git").model_copy(
        update={"metadata": spec.metadata.model_copy(update={"name": "x"})}
    )
    with pytest.raises(MetricsUnavailableError, match="not registered"):
        source.window(unknown, 0.0, 10.0, 10)
