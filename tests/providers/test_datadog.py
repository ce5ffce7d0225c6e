"""The Datadog provider against recorded ``/api/v1/query`` responses served on loopback.

The server checks the keys that were sent (``DD-API-KEY``, ``DD-APPLICATION-KEY``) and answers 403
as Datadog does when they are wrong; the test reads back what was asked (``from``, ``to``, query).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from analyzer.providers import (
    CredentialsError,
    DatadogClient,
    DatadogConfig,
    ProviderQueryError,
    ProviderUnavailableError,
)
from tests.providers.files import write
from tests.providers.servers import RecordedApi, Seen

RECORDED = Path(__file__).parent / "recorded"
API_KEY = "dd-api-0123456789abcdef0123456789abcdef"
APP_KEY = "dd-app-fedcba9876543210fedcba9876543210fedcba98"
QUERY = (
    "sum:queue.lag{kube_namespace:test,version IN (ga,canary)} by {kube_namespace,version}.rollup(avg, 60)"
)
END = 1764583200.0


def keys_checked(seen: Seen):
    if seen.headers.get("dd-api-key") != API_KEY or seen.headers.get("dd-application-key") != APP_KEY:
        return 403, {"errors": ["Forbidden"]}
    return None


@pytest.fixture
def datadog():
    api = RecordedApi(check=keys_checked)
    api.load(RECORDED / "datadog_query.json")
    with api.running() as url:
        yield api, url


def client_for(url: str, tmp_path, api_key: str = API_KEY, **changes) -> DatadogClient:
    settings = {
        "api_key_file": write(tmp_path / "api-key", api_key),
        "application_key_file": write(tmp_path / "app-key", APP_KEY),
        "url": url,
        "timeout": 5.0,
        "backoff": 0.01,
    }
    settings.update(changes)
    return DatadogClient(DatadogConfig(**settings))


def test_series_become_one_sample_per_tag_set_with_the_last_point(datadog, tmp_path, caplog):
    api, url = datadog
    caplog.set_level(logging.DEBUG)
    samples = client_for(url, tmp_path).query(QUERY, END, window=60.0)
    by_version = {s.labels["version"]: (s.labels, s.value) for s in samples}
    assert by_version == {
        "ga": ({"kube_namespace": "test", "version": "ga"}, 0.41),  # the trailing null is skipped
        "canary": ({"kube_namespace": "test", "version": "canary"}, 0.74),
    }  # the series with only null points is no data, not zero
    seen = api.seen[-1]
    assert seen.path == "/api/v1/query"
    assert seen.query == {"from": ["1764583140"], "to": ["1764583200"], "query": [QUERY]}
    assert API_KEY not in caplog.text and APP_KEY not in caplog.text


def test_429_and_5xx_are_retried_then_unavailable(datadog, tmp_path):
    api, url = datadog
    client = client_for(url, tmp_path)
    api.statuses = [429, 503]
    assert len(client.query(QUERY, END, window=60.0)) == 2
    assert client.requests_sent == 3
    api.statuses = [500, 502, 429]
    with pytest.raises(ProviderUnavailableError, match="answered HTTP 429"):
        client.query(QUERY, END, window=60.0)
    assert client.requests_sent == 6


def test_wrong_or_missing_keys_are_credentials_errors_without_the_keys(datadog, tmp_path, caplog):
    _, url = datadog
    caplog.set_level(logging.DEBUG)
    wrong = "dd-api-wrong-9999999999999999999999"
    client = client_for(url, tmp_path, api_key=wrong)
    with pytest.raises(CredentialsError, match=r"refused the API or application key \(HTTP 403\)") as refused:
        client.query(QUERY, END, window=60.0)
    assert client.requests_sent == 1  # not retried
    text = str(refused.value) + repr(client) + caplog.text
    assert wrong not in text and APP_KEY not in text
    with pytest.raises(CredentialsError, match=r"cannot read Datadog API key from .*missing"):
        client_for(url, tmp_path, api_key_file=str(tmp_path / "missing")).query(QUERY, END, window=60.0)


def test_rejected_and_failed_queries_carry_datadogs_message(datadog, tmp_path):
    api, url = datadog
    client = client_for(url, tmp_path)
    api.statuses, api.status_body = [400], {"errors": ["Error parsing query: unexpected '}' at 12"]}
    with pytest.raises(ProviderQueryError, match=r"HTTP 400.*Error parsing query: unexpected"):
        client.query("sum:x{}}", END, window=60.0)
    api.responses[("GET", "/api/v1/query")] = {"status": "error", "error": "Rollup interval too small"}
    with pytest.raises(ProviderQueryError, match="could not run the query: Rollup interval too small"):
        client.query(QUERY, END, window=60.0)
    api.responses[("GET", "/api/v1/query")] = {"status": "ok", "series": [{"pointlist": [[1, "x"]]}]}
    with pytest.raises(ProviderQueryError, match="malformed Datadog point"):
        client.query(QUERY, END, window=60.0)
    with pytest.raises(ProviderQueryError, match="positive window"):
        client.query(QUERY, END)
