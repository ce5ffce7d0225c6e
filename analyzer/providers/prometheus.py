"""The Prometheus provider: any Prometheus-compatible HTTP query API, with the auth it needs.

One :class:`PrometheusConfig` describes where the API is and how to reach it; :func:`connect`
returns the :class:`~analyzer.prometheus.PrometheusClient` for it. What users run:

* Prometheus, VictoriaMetrics: ``http://prometheus:9090``; no auth, bearer or basic.
* Thanos, Grafana Mimir, Cortex: the query frontend (Mimir: ``.../prometheus``), with
  ``headers: {X-Scope-OrgID: <tenant>}``, often with mutual TLS (:class:`Tls`).
* Amazon Managed Service for Prometheus:
  ``https://aps-workspaces.<region>.amazonaws.com/workspaces/<id>``, signed with :class:`SigV4`.
* Google Managed Service for Prometheus: :data:`GMP_URL` for the project, with a bearer token file
  holding an OAuth2 access token that something keeps fresh on disk (the file is read at every
  request).
* anything behind an OAuth2 proxy: :class:`OAuth2` client credentials.

Must never: hold a secret in a config object (they hold file paths; secrets are read when a
request is sent), or write PromQL (templates live in :mod:`analyzer.prometheus.templates`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import requests

from analyzer.providers.auth import AwsSigV4, BasicAuthFile, BearerTokenFile, OAuth2ClientCredentials
from analyzer.providers.base import ProviderConfigError

if TYPE_CHECKING:  # analyzer.prometheus.client imports analyzer.providers.base: import it late
    from analyzer.prometheus.client import PrometheusClient

#: Google Managed Service for Prometheus: the Prometheus-compatible query API of a project.
GMP_URL = "https://monitoring.googleapis.com/v1/projects/{project}/location/global/prometheus"


@dataclass(frozen=True)
class Tls:
    """TLS towards the backend: a CA bundle to trust instead of the system's, and a client
    certificate and key for mutual TLS (PEM files)."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ProviderConfigError("tls: certFile and keyFile go together")

    def session(self) -> requests.Session:
        """A ``requests.Session`` verifying with ``ca_file`` (or the system CAs) and presenting
        the client certificate, if any."""
        session = requests.Session()
        session.verify = self.ca_file or True
        if self.cert_file is not None and self.key_file is not None:
            session.cert = (self.cert_file, self.key_file)
        return session


@dataclass(frozen=True)
class OAuth2:
    """OAuth 2.0 client credentials (as Prometheus' own ``oauth2`` block): the secret from a file."""

    token_url: str
    client_id: str
    client_secret_file: str
    scopes: tuple[str, ...] = ()
    endpoint_params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SigV4:
    """AWS SigV4 signing (Amazon Managed Service for Prometheus: service ``aps``)."""

    region: str
    service: str = "aps"
    profile: str | None = None


@dataclass(frozen=True)
class PrometheusConfig:
    """Where a Prometheus-compatible API is and how to authenticate; at most one of
    ``bearer_token_file``, ``username``/``password_file``, ``oauth2`` and ``sigv4``."""

    url: str
    timeout: float = 10.0
    attempts: int = 3
    backoff: float = 0.2
    headers: Mapping[str, str] = field(default_factory=dict)
    tls: Tls = Tls()
    bearer_token_file: str | None = None
    username: str | None = None
    password_file: str | None = None
    oauth2: OAuth2 | None = None
    sigv4: SigV4 | None = None

    def __post_init__(self) -> None:
        chosen = [
            name
            for name, value in (
                ("bearerTokenFile", self.bearer_token_file),
                ("passwordFile", self.password_file),
                ("oauth2", self.oauth2),
                ("sigv4", self.sigv4),
            )
            if value is not None
        ]
        if len(chosen) > 1:
            raise ProviderConfigError(f"choose one way to authenticate, not {' and '.join(chosen)}")
        if (self.username is None) != (self.password_file is None):
            raise ProviderConfigError("username and passwordFile go together")
        if any(name.lower() == "authorization" for name in self.headers):
            raise ProviderConfigError(
                "headers: Authorization comes from bearerTokenFile, passwordFile, oauth2 or sigv4, "
                "not from a header written into the spec"
            )

    def auth(self) -> requests.auth.AuthBase | None:
        """The ``requests`` auth object for the configured scheme, or None."""
        if self.bearer_token_file is not None:
            return BearerTokenFile(self.bearer_token_file)
        if self.username is not None and self.password_file is not None:
            return BasicAuthFile(self.username, self.password_file)
        if self.oauth2 is not None:
            verify: bool | str = self.tls.ca_file or True
            cert = None
            if self.tls.cert_file is not None and self.tls.key_file is not None:
                cert = (self.tls.cert_file, self.tls.key_file)
            return OAuth2ClientCredentials(
                self.oauth2.token_url,
                self.oauth2.client_id,
                self.oauth2.client_secret_file,
                scopes=self.oauth2.scopes,
                endpoint_params=dict(self.oauth2.endpoint_params),
                timeout=self.timeout,
                verify=verify,
                cert=cert,
            )
        if self.sigv4 is not None:
            return AwsSigV4(self.sigv4.region, service=self.sigv4.service, profile=self.sigv4.profile)
        return None


def connect(config: PrometheusConfig) -> PrometheusClient:
    """The client for ``config`` (no request is sent until the first query)."""
    from analyzer.prometheus.client import PrometheusClient

    return PrometheusClient(
        config.url,
        timeout=config.timeout,
        attempts=config.attempts,
        backoff=config.backoff,
        headers=dict(config.headers) or None,
        auth=config.auth(),
        session=config.tls.session(),
    )


def gmp_url(project: str) -> str:
    """The Prometheus-compatible URL of Google Managed Service for Prometheus for ``project``."""
    return GMP_URL.format(project=project)
