"""The Prometheus provider against a real Prometheus, directly and behind a tenant gateway.

The gateway (:class:`~tests.providers.servers.TenantProxy`) is what Mimir, Cortex and Thanos users
put in front: HTTPS with client certificates from their CA, ``X-Scope-OrgID`` and a bearer token.
What the provider reads through it must equal what it reads from Prometheus directly.
"""

from __future__ import annotations

import logging
import time

import pytest

from analyzer.prometheus import MetricsReader, PrometheusClient, QueryTemplate, Subset, SubsetMetrics
from analyzer.providers import (
    CredentialsError,
    OAuth2,
    OAuth2ClientCredentials,
    PrometheusConfig,
    ProviderConfigError,
    ProviderError,
    ProviderUnavailableError,
    Tls,
    connect_prometheus,
)
from tests.providers.files import write
from tests.providers.servers import TenantProxy, TokenEndpoint

pytestmark = pytest.mark.integration

TOKEN = "bearer-9f2c41d7e0"  # what must never appear in a message or a log line
TENANT = "team-a"

# Prometheus' own request latency, one subset per handler: real histograms with real labels.
SELF = QueryTemplate(
    name="prometheus-self",
    selector={"namespace": "namespace", "service": "handler"},
    histogram="sum by ({{ by }}, le) (increase(prometheus_http_request_duration_seconds_bucket"
    "{ {{ selector }} }[{{ window }}]))",
    requests="sum by ({{ by }}) (increase(prometheus_http_request_duration_seconds_count"
    "{ {{ selector }} }[{{ window }}]))",
    errors="sum by ({{ by }}) (increase(prometheus_http_requests_total{ {{ selector }}, "
    'code=~"5.." }[{{ window }}]))',
)
SUBSETS = [Subset("test", service="/metrics"), Subset("test", service="/-/ready")]


def gateway_config(url: str, pki, token_file: str, **changes) -> PrometheusConfig:
    settings = {
        "url": url,
        "timeout": 5.0,
        "attempts": 3,
        "backoff": 0.01,
        "headers": {"X-Scope-OrgID": TENANT},
        "tls": Tls(ca_file=str(pki.ca), cert_file=str(pki.client_cert), key_file=str(pki.client_key)),
        "bearer_token_file": token_file,
    }
    settings.update(changes)
    return PrometheusConfig(**settings)


def no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


@pytest.fixture
def gateway(prometheus, pki):
    proxy = TenantProxy(prometheus.url, pki, TENANT, tokens={TOKEN})
    with proxy.running() as url:
        yield proxy, url


def test_through_tenant_gateway_with_mtls_equals_direct(prometheus, gateway, pki, tmp_path, caplog):
    proxy, url = gateway
    caplog.set_level(logging.DEBUG)
    client = connect_prometheus(gateway_config(url, pki, write(tmp_path / "token", TOKEN)))
    direct = PrometheusClient(prometheus.url)
    at = time.time() - 1
    query = 'up{job="self"}'
    assert client.query(query, at) == direct.query(query, at)
    assert [s.value for s in client.query(query, at)] == [1.0]

    # The whole reader path: histograms split per subset, through the gateway.
    end = time.time() - 1
    through = MetricsReader(client).read_window(SELF, SUBSETS, 30.0, end)
    straight = MetricsReader(direct).read_window(SELF, SUBSETS, 30.0, end)
    assert through == straight
    assert isinstance(through[SUBSETS[0]], SubsetMetrics) and through[SUBSETS[0]].requests > 0

    seen = proxy.seen[-1]
    assert seen.peer == "controller"  # the client certificate was presented and verified
    assert seen.headers["x-scope-orgid"] == TENANT
    assert seen.headers["authorization"] == f"Bearer {TOKEN}"
    assert seen.path == "/api/v1/query"
    no_secret(caplog.text, TOKEN)


def test_rotated_token_file_is_used_at_the_next_request(gateway, pki, tmp_path):
    proxy, url = gateway
    token_file = tmp_path / "token"
    client = connect_prometheus(gateway_config(url, pki, write(token_file, TOKEN)))
    assert client.query("up", time.time())
    proxy.tokens = {"rotated-77aa"}  # the old token is revoked, a new one written to the file
    write(token_file, "rotated-77aa")
    assert client.query("up", time.time())
    assert proxy.seen[-1].headers["authorization"] == "Bearer rotated-77aa"


def test_wrong_tenant_or_token_is_a_credentials_error_without_the_secret(gateway, pki, tmp_path, caplog):
    _, url = gateway
    caplog.set_level(logging.DEBUG)
    token_file = write(tmp_path / "token", TOKEN)
    other = connect_prometheus(gateway_config(url, pki, token_file, headers={"X-Scope-OrgID": "team-b"}))
    with pytest.raises(CredentialsError, match=r"refused the credentials \(HTTP 401\)") as tenant:
        other.query("up", time.time())
    wrong = "wrong-token-31337"
    stale = connect_prometheus(gateway_config(url, pki, write(tmp_path / "stale", wrong)))
    with pytest.raises(CredentialsError) as token:
        MetricsReader(stale).read_window(SELF, SUBSETS, 30.0, time.time())
    assert "prometheus-self (histogram)" in str(token.value)  # names the metric it was reading
    assert other.requests_sent == 1 and stale.requests_sent == 1  # refused credentials: no retries
    no_secret(str(tenant.value) + str(token.value) + caplog.text, TOKEN, wrong)  # the proxy echoed it


def test_tls_problems_are_configuration_errors(gateway, pki, tmp_path):
    _, url = gateway
    token_file = write(tmp_path / "token", TOKEN)
    untrusted = connect_prometheus(gateway_config(url, pki, token_file, tls=Tls()))  # system CAs only
    with pytest.raises(ProviderConfigError, match=r"TLS with Prometheus at https://127\.0\.0\.1"):
        untrusted.query("up", time.time())
    stranger = Tls(ca_file=str(pki.ca), cert_file=str(pki.stranger_cert), key_file=str(pki.stranger_key))
    for refused in (stranger, Tls(ca_file=str(pki.ca))):  # a client certificate of another CA, or none
        with pytest.raises(ProviderConfigError, match="TLS with Prometheus"):
            connect_prometheus(gateway_config(url, pki, token_file, tls=refused)).query("up", 0)
    missing = Tls(ca_file=str(pki.ca), cert_file=str(tmp_path / "nope.pem"), key_file=str(pki.client_key))
    with pytest.raises(ProviderConfigError, match=r"nope\.pem"):
        connect_prometheus(gateway_config(url, pki, token_file, tls=missing)).query("up", 0)
    with pytest.raises(CredentialsError, match=r"cannot read bearer token from .*absent"):
        connect_prometheus(gateway_config(url, pki, str(tmp_path / "absent"))).query("up", 0)


def test_429_and_5xx_are_retried_with_backoff_then_a_hold(gateway, pki, tmp_path):
    proxy, url = gateway
    token_file = write(tmp_path / "token", TOKEN)
    client = connect_prometheus(gateway_config(url, pki, token_file))
    proxy.fail_next = [429, 503]
    assert [s.value for s in client.query('up{job="self"}', time.time() - 1)] == [1.0]
    assert client.requests_sent == 3

    proxy.fail_next = [502, 503, 429]
    expected = r"prometheus-self \(histogram\).*HTTP Status Code 429"
    with pytest.raises(ProviderUnavailableError, match=expected):
        MetricsReader(client).read_window(SELF, SUBSETS, 30.0, time.time())
    assert client.requests_sent == 6


def test_oauth2_token_is_cached_renewed_before_expiry_and_on_401(prometheus, pki, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "client-secret-5d8e"
    endpoint = TokenEndpoint(pki, client_id="rollouts", client_secret=secret, expires_in=300)
    proxy = TenantProxy(prometheus.url, pki, TENANT)
    endpoint.on_issue = proxy.tokens.add
    now = [1000.0]
    with endpoint.running() as token_url, proxy.running() as url:
        auth = OAuth2ClientCredentials(
            token_url,
            "rollouts",
            write(tmp_path / "secret", secret),
            scopes=("metrics:read", "tenant:team-a"),
            verify=str(pki.ca),
            clock=lambda: now[0],
        )
        tls = Tls(ca_file=str(pki.ca), cert_file=str(pki.client_cert), key_file=str(pki.client_key))
        client = PrometheusClient(
            url, timeout=5, headers={"X-Scope-OrgID": TENANT}, auth=auth, session=tls.session()
        )
        for _ in range(3):
            assert client.query("up", time.time())
        assert endpoint.issued == ["token-1"]  # cached
        sent = endpoint.seen[0]
        assert sent.query["grant_type"] == ["client_credentials"]
        assert sent.query["scope"] == ["metrics:read tenant:team-a"]
        assert {s.headers["authorization"] for s in proxy.seen} == {"Bearer token-1"}

        now[0] += 300 - 29  # inside the renewal margin before expiry
        assert client.query("up", time.time())
        assert endpoint.issued == ["token-1", "token-2"]
        assert proxy.seen[-1].headers["authorization"] == "Bearer token-2"

        proxy.tokens.clear()  # revoked on the server's side: 401, a new token, the request again
        assert client.query("up", time.time())
        assert endpoint.issued[-1] == "token-3"
        assert [s.headers["authorization"] for s in proxy.seen[-2:]] == ["Bearer token-2", "Bearer token-3"]

        endpoint.on_issue = lambda token: None  # new tokens are no longer accepted: a clear error
        proxy.tokens.clear()
        with pytest.raises(CredentialsError, match=r"refused the credentials \(HTTP 401\)"):
            client.query("up", time.time())
    no_secret(caplog.text, secret, "token-1", "token-2", "token-3")


def test_oauth2_refused_client_and_plain_http_are_credentials_errors(pki, tmp_path):
    endpoint = TokenEndpoint(pki, client_id="rollouts", client_secret="right-secret")
    with endpoint.running() as token_url:
        wrong = "wrong-secret-0aa1"
        config = PrometheusConfig(
            "https://127.0.0.1:1",
            tls=Tls(ca_file=str(pki.ca)),
            oauth2=OAuth2(token_url, "rollouts", write(tmp_path / "secret", wrong)),
        )
        with pytest.raises(CredentialsError, match="refused client 'rollouts': invalid_client") as refused:
            connect_prometheus(config).query("up", 0)
        assert wrong not in str(refused.value)
    plain = OAuth2ClientCredentials("http://127.0.0.1:1/token", "rollouts", write(tmp_path / "s", "x"))
    with pytest.raises(CredentialsError, match="insecure_transport"):
        plain.token()


def test_config_refuses_two_auth_schemes_and_authorization_headers(tmp_path):
    with pytest.raises(ProviderError, match="choose one way to authenticate"):
        PrometheusConfig("http://x", bearer_token_file="a", oauth2=OAuth2("https://t", "c", "s"))
    with pytest.raises(ProviderError, match="Authorization comes from"):
        PrometheusConfig("http://x", headers={"authorization": "Bearer inline"})
    with pytest.raises(ProviderError, match="certFile and keyFile go together"):
        Tls(cert_file="c.pem")
