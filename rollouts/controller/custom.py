"""Custom metrics in the controller: read with the round's batched queries, judged beside the judge.

Two thin shells around pure parts, so that the state machine needs no change:

* :class:`CustomSource` is the rollouts' ``MetricsSource``: the built-in window from the
  :class:`~rollouts.controller.source.PrometheusSource`, plus each custom metric's readings
  (:class:`CustomWindow`). The first rollout asking for a (metric, window, end) reads the subsets
  of *every* registered rollout with an equal metric query in one query (two for a rate), so
  queries per round grow with the number of distinct metric templates, not with rollouts. A
  Flagger template is queried per rollout, as written.
* :class:`CombinedJudge` is the ``Judge`` the machine sees: the built-in judge at its share of α,
  one :class:`~analyzer.custom.CustomJudge` per metric, and :func:`analyzer.custom.combine`.

Must never: turn a provider failure or missing data into a pass (they are readings without a
side, which a gating metric holds on).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from analyzer import Judge, Policy, SubsetWindow, Verdict, Window
from analyzer.custom import (
    CustomEvidence,
    CustomJudge,
    CustomMetric,
    CustomReading,
    CustomSide,
    alpha_share,
    combine,
)
from analyzer.prometheus import NoData, Subset
from analyzer.prometheus.custom import CustomReader, CustomResult
from analyzer.providers import Provider, ProviderError
from rollouts.controller.source import PrometheusSource
from rollouts.metrics import ControllerMetrics
from rollouts.spec import Rollout
from rollouts.spec_metrics import FlaggerTemplate, custom_metrics, flagger_templates, resolve_template
from rollouts.workloads import subsets_of

_ROUNDS_KEPT = 256


@dataclass(frozen=True)
class CustomWindow(Window):
    """A built-in window and the custom metrics' readings of the same interval."""

    custom: tuple[CustomReading, ...] = ()


def query_key(metric: CustomMetric) -> tuple[Any, ...]:
    """What makes two metrics the same query (their names, margins and roles do not)."""
    return (
        metric.provider,
        metric.kind,
        tuple(sorted(metric.selector.items())),
        metric.query,
        metric.events,
        metric.requests,
        metric.histogram,
    )


@dataclass(frozen=True)
class _Registered:
    metrics: tuple[CustomMetric, ...]
    stable: Subset
    canary: Subset
    templates: dict[str, FlaggerTemplate]
    flagger_values: dict[str, str]


class CustomSource:
    """The ``MetricsSource`` of rollouts with custom metrics on one set of providers."""

    def __init__(self, inner: PrometheusSource, providers: dict[str, Provider]) -> None:
        self.inner = inner
        self.reader = CustomReader(providers)
        self._registered: dict[str, _Registered] = {}
        self._rounds: OrderedDict[tuple[Any, ...], dict[Subset, CustomResult] | str] = OrderedDict()
        self._lock = threading.Lock()
        self.rounds_read = 0

    def register(self, rollout: Rollout) -> None:
        """Include ``rollout`` (built-in and custom metrics) in every round."""
        self.inner.register(rollout)
        metrics = tuple(custom_metrics(rollout.spec.analysis.metrics))
        templates = flagger_templates(rollout.spec.analysis.metric_templates)
        stable, canary = subsets_of(rollout)
        refs = {
            m.name: resolve_template(m, templates, rollout.metadata.namespace)
            for m in metrics
            if m.template_ref is not None
        }
        values = {
            "name": rollout.metadata.name,
            "namespace": rollout.metadata.namespace,
            "target": canary.workload,
            "service": canary.service,
        }
        with self._lock:
            self._registered[rollout.key] = _Registered(metrics, stable, canary, refs, values)

    def unregister(self, key: str) -> None:
        """Stop reading rollout ``key``."""
        self.inner.unregister(key)
        with self._lock:
            self._registered.pop(key, None)

    def window(self, rollout: Rollout, start: float, end: float, weight: int) -> CustomWindow:
        """The built-in window (errors as the inner source raises them) and the custom readings."""
        base = self.inner.window(rollout, start, end, weight)
        return CustomWindow(
            base.baseline, base.canary, base.weight, custom=self.readings(rollout, end - start, end)
        )

    def history(self, rollout: Rollout, before: float, interval: float, count: int) -> list[SubsetWindow]:
        """GA's windows before the rollout, from the built-in source (custom metrics have none)."""
        return self.inner.history(rollout, before, interval, count)

    def readings(self, rollout: Rollout, window: float, end: float) -> tuple[CustomReading, ...]:
        """Each custom metric of ``rollout`` over the window ending at ``end``."""
        with self._lock:
            registered = self._registered.get(rollout.key)
            if registered is None:
                return ()
            out = []
            for metric in registered.metrics:
                if metric.template_ref is not None:
                    out.append(self._flagger(rollout.key, registered, metric, window, end))
                    continue
                answer = self._round(metric, window, end)
                if isinstance(answer, str):
                    out.append(CustomReading(metric.name, None, None, answer))
                    continue
                out.append(
                    _reading(metric.name, answer.get(registered.canary), answer.get(registered.stable))
                )
            return tuple(out)

    def _round(self, metric: CustomMetric, window: float, end: float) -> dict[Subset, CustomResult] | str:
        """One query for every registered rollout's subsets with the same metric query (caller
        holds the lock); a provider failure is remembered for the round as its message."""
        key = (query_key(metric), window, end)
        if key in self._rounds:
            self._rounds.move_to_end(key)
            return self._rounds[key]
        subsets = sorted(
            {
                s
                for r in self._registered.values()
                if any(query_key(m) == key[0] for m in r.metrics)
                for s in (r.stable, r.canary)
            }
        )
        answer: dict[Subset, CustomResult] | str
        try:
            answer = self.reader.read(metric, subsets, window, end)
            self.rounds_read += 1
        except ProviderError as exc:
            answer = str(exc)
        self._rounds[key] = answer
        while len(self._rounds) > _ROUNDS_KEPT:
            self._rounds.popitem(last=False)
        return answer

    def _flagger(
        self, rollout_key: str, registered: _Registered, metric: CustomMetric, window: float, end: float
    ) -> CustomReading:
        from analyzer.prometheus.templates import duration

        template = registered.templates[metric.name]
        values = {**registered.flagger_values, "interval": duration(window)}
        scoped = metric.model_copy(update={"provider": template.provider})
        try:
            side = self.reader.read_flagger(
                scoped, template.query, values, window=window, end=end, subset=registered.canary
            )
        except ProviderError as exc:
            return CustomReading(metric.name, None, None, str(exc))
        if isinstance(side, NoData):
            return CustomReading(metric.name, None, None, side.reason)
        return CustomReading(metric.name, side, side)  # absolute: GA is not compared


def _reading(name: str, canary: CustomResult | None, baseline: CustomResult | None) -> CustomReading:
    why = [r.reason for r in (canary, baseline) if isinstance(r, NoData)]
    return CustomReading(
        name,
        canary if isinstance(canary, CustomSide) else None,
        baseline if isinstance(baseline, CustomSide) else None,
        "; ".join(why) or ("" if canary is not None and baseline is not None else "not read in this round"),
    )


class CombinedJudge:
    """The built-in judge at its share of α and the custom metrics' judges, as one ``Judge``."""

    def __init__(
        self,
        policy: Policy,
        metrics: list[CustomMetric],
        *,
        report: Callable[[CustomReading, CustomEvidence], None] | None = None,
        **judge_options: Any,
    ) -> None:
        self.report = report
        share = alpha_share(policy.alpha, metrics)
        self.inner = Judge(policy.model_copy(update={"alpha": share}), **judge_options)
        self.customs = {
            m.name: CustomJudge(
                m, alpha=share, promote_alpha=policy.promote_alpha, min_windows=policy.min_windows
            )
            for m in metrics
        }

    def judge(self, window: Window) -> Verdict:
        """The combined verdict of one window (see :func:`analyzer.custom.combine`)."""
        verdict = self.inner.judge(window)
        readings = {r.metric: r for r in getattr(window, "custom", ())}
        evidence = []
        for name, judge in self.customs.items():
            reading = readings.get(name, CustomReading(name, None, None, "not read"))
            self.customs[name], said = judge.observe(reading.canary, reading.baseline, reading.why)
            evidence.append(said)
            if self.report is not None:
                self.report(reading, said)
        return combine(verdict, evidence)

    def new_step(self) -> None:
        """A new step: the judge's per-step evidence and each metric's safety evidence restart."""
        self.inner.new_step()
        self.customs = {name: judge.new_step() for name, judge in self.customs.items()}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def reporter(metrics: ControllerMetrics, rollout: str) -> Callable[[CustomReading, CustomEvidence], None]:
    """Each custom metric's readings and evidence into the controller's ``/metrics`` (the dashboards)."""

    def report(reading: CustomReading, said: CustomEvidence) -> None:
        values = {
            subset: side.value
            for subset, side in (("ga", reading.baseline), ("canary", reading.canary))
            if side is not None and math.isfinite(side.value)
        }
        evidence = {
            "harm": said.harm,
            "harm_threshold": said.harm_threshold,
            "safety": said.safety,
            "safety_threshold": said.safety_threshold,
        }
        metrics.set_custom(rollout, said.metric, values, evidence)

    return report


def wiring(
    shared: dict[tuple[Any, ...], CustomSource],
    source: PrometheusSource,
    rollout: Rollout,
    policy: Policy,
    metrics_out: ControllerMetrics | None = None,
) -> tuple[PrometheusSource | CustomSource, Any]:
    """The metrics source and judge factory of ``rollout``: the Prometheus source and the plain
    judge without custom metrics; else a :class:`CustomSource` shared by the rollouts with the same
    providers (kept in ``shared``, so their rounds are batched together) and a
    :class:`CombinedJudge`."""
    metrics = custom_metrics(rollout.spec.analysis.metrics)
    steps = tuple(float(s) for s in rollout.spec.steps)  # the judge knows the rollout's steps
    if not metrics:
        return source, lambda history: Judge(policy, steps=steps, history=history)
    datadog = rollout.spec.analysis.datadog
    key = (id(source), None if datadog is None else (datadog.url, datadog.api_key_file))
    custom = shared.get(key)
    if custom is None:
        from rollouts.controller.providers import datadog_client

        providers: dict[str, Provider] = {"prometheus": source.reader.client}
        if datadog is not None:
            providers["datadog"] = datadog_client(datadog)
        custom = shared[key] = CustomSource(source, providers)
    custom.register(rollout)
    report = reporter(metrics_out, rollout.key) if metrics_out is not None else None
    return custom, lambda history: CombinedJudge(policy, metrics, report=report, steps=steps, history=history)
