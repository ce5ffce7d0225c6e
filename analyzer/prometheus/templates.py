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

    @field_validator("selector")
    @classmethod
    def _label_names(cls, selector: dict[str, str]) -> dict[str, str]:
        for field, label in selector.items():
            if not _LABEL_NAME.match(label):
                raise ValueError(f"selector.{field}: {label!r} is not a valid Prometheus label name")
        if len(set(selector.values())) != len(selector):
            raise ValueError("selector: two fields map to the same label")
        return selector

    @model_validator(mode="after")
    def _variables(self) -> QueryTemplate:
        for field in QUERY_FIELDS:
            text: str = getattr(self, field)
            used = {m.group(1) for m in _VARIABLE.finditer(text)}
            unknown = sorted(used - VARIABLES)
            if unknown:
                known = ", ".join(sorted(VARIABLES))
                raise ValueError(f"{field}: unknown variable {{{{ {unknown[0]} }}}} (known: {known})")
            missing = sorted(VARIABLES - used)
            if missing:
                raise ValueError(f"{field}: missing variable {{{{ {missing[0]} }}}}")
            leftover = _VARIABLE.sub("", text)
            if "{{" in leftover or "}}" in leftover:
                raise ValueError(f"{field}: unbalanced '{{{{' or '}}}}'")
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
        keys = [self.key(s) for s in subsets]
        matchers = [label_matcher(label, (key[i] for key in keys)) for i, label in enumerate(self.labels)]
        values = {"selector": ", ".join(matchers), "by": ", ".join(self.labels), "window": duration(window)}
        text: str = getattr(self, query)
        return _VARIABLE.sub(lambda m: values[m.group(1)], text)


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
