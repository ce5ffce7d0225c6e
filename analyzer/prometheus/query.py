"""Read a window of metrics per subset, batched: one query per metric per round, not per rollout.

A round is a list of :class:`WindowRequest` (typically two per rollout: GA and canary). Requests
sharing a template, a window length and an end time are answered by three instant queries
(histogram, requests, errors) at the window's end, whatever their number; the result vectors are
split back per subset by the template's selector labels.

Honest results: a subset without series is :class:`NoData` (never zero requests); NaN or infinite
values are NoData with the reason; a missing errors series is zero errors (a 5xx series only exists
once a 5xx happened); tiny negative values from floating point are clamped to zero (``increase()``
already handles counter resets server-side).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from analyzer.histogram import Histogram, Monotonicity
from analyzer.prometheus.client import PrometheusClient, PrometheusUnavailableError, Sample
from analyzer.prometheus.templates import QueryTemplate, Subset, TemplateError

if TYPE_CHECKING:
    from analyzer.judge import SubsetWindow

_UNIT_DIVISOR = {"s": 1.0, "ms": 1000.0}


@dataclass(frozen=True)
class WindowRequest:
    """Read ``subset`` with ``template`` over the ``window`` seconds ending at unix time ``end``."""

    subset: Subset
    template: QueryTemplate
    window: float
    end: float


@dataclass(frozen=True)
class SubsetMetrics:
    """One subset's window: latency histogram (seconds), request and error counts (floats, as
    ``increase()`` extrapolates them to the window's edges)."""

    subset: Subset
    template: str
    window: float
    end: float
    histogram: Histogram
    requests: float
    errors: float

    def to_subset_window(self) -> SubsetWindow:
        """The judge's input for this subset (``analyzer.SubsetWindow``)."""
        from analyzer.judge import SubsetWindow

        return SubsetWindow(histogram=self.histogram, requests=self.requests, errors=self.errors)


@dataclass(frozen=True)
class NoData:
    """Prometheus holds no usable data for the subset in the window; ``reason`` says why."""

    subset: Subset
    template: str
    window: float
    end: float
    reason: str


Result = SubsetMetrics | NoData


@dataclass(frozen=True)
class _Group:
    template: QueryTemplate
    window: float
    end: float


class MetricsReader:
    """Answers rounds of :class:`WindowRequest` with as few queries as the round allows.

    Histograms are built as the server's ``histogram_quantile`` sees them: equal ``le`` values
    spelled differently are one bucket, and non-monotonic counts are repaired the way the server's
    version does (``monotonicity``; default: asked once from its build info, see
    :class:`~analyzer.histogram.Monotonicity`), so a p99 in a verdict is the p99 on the dashboard.
    """

    def __init__(self, client: PrometheusClient, *, monotonicity: Monotonicity | None = None) -> None:
        self.client = client
        self._monotonicity = monotonicity

    @property
    def monotonicity(self) -> Monotonicity:
        """The monotonicity fix-up of the server (its build info, read once it answers; while it
        cannot be reached, the current behaviour, asked again next time)."""
        if self._monotonicity is None:
            try:
                self._monotonicity = Monotonicity.for_version(self.client.build_version())
            except PrometheusUnavailableError:
                return Monotonicity.SMALL_DELTAS
        return self._monotonicity

    def read(self, requests: Sequence[WindowRequest]) -> list[Result]:
        """One result per request, in order; raises :class:`~analyzer.prometheus.PrometheusError`
        when Prometheus cannot answer (no partial round: the caller retries the round)."""
        groups: dict[tuple[str, float, float], list[int]] = defaultdict(list)
        templates: dict[str, QueryTemplate] = {}
        for index, request in enumerate(requests):
            name = request.template.name
            if templates.setdefault(name, request.template) is not request.template and (
                templates[name] != request.template
            ):
                raise TemplateError(f"two different templates are named {name!r} in one round")
            request.template.key(request.subset)  # fail early on a subset the template cannot select
            groups[(name, request.window, request.end)].append(index)
        results: list[Result | None] = [None] * len(requests)
        for (name, window, end), indices in groups.items():
            subsets = sorted({requests[i].subset for i in indices})
            by_subset = self.read_window(templates[name], subsets, window, end)
            for i in indices:
                results[i] = by_subset[requests[i].subset]
        return [r for r in results if r is not None]

    def read_window(
        self, template: QueryTemplate, subsets: Sequence[Subset], window: float, end: float
    ) -> dict[Subset, Result]:
        """Three queries for all ``subsets``: their histograms, requests and errors at ``end``."""
        subset_list = list(dict.fromkeys(subsets))
        labels = template.labels
        histogram = self.client.query(template.render("histogram", subset_list, window), end)
        requests = self.client.query(template.render("requests", subset_list, window), end)
        errors = self.client.query(template.render("errors", subset_list, window), end)

        buckets: dict[tuple[str, ...], dict[float, float]] = defaultdict(dict)
        bad_le: set[tuple[str, ...]] = set()
        for sample in histogram:
            key = _key(sample, labels)
            try:
                bound = float(sample.labels["le"])
            except (KeyError, ValueError):
                bad_le.add(key)
                continue
            if math.isnan(bound):
                bad_le.add(key)
                continue
            # "0.2", "2e-1" and "2.0e-1" (or "+Inf" and "+inf") are one bucket: their counts add up,
            # as histogram_quantile's coalesceBuckets adds them.
            buckets[key][bound] = buckets[key].get(bound, 0.0) + sample.value
        request_counts = _by_key(requests, labels)
        error_counts = _by_key(errors, labels)

        results: dict[Subset, Result] = {}
        for subset in subset_list:
            key = template.key(subset)

            def nodata(reason: str, subset: Subset = subset) -> NoData:
                return NoData(subset, template.name, window, end, reason)

            if key in bad_le:
                results[subset] = nodata(f"histogram query of {template.name!r} returned series without 'le'")
                continue
            if key not in buckets and key not in request_counts:
                results[subset] = nodata(
                    f"no series for {_describe(template, subset)} in the last {window:g}s"
                )
                continue
            if key not in buckets:
                results[subset] = nodata(f"no histogram series for {_describe(template, subset)}")
                continue
            if key not in request_counts:
                results[subset] = nodata(f"no request series for {_describe(template, subset)}")
                continue
            values = [*buckets[key].values(), request_counts[key], error_counts.get(key, 0.0)]
            if not all(math.isfinite(v) for v in values):
                results[subset] = nodata(f"NaN or infinite values for {_describe(template, subset)}")
                continue
            divisor = _UNIT_DIVISOR[template.unit]
            bounds = sorted(buckets[key])
            try:
                hist = Histogram.from_cumulative(
                    [b / divisor if math.isfinite(b) else b for b in bounds],
                    [_clamp(buckets[key][b]) for b in bounds],
                    monotonicity=self.monotonicity,
                )
            except ValueError as exc:
                results[subset] = nodata(f"malformed histogram for {_describe(template, subset)}: {exc}")
                continue
            total = _clamp(request_counts[key])
            results[subset] = SubsetMetrics(
                subset=subset,
                template=template.name,
                window=window,
                end=end,
                histogram=hist,
                requests=total,
                errors=min(_clamp(error_counts.get(key, 0.0)), total),
            )
        return results


def _key(sample: Sample, labels: Sequence[str]) -> tuple[str, ...]:
    return tuple(sample.labels.get(label, "") for label in labels)


def _by_key(samples: Sequence[Sample], labels: Sequence[str]) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = defaultdict(float)
    for sample in samples:
        out[_key(sample, labels)] += sample.value
    return dict(out)


def _clamp(value: float) -> float:
    # increase() never goes below zero for a counter; a negative here is float noise.
    return value if value > 0.0 else 0.0


def _describe(template: QueryTemplate, subset: Subset) -> str:
    return ", ".join(f"{label}={template.key(subset)[i]!r}" for i, label in enumerate(template.labels))
