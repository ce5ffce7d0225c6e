"""What Prometheus saw during each step: latency histogram, requests and errors of GA and canary.

For each step (the span between two weight commits, see :mod:`rollouts.report.history`) three
instant queries are evaluated at the step's end over the step's length, for both subsets at once::

    sum by (<subset labels>, le) (increase(istio_request_duration_milliseconds_bucket{...}[<len>s]))
    sum by (<subset labels>) (increase(istio_requests_total{...}[<len>s]))
    sum by (<subset labels>) (increase(istio_requests_total{..., response_code=~"5.."}[<len>s]))

The results are split back per subset by the selector labels. A subset without series is reported as
missing data with the reason (never as zero requests). When Prometheus cannot be reached at all,
:func:`read_step_metrics` returns a :class:`StepMetricsReport` with ``error`` set and no steps: the
report then renders the Git part and says so.

The queries go through prometheus-api-client directly (``_Prometheus``); once the analyzer's query
layer (``analyzer.prometheus``) is on main this module should call it instead, the results have the
same shape (histogram in seconds, requests, errors).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from analyzer import Histogram
from rollouts.report.history import Step
from rollouts.spec import Rollout

#: Steps shorter than this have too few scrapes for ``increase()`` to mean anything.
MIN_STEP_S = 2
#: At most this many steps are queried (the newest); a report of a long history stays bounded.
MAX_STEPS = 50
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class MetricsUnavailableError(RuntimeError):
    """Prometheus could not be queried (unreachable, timed out, 5xx, or not Prometheus)."""


@dataclass(frozen=True)
class SubsetSelector:
    """Label matchers (all equality) selecting one side's Istio series."""

    name: str  # "stable" or "canary"
    matchers: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        for label, _ in self.matchers:
            if not _LABEL_NAME.match(label):
                raise ValueError(f"subset {self.name}: {label!r} is not a valid Prometheus label name")

    @property
    def labels(self) -> tuple[str, ...]:
        """The label names, in order."""
        return tuple(label for label, _ in self.matchers)

    @property
    def key(self) -> tuple[str, ...]:
        """The label values, in order: how a result series is recognised."""
        return tuple(value for _, value in self.matchers)

    def describe(self) -> str:
        """``{a="x", b="y"}`` for messages and the report."""
        return "{" + ", ".join(f"{label}={_string(value)}" for label, value in self.matchers) + "}"


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
    selectors: tuple[SubsetSelector, SubsetSelector] | None
    queries: tuple[str, ...] = ()
    error: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def available(self) -> bool:
        """True when Prometheus answered."""
        return self.error is None


def default_selectors(rollout: Rollout) -> tuple[SubsetSelector, SubsetSelector]:
    """How GA and canary are named in Istio's metrics.

    The controller's ``spec.analysis.subsets`` (workload, version, service) when the spec has it;
    otherwise the route's subset names as ``destination_version`` (the guide's DestinationRule maps
    subset ``ga`` to pods labelled ``version: ga``), within the rollout's namespace.
    """
    namespace = rollout.metadata.namespace
    route = rollout.spec.route
    analysis: Any = getattr(rollout.spec, "analysis", None)
    configured: Any = getattr(analysis, "subsets", None)
    out: list[SubsetSelector] = []
    for name, subset_name in (("stable", route.stable), ("canary", route.canary)):
        matchers = [("destination_workload_namespace", namespace)]
        side: Any = getattr(configured, name, None)
        workload = str(getattr(side, "workload", "") or "")
        version = str(getattr(side, "version", "") or "")
        service = str(getattr(side, "service", "") or "")
        if workload:
            matchers.append(("destination_workload", workload))
        if version:
            matchers.append(("destination_version", version))
        if service:
            matchers.append(("destination_service_name", service))
        if not (workload or version):
            matchers.append(("destination_version", subset_name))
        out.append(SubsetSelector(name=name, matchers=tuple(matchers)))
    return out[0], out[1]


def _string(value: str) -> str:
    """A PromQL double-quoted string literal (Go escapes)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _regex_literal(value: str) -> str:
    """``value`` matched literally inside a PromQL (RE2) regex."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", value)


def _selector(selectors: Sequence[SubsetSelector]) -> tuple[str, tuple[str, ...]]:
    """Matchers selecting every subset at once, and the labels to group by."""
    labels = tuple(dict.fromkeys(label for s in selectors for label in s.labels))
    for s in selectors:
        if s.labels != labels:
            raise ValueError(
                f"subsets must use the same labels to be read together: {selectors[0].describe()} "
                f"and {s.describe()}"
            )
    parts = ['reporter="destination"']
    for i, label in enumerate(labels):
        values = list(dict.fromkeys(s.key[i] for s in selectors))
        if len(values) == 1:
            parts.append(f"{label}={_string(values[0])}")
        else:
            parts.append(f"{label}=~{_string('|'.join(_regex_literal(v) for v in values))}")
    return ", ".join(parts), labels


def queries(selectors: Sequence[SubsetSelector], window_s: int) -> dict[str, str]:
    """The three PromQL queries of one step (``histogram``, ``requests``, ``errors``)."""
    selector, labels = _selector(selectors)
    by = ", ".join(labels)
    window = f"{window_s}s"
    return {
        "histogram": f"sum by ({by}, le) (increase(istio_request_duration_milliseconds_bucket{{{selector}}}"
        f"[{window}]))",
        "requests": f"sum by ({by}) (increase(istio_requests_total{{{selector}}}[{window}]))",
        "errors": f'sum by ({by}) (increase(istio_requests_total{{{selector}, response_code=~"5.."}}'
        f"[{window}]))",
    }


class _Prometheus:
    """Instant queries at a given time; any transport failure is :class:`MetricsUnavailableError`."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        # No urllib3 retries: a report against a dead Prometheus must fail fast, not after minutes.
        self._connect = PrometheusConnect(
            url=self.url, disable_ssl=True, retry=Retry(total=0, raise_on_status=False), timeout=timeout
        )

    def query(self, promql: str, at: float) -> list[tuple[dict[str, str], float]]:
        params = {"time": f"{at:.3f}", "timeout": f"{self.timeout:g}s"}
        try:
            raw: Any = self._connect.custom_query(promql, params=params)
        except requests.exceptions.RequestException as exc:
            raise MetricsUnavailableError(f"Prometheus at {self.url} did not answer: {exc}") from None
        except PrometheusApiClientException as exc:
            raise MetricsUnavailableError(f"Prometheus at {self.url}: {exc}") from None
        except ValueError:
            raise MetricsUnavailableError(f"{self.url} did not answer with Prometheus JSON") from None
        if not isinstance(raw, list):
            raise MetricsUnavailableError(f"{self.url}: expected an instant vector for {promql}")
        out: list[tuple[dict[str, str], float]] = []
        for item in raw:
            try:
                out.append(({str(k): str(v) for k, v in item["metric"].items()}, float(item["value"][1])))
            except (KeyError, IndexError, TypeError, ValueError):
                raise MetricsUnavailableError(f"{self.url}: malformed sample {item!r}") from None
        return out


def _clamp(value: float) -> float:
    # increase() of a counter is never negative; a negative here is floating-point noise.
    return value if value > 0.0 else 0.0


def _step_metrics(
    prom: _Prometheus, step: Step, selectors: tuple[SubsetSelector, SubsetSelector]
) -> tuple[StepMetrics, dict[str, str]]:
    window = step.duration
    promql = queries(selectors, window)
    labels = selectors[0].labels
    buckets: dict[tuple[str, ...], dict[float, float]] = defaultdict(dict)
    for metric, value in prom.query(promql["histogram"], step.end):
        try:
            bound = float(metric["le"])
        except (KeyError, ValueError):
            continue
        key = tuple(metric.get(label, "") for label in labels)
        buckets[key][bound] = buckets[key].get(bound, 0.0) + value
    counts: dict[str, dict[tuple[str, ...], float]] = {}
    for what in ("requests", "errors"):
        by_key: dict[tuple[str, ...], float] = defaultdict(float)
        for metric, value in prom.query(promql[what], step.end):
            by_key[tuple(metric.get(label, "") for label in labels)] += value
        counts[what] = by_key

    found: list[SubsetData | None] = []
    missing: list[str | None] = []
    for selector in selectors:
        key = selector.key
        if key not in buckets or key not in counts["requests"]:
            found.append(None)
            missing.append(f"no series for {selector.describe()} in the {window}s of this step")
            continue
        values = [*buckets[key].values(), counts["requests"][key], counts["errors"].get(key, 0.0)]
        if not all(math.isfinite(v) for v in values):
            found.append(None)
            missing.append(f"NaN or infinite values for {selector.describe()}")
            continue
        bounds = sorted(buckets[key])
        try:
            histogram = Histogram.from_cumulative(
                [b / 1000.0 if math.isfinite(b) else b for b in bounds],  # Istio buckets are milliseconds
                [_clamp(buckets[key][b]) for b in bounds],
            )
        except ValueError as exc:
            found.append(None)
            missing.append(f"malformed histogram for {selector.describe()}: {exc}")
            continue
        total = _clamp(counts["requests"][key])
        found.append(SubsetData(histogram, total, min(_clamp(counts["errors"].get(key, 0.0)), total)))
        missing.append(None)
    metrics = StepMetrics(
        step=step,
        stable=found[0],
        canary=found[1],
        stable_missing=missing[0],
        canary_missing=missing[1],
    )
    return metrics, promql


def read_step_metrics(
    url: str | None,
    steps: Sequence[Step],
    selectors: tuple[SubsetSelector, SubsetSelector],
    *,
    timeout: float = 10.0,
) -> StepMetricsReport:
    """The figures of every step long enough to measure; Prometheus failures become ``error``."""
    if not url:
        return StepMetricsReport(
            url=None, steps=(), selectors=selectors, error="no Prometheus URL was given (--prometheus)"
        )
    notes: list[str] = []
    measurable = [s for s in steps if s.duration >= MIN_STEP_S]
    if len(measurable) < len(steps):
        notes.append(f"{len(steps) - len(measurable)} step(s) shorter than {MIN_STEP_S}s were not measured")
    if len(measurable) > MAX_STEPS:
        notes.append(f"only the newest {MAX_STEPS} steps were measured")
        measurable = measurable[-MAX_STEPS:]
    prom = _Prometheus(url, timeout)
    results: list[StepMetrics] = []
    shown: dict[str, str] = {}
    try:
        for step in measurable:
            metrics, promql = _step_metrics(prom, step, selectors)
            results.append(metrics)
            shown = promql
    except MetricsUnavailableError as exc:
        return StepMetricsReport(url=url, steps=(), selectors=selectors, error=str(exc), notes=tuple(notes))
    return StepMetricsReport(
        url=url,
        steps=tuple(results),
        selectors=selectors,
        queries=tuple(shown.values()),
        notes=tuple(notes),
    )
