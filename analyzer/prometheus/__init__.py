"""The query layer: PromQL templates (Istio, podinfo, user-defined), batched per round, a
``Histogram`` with request and error counts per subset and window.

>>> from analyzer.prometheus import ISTIO, MetricsReader, PrometheusClient, Subset, WindowRequest
>>> reader = MetricsReader(PrometheusClient("http://127.0.0.1:9090", timeout=5))  # doctest: +SKIP
>>> ga = Subset(namespace="test", workload="podinfo-ga")
>>> canary = Subset(namespace="test", workload="podinfo-canary")
>>> reader.read([WindowRequest(s, ISTIO, window=60, end=now) for s in (ga, canary)])  # doctest: +SKIP
[SubsetMetrics(...), SubsetMetrics(...)]

See docs/prometheus.md.
"""

from analyzer.prometheus.client import (
    PrometheusClient,
    PrometheusError,
    PrometheusQueryError,
    PrometheusUnavailableError,
    redact_url,
)
from analyzer.prometheus.escape import label_matcher, promql_string, regex_alternation, regex_literal
from analyzer.prometheus.query import MetricsReader, NoData, Result, SubsetMetrics, WindowRequest
from analyzer.prometheus.templates import (
    BUILTIN,
    ISTIO,
    ISTIO_VERSION,
    PODINFO,
    VARIABLES,
    QueryTemplate,
    Subset,
    TemplateError,
    load_templates,
    template_from_mapping,
)
from analyzer.providers.base import Sample

__all__ = [
    "BUILTIN",
    "ISTIO",
    "ISTIO_VERSION",
    "PODINFO",
    "VARIABLES",
    "MetricsReader",
    "NoData",
    "PrometheusClient",
    "PrometheusError",
    "PrometheusQueryError",
    "PrometheusUnavailableError",
    "QueryTemplate",
    "Result",
    "Sample",
    "Subset",
    "SubsetMetrics",
    "TemplateError",
    "WindowRequest",
    "label_matcher",
    "load_templates",
    "promql_string",
    "redact_url",
    "regex_alternation",
    "regex_literal",
    "template_from_mapping",
]
