"""``analyzer simulate``: the rollout planner that is also the benchmark against anchor rules.

Many rollouts are simulated window by window. Each window draws the total request count (Poisson),
the canary's share (binomial at the current weight), bucket counts (multinomial over the latency
buckets) and errors (binomial) directly: no per-request loop. Every rule sees the same traffic: the
random stream of a window depends only on (seed, rollout, window index, weight), so rules that are
at the same weight in the same window see identical counts.

Rules compared:

* ``judge``: this project's :class:`~analyzer.judge.Judge` with a :class:`~analyzer.policy.Policy`.
* ``flagger``: a Flagger-style rule. Each window checks canary p99 (``histogram_quantile``) <= a
  fixed ceiling and success rate >= 99 %; a pass advances one step, a failure counts; as in
  Flagger's scheduler the failed-check threshold is tested at the start of the next check, so the
  rollback happens one interval after the threshold-th failure.
* ``kayenta``: a Kayenta-style rule. Each window runs a fresh two-sided Mann–Whitney test on latency
  and on the per-request error indicator at 95 %; a significant increase rolls back, otherwise the
  step passes. No correction for repeated looks.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from analyzer.histogram import Histogram
from analyzer.judge import Judge, SubsetWindow, Window
from analyzer.mannwhitney import mann_whitney
from analyzer.policy import Policy

__all__ = [
    "PODINFO_BOUNDS",
    "Outcome",
    "RuleSummary",
    "Scenario",
    "Traffic",
    "format_report",
    "lognormal_probabilities",
    "run_simulation",
    "scaled_probabilities",
]

PODINFO_BOUNDS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf)
RULES = ("judge", "flagger", "kayenta")


def lognormal_probabilities(bounds: Sequence[float], median: float, sigma: float) -> npt.NDArray[np.float64]:
    """Probability of each bucket for a lognormal latency (seconds) with this median and sigma."""
    if not (0 < median < math.inf and 0 < sigma < math.inf):
        raise ValueError(f"lognormal median and sigma must be > 0, got {median!r}, {sigma!r}")
    finite = np.asarray([b for b in bounds if math.isfinite(b)], dtype=np.float64)
    cdf = stats.lognorm.cdf(finite, s=sigma, scale=median)
    return np.asarray(np.diff(np.concatenate([[0.0], cdf, [1.0]])), dtype=np.float64)


def scaled_probabilities(histogram: Histogram, factor: float) -> npt.NDArray[np.float64]:
    """Bucket probabilities when every latency of ``histogram`` is multiplied by ``factor``.

    Values are taken as uniform inside a bucket (lower edge 0 for the first), as Prometheus'
    interpolation assumes; the +Inf bucket stays above the largest finite bound.
    """
    if histogram.total <= 0:
        raise ValueError("the GA histogram has no observations")
    if factor <= 0:
        raise ValueError(f"latency factor must be > 0, got {factor!r}")
    finite = np.asarray(histogram.bounds[:-1], dtype=np.float64)
    cum = np.asarray(histogram.cumulative[:-1], dtype=np.float64) / histogram.total
    edges = np.concatenate([[min(0.0, finite[0])], finite]) if finite.size else np.asarray([0.0])
    cdf_points = np.concatenate([[0.0], cum])
    cdf = np.interp(finite / factor, edges, cdf_points) if finite.size else np.asarray([])
    cdf = np.where(finite / factor > edges[-1], cdf_points[-1], cdf)
    return np.asarray(np.diff(np.concatenate([[0.0], cdf, [1.0]])), dtype=np.float64)


@dataclass(frozen=True)
class Traffic:
    """The service: total request rate, window length, weight steps, GA latency and error rate."""

    rate: float = 20.0
    interval: float = 60.0
    steps: tuple[float, ...] = (10.0, 60.0, 100.0)
    bounds: tuple[float, ...] = PODINFO_BOUNDS
    ga_probabilities: tuple[float, ...] = tuple(lognormal_probabilities(PODINFO_BOUNDS, 0.04, 0.5))
    ga_error_rate: float = 0.005
    ga_histogram: Histogram | None = None

    def __post_init__(self) -> None:
        for name, value in (("rate", self.rate), ("interval", self.interval)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if (
            not self.steps
            or any(not 0 < s <= 100 for s in self.steps)
            or any(a >= b for a, b in itertools.pairwise(self.steps))
        ):
            raise ValueError(f"steps must be strictly ascending weights in (0, 100], got {self.steps}")
        finite = self.bounds[:-1]
        if (
            not self.bounds
            or self.bounds[-1] != math.inf
            or not all(math.isfinite(b) for b in finite)
            or any(a >= b for a, b in itertools.pairwise(finite))
        ):
            raise ValueError(f"bucket bounds must be strictly ascending and end with +Inf, got {self.bounds}")
        if len(self.ga_probabilities) != len(self.bounds):
            raise ValueError("ga_probabilities must have one value per bucket bound")
        if not 0 <= self.ga_error_rate < 1:
            raise ValueError(f"ga_error_rate must be in [0, 1), got {self.ga_error_rate!r}")

    @property
    def analysed_steps(self) -> tuple[float, ...]:
        """Weights that are analysed; reaching 100 % after the last one ends the rollout."""
        return tuple(s for s in self.steps if s < 100)

    def canary_probabilities(self, slowdown: float) -> npt.NDArray[np.float64]:
        """Bucket probabilities of a canary whose every request is ``slowdown`` times slower."""
        if slowdown == 1.0:
            return np.asarray(self.ga_probabilities)
        if self.ga_histogram is not None:
            return scaled_probabilities(self.ga_histogram, slowdown)
        base = Histogram.from_counts(self.bounds, np.asarray(self.ga_probabilities) * 1e12)
        return scaled_probabilities(base, slowdown)


@dataclass(frozen=True)
class Scenario:
    """A canary: latency factor on every request and its error rate (None: same as GA)."""

    name: str
    slowdown: float = 1.0
    error_rate: float | None = None

    @property
    def is_regression(self) -> bool:
        """Whether a good rule should roll this canary back."""
        return self.slowdown != 1.0 or self.error_rate is not None

    @classmethod
    def parse(cls, text: str) -> Scenario:
        """``NAME`` or ``NAME:latency=1.5,errors=0.03`` (latency factor, absolute canary error rate)."""
        name, _, spec = text.partition(":")
        if not name:
            raise ValueError(f"scenario {text!r}: missing name")
        kwargs: dict[str, float] = {}
        for part in filter(None, spec.split(",")):
            key, _, value = part.partition("=")
            field_name = {"latency": "slowdown", "errors": "error_rate"}.get(key.strip())
            if field_name is None:
                raise ValueError(f"scenario {text!r}: unknown key {key.strip()!r} (use latency=, errors=)")
            try:
                kwargs[field_name] = float(value)
            except ValueError:
                raise ValueError(f"scenario {text!r}: {key.strip()}={value!r} is not a number") from None
        slowdown = kwargs.get("slowdown", 1.0)
        error_rate = kwargs.get("error_rate")
        if not 0 < slowdown < math.inf or (error_rate is not None and not 0 <= error_rate < 1):
            raise ValueError(f"scenario {text!r}: latency must be > 0 and errors in [0, 1)")
        return cls(name=name, slowdown=slowdown, error_rate=error_rate)


DEFAULT_SCENARIOS = (
    Scenario("identical"),
    Scenario("latency x1.5", slowdown=1.5),
    Scenario("errors 0.5%->3%", error_rate=0.03),
)


@dataclass(frozen=True)
class Outcome:
    """How one rollout ended under one rule."""

    result: Literal["promoted", "rolledback", "paused"]
    windows: int
    canary_requests: float
    final_weight: float


@dataclass
class _Rollout:
    traffic: Traffic
    scenario: Scenario
    seed: int
    index: int
    canary_p: npt.NDArray[np.float64] = field(init=False)
    ga_p: npt.NDArray[np.float64] = field(init=False)

    def __post_init__(self) -> None:
        self.canary_p = self.traffic.canary_probabilities(self.scenario.slowdown)
        self.ga_p = np.asarray(self.traffic.ga_probabilities)

    def window(self, k: int, weight: float) -> Window:
        rng = np.random.default_rng([self.seed, self.index, k, round(weight * 1000)])
        t = self.traffic
        n = int(rng.poisson(t.rate * t.interval))
        nc = int(rng.binomial(n, weight / 100.0))
        ng = n - nc
        can_err = t.ga_error_rate if self.scenario.error_rate is None else self.scenario.error_rate
        can = Histogram.from_counts(t.bounds, rng.multinomial(nc, self.canary_p))
        ga = Histogram.from_counts(t.bounds, rng.multinomial(ng, self.ga_p))
        return Window(
            baseline=SubsetWindow(ga, ng, int(rng.binomial(ng, t.ga_error_rate))),
            canary=SubsetWindow(can, nc, int(rng.binomial(nc, can_err))),
            weight=weight,
        )


Decide = Callable[[Window], Literal["promote", "hold", "rollback", "pause"]]


def _drive(
    rollout: _Rollout, make_rule: Callable[[], tuple[Decide, Callable[[], None]]], max_windows: int
) -> Outcome:
    decide, next_step = make_rule()
    steps = rollout.traffic.analysed_steps
    step, served = 0, 0.0
    for k in range(max_windows):
        w = rollout.window(k, steps[step])
        served += w.canary.requests
        action = decide(w)
        if action == "rollback":
            return Outcome("rolledback", k + 1, served, steps[step])
        if action == "pause":
            return Outcome("paused", k + 1, served, steps[step])
        if action == "promote":
            step += 1
            if step == len(steps):
                return Outcome("promoted", k + 1, served, 100.0)
            next_step()
    return Outcome("paused", max_windows, served, steps[step])


def _judge_rule(policy: Policy) -> Callable[[], tuple[Decide, Callable[[], None]]]:
    def make() -> tuple[Decide, Callable[[], None]]:
        judge = Judge(policy)

        def decide(w: Window) -> Literal["promote", "hold", "rollback", "pause"]:
            return judge.judge(w).action

        return decide, judge.new_step

    return make


def _flagger_rule(
    p99_ceiling: float, min_success: float, threshold: int, immediate: bool = False
) -> Callable[[], tuple[Decide, Callable[[], None]]]:
    def make() -> tuple[Decide, Callable[[], None]]:
        failed = 0

        def decide(w: Window) -> Literal["promote", "hold", "rollback", "pause"]:
            nonlocal failed
            if failed >= threshold:  # Flagger tests the threshold before running this check
                return "rollback"
            can = w.canary
            p99 = can.histogram.quantile(0.99)
            success = 1 - can.errors / can.requests if can.requests else math.nan
            ok = (
                not math.isnan(p99)
                and p99 <= p99_ceiling
                and not math.isnan(success)
                and success >= min_success
            )
            if ok:
                return "promote"
            failed += 1
            return "rollback" if immediate and failed >= threshold else "hold"

        return decide, lambda: None

    return make


def _kayenta_rule(alpha: float) -> Callable[[], tuple[Decide, Callable[[], None]]]:
    def make() -> tuple[Decide, Callable[[], None]]:
        def decide(w: Window) -> Literal["promote", "hold", "rollback", "pause"]:
            c, b = w.canary, w.baseline
            if c.requests <= 0 or b.requests <= 0:
                return "hold"
            lat = mann_whitney(c.histogram, b.histogram)
            err = mann_whitney([c.requests - c.errors, c.errors], [b.requests - b.errors, b.errors])
            worse = (lat.pvalue < alpha and lat.effect > 0.5) or (err.pvalue < alpha and err.effect > 0.5)
            return "rollback" if worse else "promote"

        return decide, lambda: None

    return make


@dataclass(frozen=True)
class RuleSummary:
    """Figures of one rule on one scenario."""

    rule: str
    scenario: str
    regression: bool
    rollouts: int
    rolled_back: float
    promoted: float
    paused: float
    median_canary_requests_at_rollback: float
    mean_canary_requests_at_rollback: float
    median_minutes_to_promote: float
    p95_minutes_to_promote: float


def _summarise(rule: str, scenario: Scenario, outcomes: list[Outcome], interval: float) -> RuleSummary:
    n = len(outcomes)
    back = [o for o in outcomes if o.result == "rolledback"]
    done = sorted(o.windows * interval / 60.0 for o in outcomes if o.result == "promoted")
    return RuleSummary(
        rule=rule,
        scenario=scenario.name,
        regression=scenario.is_regression,
        rollouts=n,
        rolled_back=len(back) / n,
        promoted=len(done) / n,
        paused=sum(o.result == "paused" for o in outcomes) / n,
        median_canary_requests_at_rollback=statistics.median(o.canary_requests for o in back)
        if back
        else math.nan,
        mean_canary_requests_at_rollback=statistics.fmean(o.canary_requests for o in back)
        if back
        else math.nan,
        median_minutes_to_promote=statistics.median(done) if done else math.nan,
        p95_minutes_to_promote=done[min(len(done) - 1, math.ceil(0.95 * len(done)) - 1)]
        if done
        else math.nan,
    )


def run_simulation(
    traffic: Traffic,
    scenarios: Sequence[Scenario] = DEFAULT_SCENARIOS,
    *,
    policy: Policy | None = None,
    rollouts: int = 1000,
    seed: int = 1,
    flagger_p99: float = 0.5,
    flagger_success: float = 0.99,
    flagger_threshold: int = 2,
    flagger_immediate: bool = False,
    kayenta_alpha: float = 0.05,
    rules: Sequence[str] = RULES,
) -> list[RuleSummary]:
    """Simulate ``rollouts`` rollouts per scenario for each rule; one summary per (rule, scenario).

    ``flagger_immediate`` rolls the Flagger-style rule back in the check that reaches the threshold
    instead of at the next check (as Flagger's scheduler does): a more generous anchor.
    """
    if rollouts < 1:
        raise ValueError(f"rollouts must be >= 1, got {rollouts}")
    # Out-of-range anchors would silently turn a rule into "never" or "always" roll back.
    if not (math.isfinite(flagger_p99) and flagger_p99 > 0):
        raise ValueError(f"flagger_p99 must be a finite number of seconds > 0, got {flagger_p99!r}")
    if not 0 <= flagger_success <= 1:
        raise ValueError(f"flagger_success must be in [0, 1], got {flagger_success!r}")
    if flagger_threshold < 1:
        raise ValueError(f"flagger_threshold must be >= 1, got {flagger_threshold}")
    if not 0 < kayenta_alpha < 1:
        raise ValueError(f"kayenta_alpha must be in (0, 1), got {kayenta_alpha!r}")
    unknown = set(rules) - set(RULES)
    if unknown:
        raise ValueError(f"unknown rules {sorted(unknown)}; choose from {list(RULES)}")
    if not traffic.analysed_steps:
        raise ValueError("steps need at least one weight below 100 to analyse")
    policy = policy if policy is not None else Policy()
    makers = {
        "judge": _judge_rule(policy),
        "flagger": _flagger_rule(flagger_p99, flagger_success, flagger_threshold, flagger_immediate),
        "kayenta": _kayenta_rule(kayenta_alpha),
    }
    # The judge pauses at its cap; anchors never stop on their own, so bound them by the same windows.
    max_windows = policy.max_windows_per_step * len(traffic.analysed_steps)
    out = []
    for scenario in scenarios:
        for rule in rules:
            outcomes = [
                _drive(_Rollout(traffic, scenario, seed, i), makers[rule], max_windows)
                for i in range(rollouts)
            ]
            out.append(_summarise(rule, scenario, outcomes, traffic.interval))
    return out


def format_report(summaries: Sequence[RuleSummary], traffic: Traffic, policy: Policy) -> str:
    """A plain-text table, one block per scenario, the rules side by side."""
    lines = [
        f"traffic: {traffic.rate:g} req/s, {traffic.interval:g} s windows, steps "
        + " -> ".join(f"{s:g}" for s in traffic.steps)
        + f", GA error rate {traffic.ga_error_rate:.2%}; policy alpha {policy.alpha:g}, "
        f"max {policy.max_windows_per_step} windows per step",
        f"{'scenario':<18} {'rule':<8} {'rolled back':>11} {'promoted':>9} {'paused':>7} "
        f"{'canary req. at rollback (median/mean)':>38} {'min. to 100% (median/p95)':>26}",
    ]
    for s in summaries:
        minutes = (
            f"{s.median_minutes_to_promote:.0f} / {s.p95_minutes_to_promote:.0f}"
            if not math.isnan(s.median_minutes_to_promote)
            else "-"
        )
        at_rollback = (
            f"{s.median_canary_requests_at_rollback:.0f} / {s.mean_canary_requests_at_rollback:.0f}"
            if not math.isnan(s.median_canary_requests_at_rollback)
            else "-"
        )
        lines.append(
            f"{s.scenario:<18} {s.rule:<8} {s.rolled_back:>11.1%} {s.promoted:>9.1%} {s.paused:>7.1%} "
            f"{at_rollback:>38} {minutes:>26}"
        )
    return "\n".join(lines)
