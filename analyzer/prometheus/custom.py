"""Reading custom metrics, batched: one query per metric template and round, whatever the rollouts.

:class:`CustomReader` answers "this metric for these subsets over this window" with one
:class:`~analyzer.custom.CustomSide` or :class:`~analyzer.prometheus.NoData` per subset, from the
metric's provider (Prometheus or Datadog). The result vector is split per subset by the metric's
``selector`` labels, as the built-in templates' are.

Honest results, each naming the metric: a subset without a series is NoData (never zero); several
series for one subset (a query that does not aggregate ``by ({{ by }})``) is NoData saying so; NaN
or infinite values are NoData; for a rate, a missing events series is zero events (a counter of
failures only exists once one happened), a missing requests series is NoData.

Flagger ``MetricTemplate`` queries (:meth:`CustomReader.read_flagger`) are per rollout, as written,
and must answer one value: the canary's.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Literal

from analyzer.custom import CustomMetric, CustomSide
from analyzer.histogram import Histogram
from analyzer.prometheus.query import NoData, _key
from analyzer.prometheus.templates import Subset, TemplateError, render_custom, render_flagger
from analyzer.providers.base import Provider, ProviderError, Sample

CustomResult = CustomSide | NoData


class CustomReader:
    """Custom metrics from their providers (``{"prometheus": ..., "datadog": ...}``)."""

    def __init__(self, providers: Mapping[str, Provider]) -> None:
        self.providers = dict(providers)

    def _provider(self, metric: CustomMetric) -> Provider:
        provider = self.providers.get(metric.provider)
        if provider is None:
            raise TemplateError(f"metric {metric.name!r}: provider {metric.provider} is not configured")
        return provider

    def _query(self, metric: CustomMetric, field: str, text: str, at: float, window: float) -> list[Sample]:
        provider = self._provider(metric)
        try:
            return provider.query(text, at, window=window)
        except ProviderError as exc:
            raise type(exc)(f"{metric.label()} ({field}): {exc}") from None

    def read(
        self, metric: CustomMetric, subsets: Sequence[Subset], window: float, end: float
    ) -> dict[Subset, CustomResult]:
        """``metric`` for every subset over the ``window`` seconds ending at ``end``: one query
        (two for a rate) for all of them."""
        round_ = _Round(self, metric, list(dict.fromkeys(subsets)), window, end)
        if metric.kind == "histogram":
            return round_.histograms()
        if metric.kind == "value":
            return round_.values()
        return round_.rates()

    def read_flagger(
        self,
        metric: CustomMetric,
        query: str,
        values: Mapping[str, str],
        *,
        window: float,
        end: float,
        subset: Subset,
    ) -> CustomResult:
        """A Flagger MetricTemplate's query for one rollout: exactly one value, the canary's."""
        text = render_flagger(query, values, metric.template_variables)
        samples = self._query(metric, "templateRef", text, end, window)

        def nodata(reason: str) -> NoData:
            return NoData(
                subset, metric.name, window, end, f"{metric.label()}: the template's query {reason}"
            )

        if not samples:
            return nodata("returned no data")
        if len(samples) > 1:
            return nodata(f"returned {len(samples)} series, expected one value")
        if not math.isfinite(samples[0].value):
            return nodata(f"returned {samples[0].value}")
        return CustomSide(value=samples[0].value)


class _Round:
    """One metric, one round: the rendered queries and the split per subset."""

    def __init__(
        self, reader: CustomReader, metric: CustomMetric, subsets: list[Subset], window: float, end: float
    ) -> None:
        self.reader, self.metric, self.subsets, self.window, self.end = reader, metric, subsets, window, end
        self.labels = tuple(metric.selector.values())

    def run(self, field: str) -> list[Sample]:
        dialect: Literal["prometheus", "datadog"] = "prometheus"
        if self.metric.provider == "datadog":
            dialect = "datadog"
        selector = {str(field): label for field, label in self.metric.selector.items()}
        text = render_custom(getattr(self.metric, field), selector, self.subsets, self.window, dialect)
        return self.reader._query(self.metric, field, text, self.end, self.window)

    def key(self, subset: Subset) -> tuple[str, ...]:
        return tuple(subset.value(f) for f in self.metric.selector)

    def nodata(self, subset: Subset, reason: str) -> NoData:
        where = _describe(self.labels, self.key(subset))
        return NoData(
            subset, self.metric.name, self.window, self.end, f"{self.metric.label()}: {reason} for {where}"
        )

    def side(self, subset: Subset, found: list[float] | None, what: str = "series") -> CustomResult:
        if not found:
            return self.nodata(subset, f"no {what}")
        if len(found) > 1:
            return self.nodata(subset, f"{len(found)} {what} (aggregate the query by ({{{{ by }}}}))")
        if not math.isfinite(found[0]):
            return self.nodata(subset, f"value {found[0]}")
        return CustomSide(value=found[0])

    def values(self) -> dict[Subset, CustomResult]:
        found = _grouped(self.run("query"), self.labels)
        return {s: self.side(s, found.get(self.key(s))) for s in self.subsets}

    def rates(self) -> dict[Subset, CustomResult]:
        events = _grouped(self.run("events"), self.labels)
        requests = _grouped(self.run("requests"), self.labels)
        out: dict[Subset, CustomResult] = {}
        for subset in self.subsets:
            total = self.side(subset, requests.get(self.key(subset)), "requests series")
            count = self.side(subset, events.get(self.key(subset), [0.0]), "events series")
            if isinstance(total, NoData) or isinstance(count, NoData):
                out[subset] = total if isinstance(total, NoData) else count
                continue
            n, e = max(total.value, 0.0), max(count.value, 0.0)
            if n <= 0:
                out[subset] = self.nodata(subset, "no requests in the window")
                continue
            out[subset] = CustomSide(value=e / n, events=min(e, n), requests=n)
        return out

    def histograms(self) -> dict[Subset, CustomResult]:
        buckets: dict[tuple[str, ...], dict[float, float]] = defaultdict(dict)
        for sample in self.run("histogram"):
            try:
                bound = float(sample.labels["le"])
            except (KeyError, ValueError):
                continue
            k = _key(sample, self.labels)
            buckets[k][bound] = buckets[k].get(bound, 0.0) + sample.value
        out: dict[Subset, CustomResult] = {}
        for subset in self.subsets:
            found = buckets.get(self.key(subset))
            if not found:
                out[subset] = self.nodata(subset, "no histogram series")
                continue
            if not all(math.isfinite(v) for v in found.values()):
                out[subset] = self.nodata(subset, "NaN or infinite bucket counts")
                continue
            bounds = sorted(found)
            try:
                hist = Histogram.from_cumulative(bounds, [max(found[b], 0.0) for b in bounds])
            except ValueError as exc:
                out[subset] = self.nodata(subset, f"malformed histogram ({exc})")
                continue
            out[subset] = CustomSide(value=hist.total, histogram=hist)
        return out


def _grouped(samples: Sequence[Sample], labels: Sequence[str]) -> dict[tuple[str, ...], list[float]]:
    out: dict[tuple[str, ...], list[float]] = defaultdict(list)
    for sample in samples:
        out[_key(sample, labels)].append(sample.value)
    return dict(out)


def _describe(labels: Sequence[str], key: Sequence[str]) -> str:
    return ", ".join(f"{label}={value!r}" for label, value in zip(labels, key, strict=True))
