"""What Prometheus saw during each step: latency histogram, requests and errors of GA and canary.

A step is the span between two weight commits (see :mod:`rollouts.report.history`). Each step is one
window of the analyzer's query layer (:mod:`analyzer.prometheus`): three instant queries at the
step's end over the step's whole length, for both subsets at once, e.g. with the Istio template::

    sum by (<subset labels>, le) (increase(istio_request_duration_milliseconds_bucket{...}[<len>s]))
    sum by (<subset labels>) (increase(istio_requests_total{...}[<len>s]))
    sum by (<subset labels>) (increase(istio_requests_total{..., response_code=~"5.."}[<len>s]))

The report reads what the controller judged: the spec's ``analysis.metrics`` template and
``analysis.subsets``. A spec that names no subsets gets the guide's convention instead: the route's
subset names as ``destination_version`` in the rollout's namespace. A subset without series is
missing data with the reason (never zero requests). When Prometheus cannot be queried at all,
:func:`read_step_metrics` returns a report with ``error`` set and no steps: the page then shows the
Git part and says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from analyzer.histogram import Histogram
from analyzer.prometheus import (
    BUILTIN,
    ISTIO,
    MetricsReader,
    NoData,
    PrometheusClient,
    PrometheusError,
    QueryTemplate,
    Subset,
    SubsetMetrics,
    TemplateError,
    promql_string,
    template_from_mapping,
)
from rollouts.report.errors import (
    MetricsConfigError,
)
from rollouts.report.history import Step
from rollouts.spec import Rollout

#: Steps shorter than this have too few scrapes for ``increase()`` to mean anything.
MIN_STEP_S = 2
#: At most this many steps are queried (the newest): the report of a long history stays bounded.
MAX_STEPS = 50

#: The guide's convention when the spec names no subsets: Istio metrics by ``destination_version``
#: (the DestinationRule maps subset ``ga`` to pods labelled ``version: ga``) within a namespace.
ISTIO_BY_ROUTE_SUBSET = template_from_mapping(
    {
        "name": "istio-route-subsets",
        "description": "Istio standard metrics; a subset is a destination_version in a namespace",
        "selector": {"namespace": "destination_workload_namespace", "version": "destination_version"},
        "histogram": ISTIO.histogram,
        "requests": ISTIO.requests,
        "errors": ISTIO.errors,
        "unit": ISTIO.unit,
    },
    source="rollouts.report",
)


@dataclass(frozen=True)
class Selection:
    """How the report finds GA and canary in Prometheus: a query template and two subsets."""

    template: QueryTemplate
    stable: Subset
    canary: Subset
    note: str | None = None

    def describe(self, subset: Subset) -> str:
        """``{label="value", ...}`` as the template selects ``subset``."""
        pairs = zip(self.template.labels, self.template.key(subset), strict=True)
        return "{" + ", ".join(f"{label}={promql_string(value)}" for label, value in pairs) + "}"


@dataclass(frozen=True)
class SubsetData:
    """One subset's figures over one step: latency histogram (seconds), requests, errors."""

    histogram: Histogram
    requests: float
    errors: float

    @property
    def error_rate(self) -> float:
        """Errors / requests (NaN without requests)."""
        return self.errors / self.requests if self.requests > 0 else math.nan


@dataclass(frozen=True)
class StepMetrics:
    """Both subsets over one step; a subset is None when there was no data, with the reason."""

    step: Step
    stable: SubsetData | None
    canary: SubsetData | None
    stable_missing: str | None = None
    canary_missing: str | None = None


@dataclass(frozen=True)
class StepMetricsReport:
    """The metrics part of a report, or why there is none (``error``)."""

    url: str | None
    steps: tuple[StepMetrics, ...]
    selection: Selection | None
    queries: tuple[str, ...] = ()
    error: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def available(self) -> bool:
        """True when Prometheus answered."""
        return self.error is None


def select_subsets(rollout: Rollout) -> Selection:
    """The template and subsets of ``spec.analysis`` (what the controller reads), or the guide's
    convention when the spec names no subsets."""
    from rollouts.spec_metrics import builtin_metrics

    analysis = rollout.spec.analysis
    namespace = rollout.metadata.namespace
    metrics = builtin_metrics(analysis.metrics)
    if isinstance(metrics, str):
        if metrics not in BUILTIN:
            raise MetricsConfigError(f"spec.analysis.metrics: unknown template {metrics!r}")
        template = BUILTIN[metrics]
    else:
        try:
            template = template_from_mapping({"name": "custom", **metrics}, source="spec.analysis.metrics")
        except TemplateError as exc:
            raise MetricsConfigError(str(exc)) from None
    sides = analysis.subsets
    configured = [sides.stable, sides.canary]
    unset = not any(s.workload or s.version or s.service for s in configured)
    if unset and template.name in {"istio", "istio-version"}:
        route = rollout.spec.route
        return Selection(
            ISTIO_BY_ROUTE_SUBSET,
            Subset(namespace=namespace, version=route.stable),
            Subset(namespace=namespace, version=route.canary),
            note="spec.analysis.subsets is not set: GA and canary are read as destination_version "
            f"{route.stable!r} and {route.canary!r} (the route's subsets)",
        )
    stable, canary = (
        Subset(namespace=namespace, workload=s.workload, version=s.version, service=s.service)
        for s in configured
    )
    for name, subset in (("stable", stable), ("canary", canary)):
        try:
            template.key(subset)
        except TemplateError as exc:
            raise MetricsConfigError(f"spec.analysis.subsets.{name}: {exc}") from None
    if template.key(stable) == template.key(canary):
        raise MetricsConfigError(
            f"spec.analysis.subsets: stable and canary select the same series with template {template.name!r}"
        )
    return Selection(template, stable, canary)


def _data(result: SubsetMetrics | NoData) -> tuple[SubsetData | None, str | None]:
    if isinstance(result, NoData):
        return None, result.reason
    return SubsetData(result.histogram, result.requests, result.errors), None


def read_step_metrics(
    url: str | None,
    steps: Sequence[Step],
    selection: Selection,
    *,
    timeout: float = 10.0,
    attempts: int = 2,
) -> StepMetricsReport:
    """The figures of every step long enough to measure; Prometheus failures become ``error``."""
    if not url:
        return StepMetricsReport(
            url=None, steps=(), selection=selection, error="no Prometheus URL was given (--prometheus)"
        )
    notes: list[str] = [selection.note] if selection.note else []
    measurable = [s for s in steps if s.duration >= MIN_STEP_S]
    if len(measurable) < len(steps):
        notes.append(f"{len(steps) - len(measurable)} step(s) shorter than {MIN_STEP_S}s were not measured")
    if len(measurable) > MAX_STEPS:
        notes.append(f"only the newest {MAX_STEPS} steps were measured")
        measurable = measurable[-MAX_STEPS:]
    reader = MetricsReader(PrometheusClient(url, timeout=timeout, attempts=attempts))
    subsets = [selection.stable, selection.canary]
    results: list[StepMetrics] = []
    try:
        for step in measurable:
            found = reader.read_window(selection.template, subsets, step.duration, step.end)
            stable, stable_missing = _data(found[selection.stable])
            canary, canary_missing = _data(found[selection.canary])
            results.append(StepMetrics(step, stable, canary, stable_missing, canary_missing))
    except PrometheusError as exc:
        return StepMetricsReport(url=url, steps=(), selection=selection, error=str(exc), notes=tuple(notes))
    queries: tuple[str, ...] = ()
    if measurable:
        window = measurable[-1].duration
        queries = tuple(
            selection.template.render(q, subsets, window) for q in ("histogram", "requests", "errors")
        )
    return StepMetricsReport(
        url=url, steps=tuple(results), selection=selection, queries=queries, notes=tuple(notes)
    )


# The errors are defined in errors.py and raised here: importable from here too.
__all__ = [
    "ISTIO_BY_ROUTE_SUBSET",
    "MAX_STEPS",
    "MIN_STEP_S",
    "MetricsConfigError",
    "Selection",
    "StepMetrics",
    "StepMetricsReport",
    "SubsetData",
    "read_step_metrics",
    "select_subsets",
]
