"""Metric providers: the backends users run, behind one small interface (:class:`Provider`).

One file per provider, as the route editors are: :mod:`~analyzer.providers.prometheus` (any
Prometheus-compatible API: Prometheus, Thanos, Mimir, Cortex, VictoriaMetrics, Amazon's and
Google's managed services) and :mod:`~analyzer.providers.datadog`. How requests authenticate is
:mod:`~analyzer.providers.auth`; what can go wrong is :mod:`~analyzer.providers.base`.

>>> from analyzer.providers import PrometheusConfig, Tls, connect_prometheus
>>> client = connect_prometheus(PrometheusConfig(
...     "https://mimir.example/prometheus", headers={"X-Scope-OrgID": "team-a"},
...     tls=Tls(ca_file="ca.pem", cert_file="client.pem", key_file="client-key.pem")))

See docs/providers.md. Must never: hold or print a secret; the configs hold file paths only.
"""

from analyzer.providers.auth import AwsSigV4, BasicAuthFile, BearerTokenFile, OAuth2ClientCredentials
from analyzer.providers.base import (
    CredentialsError,
    Provider,
    ProviderConfigError,
    ProviderError,
    ProviderQueryError,
    ProviderUnavailableError,
    Sample,
)
from analyzer.providers.datadog import DatadogClient, DatadogConfig
from analyzer.providers.prometheus import GMP_URL, OAuth2, PrometheusConfig, SigV4, Tls, gmp_url
from analyzer.providers.prometheus import connect as connect_prometheus

__all__ = [
    "GMP_URL",
    "AwsSigV4",
    "BasicAuthFile",
    "BearerTokenFile",
    "CredentialsError",
    "DatadogClient",
    "DatadogConfig",
    "OAuth2",
    "OAuth2ClientCredentials",
    "PrometheusConfig",
    "Provider",
    "ProviderConfigError",
    "ProviderError",
    "ProviderQueryError",
    "ProviderUnavailableError",
    "Sample",
    "SigV4",
    "Tls",
    "connect_prometheus",
    "gmp_url",
]
