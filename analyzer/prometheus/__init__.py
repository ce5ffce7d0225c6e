"""The query layer: PromQL templates (Istio, podinfo, user-defined), batched per round, a
``Histogram`` with request and error counts per subset and window.

>>> from analyzer.prometheus import ISTIO, MetricsReader, PrometheusClient, Subset, WindowRequest
>>> reader = MetricsReader(PrometheusClient("http://127.0.0.1:9090", timeout=5))  # doctest: +SKIP
>>> ga = Subset(namespace="test", workload="podinfo-ga")
>>> canary = Subset(namespace="test", workload="podinfo-canary")
>>> reader.read([WindowRequest(s, ISTIO, window=60, end=now) for s in (ga, canary)])  # doctest: +SKIP
[SubsetMetrics(...), SubsetMetrics(...)]

See docs/prometheus.md.

The public names are loaded on first use (PEP 562 ``__getattr__``): the templates (pydantic only),
which the Rollout spec validates against, never pull in the HTTP client. This module must never
import a submodule at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from analyzer._lazy import lazy_exports

if TYPE_CHECKING:
    from analyzer.prometheus.client import (
        PrometheusClient,
        PrometheusError,
        PrometheusQueryError,
        PrometheusUnavailableError,
        Sample,
        redact_url,
    )
    from analyzer.prometheus.escape import label_matcher, promql_string, regex_alternation, regex_literal
    from analyzer.prometheus.query import MetricsReader, NoData, Result, SubsetMetrics, WindowRequest
    from analyzer.prometheus.templates import (
        BUILTIN,
        ISTIO,
        ISTIO_AMBIENT,
        ISTIO_SOURCE,
        ISTIO_VERSION,
        PODINFO,
        VARIABLES,
        QueryTemplate,
        Subset,
        TemplateError,
        istio_template,
        load_templates,
        podinfo_template,
        template_from_mapping,
    )

# Public name -> the module that defines it (see analyzer/__init__.py).
_EXPORTS = {
    "BUILTIN": "analyzer.prometheus.templates",
    "ISTIO": "analyzer.prometheus.templates",
    "ISTIO_AMBIENT": "analyzer.prometheus.templates",
    "ISTIO_SOURCE": "analyzer.prometheus.templates",
    "ISTIO_VERSION": "analyzer.prometheus.templates",
    "MetricsReader": "analyzer.prometheus.query",
    "NoData": "analyzer.prometheus.query",
    "PODINFO": "analyzer.prometheus.templates",
    "PrometheusClient": "analyzer.prometheus.client",
    "PrometheusError": "analyzer.prometheus.client",
    "PrometheusQueryError": "analyzer.prometheus.client",
    "PrometheusUnavailableError": "analyzer.prometheus.client",
    "QueryTemplate": "analyzer.prometheus.templates",
    "Result": "analyzer.prometheus.query",
    "Sample": "analyzer.prometheus.client",
    "Subset": "analyzer.prometheus.templates",
    "SubsetMetrics": "analyzer.prometheus.query",
    "TemplateError": "analyzer.prometheus.templates",
    "VARIABLES": "analyzer.prometheus.templates",
    "WindowRequest": "analyzer.prometheus.query",
    "istio_template": "analyzer.prometheus.templates",
    "label_matcher": "analyzer.prometheus.escape",
    "load_templates": "analyzer.prometheus.templates",
    "podinfo_template": "analyzer.prometheus.templates",
    "promql_string": "analyzer.prometheus.escape",
    "redact_url": "analyzer.prometheus.client",
    "regex_alternation": "analyzer.prometheus.escape",
    "regex_literal": "analyzer.prometheus.escape",
    "template_from_mapping": "analyzer.prometheus.templates",
}

__all__ = [
    "BUILTIN",
    "ISTIO",
    "ISTIO_AMBIENT",
    "ISTIO_SOURCE",
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
    "istio_template",
    "label_matcher",
    "load_templates",
    "podinfo_template",
    "promql_string",
    "redact_url",
    "regex_alternation",
    "regex_literal",
    "template_from_mapping",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals)
