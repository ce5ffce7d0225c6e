"""The spec's metric backends: TLS, OAuth2 and SigV4 for ``analysis.prometheus``, and ``analysis.datadog``.

```yaml
spec:
  analysis:
    prometheus:                       # any Prometheus-compatible API
      url: https://mimir.example/prometheus
      headers: {X-Scope-OrgID: team-a}                      # Mimir, Cortex, Thanos tenants
      tls: {caFile: /etc/prom/ca.pem, certFile: /etc/prom/tls.crt, keyFile: /etc/prom/tls.key}
      bearerTokenFile: /var/run/secrets/prom/token          # or one of:
      # oauth2: {tokenUrl: https://idp/token, clientId: rollouts, clientSecretFile: /s/secret, scopes: [read]}
      # sigv4: {region: us-west-2}                          # Amazon Managed Service for Prometheus
    datadog:                          # custom metrics with provider: datadog
      url: https://api.datadoghq.eu
      apiKeyFile: /var/run/secrets/datadog/api-key
      applicationKeyFile: /var/run/secrets/datadog/app-key
```

Secrets are only ever file paths here (read when a request is sent, so rotation works without a
restart); the models become :mod:`analyzer.providers` configs in
:mod:`rollouts.controller.providers`. Must never: accept a secret inline.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")  # RFC 9110 token
_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "dd-api-key", "dd-application-key"}
)
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


def _https(value: str) -> str:
    if not re.match(r"^https://[^/\s@]+", value):
        raise ValueError("must be an https:// URL without credentials")
    return value


def _headers(value: dict[str, str]) -> dict[str, str]:
    for name, text in value.items():
        if not _HEADER_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid HTTP header name")
        if any(c in text for c in "\r\n\0"):
            raise ValueError(f"header {name}: the value must not contain line breaks")
        if name.lower() in {
            "authorization",
            "proxy-authorization",
            "cookie",
            "dd-api-key",
            "dd-application-key",
        }:
            raise ValueError(
                f"header {name}: credentials come from files (bearerTokenFile, passwordFile, oauth2, "
                "sigv4), never from the spec"
            )
    return value


def _region(value: str) -> str:
    if not _REGION.match(value):
        raise ValueError(f"{value!r} is not an AWS region (e.g. us-west-2)")
    return value


Headers = Annotated[dict[str, str], AfterValidator(_headers)]


class TlsSpec(_Model):
    """TLS towards the backend (PEM files): a CA to trust, a client certificate for mutual TLS."""

    ca_file: str | None = Field(
        default=None, alias="caFile", description="CA bundle to verify the server with (default: system CAs)."
    )
    cert_file: str | None = Field(
        default=None, alias="certFile", description="Client certificate (mutual TLS), with `keyFile`."
    )
    key_file: str | None = Field(default=None, alias="keyFile", description="The client certificate's key.")

    @model_validator(mode="after")
    def _pair(self) -> TlsSpec:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("certFile and keyFile go together")
        return self


class OAuth2Spec(_Model):
    """OAuth 2.0 client credentials (the token is cached until it expires and renewed on a 401)."""

    token_url: Annotated[str, AfterValidator(_https)] = Field(
        alias="tokenUrl", description="The token endpoint (HTTPS)."
    )
    client_id: str = Field(alias="clientId", min_length=1, description="The client ID.")
    client_secret_file: str = Field(alias="clientSecretFile", description="File holding the client secret.")
    scopes: list[str] = Field(default_factory=list, description="Scopes to ask for.")
    endpoint_params: dict[str, str] = Field(
        default_factory=dict, alias="endpointParams", description="Extra form fields for the token request."
    )


class SigV4Spec(_Model):
    """AWS SigV4 (Amazon Managed Service for Prometheus); credentials from the usual AWS chain
    (environment, shared files, IRSA / pod identity, instance role)."""

    region: Annotated[str, AfterValidator(_region)] = Field(description="The workspace's AWS region.")
    service: str = Field(default="aps", description="The signing name of the service.")
    profile: str | None = Field(default=None, description="A profile of the shared AWS files.")


class DatadogSpec(_Model):
    """Datadog's metrics query API (custom metrics with `provider: datadog`); keys from files."""

    url: Annotated[str, AfterValidator(_https)] = Field(
        default="https://api.datadoghq.com",
        description="The API of your Datadog site (e.g. `https://api.datadoghq.eu`).",
    )
    api_key_file: str = Field(alias="apiKeyFile", description="File holding the API key.")
    application_key_file: str = Field(
        alias="applicationKeyFile", description="File holding the application key."
    )
    timeout: float = Field(default=10.0, gt=0, description="Timeout of one query, in seconds.")
