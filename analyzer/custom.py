"""Custom metrics: any SLI a team gates on, judged canary against GA with anytime-valid evidence.

A :class:`CustomMetric` says how to read one number per subset and window, and how to judge it:

``kind``
    ``rate``: ``events`` over ``requests`` (cache misses per request, failed checkouts per
    checkout), judged with the judge's count e-processes; ``value``: one value per window (a gauge
    such as queue lag, a ratio such as the cache hit ratio), judged on the log ratio canary/GA with
    :class:`analyzer.values.ValueEProcess`; ``histogram``: a latency-like histogram (p99 of a
    downstream call), judged by stochastic order (Mann–Whitney effect θ).
``direction``
    ``higher-is-worse`` or ``lower-is-worse``; required: a metric without one is a spec error.
``margin``
    the practical margin: a ratio (0.1: the canary may be 10 % worse) for ``rate`` and ``value``,
    in θ units (P(canary > GA) − ½) for ``histogram``. A difference inside it never rolls back.
``role``
    ``gate``: must be shown within the margin before a promotion and rolls back on harm;
    ``rollback``: rolls back on harm, never holds a promotion; ``show``: read and reported only.
``thresholdRange``
    Flagger's absolute bounds ``{min, max}`` on the canary's value: outside them the rollout rolls
    back, whatever GA does (a Flagger ``MetricTemplate`` referenced by ``templateRef`` is used
    this way, with its query as written; see :mod:`analyzer.prometheus.custom`).

The false-rollback budget α is shared: the built-in judge and every custom metric that can roll
back get α / (1 + k) each, k the number of such custom metrics (Bonferroni, over e-processes each
anytime-valid at its own level). :class:`CustomJudge` holds one metric's evidence; it is pure and
deterministic (replayable), and no data is never a pass.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from analyzer.prometheus.templates import TemplateError, check_custom_query

if TYPE_CHECKING:
    from analyzer.histogram import Histogram
    from analyzer.judge import Verdict

# The Rollout spec validates custom metrics when it is loaded (``rollouts status`` too): the model
# above is pydantic only; the statistics (numpy, scipy, the judge) are imported where a metric is
# judged, never at import time.

__all__ = [
    "CustomEvidence",
    "CustomJudge",
    "CustomMetric",
    "CustomMetricError",
    "CustomReading",
    "CustomSide",
    "MetricTemplateRef",
    "ThresholdRange",
    "alpha_share",
    "combine",
    "custom_metric_from_mapping",
]

Kind = Literal["rate", "value", "histogram"]
Role = Literal["gate", "rollback", "show"]
_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")


class CustomMetricError(ValueError):
    """A custom metric that cannot be used; the message names the metric and the field."""


class ThresholdRange(BaseModel):
    """Flagger's ``thresholdRange``: the canary's value must stay within ``[min, max]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _some(self) -> ThresholdRange:
        if self.min is None and self.max is None:
            raise ValueError("needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g})")
        return self

    def broken_by(self, value: float) -> str | None:
        """Why ``value`` is outside the range, or None."""
        if self.max is not None and value > self.max:
            return f"{value:.4g} > max {self.max:g}"
        if self.min is not None and value < self.min:
            return f"{value:.4g} < min {self.min:g}"
        return None


class MetricTemplateRef(BaseModel):
    """Flagger's ``templateRef``: a ``MetricTemplate`` by name (and namespace)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    namespace: str = ""


class CustomMetric(BaseModel):
    """One user-defined metric (see the module docs for the fields' meaning)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(description="Lower-case name, used in reasons, the report and the dashboard.")
    description: str = ""
    kind: Kind = Field(default="value", description="`rate` (events/requests), `value` or `histogram`.")
    provider: Literal["prometheus", "datadog"] = Field(default="prometheus", description="Where to query.")
    selector: dict[Literal["namespace", "workload", "version", "service"], str] = Field(
        default_factory=dict, description="Subset field -> metric label, as for the built-in templates."
    )
    query: str | None = Field(default=None, description="`value`: one value per subset.")
    events: str | None = Field(default=None, description="`rate`: the events (numerator) per subset.")
    requests: str | None = Field(default=None, description="`rate`: the requests (denominator) per subset.")
    histogram: str | None = Field(default=None, description="`histogram`: bucket counts by `le` per subset.")
    direction: Literal["higher-is-worse", "lower-is-worse"] | None = Field(
        default=None, description="Required unless `role: show`."
    )
    margin: float = Field(default=0.1, ge=0, description="Practical margin (ratio; θ units for histograms).")
    role: Role = Field(default="gate", description="`gate`, `rollback` (rollback only) or `show`.")
    floor: float = Field(
        default=0.0, ge=0, description="`value`: added to both sides (values that can be 0)."
    )
    threshold_range: ThresholdRange | None = Field(
        default=None, alias="thresholdRange", description="Flagger: absolute bounds on the canary's value."
    )
    template_ref: MetricTemplateRef | None = Field(
        default=None, alias="templateRef", description="Flagger: a MetricTemplate's query, as written."
    )
    template_variables: dict[str, str] = Field(
        default_factory=dict, alias="templateVariables", description="Flagger: `{{ variables.x }}` values."
    )

    @model_validator(mode="after")
    def _complete(self) -> CustomMetric:
        if not _NAME.match(self.name):
            raise ValueError(f"name: {self.name!r} must be lower-case letters, digits, '.', '_' or '-'")
        if self.template_ref is not None:
            if self.threshold_range is None:
                raise ValueError("templateRef: a Flagger template is judged against thresholdRange; set it")
            if any(getattr(self, f) for f in ("query", "events", "requests", "histogram")):
                raise ValueError("templateRef: the query comes from the MetricTemplate; drop query")
            return self
        needed = {"rate": ("events", "requests"), "value": ("query",), "histogram": ("histogram",)}[self.kind]
        for name in needed:
            if not getattr(self, name):
                raise ValueError(f"{name}: required for kind {self.kind}")
        for name in {"query", "events", "requests", "histogram"} - set(needed):
            if getattr(self, name):
                raise ValueError(f"{name}: not used by kind {self.kind}")
        if not self.selector:
            raise ValueError("selector: required (subset field -> metric label)")
        for label in self.selector.values():
            if not re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*$", label):
                raise ValueError(f"selector: {label!r} is not a valid label name")
        for name in needed:
            try:
                check_custom_query(getattr(self, name), name)
            except TemplateError as exc:
                raise ValueError(str(exc)) from None
        if self.direction is None and self.role != "show":
            raise ValueError("direction: required (higher-is-worse or lower-is-worse)")
        if self.kind == "histogram" and self.margin >= 0.5:
            raise ValueError("margin: in θ units for a histogram, below 0.5")
        if self.kind == "histogram" and self.provider == "datadog":
            raise ValueError("kind histogram needs bucket counts, which Datadog's query API does not give")
        return self

    @property
    def can_roll_back(self) -> bool:
        """True for ``gate`` and ``rollback`` metrics."""
        return self.role != "show"

    @property
    def higher_is_worse(self) -> bool:
        """Direction as a flag (``show`` metrics without a direction count as higher-is-worse)."""
        return self.direction != "lower-is-worse"

    def label(self) -> str:
        """The name as people read it in reasons: ``queue-lag`` -> ``queue lag``."""
        return self.name.replace("-", " ").replace("_", " ")


def custom_metric_from_mapping(data: Any, source: str = "metric") -> CustomMetric:
    """Validate one custom metric; :class:`CustomMetricError` names the source, metric and field."""
    try:
        return CustomMetric.model_validate(data)
    except ValidationError as exc:
        name = data.get("name") if isinstance(data, dict) else None
        problems = "; ".join(
            ".".join(str(p) for p in err["loc"])
            + (": " if err["loc"] else "")
            + str(err["msg"]).removeprefix("Value error, ")
            for err in exc.errors()
        )
        raise CustomMetricError(f"{source}: metric {name or '?'!r}: {problems}") from None


def alpha_share(alpha: float, metrics: list[CustomMetric]) -> float:
    """Each part's share of the false-rollback budget: α / (1 + metrics that can roll back)."""
    return alpha / (1 + sum(1 for m in metrics if m.can_roll_back))


@dataclass(frozen=True)
class CustomSide:
    """One subset's reading of a custom metric in one window: ``value`` (kind ``value``, and the
    ratio events/requests of a rate), ``events`` and ``requests`` (``rate``), ``histogram``."""

    value: float
    events: float = 0.0
    requests: float = 0.0
    histogram: Histogram | None = None


@dataclass(frozen=True)
class CustomEvidence:
    """What one metric says after a window: ``action`` (rollback, hold or pass), ``reason`` in
    words, the harm and safety e-values and their thresholds, windows judged and the ratio
    canary/GA of the mean values so far."""

    metric: str
    role: Role
    action: Literal["rollback", "hold", "pass"]
    reason: str
    harm: float
    harm_threshold: float
    safety: float
    safety_threshold: float
    windows: int
    ratio: float
    alpha: float
    ga_mean: float = math.nan
    canary_mean: float = math.nan


@dataclass(frozen=True)
class _Sums:
    canary: float = 0.0
    baseline: float = 0.0


@dataclass(frozen=True)
class CustomJudge:
    """One custom metric's evidence over a rollout (harm) and the current step (safety); pure.

    ``alpha`` is this metric's share of the budget (:func:`alpha_share`), ``promote_alpha`` the
    level every gating metric's safety evidence must reach, ``min_windows`` the windows a step
    needs before this metric lets it pass.
    """

    metric: CustomMetric
    alpha: float
    promote_alpha: float = 0.05
    min_windows: int = 3
    harm: Any = None
    safety: Any = None
    step_windows: int = 0
    sums: _Sums = field(default_factory=_Sums)
    harm_windows: int = 0

    def __post_init__(self) -> None:
        if not (0 < self.alpha < 1 and 0 < self.promote_alpha < 1):
            raise ValueError("alpha and promote_alpha must be in (0, 1)")
        if self.harm is None:
            object.__setattr__(self, "harm", self._process("harm"))
        if self.safety is None:
            object.__setattr__(self, "safety", self._process("safety"))

    def _process(self, direction: Literal["harm", "safety"]) -> Any:
        from analyzer.sequential import CountEProcess, OrderEProcess
        from analyzer.values import ValueEProcess

        m = self.metric
        if m.kind == "value":
            return ValueEProcess(direction, null=math.log1p(m.margin))
        if m.kind == "rate":
            return CountEProcess(direction, ratio=1.0 + m.margin)
        return OrderEProcess(direction, null=0.5 + m.margin)

    def new_step(self) -> CustomJudge:
        """Safety evidence restarts at a new step; harm evidence carries over the rollout."""
        return replace(self, safety=self._process("safety"), step_windows=0)

    def observe(
        self, canary: CustomSide | None, baseline: CustomSide | None, why: str = ""
    ) -> tuple[CustomJudge, CustomEvidence]:
        """The judge after one window and what it says; a missing side (``None``) is a hold that
        names the metric (``why``: the reader's reason), never a pass."""
        m = self.metric
        if canary is None or baseline is None:
            missing = "GA" if baseline is None else "canary"
            reason = f"{m.label()}: no data for {missing}" + (f": {why}" if why else "")
            return self, self._evidence("hold" if m.can_roll_back else "pass", reason)
        if m.threshold_range is not None:
            broken = m.threshold_range.broken_by(canary.value)
            if broken is not None:
                return self, self._evidence("rollback", f"{m.label()}: canary {broken} (thresholdRange)")
            if m.template_ref is not None:  # a Flagger template is an absolute check only
                return self, self._evidence("pass", f"{m.label()}: canary {canary.value:.4g} within range")
        try:
            harm, safety = self._updated(canary, baseline)
        except ValueError as exc:
            return self, self._evidence("hold" if m.can_roll_back else "pass", f"{m.label()}: {exc}")
        sums = _Sums(self.sums.canary + canary.value, self.sums.baseline + baseline.value)
        judged = replace(
            self,
            harm=harm,
            safety=safety,
            step_windows=self.step_windows + 1,
            harm_windows=self.harm_windows + 1,
            sums=sums,
        )
        return judged, judged._verdict()

    def _updated(self, canary: CustomSide, baseline: CustomSide) -> tuple[Any, Any]:
        from analyzer.mannwhitney import effect_variance, mann_whitney
        from analyzer.sequential import CountWindow
        from analyzer.values import log_difference

        m = self.metric
        if m.kind == "value":
            d = log_difference(canary.value, baseline.value, floor=m.floor, higher_is_worse=m.higher_is_worse)
            return self.harm.update(d), self.safety.update(d)
        if m.kind == "rate":
            if canary.requests <= 0 or baseline.requests <= 0:
                raise ValueError("no requests in the window for one side")
            worse, other = (canary, baseline) if m.higher_is_worse else (baseline, canary)
            # lower-is-worse: GA's rate above (1 + margin) x the canary's is the harm
            window = CountWindow(worse.events, worse.requests, other.events, other.requests)
            return self.harm.update(window), self.safety.update(window)
        if canary.histogram is None or baseline.histogram is None:
            raise ValueError("no histogram")
        first, second = (canary, baseline) if m.higher_is_worse else (baseline, canary)
        assert first.histogram is not None and second.histogram is not None
        result = mann_whitney(first.histogram.counts, second.histogram.counts)
        variance = effect_variance(first.histogram.counts, second.histogram.counts)
        if not (math.isfinite(variance) and variance > 0):
            raise ValueError("too few observations for a histogram comparison")
        return self.harm.update(result.effect, variance), self.safety.update(result.effect, variance)

    @property
    def ratio(self) -> float:
        """Mean canary value / mean GA value over the windows judged (NaN before any)."""
        if self.harm_windows == 0 or self.sums.baseline == 0:
            return math.nan
        return self.sums.canary / self.sums.baseline

    def _verdict(self) -> CustomEvidence:
        m = self.metric
        harm_at = 1.0 / self.alpha
        ratio = self.ratio
        shown = f"canary {ratio:.2f}× GA" if math.isfinite(ratio) else "canary vs GA"
        over = f"over {self.harm_windows} window{'s' if self.harm_windows != 1 else ''}"
        if m.can_roll_back and self.harm.evalue >= harm_at:
            return self._evidence(
                "rollback", f"{m.label()}: {shown} {over}, e = {self.harm.evalue:.3g} ≥ {harm_at:.3g}"
            )
        if m.role != "gate":
            return self._evidence("pass", f"{m.label()}: {shown} {over}")
        safe_at = 1.0 / self.promote_alpha
        if self.safety.evalue >= safe_at and self.step_windows >= self.min_windows:
            return self._evidence(
                "pass",
                f"{m.label()}: {shown} {over}, within {m.margin:g} of GA (e = {self.safety.evalue:.3g} "
                f"≥ {safe_at:.3g})",
            )
        return self._evidence(
            "hold",
            f"{m.label()}: {shown} {over}, not yet shown within {m.margin:g} of GA "
            f"(e = {self.safety.evalue:.3g} of {safe_at:.3g}, {self.step_windows}/{self.min_windows} "
            "windows this step)",
        )

    def _evidence(self, action: Literal["rollback", "hold", "pass"], reason: str) -> CustomEvidence:
        return CustomEvidence(
            metric=self.metric.name,
            role=self.metric.role,
            action=action,
            reason=reason,
            harm=self.harm.evalue,
            harm_threshold=1.0 / self.alpha,
            safety=self.safety.evalue,
            safety_threshold=1.0 / self.promote_alpha,
            windows=self.harm_windows,
            ratio=self.ratio,
            alpha=self.alpha,
            ga_mean=self.sums.baseline / self.harm_windows if self.harm_windows else math.nan,
            canary_mean=self.sums.canary / self.harm_windows if self.harm_windows else math.nan,
        )


@dataclass(frozen=True)
class CustomReading:
    """One custom metric in one window: each side's reading, or None with ``why`` (no data)."""

    metric: str
    canary: CustomSide | None
    baseline: CustomSide | None
    why: str = ""


def combine(verdict: Verdict, evidence: list[CustomEvidence]) -> Verdict:
    """The built-in judge's verdict with the custom metrics' say (pure).

    Rollback when any metric that can roll back says so (its reason first) or the judge does;
    promote only when the judge promotes and every gating metric passes; hold otherwise, with the
    holding metrics' reasons first. Each metric's e-values join the evidence (``custom.<name>.*``).
    """
    from analyzer.judge import Verdict

    figures = dict(verdict.evidence)
    for ev in evidence:
        figures[f"custom.{ev.metric}.harm_e"] = ev.harm
        figures[f"custom.{ev.metric}.safety_e"] = ev.safety
        figures[f"custom.{ev.metric}.alpha"] = ev.alpha
        for name, value in (("ratio", ev.ratio), ("ga_mean", ev.ga_mean), ("canary_mean", ev.canary_mean)):
            if math.isfinite(value):
                figures[f"custom.{ev.metric}.{name}"] = value
    said = [ev.reason for ev in evidence]
    harmful = [ev.reason for ev in evidence if ev.action == "rollback"]
    if harmful:
        return Verdict("rollback", [*harmful, *verdict.reasons], figures)
    if verdict.action == "rollback":
        return Verdict("rollback", [*verdict.reasons, *said], figures)
    holding = [ev.reason for ev in evidence if ev.action == "hold"]
    if verdict.action == "promote" and not holding:
        return Verdict("promote", [*verdict.reasons, *said], figures)
    if verdict.action == "promote":
        return Verdict("hold", [*holding, *verdict.reasons], figures)
    return Verdict(verdict.action, [*verdict.reasons, *said], figures)
