"""``analyzer simulate``: the rollout planner that is also the benchmark against anchor rules.

Many rollouts are simulated window by window. Each window draws the total request count (Poisson),
the canary's share (binomial at the current weight), bucket counts (multinomial over the latency
buckets) and errors (binomial) directly: no per-request loop. Every rule sees the same traffic: the
random stream of a window depends only on (seed, rollout, window index, weight), so rules that are
at the same weight in the same window see identical counts.

Real traffic is not independent request by request, so a window can also carry variation of its
own, drawn independently for GA and canary from a stream that depends on (seed, rollout, window
index) only: each subset's latency scale is multiplied by ``exp(N(0, latency_drift²))`` and its
error rate by a gamma variable with mean 1 and coefficient of variation ``error_cv``; the load can
change from window to window (``load``); a canary can be slower by a constant factor, only in a
share of its requests (a tail regression), or fail more often.

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
from scipy import special

from analyzer.histogram import Histogram
from analyzer.judge import Judge, SubsetWindow, Window
from analyzer.mannwhitney import mann_whitney
from analyzer.policy import Policy
from analyzer.variation import scaled_probabilities

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
    # The lognormal CDF as Φ(log(x/median)/σ), without scipy.stats' per-call overhead: it is
    # evaluated for every simulated window when latencies drift.
    with np.errstate(divide="ignore"):
        cdf = special.ndtr(np.log(finite / median) / sigma)
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
    #: Per window and subset: log-sd of the latency scale (0.05 = the scale varies by about 5 %).
    latency_drift: float = 0.0
    #: Per window and subset: coefficient of variation of the error rate (gamma, mean 1).
    error_cv: float = 0.0
    #: Multipliers of ``rate`` per window of the rollout (the last one repeats); empty: constant.
    load: tuple[float, ...] = ()
    #: (median, sigma) when GA's latency is lognormal: scaled latencies are then exact, not
    #: interpolated inside buckets (``ga_probabilities`` follow from it).
    ga_lognormal: tuple[float, float] | None = None
    #: GA windows before the rollout (all traffic on GA, the same variation model) given to the judge.
    history_windows: int = 0

    def __post_init__(self) -> None:
        for name, value in (("rate", self.rate), ("interval", self.interval)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        for name, value in (("latency_drift", self.latency_drift), ("error_cv", self.error_cv)):
            if not (math.isfinite(value) and 0 <= value <= 5):
                raise ValueError(f"{name} must be a number in [0, 5], got {value!r}")
        if not 0 <= self.history_windows <= 10_000:
            raise ValueError(f"history_windows must be in [0, 10000], got {self.history_windows!r}")
        if any(not (math.isfinite(f) and f >= 0) for f in self.load):
            raise ValueError(f"load multipliers must be finite and >= 0, got {self.load}")
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
        if self.ga_lognormal is not None:
            median, sigma = self.ga_lognormal
            probabilities = lognormal_probabilities(self.bounds, median, sigma)
            object.__setattr__(self, "ga_probabilities", tuple(float(p) for p in probabilities))
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
        if self.ga_lognormal is not None:
            return lognormal_probabilities(self.bounds, self.ga_lognormal[0] * slowdown, self.ga_lognormal[1])
        return scaled_probabilities(self._base_histogram(), slowdown)

    def _base_histogram(self) -> Histogram:
        if self.ga_histogram is not None:
            return self.ga_histogram
        return Histogram.from_counts(self.bounds, np.asarray(self.ga_probabilities) * 1e12)

    def rate_at(self, window: int) -> float:
        """Requests per second in the ``window``-th window of the rollout."""
        if not self.load:
            return self.rate
        return self.rate * self.load[min(window, len(self.load) - 1)]


_SCENARIO_KEYS = {"latency": "slowdown", "errors": "error_rate", "tail": "tail_share", "tailx": "tail_factor"}


@dataclass(frozen=True)
class Scenario:
    """A canary: latency factor on every request, its error rate (None: same as GA), and a tail
    regression (``tail_share`` of its requests ``tail_factor`` times slower still)."""

    name: str
    slowdown: float = 1.0
    error_rate: float | None = None
    tail_share: float = 0.0
    tail_factor: float = 10.0

    @property
    def is_regression(self) -> bool:
        """Whether the canary differs from GA at all (a small offset may be one not to roll back)."""
        return self.slowdown != 1.0 or self.error_rate is not None or self.tail_share > 0

    @classmethod
    def parse(cls, text: str) -> Scenario:
        """``NAME`` or ``NAME:latency=1.5,errors=0.03,tail=0.03,tailx=10`` (latency factor, absolute
        canary error rate, share of requests in a slow tail and how much slower they are)."""
        name, _, spec = text.partition(":")
        if not name:
            raise ValueError(f"scenario {text!r}: missing name")
        kwargs: dict[str, float] = {}
        for part in filter(None, spec.split(",")):
            key, _, value = part.partition("=")
            field_name = _SCENARIO_KEYS.get(key.strip())
            if field_name is None:
                raise ValueError(
                    f"scenario {text!r}: unknown key {key.strip()!r} (use latency=, errors=, tail=, tailx=)"
                )
            try:
                kwargs[field_name] = float(value)
            except ValueError:
                raise ValueError(f"scenario {text!r}: {key.strip()}={value!r} is not a number") from None
        slowdown = kwargs.get("slowdown", 1.0)
        error_rate = kwargs.get("error_rate")
        tail_share, tail_factor = kwargs.get("tail_share", 0.0), kwargs.get("tail_factor", 10.0)
        if not 0 < slowdown < math.inf or (error_rate is not None and not 0 <= error_rate < 1):
            raise ValueError(f"scenario {text!r}: latency must be > 0 and errors in [0, 1)")
        if not (0 <= tail_share <= 1 and 0 < tail_factor < math.inf):
            raise ValueError(f"scenario {text!r}: tail must be in [0, 1] and tailx > 0")
        return cls(name, slowdown, error_rate, tail_share, tail_factor)


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
    _cache: dict[int, tuple[float, float, float, float]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.canary_p = self._canary(1.0)
        self.ga_p = np.asarray(self.traffic.ga_probabilities)

    def _canary(self, scale: float) -> npt.NDArray[np.float64]:
        sc = self.scenario
        p = self.traffic.canary_probabilities(sc.slowdown * scale)
        if sc.tail_share > 0:
            slow = self.traffic.canary_probabilities(sc.slowdown * sc.tail_factor * scale)
            p = (1.0 - sc.tail_share) * p + sc.tail_share * slow
        return np.asarray(p)

    def variation(self, k: int) -> tuple[float, float, float, float]:
        """(GA latency scale, canary latency scale, GA error factor, canary error factor) of window k:
        the same for every rule and weight."""
        if k not in self._cache:
            t = self.traffic
            rng = np.random.default_rng([self.seed, self.index, k, 977])
            d = rng.normal(0.0, t.latency_drift, 2) if t.latency_drift > 0 else np.zeros(2)
            if t.error_cv > 0:
                shape = 1.0 / t.error_cv**2
                g = rng.gamma(shape, 1.0 / shape, 2)
            else:
                g = np.ones(2)
            self._cache[k] = (math.exp(d[0]), math.exp(d[1]), float(g[0]), float(g[1]))
        return self._cache[k]

    def history(self) -> list[SubsetWindow]:
        """GA's windows before the rollout, at the rollout's first load and all traffic on GA."""
        t, out = self.traffic, []
        for h in range(t.history_windows):
            rng = np.random.default_rng([self.seed, self.index, h, 983])
            d = rng.normal(0.0, t.latency_drift) if t.latency_drift > 0 else 0.0
            g = rng.gamma(1.0 / t.error_cv**2, t.error_cv**2) if t.error_cv > 0 else 1.0
            n = int(rng.poisson(t.rate_at(0) * t.interval))
            p = self.ga_p if d == 0.0 else t.canary_probabilities(math.exp(d))
            ga = Histogram.from_counts(t.bounds, rng.multinomial(n, p))
            out.append(SubsetWindow(ga, n, int(rng.binomial(n, min(t.ga_error_rate * g, 1.0)))))
        return out

    def window(self, k: int, weight: float) -> Window:
        rng = np.random.default_rng([self.seed, self.index, k, round(weight * 1000)])
        t = self.traffic
        n = int(rng.poisson(t.rate_at(k) * t.interval))
        nc = int(rng.binomial(n, weight / 100.0))
        ng = n - nc
        can_err = t.ga_error_rate if self.scenario.error_rate is None else self.scenario.error_rate
        ga_scale, can_scale, ga_err_f, can_err_f = self.variation(k)
        ga_p = self.ga_p if ga_scale == 1.0 else self.traffic.canary_probabilities(ga_scale)
        can_p = self.canary_p if can_scale == 1.0 else self._canary(can_scale)
        can = Histogram.from_counts(t.bounds, rng.multinomial(nc, can_p))
        ga = Histogram.from_counts(t.bounds, rng.multinomial(ng, ga_p))
        return Window(
            baseline=SubsetWindow(ga, ng, int(rng.binomial(ng, min(t.ga_error_rate * ga_err_f, 1.0)))),
            canary=SubsetWindow(can, nc, int(rng.binomial(nc, min(can_err * can_err_f, 1.0)))),
            weight=weight,
        )


Decide = Callable[[Window], Literal["promote", "hold", "rollback", "pause"]]


Maker = Callable[[Sequence[SubsetWindow]], tuple[Decide, Callable[[], None]]]


def _drive(rollout: _Rollout, make_rule: Maker, max_windows: int) -> Outcome:
    decide, next_step = make_rule(rollout.history())
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


def _judge_rule(policy: Policy, steps: tuple[float, ...]) -> Maker:
    def make(history: Sequence[SubsetWindow]) -> tuple[Decide, Callable[[], None]]:
        judge = Judge(policy, steps=steps, history=history)

        def decide(w: Window) -> Literal["promote", "hold", "rollback", "pause"]:
            return judge.judge(w).action

        return decide, judge.new_step

    return make


def _flagger_rule(p99_ceiling: float, min_success: float, threshold: int, immediate: bool = False) -> Maker:
    def make(history: Sequence[SubsetWindow]) -> tuple[Decide, Callable[[], None]]:
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


def _kayenta_rule(alpha: float) -> Maker:
    def make(history: Sequence[SubsetWindow]) -> tuple[Decide, Callable[[], None]]:
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
        "judge": _judge_rule(policy, traffic.steps),
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
