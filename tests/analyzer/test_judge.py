"""The judge: verdicts, reasons, evidence, bad input, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analyzer import Histogram, Judge, Policy, SubsetWindow, Verdict, Window
from tests.analyzer.windows import PODINFO, make_window


def _run(judge: Judge, rng: np.random.Generator, steps=(10, 60), max_windows=40, **kwargs) -> list[Verdict]:
    verdicts, step = [], 0
    for _ in range(max_windows):
        v = judge.judge(make_window(rng, steps[step], **kwargs))
        verdicts.append(v)
        if v.action == "rollback":
            break
        if v.action == "promote":
            step += 1
            judge.new_step()
            if step == len(steps):
                break
    return verdicts


def test_identical_canary_is_promoted_through_every_step() -> None:
    verdicts = _run(Judge(), np.random.default_rng(11))
    actions = [v.action for v in verdicts]
    assert "rollback" not in actions
    assert actions.count("promote") == 2
    promote = next(v for v in verdicts if v.action == "promote")
    assert "non-inferiority established" in promote.reasons[0]
    assert promote.evidence["e_safety_errors"] >= 20


def test_slow_canary_is_rolled_back_on_latency() -> None:
    verdicts = _run(Judge(), np.random.default_rng(12), slowdown=1.5)
    last = verdicts[-1]
    assert last.action == "rollback"
    assert "latency e=" in last.reasons[0]
    assert last.evidence["e_harm_latency"] >= 100
    assert last.evidence["latency_effect"] > 0.6


def test_error_regression_is_rolled_back_on_errors() -> None:
    verdicts = _run(Judge(), np.random.default_rng(13), canary_error_rate=0.03)
    assert verdicts[-1].action == "rollback"
    assert verdicts[-1].evidence["e_harm_errors"] >= 100
    assert all(v.action == "hold" for v in verdicts[:-1])


def test_no_data_is_a_hold_never_a_pass() -> None:
    empty = Histogram.empty(PODINFO)
    ga = Histogram.from_counts(PODINFO, [0, 0, 10, 50, 30, 10, 0, 0, 0, 0, 0, 0])
    judge = Judge(Policy(min_windows=1, min_canary_requests=1))
    for _ in range(5):
        v = judge.judge(Window(SubsetWindow(ga, 100, 0), SubsetWindow(empty, 0, 0), weight=10))
        assert v.action == "hold"
        assert any("no canary requests" in r for r in v.reasons)
    v = judge.judge(Window(SubsetWindow(empty, 0, 0), SubsetWindow(ga, 100, 0), weight=100))
    assert v.action == "hold"
    assert any("no baseline" in r for r in v.reasons)


@pytest.mark.parametrize(
    ("requests", "errors", "message"),
    [
        (math.nan, 0, r"requests is NaN"),
        (-1, 0, r"requests is negative"),
        (10, 11, r"errors \(11\) exceed (canary\.)?requests \(10\)"),
        (10, "x", r"errors is not a number"),
        (math.inf, 0, r"requests is infinite"),
    ],
)
def test_bad_counts_name_the_field(requests, errors, message) -> None:
    h = Histogram.empty(PODINFO)
    with pytest.raises(ValueError, match=message):
        SubsetWindow(h, requests, errors)
    # A subset that skipped its own check is caught by Window, which names the side.
    bad = object.__new__(SubsetWindow)
    for name, value in (("histogram", h), ("requests", requests), ("errors", errors)):
        object.__setattr__(bad, name, value)
    with pytest.raises(ValueError, match="canary." + message):
        Window(SubsetWindow(h, 10, 0), bad, weight=10)


def test_bounds_must_match_and_weight_in_range() -> None:
    a = Histogram.empty(PODINFO)
    b = Histogram.empty((0.1, 1.0, math.inf))
    with pytest.raises(ValueError, match=r"canary\.histogram bounds differ from baseline\.histogram bounds"):
        Window(SubsetWindow(a, 0, 0), SubsetWindow(b, 0, 0), weight=10)
    with pytest.raises(ValueError, match="weight must be between 0 and 100"):
        Window(SubsetWindow(a, 0, 0), SubsetWindow(a, 0, 0), weight=120)
    with pytest.raises(ValueError, match=r"errors .* exceed"):
        SubsetWindow(a, 1, 2)


def test_bounds_may_not_change_during_a_rollout_and_state_is_untouched() -> None:
    rng = np.random.default_rng(5)
    judge = Judge()
    first = judge.judge(make_window(rng, 10))
    other = Histogram.empty((0.1, 1.0, math.inf))
    with pytest.raises(ValueError, match="bounds changed"):
        judge.judge(Window(SubsetWindow(other, 0, 0), SubsetWindow(other, 0, 0), weight=10))
    second = judge.judge(make_window(rng, 10))
    assert second.evidence["rollout_windows"] == first.evidence["rollout_windows"] + 1


def test_deterministic_replay() -> None:
    windows = [make_window(np.random.default_rng(21), 10) for _ in range(6)]
    a, b = Judge(), Judge()
    assert [a.judge(w) for w in windows] == [b.judge(w) for w in windows]


def test_slo_ceilings_roll_back() -> None:
    rng = np.random.default_rng(8)
    v = Judge(Policy(slo_p99=0.1)).judge(make_window(rng, 60))
    assert v.action == "rollback"
    assert "SLO broken: canary p99" in v.reasons[0]
    v = Judge(Policy(slo_error_rate=0.01)).judge(make_window(rng, 60, canary_error_rate=0.05))
    assert v.action == "rollback"
    assert "SLO broken: canary error rate" in v.reasons[0]
    v = Judge(Policy(slo_p99=1.0, slo_error_rate=0.5)).judge(make_window(rng, 60))
    assert v.action != "rollback"


@pytest.mark.parametrize(("on_max", "action"), [("pause", "pause"), ("rollback", "rollback")])
def test_step_cap(on_max: str, action: str) -> None:
    # An impossible requirement keeps the step holding until the cap.
    policy = Policy(max_windows_per_step=3, on_max_windows=on_max, min_canary_requests=10**9)
    judge, rng = Judge(policy), np.random.default_rng(9)
    verdicts = [judge.judge(make_window(rng, 10)) for _ in range(3)]
    assert [v.action for v in verdicts[:2]] == ["hold", "hold"]
    assert verdicts[2].action == action
    assert "step expired" in verdicts[2].reasons[0]
    assert verdicts[2].evidence["step_expired"] == 1.0


def test_new_step_restarts_safety_but_keeps_harm() -> None:
    judge, rng = Judge(), np.random.default_rng(10)
    for _ in range(3):
        v = judge.judge(make_window(rng, 10, canary_error_rate=0.02))
    harm = v.evidence["e_harm_errors"]
    judge.new_step()
    w = make_window(rng, 60)
    v2 = judge.judge(w)
    assert v2.evidence["step_windows"] == 1
    assert v2.evidence["step_canary_requests"] == w.canary.requests
    assert v2.evidence["rollout_windows"] == 4
    assert v2.evidence["e_harm_errors"] != 1.0
    assert harm != 1.0


def test_evidence_is_flat_finite_and_json_friendly() -> None:
    import json

    v = Judge().judge(make_window(np.random.default_rng(3), 10))
    assert all(isinstance(x, float) and math.isfinite(x) for x in v.evidence.values())
    assert json.loads(json.dumps(v.to_dict()))["action"] == v.action


def test_non_integer_counts_from_increase_are_judged() -> None:
    """increase() extrapolates: counts like 118.7 must work like any others."""
    rng = np.random.default_rng(14)
    judge = Judge()
    for _ in range(3):
        w = make_window(rng, 10)
        scale = lambda h: Histogram.from_cumulative(h.bounds, [c * 1.013 for c in h.cumulative])  # noqa: E731
        v = judge.judge(
            Window(
                SubsetWindow(
                    scale(w.baseline.histogram), w.baseline.requests * 1.013, w.baseline.errors * 1.013
                ),
                SubsetWindow(scale(w.canary.histogram), w.canary.requests * 1.013, w.canary.errors * 1.013),
                weight=10,
            )
        )
        assert v.action in ("hold", "promote")
        assert math.isfinite(v.evidence["e_harm"])


def test_missing_latency_data_is_never_promoted() -> None:
    """Requests and errors without a latency histogram: latency cannot be shown, so no promotion."""
    rng = np.random.default_rng(15)
    judge = Judge(Policy(max_windows_per_step=100))
    empty = Histogram.empty(PODINFO)
    for _ in range(30):
        w = make_window(rng, 60)
        v = judge.judge(
            Window(
                SubsetWindow(w.baseline.histogram, w.baseline.requests, w.baseline.errors),
                SubsetWindow(empty, w.canary.requests, w.canary.errors),
                weight=60,
            )
        )
        assert v.action == "hold"
    assert any("latency non-inferiority not yet established" in r for r in v.reasons)
