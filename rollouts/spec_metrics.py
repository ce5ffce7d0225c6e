"""``analysis.metrics`` as a list: the built-in template and custom metrics; Flagger MetricTemplates.

```yaml
spec:
  analysis:
    metrics:
    - istio                          # the built-in template (at most one; default istio)
    - name: queue-lag                # a custom metric (analyzer.custom.CustomMetric)
      kind: value
      selector: {namespace: namespace, service: app, version: version}
      query: max by ({{ by }}) (max_over_time(queue_lag_seconds{ {{ selector }} }[{{ window }}]))
      direction: higher-is-worse
      margin: 0.1
    - name: error-ceiling            # a Flagger MetricTemplate, as written, as an absolute ceiling
      templateRef: {name: error-rate, namespace: istio-system}
      thresholdRange: {max: 1}
    metricTemplates:                 # Flagger MetricTemplate documents (flagger.app/v1beta1), copied as is
    - apiVersion: flagger.app/v1beta1
      kind: MetricTemplate
      metadata: {name: error-rate, namespace: istio-system}
      spec: {provider: {type: prometheus, address: http://prometheus:9090}, query: "..."}
```

The single-template forms (a name, or a template mapping) are unchanged. A Flagger template's
``provider.address`` and ``secretRef`` are not used: queries go to ``analysis.prometheus`` (type
``prometheus``) or ``analysis.datadog`` (type ``datadog``), with their credentials.

Must never: accept a custom metric or template that is not valid when the spec is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analyzer.custom import CustomMetric, CustomMetricError, custom_metric_from_mapping

#: Flagger provider types we can answer, and which of our providers answers them.
FLAGGER_PROVIDERS = {"prometheus": "prometheus", "datadog": "datadog"}


@dataclass(frozen=True)
class FlaggerTemplate:
    """A Flagger ``MetricTemplate``: where it is queried and its query, as written."""

    name: str
    namespace: str
    provider: str
    query: str


def builtin_metrics(metrics: str | dict[str, Any] | list[Any]) -> str | dict[str, Any]:
    """The built-in template part of ``analysis.metrics`` (``istio`` when a list names none)."""
    if not isinstance(metrics, list):
        return metrics
    names = [m for m in metrics if isinstance(m, str)]
    if len(names) > 1:
        raise ValueError(f"metrics: at most one built-in template in the list, got {names}")
    return names[0] if names else "istio"


def custom_metrics(metrics: str | dict[str, Any] | list[Any]) -> list[CustomMetric]:
    """The custom metrics of ``analysis.metrics`` (none in the single-template forms)."""
    if not isinstance(metrics, list):
        return []
    out: list[CustomMetric] = []
    for index, item in enumerate(metrics):
        if isinstance(item, str):
            continue
        metric = custom_metric_from_mapping(item, source=f"metrics[{index}]")
        if any(m.name == metric.name for m in out):
            raise CustomMetricError(f"metrics[{index}]: metric name {metric.name!r} is already taken")
        out.append(metric)
    return out


def flagger_templates(documents: list[dict[str, Any]]) -> dict[tuple[str, str], FlaggerTemplate]:
    """``analysis.metricTemplates`` by (namespace, name); ``ValueError`` naming the entry."""
    out: dict[tuple[str, str], FlaggerTemplate] = {}
    for index, doc in enumerate(documents):
        where = f"metricTemplates[{index}]"
        if not isinstance(doc, dict) or doc.get("kind") != "MetricTemplate":
            raise ValueError(f"{where}: expected a Flagger MetricTemplate (kind: MetricTemplate)")
        if not str(doc.get("apiVersion", "")).startswith("flagger.app/"):
            raise ValueError(f"{where}: apiVersion must be flagger.app/v1beta1")
        meta, spec = doc.get("metadata") or {}, doc.get("spec") or {}
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}: metadata.name is required")
        provider = (spec.get("provider") or {}).get("type", "prometheus")
        if provider not in FLAGGER_PROVIDERS:
            raise ValueError(f"{where}: provider type {provider!r} is not supported (prometheus, datadog)")
        query = spec.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f"{where}: spec.query is required")
        namespace = str(meta.get("namespace") or "")
        out[(namespace, name)] = FlaggerTemplate(name, namespace, FLAGGER_PROVIDERS[provider], query)
    return out


def resolve_template(
    metric: CustomMetric, templates: dict[tuple[str, str], FlaggerTemplate], rollout_namespace: str
) -> FlaggerTemplate:
    """The template a metric's ``templateRef`` names (namespace defaults to the rollout's, as in Flagger)."""
    assert metric.template_ref is not None
    ref = metric.template_ref
    key = (ref.namespace or rollout_namespace, ref.name)
    found = templates.get(key) or (templates.get(("", ref.name)) if not ref.namespace else None)
    if found is None:
        raise CustomMetricError(
            f"metric {metric.name!r}: templateRef {key[0]}/{key[1]} is not in analysis.metricTemplates"
        )
    return found
