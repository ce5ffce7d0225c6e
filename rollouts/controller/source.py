"""Windows from Prometheus for every rollout of a controller, batched per round.

All rollouts share one :class:`PrometheusSource` per Prometheus. Windows lie on one grid (see
``machine.grid_start``), so in a round every rollout with the same interval asks for the same window
end. The first request for a (template, window, end) reads the subsets of *every* registered rollout
that uses the template in one :meth:`MetricsReader.read` (three queries, grouped by labels); the
others are answered from that round's cache. Queries per round stay constant as rollouts are added.

An A/B rollout with ``analysis.segmentLabel`` is read in its match stage (weight 0) through the
template narrowed to the segment (:func:`analyzer.prometheus.templates.segmented`): the canary's
matching requests against GA's matching requests. When GA has none in a window (a match route sends
every matching request to the canary) GA's side is read from all of its requests instead, and the
window carries a note that the verdict repeats; it never falls back silently.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from analyzer import SubsetWindow, Window
from analyzer.prometheus import (
    MetricsReader,
    NoData,
    PrometheusError,
    QueryTemplate,
    Result,
    Subset,
    WindowRequest,
)
from analyzer.prometheus.templates import segmented
from rollouts.controller.errors import MetricsUnavailableError, NoDataError
from rollouts.controller.segment import NotedWindow
from rollouts.spec import Rollout
from rollouts.spec_controller import PrometheusSpec
from rollouts.workloads import subsets_of, template_of

_ROUNDS_KEPT = 64  # cached rounds (a restart replays a step's windows: keep them all for a while)
_FAILURE_TTL = 2.0  # a failed round is not retried by every rollout of the same round


@dataclass(frozen=True)
class _Sides:
    template: QueryTemplate
    stable: Subset
    canary: Subset
    segment: QueryTemplate | None = None  # the template narrowed to the A/B segment, if any


def _segment_of(rollout: Rollout, template: QueryTemplate) -> QueryTemplate | None:
    analysis = rollout.spec.analysis
    if analysis.segment_label is None or analysis.kind != "ab":
        return None
    return segmented(template, analysis.segment_label.name, analysis.segment_label.value)


class PrometheusSource:
    """The ``MetricsSource`` of every rollout reading one Prometheus."""

    def __init__(self, reader: MetricsReader) -> None:
        self.reader = reader
        self._sides: dict[str, _Sides] = {}
        self._rounds: OrderedDict[tuple[str, float, float], dict[Subset, Result]] = OrderedDict()
        self._failures: dict[tuple[str, float, float], tuple[float, str]] = {}
        self._lock = threading.Lock()
        self.rounds_read = 0

    @classmethod
    def for_spec(cls, spec: PrometheusSpec) -> PrometheusSource:
        """A source on the spec's Prometheus (URL, timeout, headers, TLS, credentials)."""
        from rollouts.controller.providers import prometheus_client

        return cls(MetricsReader(prometheus_client(spec)))

    def register(self, rollout: Rollout) -> None:
        """Include ``rollout``'s subsets in every round (raises ``TemplateError`` for a bad template)."""
        stable, canary = subsets_of(rollout)
        template = template_of(rollout)
        template.key(stable), template.key(canary)  # fail now on a subset the template cannot select
        segment = _segment_of(rollout, template)
        with self._lock:
            self._sides[rollout.key] = _Sides(template, stable, canary, segment)

    def unregister(self, key: str) -> None:
        """Stop reading rollout ``key``."""
        with self._lock:
            self._sides.pop(key, None)

    def window(self, rollout: Rollout, start: float, end: float, weight: int) -> Window:
        """GA and canary of ``rollout`` in ``[start, end)``; ``MetricsUnavailableError`` when
        Prometheus cannot answer or has no usable data for either side."""
        with self._lock:
            if rollout.key not in self._sides:
                raise MetricsUnavailableError(f"{rollout.key} is not registered with the Prometheus source")
            sides = self._sides[rollout.key]
            note = ""
            if sides.segment is not None and weight == 0:  # the A/B match stage
                results = dict(self._round(sides.segment, end - start, end))
                ga = results.get(sides.stable)
                if ga is None or isinstance(ga, NoData) or ga.requests <= 0:
                    whole = self._round(sides.template, end - start, end).get(sides.stable)
                    if whole is not None:
                        results[sides.stable] = whole
                    label, value = sides.segment.segment or ("", "")
                    note = (
                        f"GA served no request with {label}={value!r} in this window (at matchWeight "
                        "100 the match route sends them all to the canary): the canary's matching "
                        "requests were compared with all of GA's requests"
                    )
            else:
                results = self._round(sides.template, end - start, end)
        found = []
        for name, subset in (("GA", sides.stable), ("canary", sides.canary)):
            result = results.get(subset)
            if result is None or isinstance(result, NoData):
                why = result.reason if isinstance(result, NoData) else "not read in this round"
                raise NoDataError(f"no data for {name}: {why}")
            found.append(
                SubsetWindow(histogram=result.histogram, requests=result.requests, errors=result.errors)
            )
        try:
            if note:
                return NotedWindow(baseline=found[0], canary=found[1], weight=weight, note=note)
            return Window(baseline=found[0], canary=found[1], weight=weight)
        except ValueError as exc:  # e.g. GA and canary histograms with different buckets
            raise NoDataError(f"unusable window: {exc}") from exc

    def history(self, rollout: Rollout, before: float, interval: float, count: int) -> list[SubsetWindow]:
        """GA's windows of ``interval`` seconds before ``before``, newest first, at most ``count``;
        it stops at the first window without GA data (GA did not exist, or Prometheus forgot it) and
        on a failed query (then the judge falls back on its prior: a history is an improvement, never
        a condition). Read outside the rounds' cache, so the step's windows are never evicted."""
        with self._lock:
            sides = self._sides.get(rollout.key)
        if sides is None:
            return []
        out: list[SubsetWindow] = []
        for k in range(count):
            end = before - k * interval
            try:
                result = self.reader.read_window(sides.template, [sides.stable], interval, end)[sides.stable]
            except PrometheusError:
                break
            if isinstance(result, NoData) or result.requests <= 0:
                break
            out.append(
                SubsetWindow(histogram=result.histogram, requests=result.requests, errors=result.errors)
            )
        return out

    def _round(self, template: QueryTemplate, window: float, end: float) -> dict[Subset, Result]:
        """The round's results, read once for every registered rollout (caller holds the lock).

        Holding the lock while reading serialises rounds, which is the point: the rollouts of a round
        wait for its one read instead of each sending their own.
        """
        key = (template.name, window, end)
        if key in self._rounds:
            self._rounds.move_to_end(key)
            return self._rounds[key]
        failed = self._failures.get(key)
        if failed is not None and time.monotonic() - failed[0] < _FAILURE_TTL:
            raise MetricsUnavailableError(failed[1])
        subsets = sorted(
            {
                s
                for sides in self._sides.values()
                if template in (sides.template, sides.segment)
                for s in (sides.stable, sides.canary)
            }
        )
        requests = [WindowRequest(s, template, window, end) for s in subsets]
        try:
            results = self.reader.read(requests)
        except PrometheusError as exc:
            self._failures[key] = (time.monotonic(), str(exc))
            raise MetricsUnavailableError(str(exc)) from exc
        self._failures.pop(key, None)
        self.rounds_read += 1
        answer = {request.subset: result for request, result in zip(requests, results, strict=True)}
        self._rounds[key] = answer
        while len(self._rounds) > _ROUNDS_KEPT:
            self._rounds.popitem(last=False)
        return answer
