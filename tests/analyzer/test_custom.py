"""Custom metrics: validation that names the field, and the judge's words and actions per kind."""

from __future__ import annotations

import math

import pytest

from analyzer.custom import (
    CustomJudge,
    CustomMetricError,
    CustomSide,
    alpha_share,
    custom_metric_from_mapping,
)
from analyzer.histogram import Histogram

QUEUE_LAG = {
    "name": "queue-lag",
    "kind": "value",
    "selector": {"namespace": "namespace", "version": "version"},
    "query": "max by ({{ by }}) (max_over_time(queue_lag_seconds{ {{ selector }} }[{{ window }}]))",
    "direction": "higher-is-worse",
    "margin": 0.1,
}


def metric(**changes):
    return custom_metric_from_mapping({**QUEUE_LAG, **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"query": "queue_lag{ {{ selector }}, job={{ job }} } by ({{ by }})"},
            r"query: unknown variable \{\{ job \}\}",
        ),
        ({"query": "max(queue_lag{ {{ selector }} })"}, r"query: missing variable \{\{ by \}\}"),
        ({"direction": None}, "direction: required"),
        ({"kind": "rate"}, "events: required for kind rate"),
        ({"name": "Queue Lag"}, "must be lower-case"),
        ({"selector": {"namespace": "bad-label"}}, "not a valid label name"),
        ({"templateRef": {"name": "latency"}, "query": None}, "thresholdRange"),
        ({"thresholdRange": {"min": 5, "max": 1}}, "min .* is above max"),
        ({"role": "sometimes"}, "role"),
    ],
)
def test_bad_metrics_are_errors_naming_the_metric_and_field(changes, message):
    data = {**QUEUE_LAG, **changes}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(CustomMetricError, match=message) as error:
        custom_metric_from_mapping(data, source="spec.analysis.metrics[1]")
    assert "spec.analysis.metrics[1]" in str(error.value)
    assert "queue-lag" in str(error.value) or "Queue Lag" in str(error.value)


def test_a_show_metric_needs_no_direction_and_never_holds():
    shown = metric(role="show", direction=None)
    judge = CustomJudge(shown, alpha=0.01)
    judge, evidence = judge.observe(None, CustomSide(1.0), why="no series")
    assert evidence.action == "pass" and "no data for canary" in evidence.reason
    judge, evidence = judge.observe(CustomSide(10.0), CustomSide(1.0))
    assert evidence.action == "pass"


def test_alpha_is_shared_between_the_judge_and_each_metric_that_can_roll_back():
    metrics = [metric(), metric(name="b", role="rollback"), metric(name="c", role="show", direction=None)]
    assert alpha_share(0.01, metrics) == pytest.approx(0.01 / 3)


def test_value_regression_rolls_back_with_reasons_in_words():
    judge = CustomJudge(metric(), alpha=0.01)
    actions = []
    for i in range(8):
        ga = 0.40 * (1 + 0.03 * math.sin(i))
        judge, evidence = judge.observe(CustomSide(1.8 * ga * (1 + 0.02 * math.cos(i))), CustomSide(ga))
        actions.append(evidence.action)
        if evidence.action == "rollback":
            break
    assert actions[-1] == "rollback" and "hold" in actions[:-1]
    assert evidence.reason.startswith("queue lag: canary 1.8")
    assert f"over {len(actions)} windows, e = " in evidence.reason and "≥ 100" in evidence.reason
    assert evidence.harm >= 100 and evidence.alpha == 0.01


def test_identical_value_passes_after_enough_windows_and_no_data_holds_naming_the_metric():
    judge = CustomJudge(metric(), alpha=0.01, promote_alpha=0.05, min_windows=3)
    judge, evidence = judge.observe(CustomSide(0.4), None, why="no series for namespace='test'")
    assert evidence.action == "hold"
    assert evidence.reason == "queue lag: no data for GA: no series for namespace='test'"
    for i in range(30):
        wobble = 1 + 0.04 * math.sin(3 * i)
        judge, evidence = judge.observe(CustomSide(0.4 * wobble), CustomSide(0.4 / wobble))
        if evidence.action == "pass":
            break
    assert evidence.action == "pass", evidence.reason
    assert "within 0.1 of GA" in evidence.reason
    step = judge.new_step()
    assert step.step_windows == 0 and step.harm_windows == judge.harm_windows  # harm carries over
    _, evidence = step.observe(CustomSide(math.nan), CustomSide(0.4))
    assert evidence.action == "hold" and evidence.reason.startswith("queue lag: canary value is nan")


def test_rate_kind_lower_is_worse_and_threshold_range():
    conversions = metric(
        name="checkout-conversion",
        kind="rate",
        query=None,
        events="sum by ({{ by }}) (increase(checkouts_total{ {{ selector }} }[{{ window }}]))",
        requests="sum by ({{ by }}) (increase(visits_total{ {{ selector }} }[{{ window }}]))",
        direction="lower-is-worse",
        margin=0.05,
    )
    judge = CustomJudge(conversions, alpha=0.01)
    for _ in range(20):
        judge, evidence = judge.observe(
            CustomSide(0.05, events=50, requests=1000), CustomSide(0.10, events=100, requests=1000)
        )
        if evidence.action == "rollback":
            break
    assert evidence.action == "rollback" and "checkout conversion: canary 0.50× GA" in evidence.reason

    ceiling = metric(thresholdRange={"max": 2.0})
    _, evidence = CustomJudge(ceiling, alpha=0.01).observe(CustomSide(2.5), CustomSide(0.1))
    assert evidence.action == "rollback"
    assert evidence.reason == "queue lag: canary 2.5 > max 2 (thresholdRange)"


def test_histogram_kind_uses_stochastic_order():
    slow = metric(
        name="downstream-latency",
        kind="histogram",
        query=None,
        histogram="sum by ({{ by }}, le) (increase(dep_seconds_bucket{ {{ selector }} }[{{ window }}]))",
        margin=0.02,
    )
    bounds = [0.01, 0.05, 0.1, math.inf]
    fast = Histogram.from_counts(bounds, [400, 80, 15, 5])
    slower = Histogram.from_counts(bounds, [150, 250, 80, 20])
    judge = CustomJudge(slow, alpha=0.01)
    for _ in range(10):
        judge, evidence = judge.observe(CustomSide(500, histogram=slower), CustomSide(500, histogram=fast))
        if evidence.action == "rollback":
            break
    assert evidence.action == "rollback" and evidence.reason.startswith("downstream latency:")
