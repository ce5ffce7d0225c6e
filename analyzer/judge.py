"""The judge: one analysis window in, a verdict (promote, hold, rollback) with reasons and evidence out.

One :class:`Judge` per rollout. It carries two kinds of evidence:

* harm (rollout-wide): e-processes for "the canary is worse than GA" on errors, latency order and the
  latency tail, averaged with the policy's weights; at ``1/α`` the canary is rolled back. Under an
  identical canary the chance of that ever happening during the rollout is at most α.
* safety (per step, restarted by :meth:`Judge.new_step`): e-processes for "the canary is no worse
  than GA by more than the margins"; a step is promoted when every one of them reaches
  ``1/promote_alpha`` on enough data.

Absolute SLO ceilings, when set, roll back on their own. No data is never a pass: it is a hold.
The judge is deterministic, so a restarted controller can replay a step's windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from analyzer.histogram import Histogram
from analyzer.mannwhitney import effect_variance, mann_whitney, null_effect_variance
from analyzer.noninferiority import tail_bound
from analyzer.policy import Policy
from analyzer.sequential import CountEProcess, CountWindow, OrderEProcess, combine_average

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
    """Per-step data and safety evidence (restarted by ``new_step``)."""

    safety_errors: CountEProcess
    safety_tail: CountEProcess
    safety_latency: OrderEProcess
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


class Judge:
    """Judges the windows of one rollout; see the module docstring and docs/analyzer.md."""

    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy if policy is not None else Policy()
        p = self.policy
        self._harm_errors = CountEProcess("harm", ratio=p.harm_error_ratio)
        self._harm_tail = CountEProcess("harm", ratio=1.0)
        self._harm_latency = OrderEProcess("harm", null=0.5 + p.harm_latency_margin, tau=p.latency_tau)
        self._tail_bound: float | None = p.tail_bound
        self._bounds: tuple[float, ...] | None = None
        self._windows = 0
        self._step = self._fresh_step()

    def _fresh_step(self) -> _Step:
        p = self.policy
        return _Step(
            safety_errors=CountEProcess("safety", ratio=p.error_margin_ratio, offset=p.error_margin_abs),
            safety_tail=CountEProcess("safety", ratio=p.tail_margin_ratio, offset=p.tail_margin_abs),
            safety_latency=OrderEProcess("safety", null=0.5 + p.latency_margin, tau=p.latency_tau),
        )

    def new_step(self) -> None:
        """The weight changed: per-step data and safety evidence restart; harm evidence stays."""
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
        p, s = self.policy, self._step
        can, base = window.canary, window.baseline
        self._windows += 1
        s.windows += 1
        has_data = can.requests > 0 and base.requests > 0

        # Errors and, once the tail bound is fixed, requests above it: exact count e-processes.
        counts = CountWindow(can.errors, can.requests, base.errors, base.requests)
        self._harm_errors = self._harm_errors.update(counts)
        s.safety_errors = s.safety_errors.update(counts)
        if self._tail_bound is not None:
            tail = CountWindow(
                can.histogram.exceedance(self._tail_bound),
                can.histogram.total,
                base.histogram.exceedance(self._tail_bound),
                base.histogram.total,
            )
            self._harm_tail = self._harm_tail.update(tail)
            s.safety_tail = s.safety_tail.update(tail)
        elif base.histogram.total >= p.tail_min_baseline:
            # Fixed from this window's GA only, used from the next window on (no peeking at its own data).
            self._tail_bound = tail_bound(base.histogram, p.tail_quantile)

        # Latency order: batch small windows until both sides have enough requests.
        s.pending_canary = _add(s.pending_canary, can.histogram)
        s.pending_baseline = _add(s.pending_baseline, base.histogram)
        if min(s.pending_canary.total, s.pending_baseline.total) >= p.latency_min_batch:
            mw = mann_whitney(s.pending_canary, s.pending_baseline)
            null_var = null_effect_variance(s.pending_canary, s.pending_baseline)
            self._harm_latency = self._harm_latency.update(mw.effect, null_var)
            delong = effect_variance(s.pending_canary, s.pending_baseline)
            s.safety_latency = s.safety_latency.update(mw.effect, max(delong, 0.25 * null_var))
            s.pending_canary = s.pending_baseline = None

        s.canary_requests += can.requests
        s.canary_errors += can.errors
        s.baseline_requests += base.requests
        s.baseline_errors += base.errors
        s.canary_histogram = _add(s.canary_histogram, can.histogram)
        s.baseline_histogram = _add(s.baseline_histogram, base.histogram)
        if has_data:
            s.data_windows += 1

        evidence = self._evidence(window)
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
        missing = self._missing_for_promotion()
        if not reasons and not missing:
            return Verdict(
                "promote",
                [
                    f"non-inferiority established at weight {window.weight:g} on errors, latency and tail "
                    f"(each e >= {p.safety_threshold:g}) over {s.data_windows} windows, "
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

    def _missing_for_promotion(self) -> list[str]:
        p, s = self.policy, self._step
        missing = []
        if s.data_windows < p.min_windows:
            missing.append(f"{s.data_windows} of min_windows {p.min_windows} windows with data in this step")
        if s.canary_requests < p.min_canary_requests:
            missing.append(
                f"{s.canary_requests:.0f} of min_canary_requests {p.min_canary_requests} "
                "canary requests in this step"
            )
        for name, e in (
            ("error rate", s.safety_errors.evalue),
            ("latency", s.safety_latency.evalue),
            ("tail", s.safety_tail.evalue),
        ):
            if e < p.safety_threshold:
                missing.append(
                    f"{name} non-inferiority not yet established (e={e:.3g} < {p.safety_threshold:g})"
                )
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
            "e_safety_errors": s.safety_errors.evalue,
            "e_safety_latency": s.safety_latency.evalue,
            "e_safety_tail": s.safety_tail.evalue,
            "safety_threshold": p.safety_threshold,
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
        if s.canary_histogram is not None and s.baseline_histogram is not None:
            ev["canary_p99"] = s.canary_histogram.quantile(0.99)
            ev["baseline_p99"] = s.baseline_histogram.quantile(0.99)
            ev["latency_effect"] = mann_whitney(s.canary_histogram, s.baseline_histogram).effect
        return {k: v for k, v in ev.items() if math.isfinite(v)}
