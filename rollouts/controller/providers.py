"""From the spec's backend sections to :mod:`analyzer.providers` clients.

``analysis.prometheus`` becomes a :class:`~analyzer.providers.PrometheusConfig` (and its client),
``analysis.datadog`` a :class:`~analyzer.providers.DatadogClient`. Nothing is read or sent here:
secrets are read by the clients when a request goes out. Must never: read a secret into a config.
"""

from __future__ import annotations

from analyzer.prometheus import PrometheusClient
from analyzer.providers import (
    DatadogClient,
    DatadogConfig,
    OAuth2,
    PrometheusConfig,
    SigV4,
    Tls,
    connect_prometheus,
)
from rollouts.spec_controller import PrometheusSpec
from rollouts.spec_providers import DatadogSpec


def prometheus_config(spec: PrometheusSpec) -> PrometheusConfig:
    """The provider config of ``analysis.prometheus``."""
    oauth2 = spec.oauth2
    sigv4 = spec.sigv4
    return PrometheusConfig(
        url=spec.url,
        timeout=spec.timeout,
        headers=dict(spec.headers),
        tls=Tls(ca_file=spec.tls.ca_file, cert_file=spec.tls.cert_file, key_file=spec.tls.key_file),
        bearer_token_file=spec.bearer_token_file,
        username=spec.username,
        password_file=spec.password_file,
        oauth2=None
        if oauth2 is None
        else OAuth2(
            token_url=oauth2.token_url,
            client_id=oauth2.client_id,
            client_secret_file=oauth2.client_secret_file,
            scopes=tuple(oauth2.scopes),
            endpoint_params=dict(oauth2.endpoint_params),
        ),
        sigv4=None if sigv4 is None else SigV4(sigv4.region, service=sigv4.service, profile=sigv4.profile),
    )


def prometheus_client(spec: PrometheusSpec) -> PrometheusClient:
    """The client of ``analysis.prometheus`` (no request is sent yet)."""
    return connect_prometheus(prometheus_config(spec))


def datadog_client(spec: DatadogSpec) -> DatadogClient:
    """The client of ``analysis.datadog`` (no request is sent yet)."""
    return DatadogClient(
        DatadogConfig(
            api_key_file=spec.api_key_file,
            application_key_file=spec.application_key_file,
            url=spec.url,
            timeout=spec.timeout,
        )
    )
