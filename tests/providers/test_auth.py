"""SigV4 for Amazon Managed Service for Prometheus, against recorded responses on loopback.

The server side recomputes the signature with botocore from what arrived on the wire (method, raw
path and query, the signed headers, the body) and the secret it knows, as the service does, and
answers 403 when it does not match. It also checks the canonical query string independently: the
decoded parameters re-encoded per RFC 3986 must be exactly what was signed, which is what AWS
computes on its side (a ``+`` for a space would not match).
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from analyzer.prometheus import ISTIO, Subset
from analyzer.providers import (
    AwsSigV4,
    CredentialsError,
    PrometheusConfig,
    SigV4,
    connect_prometheus,
)
from analyzer.providers.auth import canonical_query_url
from tests.providers.servers import RecordedApi, Seen

RECORDED = Path(__file__).parent / "recorded"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLEsessiontoken"
REGION = "us-west-2"
WORKSPACE = "/workspaces/ws-2f6bd5a8-0c1e-4b7e-9d1a-3c2b9e4f7a10"
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<day>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


def rfc3986_query(raw_query: str) -> str:
    """The canonical query string AWS computes: decode, then encode each name and value per RFC 3986."""
    pairs = parse_qsl(raw_query, keep_blank_values=True)
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(pairs))


class SigV4Service:
    """Verifies SigV4 as AWS does; keeps the canonical requests it computed."""

    def __init__(self, secret: str = SECRET, token: str | None = SESSION_TOKEN) -> None:
        self.secret = secret
        self.token = token
        self.canonical: list[str] = []

    def __call__(self, seen: Seen):
        match = _AUTH.match(seen.headers.get("authorization", ""))
        if match is None:
            return 403, {"message": "Missing Authentication Token"}
        signed = match["signed"].split(";")
        raw = seen.headers[":raw-path"]
        request = AWSRequest(method=seen.method, url=f"http://{seen.headers['host']}{raw}", data=seen.body)
        for name in signed:
            request.headers[name] = seen.headers[name]
        request.context["timestamp"] = seen.headers["x-amz-date"]
        credentials = Credentials(match["key"], self.secret, self.token)
        signer = SigV4Auth(credentials, match["service"], match["region"])
        canonical = signer.canonical_request(request)
        self.canonical.append(canonical)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if expected != match["signature"] or match["region"] != REGION or match["service"] != "aps":
            return 403, {"message": "The request signature we calculated does not match the signature"}
        return None


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Credentials from the environment only: no shared files, no instance metadata lookups."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    return monkeypatch


def test_sigv4_signature_verifies_on_the_server_and_the_answer_is_read(aws_env, caplog):
    caplog.set_level(logging.DEBUG)
    service = SigV4Service()
    api = RecordedApi(check=service)
    api.load(RECORDED / "amp_query.json")
    subsets = [Subset("test", workload="podinfo-ga"), Subset("test", workload="podinfo-canary")]
    promql = ISTIO.render("requests", subsets, 60.0)  # spaces, quotes, braces, '=~' and '|'
    with api.running() as base:
        client = connect_prometheus(PrometheusConfig(base + WORKSPACE, sigv4=SigV4(REGION)))
        samples = client.query(promql, 1764583200.0)
    assert {s.labels["destination_workload"]: s.value for s in samples} == {
        "podinfo-ga": 1532.0,
        "podinfo-canary": 171.0,
    }
    seen = api.seen[-1]
    assert seen.query["query"] == [promql]  # Prometheus reads the same PromQL back
    lines = service.canonical[-1].split("\n")
    assert lines[0] == "GET" and lines[1] == WORKSPACE + "/api/v1/query"
    raw_query = urlsplit(seen.headers[":raw-path"]).query
    assert lines[2] == rfc3986_query(raw_query)  # what was signed is what AWS computes
    assert "+" not in raw_query and "%20" in raw_query  # spaces as AWS canonicalises them
    assert "x-amz-security-token" in seen.headers["authorization"]  # the session token is signed
    assert "host;x-amz-date;x-amz-security-token" in seen.headers["authorization"]
    assert SECRET not in caplog.text and SESSION_TOKEN not in caplog.text


def test_sigv4_with_the_wrong_secret_or_no_credentials_is_a_credentials_error(aws_env, caplog):
    caplog.set_level(logging.DEBUG)
    api = RecordedApi(check=SigV4Service(secret="not-the-secret"))
    api.load(RECORDED / "amp_query.json")
    with api.running() as base:
        client = connect_prometheus(PrometheusConfig(base + WORKSPACE, sigv4=SigV4(REGION)))
        with pytest.raises(CredentialsError, match=r"refused the credentials \(HTTP 403\)") as refused:
            client.query("up", time.time())
        assert client.requests_sent == 1
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            aws_env.delenv(name)
        with pytest.raises(CredentialsError, match="no AWS credentials for SigV4"):
            connect_prometheus(PrometheusConfig(base + WORKSPACE, sigv4=SigV4(REGION))).query("up", 0)
    assert SECRET not in str(refused.value) + caplog.text
    assert "Signature=" not in str(refused.value) + caplog.text


def test_canonical_query_url_encodes_as_aws_does():
    url = "https://h/p?query=sum+by+%28a%29+%28x%7Bb%3D~%22c%7Cd%22%7D%29&time=1.5"
    assert canonical_query_url(url) == (
        "https://h/p?query=sum%20by%20%28a%29%20%28x%7Bb%3D~%22c%7Cd%22%7D%29&time=1.5"
    )
    assert canonical_query_url("https://h/p") == "https://h/p"
    assert "SECRET" not in repr(AwsSigV4("eu-west-1"))
