"""The judge: one analysis window in, a verdict (promote, hold, rollback) with reasons and evidence out.

One :class:`Judge` per rollout. It carries two kinds of evidence:

* harm (rollout-wide): e-processes for "the canary is worse than GA by more than the harm margins"
  on errors, latency order and the latency tail, averaged with the policy's weights; at ``1/α`` the
  canary is rolled back. Under a canary within the margins the chance of that ever happening during
  the rollout is at most α.
* safety (per step, carried into the next step of the same revision with the power
  ``safety_carry``): e-processes for "the canary is no worse than GA by more than the margins"; a
  step is promoted when every one of them reaches ``1/step_promote_alpha`` (the last step:
  ``1/promote_alpha``) on enough data.

Every window's evidence is widened by the window-to-window variation of each subset
(:mod:`analyzer.variation`), measured on earlier windows and floored by the policy's prior, so that
drift from window to window is not read as a difference.

Absolute SLO ceilings, when set, roll back on their own. No data is never a pass: it is a hold.
The judge is deterministic, so a restarted controller can replay a step's windows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from analyzer.histogram import Histogram
from analyzer.history import HistoryPrior, history_prior
from analyzer.mannwhitney import effect_variance, mann_whitney, null_effect_variance
from analyzer.noninferiority import tail_bound
from analyzer.policy import Policy
from analyzer.sequential import CountEProcess, CountWindow, OrderEProcess, combine_average
from analyzer.variation import SubsetVariation, scale_sensitivity

__all__ = ["Action", "Judge", "SubsetWindow", "Verdict", "Window"]

#: ``pause``: the step expired (``max_windows_per_step``) and the policy says a person decides.
Action = Literal["promote", "hold", "rollback", "pause"]

# Counts beyond 2**53 are no longer exact in a float, and the e-value arithmetic overflows long
# before any real window gets there: refuse them with a message instead of failing mid-update.
MAX_COUNT = float(2**53)


def _check_count(value: float, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} is not a number: {value!r}") from None
    if math.isnan(v):
        raise ValueError(f"{name} is NaN")
    if v < 0:
        raise ValueError(f"{name} is negative: {v!r}")
    if math.isinf(v):
        raise ValueError(f"{name} is infinite")
    if v > MAX_COUNT:
        raise ValueError(f"{name} is too large: {v:g} > 2**53")
    return v


@dataclass(frozen=True)
class SubsetWindow:
    """One subset (GA or canary) during one window: latency histogram, requests, failed requests."""

    histogram: Histogram
    requests: float
    errors: float

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, name: str = "") -> None:
        """Raise ``ValueError`` naming the field (``canary.errors`` with ``name="canary"``)."""
        pre = f"{name}." if name else ""
        if not isinstance(self.histogram, Histogram):
            raise ValueError(f"{pre}histogram must be a Histogram, got {type(self.histogram).__name__}")
        requests = _check_count(self.requests, f"{pre}requests")
        _check_count(self.histogram.total, f"{pre}histogram total")
        errors = _check_count(self.errors, f"{pre}errors")
        if errors > requests:
            raise ValueError(f"{pre}errors ({errors:g}) exceed {pre}requests ({requests:g})")


@dataclass(frozen=True)
class Window:
    """GA (``baseline``) and ``canary`` over the same interval, and the canary weight (0-100)."""

    baseline: SubsetWindow
    canary: SubsetWindow
    weight: float

    def __post_init__(self) -> None:
        for name, subset in (("baseline", self.baseline), ("canary", self.canary)):
            if not isinstance(subset, SubsetWindow):
                raise ValueError(f"{name} must be a SubsetWindow, got {type(subset).__name__}")
            subset.validate(name)
        if self.baseline.histogram.bounds != self.canary.histogram.bounds:
            raise ValueError(
                "canary.histogram bounds differ from baseline.histogram bounds: "
                f"{self.canary.histogram.bounds} vs {self.baseline.histogram.bounds}"
            )
        weight = _check_count(self.weight, "weight")
        if weight > 100:
            raise ValueError(f"weight must be between 0 and 100, got {weight:g}")


@dataclass(frozen=True)
class Verdict:
    """What to do after a window, why, and the figures behind it (flat, JSON-friendly, finite)."""

    action: Action
    reasons: list[str]
    evidence: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping: action, reasons, evidence."""
        return {"action": self.action, "reasons": list(self.reasons), "evidence": dict(self.evidence)}


@dataclass
class _Step:
    """Per-step data and this step's safety evidence (restarted by ``new_step``)."""

    safety_errors: CountEProcess
    safety_tail: CountEProcess
    safety_latency: OrderEProcess
    final: bool = True
    windows: int = 0
    data_windows: int = 0
    canary_requests: float = 0.0
    canary_errors: float = 0.0
    baseline_requests: float = 0.0
    baseline_errors: float = 0.0
    canary_histogram: Histogram | None = None
    baseline_histogram: Histogram | None = None
    pending_canary: Histogram | None = None
    pending_baseline: Histogram | None = None


def _add(a: Histogram | None, b: Histogram) -> Histogram:
    return b if a is None else a + b


def _window_cap(alpha_share: float) -> float:
    """No single window may carry more than 70 % of the (log) evidence a rollback on this share needs."""
    return 0.7 * math.log(1.0 / alpha_share) if alpha_share > 0 else math.inf


def _tail_counts(window: Window, bound: float) -> CountWindow:
    """Requests above ``bound`` against all requests, canary and GA."""
    can, base = window.canary.histogram, window.baseline.histogram
    return CountWindow(can.exceedance(bound), can.total, base.exceedance(bound), base.total)


SAFETY_TESTS = ("errors", "latency", "tail")
_Pair = tuple[float, float]
_Dispersion = tuple[float, _Pair, dict[float, _Pair]]
_SAFETY_NAMES = {"errors": "error rate", "latency": "latency", "tail": "tail"}
#: Plug-in alternatives of the count safety tests stay inside this range (multiples of the margin).
_PLUGIN_RANGE = (0.02, 0.95)
#: Share of the count safety tests' mixture on the plug-in track "the canary is as good as GA has
#: been" (the rest on the grid of fixed alternatives, for canaries better or worse than GA).
SAFETY_PLUGIN_WEIGHT = 0.8
#: Prior scale of the latency safety mixture, as a share of latency_margin (centred at the margin).
SAFETY_LATENCY_TAU = 0.5


class Judge:
    """Judges the windows of one rollout; see the module docstring and docs/analyzer.md.

    ``steps``: the rollout's canary weights (e.g. ``(10, 60, 100)``), when known: a step whose
    weight is followed by another one below 100 is promoted at ``1/step_promote_alpha``. Without
    them every step is treated as the last (the strict threshold ``1/promote_alpha``).

    ``history``: GA's windows before the rollout (:mod:`analyzer.history`). With at least
    ``history_min_windows`` of them the tail bounds are fixed before the first window and the
    variation floors are GA's measured variation (an upper confidence bound) instead of the policy's
    prior; GA's rates and variation so far include them.
    """

    def __init__(
        self,
        policy: Policy | None = None,
        steps: tuple[float, ...] | None = None,
        history: Sequence[SubsetWindow] = (),
    ) -> None:
        self.policy = policy if policy is not None else Policy()
        p = self.policy
        self.steps = tuple(float(x) for x in steps) if steps is not None else None
        self._harm_errors = CountEProcess("harm", ratio=p.harm_error_ratio, offset=p.harm_error_abs)
        self._harm_tail = CountEProcess("harm", ratio=p.harm_tail_ratio)
        self._harm_latency = OrderEProcess("harm", null=0.5 + p.harm_latency_margin, tau=p.latency_tau)
        self._tail_bound: float | None = p.tail_bound
        self._harm_tail_bound: float | None = p.tail_bound
        self._bounds: tuple[float, ...] | None = None
        self._windows = 0
        self._var_baseline = SubsetVariation()
        self._var_canary = SubsetVariation()
        self._carried: dict[str, float] = dict.fromkeys(SAFETY_TESTS, 0.0)
        self._step = self._fresh_step()
        self.history: HistoryPrior | None = history_prior(history, p)
        if self.history is not None:
            self._tail_bound = self.history.tail_bound
            self._harm_tail_bound = self.history.harm_tail_bound
            fixed = self._tail_bounds()
            for w in history:
                if w.requests > 0 and w.histogram.total > 0:
                    self._var_baseline = self._var_baseline.update(w.histogram, w.requests, w.errors, fixed)

    def _fresh_step(self) -> _Step:
        p = self.policy
        return _Step(
            safety_errors=CountEProcess(
                "safety",
                ratio=p.error_margin_ratio,
                offset=p.error_margin_abs,
                plugin_weight=SAFETY_PLUGIN_WEIGHT,
            ),
            safety_tail=CountEProcess(
                "safety",
                ratio=p.tail_margin_ratio,
                offset=p.tail_margin_abs,
                plugin_weight=SAFETY_PLUGIN_WEIGHT,
            ),
            # Centred where an identical canary is (``latency_margin`` inside the null).
            safety_latency=OrderEProcess(
                "safety",
                null=0.5 + p.latency_margin,
                tau=SAFETY_LATENCY_TAU * p.latency_margin,
                center=p.latency_margin,
            ),
        )

    def new_step(self) -> None:
        """The weight changed: per-step data restart; harm evidence stays; each safety e-value is
        carried as ``e ** safety_carry`` when above 1 (in full when below: never a gain)."""
        for name in SAFETY_TESTS:
            log_e = self._safety_log(name)
            self._carried[name] = self.policy.safety_carry * log_e if log_e > 0 else log_e
        self._step = self._fresh_step()

    # -- evidence ---------------------------------------------------------------------------------

    def _harm_log(
        self, harm_errors: CountEProcess, harm_latency: OrderEProcess, harm_tail: CountEProcess
    ) -> float:
        w = self.policy.harm_weights
        return combine_average(
            [harm_errors.log_evalue, harm_latency.log_evalue, harm_tail.log_evalue],
            [w.errors, w.latency, w.tail],
        )

    def _safety_log(self, name: str) -> float:
        return self._carried[name] + self._step_log(name)

    def _step_log(self, name: str) -> float:
        """log e-value of this step's own safety evidence on test ``name``."""
        s = self._step
        if name == "latency":
            return s.safety_latency.log_evalue
        return (s.safety_errors if name == "errors" else s.safety_tail).log_evalue

    def _is_final(self, weight: float) -> bool:
        if self.steps is None:
            return True
        return not any(weight < x < 100 for x in self.steps)

    def _floors(self, window: Window) -> tuple[float, float, dict[float, float]]:
        """The policy's prior variation in the units of each test: τ² of θ, c² of the error rate,
        c² of the rate above each fixed tail bound (per subset).

        The latency log-sd is turned into θ units (and into the tail rates' variation) with GA's
        pooled histogram of earlier windows (GA's shape only; this window's GA at the first one).
        """
        p = self.policy
        shape = self._var_baseline.pooled or window.baseline.histogram
        log_sd = p.window_latency_log_sd
        sens = scale_sensitivity(shape, self._tail_bounds())
        tails = {
            # The bucket model overstates the tail's sensitivity where GA has almost nothing above the
            # bound; a count's prior variation is never taken above the error rate's.
            bound: min(sens.tail(bound) * log_sd, p.window_error_cv) ** 2
            for bound in self._tail_bounds()
        }
        lat, err = (sens.theta * log_sd) ** 2, p.window_error_cv**2
        h = self.history
        if h is None:
            return lat, err, tails
        # GA's measured variation replaces the assumption wherever the history could bound it.
        if math.isfinite(h.error_cv2):
            err = h.error_cv2
        if math.isfinite(h.latency_tau2):
            lat = h.latency_tau2
            # Requests above a tail bound are rare: their own count bounds the variation loosely, so
            # it is also bounded through the latency scale, as the prior does (the smaller one holds).
            measured_log_sd = math.sqrt(lat) / sens.theta if sens.theta > 0 else math.inf
            tails = {b: min(h.tail(b), (sens.tail(b) * measured_log_sd) ** 2) for b in tails}
        else:
            tails = {b: min(h.tail(b), f) for b, f in tails.items()}
        return lat, err, tails

    def _dispersion(self, floors: tuple[float, float, dict[float, float]], strict: bool) -> _Dispersion:
        """For this window, from earlier ones: τ² of θ (canary + GA); (canary, GA) c² of the error
        rates; the same for the rate above each fixed tail bound. ``strict`` (harm): never below the
        prior floors; otherwise (safety) the measured variation shrunk towards them."""
        lat, err, tails = floors
        vb, vc = self._var_baseline, self._var_canary
        return (
            vb.latency_variance(lat, strict) + vc.latency_variance(lat, strict),
            (vc.error_cv2(err, strict), vb.error_cv2(err, strict)),
            {b: (vc.tail_cv2(b, f, strict), vb.tail_cv2(b, f, strict)) for b, f in tails.items()},
        )

    def _tail_bounds(self) -> tuple[float, ...]:
        return tuple(sorted({b for b in (self._tail_bound, self._harm_tail_bound) if b is not None}))

    def _plugin(self, events: float, total: float, ratio: float, offset: float) -> float | None:
        """The count safety tests' plug-in alternative: the canary as good as GA has been so far;
        before GA has a past, as good as a GA whose rate is the margin's absolute part."""
        rate = offset if total <= 0 else events / total
        value = rate / (ratio * rate + offset) if ratio * rate + offset > 0 else math.nan
        if not math.isfinite(value):
            return None
        return min(max(value, _PLUGIN_RANGE[0]), _PLUGIN_RANGE[1])

    def _update_counts(self, window: Window, harm: _Dispersion, safety: _Dispersion) -> None:
        """Errors and, once the tail bounds are fixed, requests above them: count e-processes, each
        window's likelihood ratio divided by its dispersion."""
        p, s, vb = self.policy, self._step, self._var_baseline
        can, base = window.canary, window.baseline
        counts = CountWindow(can.errors, can.requests, base.errors, base.requests)
        weights = p.harm_weights
        self._harm_errors = self._harm_errors.update(
            counts, cv2=harm[1], max_log=_window_cap(p.alpha * weights.errors)
        )
        s.safety_errors = s.safety_errors.update(
            counts,
            cv2=safety[1],
            plugin=self._plugin(vb.errors, vb.requests, p.error_margin_ratio, p.error_margin_abs),
        )
        if self._harm_tail_bound is not None:
            hb = self._harm_tail_bound
            self._harm_tail = self._harm_tail.update(
                _tail_counts(window, hb), cv2=harm[2][hb], max_log=_window_cap(p.alpha * weights.tail)
            )
        if self._tail_bound is not None:
            above, total = vb.tail_rate(self._tail_bound)
            s.safety_tail = s.safety_tail.update(
                _tail_counts(window, self._tail_bound),
                cv2=safety[2][self._tail_bound],
                plugin=self._plugin(above, total, p.tail_margin_ratio, p.tail_margin_abs),
            )
        if base.histogram.total >= p.tail_min_baseline:
            # Fixed from this window's GA only, used from the next window on (no peeking at its own data).
            if self._tail_bound is None:
                self._tail_bound = tail_bound(base.histogram, p.tail_quantile)
            if self._harm_tail_bound is None:
                self._harm_tail_bound = tail_bound(base.histogram, p.harm_tail_quantile)

    def _update_latency(self, window: Window, tau2: float, safety_tau2: float) -> None:
        """Latency order: batch small windows until both sides have enough requests; the variance of
        each batch's θ̂ is the sampling variance plus the between-window variance τ²."""
        p, s = self.policy, self._step
        s.pending_canary = _add(s.pending_canary, window.canary.histogram)
        s.pending_baseline = _add(s.pending_baseline, window.baseline.histogram)
        if min(s.pending_canary.total, s.pending_baseline.total) >= p.latency_min_batch:
            mw = mann_whitney(s.pending_canary, s.pending_baseline)
            null_var = null_effect_variance(s.pending_canary, s.pending_baseline)
            self._harm_latency = self._harm_latency.update(mw.effect, null_var + tau2)
            delong = effect_variance(s.pending_canary, s.pending_baseline)
            s.safety_latency = s.safety_latency.update(mw.effect, max(delong, 0.25 * null_var) + safety_tau2)
            s.pending_canary = s.pending_baseline = None

    def judge(self, window: Window) -> Verdict:
        """Judge one window. Raises ``ValueError`` (naming the field) on bad input, changing nothing."""
        if not isinstance(window, Window):
            raise ValueError(f"window must be a Window, got {type(window).__name__}")
        bounds = window.canary.histogram.bounds
        if self._bounds is not None and bounds != self._bounds:
            raise ValueError(f"histogram bounds changed during the rollout: {self._bounds} -> {bounds}")
        if self._tail_bound is not None and self._tail_bound not in bounds:
            raise ValueError(
                f"policy tail_bound {self._tail_bound!r} is not one of the bucket bounds {bounds}"
            )
        self._bounds = bounds
        s = self._step
        can, base = window.canary, window.baseline
        s.final = self._is_final(window.weight)
        self._windows += 1
        s.windows += 1
        has_data = can.requests > 0 and base.requests > 0
        floors = self._floors(window)
        harm, safety = self._dispersion(floors, strict=True), self._dispersion(floors, strict=False)
        self._update_counts(window, harm, safety)
        self._update_latency(window, harm[0], safety[0])
        # Each subset's own variation, for the next window's dispersion.
        fixed = self._tail_bounds()
        self._var_baseline = self._var_baseline.update(base.histogram, base.requests, base.errors, fixed)
        self._var_canary = self._var_canary.update(can.histogram, can.requests, can.errors, fixed)

        s.canary_requests += can.requests
        s.canary_errors += can.errors
        s.baseline_requests += base.requests
        s.baseline_errors += base.errors
        s.canary_histogram = _add(s.canary_histogram, can.histogram)
        s.baseline_histogram = _add(s.baseline_histogram, base.histogram)
        if has_data:
            s.data_windows += 1

        evidence = self._evidence(window)
        evidence.update(
            window_latency_tau=math.sqrt(harm[0]),
            window_error_cv=math.sqrt(sum(harm[1])),
            window_tail_cv=math.sqrt(sum(harm[2].get(self._tail_bound or math.nan, (0.0, 0.0)))),
        )
        return self._decide(window, has_data, evidence)

    def _decide(self, window: Window, has_data: bool, evidence: dict[str, float]) -> Verdict:
        p, s = self.policy, self._step
        reasons: list[str] = []
        # Absolute SLOs: breaking one is a rollback, outside the α budget (the user's own ceiling).
        if s.canary_requests >= p.slo_min_requests and s.canary_histogram is not None:
            p99 = s.canary_histogram.quantile(0.99)
            if p.slo_p99 is not None and not math.isnan(p99) and p99 > p.slo_p99:
                reasons.append(
                    f"SLO broken: canary p99 {p99 * 1e3:.0f} ms > ceiling {p.slo_p99 * 1e3:.0f} ms"
                )
            rate = s.canary_errors / s.canary_requests
            if p.slo_error_rate is not None and rate > p.slo_error_rate:
                reasons.append(f"SLO broken: canary error rate {rate:.2%} > ceiling {p.slo_error_rate:.2%}")
        harm = math.exp(min(self._harm_log(self._harm_errors, self._harm_latency, self._harm_tail), 690.0))
        if harm >= p.harm_threshold:
            reasons.append(
                f"evidence of harm {harm:.3g} >= 1/α = {p.harm_threshold:g} "
                f"(errors e={self._harm_errors.evalue:.3g}, latency e={self._harm_latency.evalue:.3g}, "
                f"tail e={self._harm_tail.evalue:.3g})"
            )
        if reasons:
            return Verdict("rollback", reasons, evidence)

        if window.canary.requests <= 0:
            reasons.append("no canary requests in this window: no data is never a pass")
        if window.baseline.requests <= 0:
            reasons.append("no baseline (GA) requests in this window: nothing to compare with")
        missing = self._missing_for_promotion(evidence)
        if not reasons and not missing:
            carried = " (with the evidence of earlier steps)" if any(self._carried.values()) else ""
            return Verdict(
                "promote",
                [
                    f"non-inferiority established at weight {window.weight:g} on errors, latency and tail "
                    f"(each e >= {self._threshold():g}{carried}) over {s.data_windows} windows, "
                    f"{s.canary_requests:.0f} canary requests; no evidence of harm (e={harm:.3g})"
                ],
                evidence,
            )
        reasons += missing
        if s.windows >= p.max_windows_per_step:
            expired = f"step expired: {s.windows} windows >= max_windows_per_step {p.max_windows_per_step}"
            evidence["step_expired"] = 1.0
            if p.on_max_windows == "rollback":
                return Verdict("rollback", [expired, *reasons], evidence)
            return Verdict("pause", [f"{expired}: pause for a human decision", *reasons], evidence)
        if has_data:
            reasons.append(f"no evidence of harm (e={harm:.3g} < {p.harm_threshold:g})")
        return Verdict("hold", reasons, evidence)

    def _threshold(self) -> float:
        p = self.policy
        return p.safety_threshold if self._step.final else p.step_safety_threshold

    def _missing_for_promotion(self, evidence: dict[str, float]) -> list[str]:
        p, s = self.policy, self._step
        missing = []
        if s.data_windows < p.min_windows:
            missing.append(f"{s.data_windows} of min_windows {p.min_windows} windows with data in this step")
        if s.canary_requests < p.min_canary_requests:
            missing.append(
                f"{s.canary_requests:.0f} of min_canary_requests {p.min_canary_requests} "
                "canary requests in this step"
            )
        threshold = self._threshold()
        more_windows = 0.0
        for test in SAFETY_TESTS:
            log_e = self._safety_log(test)
            if log_e >= math.log(threshold):
                continue
            text = (
                f"{_SAFETY_NAMES[test]} non-inferiority not yet established "
                f"(e={math.exp(log_e):.3g} < {threshold:g})"
            )
            # How much more: at the pace this step's own evidence has grown per window so far.
            pace = self._step_log(test) / s.data_windows if s.data_windows else 0.0
            if pace > 1e-9 and s.canary_requests > 0:
                windows = math.ceil((math.log(threshold) - log_e) / pace)
                per_window = s.canary_requests / s.data_windows
                text += (
                    f": at this step's pace about {windows} more window(s), "
                    f"≈ {windows * per_window:.0f} more canary requests"
                )
                more_windows = max(more_windows, float(windows))
            elif s.data_windows:
                text += (
                    ": this step's data do not point to non-inferiority yet (more traffic or a wider margin)"
                )
            missing.append(text)
        if more_windows and s.data_windows:
            evidence["more_windows"] = more_windows
            evidence["more_canary_requests"] = more_windows * s.canary_requests / s.data_windows
        return missing

    def _evidence(self, window: Window) -> dict[str, float]:
        p, s = self.policy, self._step
        ev: dict[str, float] = {
            "weight": float(window.weight),
            "e_harm": math.exp(
                min(self._harm_log(self._harm_errors, self._harm_latency, self._harm_tail), 690.0)
            ),
            "e_harm_errors": self._harm_errors.evalue,
            "e_harm_latency": self._harm_latency.evalue,
            "e_harm_tail": self._harm_tail.evalue,
            "harm_threshold": p.harm_threshold,
            "e_safety_errors": math.exp(min(self._safety_log("errors"), 690.0)),
            "e_safety_latency": math.exp(min(self._safety_log("latency"), 690.0)),
            "e_safety_tail": math.exp(min(self._safety_log("tail"), 690.0)),
            "safety_threshold": self._threshold(),
            "canary_requests": float(window.canary.requests),
            "canary_errors": float(window.canary.errors),
            "baseline_requests": float(window.baseline.requests),
            "baseline_errors": float(window.baseline.errors),
            "step_windows": float(s.windows),
            "step_canary_requests": s.canary_requests,
            "rollout_windows": float(self._windows),
        }
        if s.canary_requests > 0:
            ev["canary_error_rate"] = s.canary_errors / s.canary_requests
        if s.baseline_requests > 0:
            ev["baseline_error_rate"] = s.baseline_errors / s.baseline_requests
        if self._tail_bound is not None:
            ev["tail_bound"] = self._tail_bound
        if self._harm_tail_bound is not None:
            ev["harm_tail_bound"] = self._harm_tail_bound
        if s.canary_histogram is not None and s.baseline_histogram is not None:
            ev["canary_p99"] = s.canary_histogram.quantile(0.99)
            ev["baseline_p99"] = s.baseline_histogram.quantile(0.99)
            ev["latency_effect"] = mann_whitney(s.canary_histogram, s.baseline_histogram).effect
        return {k: v for k, v in ev.items() if math.isfinite(v)}
