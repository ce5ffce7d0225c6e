"""PromQL templates: how to read one subset's latency histogram, requests and errors.

A template has three queries (``histogram``, ``requests``, ``errors``) written with three variables,
and a ``selector`` that says which metric label carries each field of a :class:`Subset`:

``{{ selector }}``
    label matchers selecting every subset of a round at once, built from the subsets' values with
    ``=`` (one value) or ``=~`` (several, as an escaped regex alternation);
``{{ by }}``
    the comma-separated selector labels, for ``sum by ({{ by }}, le)``: the result vector is split
    back into subsets by these labels;
``{{ window }}``
    the analysis window as a PromQL duration (``30s``, ``1500ms``), for ``increase(...[{{ window }}])``.

Because one query serves many rollouts, there are no per-rollout variables such as a namespace:
per-subset values enter only through ``{{ selector }}``, escaped. An unknown variable, a missing
one, or a selector label that is not a valid Prometheus label name is a :class:`TemplateError` when
the template is loaded, not when it is first used.

The histogram query must keep the ``le`` label; ``unit`` says whether its bucket bounds are seconds
or milliseconds (Istio), and histograms are always returned in seconds.

A template may be narrowed to one request segment (:func:`segmented`): a fixed label matcher, such
as ``request_segment="match"``, added to ``{{ selector }}``, for a label that the mesh puts on its
standard metrics by a request header (Istio's Telemetry API ``tagOverrides``). The narrowed template
has its own name, so rounds batch it apart from the template it narrows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from analyzer.prometheus.escape import label_matcher

#: The variables a template may use.
VARIABLES = frozenset({"selector", "by", "window"})
#: Fields of a :class:`Subset` a selector may map to metric labels.
SubsetField = Literal["namespace", "workload", "version", "service"]
QUERY_FIELDS = ("histogram", "requests", "errors")

_VARIABLE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class TemplateError(ValueError):
    """A template that cannot be used; the message names the template, the field and the problem."""


@dataclass(frozen=True, order=True)
class Subset:
    """One side of a rollout (GA or canary) as the metrics know it.

    Which fields matter depends on the template's selector: Istio's ``istio`` template uses
    ``namespace`` and ``workload``, ``istio-version`` and ``podinfo`` use ``namespace``, ``service``
    and ``version``.
    """

    namespace: str
    workload: str = ""
    version: str = ""
    service: str = ""

    def value(self, field: str) -> str:
        """The value of ``field`` (``namespace``, ``workload``, ``version`` or ``service``)."""
        value: str = getattr(self, field)
        return value


class QueryTemplate(BaseModel):
    """A named set of PromQL queries for one kind of telemetry; see the module docs for variables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = ""
    selector: dict[SubsetField, str] = Field(min_length=1, description="subset field -> metric label")
    histogram: str = Field(description="PromQL: increase() of the _bucket series, summed by {{ by }} and le")
    requests: str = Field(description="PromQL: increase() of all requests, summed by {{ by }}")
    errors: str = Field(description="PromQL: increase() of failed requests, summed by {{ by }}")
    unit: Literal["s", "ms"] = Field(default="s", description="unit of the histogram's le bounds")
    segment: tuple[str, str] | None = Field(
        default=None, description="(label, value): a matcher added to every subset's selector"
    )

    @field_validator("selector")
    @classmethod
    def _label_names(cls, selector: dict[str, str]) -> dict[str, str]:
        for field, label in selector.items():
            if not _LABEL_NAME.match(label):
                raise ValueError(f"selector.{field}: {label!r} is not a valid Prometheus label name")
        if len(set(selector.values())) != len(selector):
            raise ValueError("selector: two fields map to the same label")
        return selector

    @field_validator("segment")
    @classmethod
    def _segment_label(cls, segment: tuple[str, str] | None) -> tuple[str, str] | None:
        if segment is not None and not _LABEL_NAME.match(segment[0]):
            raise ValueError(f"segment: {segment[0]!r} is not a valid Prometheus label name")
        return segment

    @model_validator(mode="after")
    def _variables(self) -> QueryTemplate:
        for field in QUERY_FIELDS:
            problem = _variable_problem(getattr(self, field), field, VARIABLES)
            if problem:
                raise ValueError(problem)
        return self

    @property
    def labels(self) -> tuple[str, ...]:
        """The metric labels that identify a subset, in the selector's order."""
        return tuple(self.selector.values())

    def key(self, subset: Subset) -> tuple[str, ...]:
        """The subset's values of :attr:`labels`, as they appear on result series."""
        values = []
        for field in self.selector:
            value = subset.value(field)
            if not value:
                raise TemplateError(f"template {self.name!r} needs subset.{field}, got an empty value")
            values.append(value)
        return tuple(values)

    def render(
        self, query: Literal["histogram", "requests", "errors"], subsets: list[Subset], window: float
    ) -> str:
        """The PromQL of ``query`` for all ``subsets`` over ``window`` seconds."""
        if not subsets:
            raise ValueError("render needs at least one subset")
        values = _promql_values(self.labels, [self.key(s) for s in subsets], window)
        if self.segment is not None:
            label, value = self.segment
            values["selector"] += ", " + label_matcher(label, [value])
        text: str = getattr(self, query)
        return _VARIABLE.sub(lambda m: values[m.group(1)], text)


def segmented(template: QueryTemplate, label: str, value: str) -> QueryTemplate:
    """``template`` narrowed to the requests whose metric ``label`` is ``value`` (named
    ``<name>@<label>=<value>``); ``TemplateError`` when ``label`` is not a label name or is one of
    the selector's labels (the subsets would then be selected twice, differently)."""
    if not _LABEL_NAME.match(label):
        raise TemplateError(f"segment label {label!r} is not a valid Prometheus label name")
    if label in template.labels or label in ("le", "reporter", "response_code"):
        raise TemplateError(f"segment label {label!r} is already used by template {template.name!r}")
    return template.model_copy(update={"name": f"{template.name}@{label}={value}", "segment": (label, value)})


def _variable_problem(text: str, field: str, required: frozenset[str]) -> str | None:
    """What is wrong with the variables of ``text`` (unknown, missing of ``required``, unbalanced
    braces), naming ``field``; None when nothing is."""
    used = {m.group(1) for m in _VARIABLE.finditer(text)}
    unknown = sorted(used - VARIABLES)
    if unknown:
        return f"{field}: unknown variable {{{{ {unknown[0]} }}}} (known: {', '.join(sorted(VARIABLES))})"
    missing = sorted(required - used)
    if missing:
        return f"{field}: missing variable {{{{ {missing[0]} }}}}"
    leftover = _VARIABLE.sub("", text)
    if "{{" in leftover or "}}" in leftover:
        return f"{field}: unbalanced '{{{{' or '}}}}'"
    return None


def _promql_values(labels: tuple[str, ...], keys: list[tuple[str, ...]], window: float) -> dict[str, str]:
    """The PromQL of ``{{ selector }}``, ``{{ by }}`` and ``{{ window }}`` for subsets' ``keys``."""
    matchers = [label_matcher(label, (key[i] for key in keys)) for i, label in enumerate(labels)]
    return {"selector": ", ".join(matchers), "by": ", ".join(labels), "window": duration(window)}


def duration(seconds: float) -> str:
    """A PromQL duration for ``seconds``: whole seconds as ``30s``, otherwise milliseconds."""
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"window must be a positive, finite number of seconds, got {seconds}")
    millis = round(seconds * 1000)
    if millis < 1:
        raise ValueError(f"window must be at least 1 ms, got {seconds}")
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


#: Istio's reporters (istio.io "Istio Standard Metrics", the ``reporter`` label): ``destination``,
#: the server's sidecar; ``source``, the client's sidecar or a gateway (the only series of a
#: destination without a sidecar); ``waypoint``, the waypoint proxy of ambient mode, which reports
#: the L7 metrics there (ztunnel only reports TCP metrics, without a latency histogram).
IstioReporter = Literal["destination", "source", "waypoint"]

_ISTIO_WORKLOAD: dict[SubsetField, str] = {
    "namespace": "destination_workload_namespace",
    "workload": "destination_workload",
}
_ISTIO_VERSION: dict[SubsetField, str] = {
    "namespace": "destination_workload_namespace",
    "service": "destination_service_name",
    "version": "destination_version",
}
#: What counts as an error: ``5xx`` (the default), or also 4xx (``with_4xx``), and, with ``grpc``,
#: gRPC failures: Istio sets ``grpc_response_status`` on gRPC requests (``"0"`` is OK; plain HTTP
#: requests leave it empty), and a failed gRPC call usually answers HTTP 200.
_FAILED_HTTP = {False: "5..", True: "[45].."}


def istio_template(
    name: str,
    *,
    reporter: IstioReporter = "destination",
    by_version: bool = False,
    grpc: bool = False,
    with_4xx: bool = False,
) -> QueryTemplate:
    """An Istio standard-metrics template for one reporter, subset kind and error definition.

    With ``grpc`` the errors query adds the requests whose HTTP code is not an error but whose
    ``grpc_response_status`` is set and not ``0``; the two sets are disjoint (``or`` of series
    with different ``response_code``), so no request is counted twice.
    """
    series = f'reporter="{reporter}", {{{{ selector }}}}'
    failed = _FAILED_HTTP[with_4xx]
    http_errors = f'increase(istio_requests_total{{{series}, response_code=~"{failed}"}}[{{{{ window }}}}])'
    if grpc:
        grpc_errors = (
            f'increase(istio_requests_total{{{series}, response_code!~"{failed}", '
            f'grpc_response_status!~"0|"}}[{{{{ window }}}}])'
        )
        errors = f"sum by ({{{{ by }}}}) ({http_errors} or {grpc_errors})"
    else:
        errors = f"sum by ({{{{ by }}}}) ({http_errors})"
    kinds = "gRPC status != 0, " if grpc else ""
    subset = "a version of a service" if by_version else "a destination workload"
    return QueryTemplate(
        name=name,
        description=f"Istio standard metrics reported by {reporter}; a subset is {subset} in a "
        f"namespace; errors: {kinds}HTTP {'4xx and 5xx' if with_4xx else '5xx'}",
        selector=dict(_ISTIO_VERSION if by_version else _ISTIO_WORKLOAD),
        histogram="sum by ({{ by }}, le) (increase(istio_request_duration_milliseconds_bucket{"
        + series
        + "}[{{ window }}]))",
        requests="sum by ({{ by }}) (increase(istio_requests_total{" + series + "}[{{ window }}]))",
        errors=errors,
        unit="ms",
    )


#: Istio standard metrics, one subset per workload (Deployment): the usual Flagger/Kayenta choice.
ISTIO = istio_template("istio")
#: Istio standard metrics, one subset per version label of a service (DestinationRule subsets).
ISTIO_VERSION = istio_template("istio-version", by_version=True)
#: Istio ambient mode: the waypoint's L7 metrics (``reporter="waypoint"``), per workload.
ISTIO_AMBIENT = istio_template("istio-ambient", reporter="waypoint")
#: Destinations without a sidecar: only the client side reports (``reporter="source"``).
ISTIO_SOURCE = istio_template("istio-source", reporter="source")

_PODINFO_SERIES = '{{ selector }}, path!~"metrics|healthz|readyz"'


def podinfo_template(name: str, *, with_4xx: bool = False) -> QueryTemplate:
    """podinfo's own RED metrics, scraped from the pods; probes and scrapes are left out."""
    return QueryTemplate(
        name=name,
        description="podinfo's http_request_duration_seconds and http_requests_total, by namespace, app, "
        f"version; errors: HTTP {'4xx and 5xx' if with_4xx else '5xx'}",
        selector={"namespace": "namespace", "service": "app", "version": "version"},
        histogram="sum by ({{ by }}, le) (increase(http_request_duration_seconds_bucket{"
        + _PODINFO_SERIES
        + "}[{{ window }}]))",
        # http_requests_total has only a status label (no path): count requests from the histogram
        # instead, so that probes and scrapes are left out here too.
        requests="sum by ({{ by }}) (increase(http_request_duration_seconds_count{"
        + _PODINFO_SERIES
        + "}[{{ window }}]))",
        errors="sum by ({{ by }}) (increase(http_request_duration_seconds_count{"
        + _PODINFO_SERIES
        + f', status=~"{_FAILED_HTTP[with_4xx]}"'
        + "}[{{ window }}]))",
        unit="s",
    )


PODINFO = podinfo_template("podinfo")


def _builtin() -> dict[str, QueryTemplate]:
    """Every built-in: the Istio bases (reporter x subset kind), each as is and with ``-grpc``,
    ``-4xx`` and ``-grpc-4xx``; ``podinfo`` and ``podinfo-4xx``."""
    out: dict[str, QueryTemplate] = {}
    bases: list[tuple[str, IstioReporter, bool]] = [
        ("istio", "destination", False),
        ("istio-version", "destination", True),
        ("istio-ambient", "waypoint", False),
        ("istio-ambient-version", "waypoint", True),
        ("istio-source", "source", False),
        ("istio-source-version", "source", True),
    ]
    for base, reporter, by_version in bases:
        for grpc, with_4xx in ((False, False), (True, False), (False, True), (True, True)):
            name = base + ("-grpc" if grpc else "") + ("-4xx" if with_4xx else "")
            out[name] = istio_template(
                name, reporter=reporter, by_version=by_version, grpc=grpc, with_4xx=with_4xx
            )
    out["podinfo"] = PODINFO
    out["podinfo-4xx"] = podinfo_template("podinfo-4xx", with_4xx=True)
    return out


BUILTIN: Mapping[str, QueryTemplate] = _builtin()

# Custom metrics (analyzer.custom): one query per metric and round, in PromQL or Datadog's language.
#: Variables a custom metric's query must use: the round's subsets and the labels to split them by.
CUSTOM_REQUIRED = frozenset({"selector", "by"})
#: Datadog tag values we put into a query unquoted (Datadog has no quoting for tag values).
_DATADOG_VALUE = re.compile(r"^[A-Za-z0-9_./:-]+$")
#: Flagger MetricTemplate variables (``{{ namespace }}``, ``{{ variables.x }}``), as Flagger names them.
FLAGGER_VARIABLES = frozenset({"name", "namespace", "target", "service", "ingress", "route", "interval"})
_FLAGGER_VALUE = re.compile(r"^[A-Za-z0-9._-]*$")


def check_custom_query(text: str, field: str) -> None:
    """``TemplateError`` naming ``field`` for an unknown variable, a missing ``{{ selector }}`` or
    ``{{ by }}``, or unbalanced braces in a custom metric's query."""
    problem = _variable_problem(text, field, CUSTOM_REQUIRED)
    if problem:
        raise TemplateError(problem)


def render_custom(
    text: str,
    selector: Mapping[str, str],
    subsets: list[Subset],
    window: float,
    dialect: Literal["prometheus", "datadog"] = "prometheus",
) -> str:
    """A custom metric's query for all ``subsets``: ``{{ selector }}`` as escaped PromQL matchers
    (or Datadog tag filters, ``label:value`` / ``label IN (a,b)``), ``{{ by }}`` the labels,
    ``{{ window }}`` a PromQL duration (Datadog: whole seconds, for ``.rollup(..., {{ window }})``)."""
    if not subsets:
        raise ValueError("render needs at least one subset")
    labels = tuple(selector.values())
    keys = []
    for subset in subsets:
        key = []
        for field in selector:
            value = subset.value(field)
            if not value:
                raise TemplateError(f"the metric's selector needs subset.{field}, got an empty value")
            key.append(value)
        keys.append(tuple(key))
    if dialect == "datadog":
        filters = []
        for i, label in enumerate(labels):
            values = sorted({key[i] for key in keys})
            bad = [v for v in values if not _DATADOG_VALUE.match(v)]
            if bad:
                raise TemplateError(f"{label}: {bad[0]!r} cannot be a Datadog tag value")
            filters.append(f"{label}:{values[0]}" if len(values) == 1 else f"{label} IN ({','.join(values)})")
        window_text = str(max(1, round(window)))
        values_of = {"selector": ",".join(filters), "by": ",".join(labels), "window": window_text}
    else:
        values_of = _promql_values(labels, keys, window)
    return _VARIABLE.sub(lambda m: values_of[m.group(1)], text)


def render_flagger(text: str, values: Mapping[str, str], variables: Mapping[str, str]) -> str:
    """A Flagger MetricTemplate's query, as written, with Flagger's variables filled in
    (``{{ namespace }}``, ``{{ target }}``, ``{{ interval }}``, ``{{ variables.x }}`` ...).

    Unlike our templates it is per rollout (not batched). Values must be Kubernetes-style names
    (letters, digits, ``.``, ``_``, ``-``): Flagger does not escape either, so anything else is
    refused rather than pasted into PromQL."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("variables."):
            key = name.removeprefix("variables.")
            if key not in variables:
                raise TemplateError(f"query: {{{{ {name} }}}} is not in templateVariables")
            value = variables[key]
        elif name in FLAGGER_VARIABLES:
            value = values.get(name, "")
        else:
            known = ", ".join(sorted(FLAGGER_VARIABLES))
            raise TemplateError(f"query: unknown variable {{{{ {name} }}}} (Flagger's: {known}, variables.*)")
        if not _FLAGGER_VALUE.match(value):
            raise TemplateError(f"query: {{{{ {name} }}}} = {value!r} is not a plain name")
        return value

    return _VARIABLE.sub(fill, text)


def quantile_query(template: QueryTemplate, quantile: float, subsets: list[Subset], window: float) -> str:
    """PromQL: the latency ``quantile`` of each subset over ``window`` seconds, from the template's
    histogram query (in the template's ``unit``; for displays such as the demo's live view)."""
    return f"histogram_quantile({quantile:g}, {template.render('histogram', subsets, window)})"


def error_ratio_query(template: QueryTemplate, subsets: list[Subset], window: float) -> str:
    """PromQL: each subset's failed share of requests over ``window`` seconds (errors / requests)."""
    return f"{template.render('errors', subsets, window)} / {template.render('requests', subsets, window)}"


def template_from_mapping(data: object, source: str = "<template>") -> QueryTemplate:
    """Validate one user template (e.g. parsed from YAML); ``TemplateError`` names source and field."""
    try:
        return QueryTemplate.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            _field(err["loc"]) + ": " + str(err["msg"]).removeprefix("Value error, ") for err in exc.errors()
        )
        name = data.get("name") if isinstance(data, dict) else None
        raise TemplateError(f"{source}: template {name or '?'!r}: {problems}") from None


def _field(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "template"


def load_templates(path: Path) -> dict[str, QueryTemplate]:
    """Read user templates from a YAML file (a list of templates, or ``{templates: [...]}``)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        data = YAML(typ="safe").load(path.read_text())
    except (OSError, YAMLError) as exc:
        raise TemplateError(f"{path}: cannot read templates: {exc}") from exc
    if isinstance(data, dict) and "templates" in data:
        data = data["templates"]
    if not isinstance(data, list):
        raise TemplateError(f"{path}: expected a list of templates")
    templates: dict[str, QueryTemplate] = {}
    for index, item in enumerate(data):
        template = template_from_mapping(item, f"{path}[{index}]")
        if template.name in templates or template.name in BUILTIN:
            raise TemplateError(f"{path}[{index}]: template name {template.name!r} is already taken")
        templates[template.name] = template
    return templates
