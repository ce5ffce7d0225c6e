"""Custom metrics in the controller: the spec's list form, the combined verdict, batched rounds."""

from __future__ import annotations

import numpy as np
import pytest

from analyzer import Policy
from analyzer.custom import CustomReading, CustomSide
from rollouts.controller.custom import CombinedJudge, CustomWindow
from rollouts.spec import SpecError
from rollouts.spec_metrics import builtin_metrics, custom_metrics
from tests.analyzer.windows import make_window
from tests.controller.machinery import rollout_spec

LAG = {
    "name": "queue-lag",
    "selector": {"namespace": "namespace", "service": "app", "version": "version"},
    "query": "max by ({{ by }}) (max_over_time(queue_lag_seconds{ {{ selector }} }[{{ window }}]))",
    "direction": "higher-is-worse",
}
FLAGGER = {
    "apiVersion": "flagger.app/v1beta1",
    "kind": "MetricTemplate",
    "metadata": {"name": "lag", "namespace": "test"},
    "spec": {
        "provider": {"type": "prometheus", "address": "http://prometheus.istio-system:9090"},
        "query": 'max(queue_lag_seconds{namespace="{{ namespace }}", version="{{ target }}"})',
    },
}


def test_list_form_keeps_the_builtin_template_and_adds_custom_metrics():
    spec = rollout_spec("/x.git", analysis={"metrics": ["podinfo", LAG]})
    assert builtin_metrics(spec.spec.analysis.metrics) == "podinfo"
    assert [m.name for m in custom_metrics(spec.spec.analysis.metrics)] == ["queue-lag"]
    assert (
        builtin_metrics(rollout_spec("/x.git", analysis={"metrics": [LAG]}).spec.analysis.metrics) == "istio"
    )
    flagger = rollout_spec(
        "/x.git",
        analysis={
            "metrics": [
                {"name": "lag-ceiling", "templateRef": {"name": "lag"}, "thresholdRange": {"max": 1}}
            ],
            "metricTemplates": [FLAGGER],
        },
    )
    assert custom_metrics(flagger.spec.analysis.metrics)[0].template_ref is not None


@pytest.mark.parametrize(
    ("metrics", "extra", "message"),
    [
        (
            [{**LAG, "query": "max by ({{ by }}) (lag{ {{ selector }}, x={{ pod }} })"}],
            {},
            r"metrics\[0\].*unknown variable \{\{ pod \}\}",
        ),
        ([{k: v for k, v in LAG.items() if k != "direction"}], {}, r"metrics\[0\].*direction: required"),
        ([LAG, LAG], {}, "already taken"),
        (["istio", "podinfo"], {}, "at most one built-in template"),
        ([{**LAG, "provider": "datadog"}], {}, "needs analysis.datadog"),
        (
            [{"name": "c", "templateRef": {"name": "nope"}, "thresholdRange": {"max": 1}}],
            {},
            "not in metricTemplates",
        ),
        ([LAG], {"metricTemplates": [{**FLAGGER, "kind": "Canary"}]}, r"metricTemplates\[0\]"),
    ],
)
def test_bad_custom_metrics_are_spec_errors_naming_the_field(metrics, extra, message):
    with pytest.raises(SpecError, match=message):
        rollout_spec("/x.git", analysis={"metrics": metrics, **extra})


def test_combined_verdict_rolls_back_on_a_custom_metric_and_never_promotes_without_it():
    policy = Policy.from_mapping({"min_windows": 2, "min_canary_requests": 50})
    metrics = custom_metrics(rollout_spec("/x.git", analysis={"metrics": [LAG]}).spec.analysis.metrics)
    rng = np.random.default_rng(5)

    judge = CombinedJudge(policy, metrics)
    assert judge.inner.policy.alpha == pytest.approx(policy.alpha / 2)  # its share of the budget
    actions = []
    for i in range(12):
        base = make_window(rng, 50)
        ga = 0.4 * (1 + 0.03 * np.sin(i))
        reading = CustomReading("queue-lag", CustomSide(1.8 * ga), CustomSide(ga))
        verdict = judge.judge(CustomWindow(base.baseline, base.canary, base.weight, custom=(reading,)))
        actions.append(verdict.action)
        if verdict.action == "rollback":
            break
    assert verdict.action == "rollback", actions
    assert verdict.reasons[0].startswith("queue lag: canary 1.8")
    assert verdict.evidence["custom.queue-lag.harm_e"] >= 2 / policy.alpha
    means = verdict.evidence["custom.queue-lag.canary_mean"] / verdict.evidence["custom.queue-lag.ga_mean"]
    assert means == pytest.approx(1.8, rel=0.01) == verdict.evidence["custom.queue-lag.ratio"]

    blind = CombinedJudge(policy, metrics)
    for _ in range(30):  # the built-in evidence alone would promote; the metric has no data
        base = make_window(rng, 50)
        verdict = blind.judge(CustomWindow(base.baseline, base.canary, base.weight, custom=()))
        assert verdict.action == "hold"
    assert any(r.startswith("queue lag: no data for GA") for r in verdict.reasons)


def test_custom_readings_and_evidence_reach_the_controller_metrics_and_are_forgotten():
    from prometheus_client import generate_latest

    from rollouts.controller.custom import reporter
    from rollouts.metrics import ControllerMetrics

    out = ControllerMetrics()
    metrics = custom_metrics(rollout_spec("/x.git", analysis={"metrics": [LAG]}).spec.analysis.metrics)
    judge = CombinedJudge(Policy(), metrics, report=reporter(out, "test/podinfo"))
    base = make_window(np.random.default_rng(1), 50)
    reading = CustomReading("queue-lag", CustomSide(0.7), CustomSide(0.4))
    judge.judge(CustomWindow(base.baseline, base.canary, base.weight, custom=(reading,)))
    text = generate_latest(out.registry).decode()
    assert 'rollouts_custom_value{metric="queue-lag",rollout="test/podinfo",subset="canary"} 0.7' in text
    assert 'rollouts_custom_value{metric="queue-lag",rollout="test/podinfo",subset="ga"} 0.4' in text
    assert (
        'rollouts_custom_evidence{kind="harm_threshold",metric="queue-lag",rollout="test/podinfo"} 200.0'
        in text
    )
    judge.judge(CustomWindow(base.baseline, base.canary, base.weight, custom=()))  # no data: no value
    assert 'subset="canary"' not in generate_latest(out.registry).decode()
    out.forget("test/podinfo")
    assert "rollouts_custom_evidence{" not in generate_latest(out.registry).decode()
