"""The spec's backend sections, as the controller uses them: validation, and a real read through the
controller's metric source behind a tenant gateway with mutual TLS."""

from __future__ import annotations

import time

import pytest

from analyzer import Policy
from analyzer.providers import OAuth2, SigV4, Tls
from rollouts.controller.custom import CustomSource, wiring
from rollouts.controller.machine import MetricsUnavailableError
from rollouts.controller.providers import datadog_client, prometheus_config
from rollouts.controller.source import PrometheusSource
from rollouts.spec import SpecError
from rollouts.spec_controller import PrometheusSpec
from rollouts.spec_providers import DatadogSpec
from tests.controller.machinery import rollout_spec
from tests.controller.test_custom import LAG
from tests.providers.files import write
from tests.providers.servers import TenantProxy

TOKEN = "wired-token-6b1f"


def test_spec_sections_become_provider_configs():
    spec = PrometheusSpec.model_validate(
        {
            "url": "https://aps-workspaces.us-west-2.amazonaws.com/workspaces/ws-1",
            "headers": {"X-Scope-OrgID": "team-a"},
            "tls": {"caFile": "/ca.pem", "certFile": "/c.pem", "keyFile": "/k.pem"},
            "sigv4": {"region": "us-west-2"},
            "timeout": "3s",
        }
    )
    config = prometheus_config(spec)
    assert config.sigv4 == SigV4("us-west-2")
    assert config.tls == Tls("/ca.pem", "/c.pem", "/k.pem")
    assert dict(config.headers) == {"X-Scope-OrgID": "team-a"} and config.timeout == 3.0
    oauth = prometheus_config(
        PrometheusSpec.model_validate(
            {
                "oauth2": {
                    "tokenUrl": "https://idp/token",
                    "clientId": "r",
                    "clientSecretFile": "/s",
                    "scopes": ["a"],
                }
            }
        )
    )
    assert oauth.oauth2 == OAuth2("https://idp/token", "r", "/s", ("a",), {})
    dd = datadog_client(DatadogSpec.model_validate({"apiKeyFile": "/a", "applicationKeyFile": "/b"}))
    assert dd.url == "https://api.datadoghq.com" and dd.dialect == "datadog"


@pytest.mark.parametrize(
    ("prometheus", "message"),
    [
        ({"headers": {"Authorization": "Bearer inline"}}, "credentials come from files"),
        ({"headers": {"X-Bad\nName": "x"}}, "not a valid HTTP header name"),
        ({"bearerTokenFile": "/t", "sigv4": {"region": "us-west-2"}}, "use one of bearerTokenFile"),
        ({"sigv4": {"region": "mars"}}, "not an AWS region"),
        ({"oauth2": {"tokenUrl": "http://idp/token", "clientId": "r", "clientSecretFile": "/s"}}, "https://"),
        ({"tls": {"certFile": "/c.pem"}}, "certFile and keyFile go together"),
    ],
)
def test_bad_backend_sections_are_spec_errors_naming_the_field(prometheus, message):
    with pytest.raises(SpecError, match=message) as error:
        rollout_spec("/x.git", analysis={"prometheus": prometheus})
    assert "prometheus" in str(error.value)
    assert "inline" not in str(error.value)


@pytest.mark.integration
def test_controller_source_reads_through_the_tenant_gateway(prometheus, pki, tmp_path):
    proxy = TenantProxy(prometheus.url, pki, "team-a", tokens={TOKEN})
    with proxy.running() as url:
        analysis = {
            "metrics": "podinfo",
            "prometheus": {
                "url": url,
                "headers": {"X-Scope-OrgID": "team-a"},
                "tls": {
                    "caFile": str(pki.ca),
                    "certFile": str(pki.client_cert),
                    "keyFile": str(pki.client_key),
                },
                "bearerTokenFile": write(tmp_path / "token", TOKEN),
            },
        }
        rollout = rollout_spec("/x.git", analysis=analysis)
        source = PrometheusSource.for_spec(rollout.spec.analysis.prometheus)
        source.register(rollout)
        end = time.time()
        with pytest.raises(MetricsUnavailableError, match="no data for GA"):  # nothing serves podinfo here
            source.window(rollout, end - 10, end, 10)
        assert [s.headers["x-scope-orgid"] for s in proxy.seen] == ["team-a"] * 3  # one round: 3 queries
        assert {s.peer for s in proxy.seen} == {"controller"}
        proxy.tokens.clear()
        with pytest.raises(MetricsUnavailableError, match="refused the credentials") as refused:
            source.window(rollout, end, end + 10, 10)
        assert TOKEN not in str(refused.value)


@pytest.mark.integration
def test_one_query_per_metric_and_round_for_many_rollouts(prometheus):
    # Each rollout has three custom metrics; two of them are the same query in every rollout.
    source = PrometheusSource.for_spec(
        rollout_spec("/x.git").spec.analysis.prometheus.model_copy(update={"url": prometheus.url})
    )
    shared: dict = {}
    rollouts = []
    for i in range(20):
        other = {
            **LAG,
            "name": "own-lag",
            "query": LAG["query"].replace("max_over_time", "max_over_time") + f" * {i + 1}",
        }
        spec = rollout_spec(
            "/x.git",
            analysis={"metrics": ["podinfo", LAG, {**LAG, "name": "lag-too", "margin": 0.2}, other]},
        )
        spec = spec.model_copy(update={"metadata": spec.metadata.model_copy(update={"name": f"app{i}"})})
        made, _ = wiring(shared, source, spec, Policy())
        assert isinstance(made, CustomSource)
        rollouts.append(spec)
    custom = next(iter(shared.values()))
    client = source.reader.client
    before = client.requests_sent
    end = time.time()
    readings = [custom.readings(r, 10.0, end) for r in rollouts]
    # queue-lag and lag-too are one query (same text); own-lag differs per rollout: 1 + 20 queries
    assert client.requests_sent - before == 21
    assert all(len(r) == 3 for r in readings)
    assert readings[0][0].why.startswith("queue lag: no series")  # nothing exports it here: a hold
