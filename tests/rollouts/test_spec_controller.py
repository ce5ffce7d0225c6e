"""The controller's sections of the Rollout spec."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from rollouts.spec_controller import ControllerSections, FinalizeSpec, parse_duration


def sections(data: dict[str, Any]) -> ControllerSections:
    return ControllerSections.model_validate(data)


def test_defaults_need_nothing() -> None:
    spec = sections({})
    assert spec.analysis.interval == 60.0
    assert (spec.analysis.threshold, spec.analysis.on_error, spec.analysis.metrics) == (5, "pause", "istio")
    assert spec.load.mode == "none" and spec.notify == [] and spec.finalize.action == "leave-canary"


def test_full_section() -> None:
    spec = sections(
        {
            "analysis": {
                "interval": "1m30s",
                "threshold": 3,
                "onError": "rollback",
                "subsets": {
                    "stable": {"version": "ga", "service": "podinfo"},
                    "canary": {"version": "canary"},
                },
                "syncTimeout": "2m",
                "metrics": "podinfo",
                "prometheus": {"url": "http://prometheus:9090", "bearerTokenFile": "/run/token"},
            },
            "load": {
                "mode": "endpoint",
                "endpoint": "http://loadtester:8089",
                "target": "http://podinfo:9898/",
                "rate": 50.0,
                "tokenFile": "/run/lt",
            },
            "notify": ["json://127.0.0.1:1/", {"urlFile": "/run/slack"}],
            "finalize": {"action": "promote-ga", "gaPath": "workloads/podinfo/ga.yaml"},
        }
    )
    assert spec.analysis.interval == 90.0 and spec.analysis.sync_timeout == 120.0
    assert spec.analysis.subsets.canary.version == "canary"
    assert spec.analysis.subsets.canary.version == "canary"
    assert spec.analysis.prometheus.bearer_token_file == "/run/token"
    assert spec.load.rate == 50.0
    assert spec.finalize.ga_path == "workloads/podinfo/ga.yaml"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"analysis": {"interval": "soon"}}, "must be a duration like 30s"),
        ({"analysis": {"interval": 0}}, "must be positive"),
        ({"analysis": {"onError": "promote"}}, "'pause' or 'rollback'"),
        ({"analysis": {"intervall": "1m"}}, "Extra inputs are not permitted"),
        ({"analysis": {"threshold": "5"}}, "valid integer"),
        ({"analysis": {"prometheus": {"url": "http://u:p@prom:9090"}}}, "must not contain credentials"),
        ({"analysis": {"prometheus": {"username": "u"}}}, "username and passwordFile go together"),
        ({"load": {"mode": "local"}}, "mode local needs target"),
        ({"load": {"mode": "endpoint", "target": "http://a/"}}, "needs endpoint and tokenFile"),
        ({"finalize": "promote-ga"}, "promote-ga needs gaPath"),
        ({"finalize": {"action": "promote-ga", "gaPath": "../x.yaml"}}, "relative path inside"),
        ({"notify": [{"url": "x"}]}, "urlFile"),
    ],
)
def test_bad_values_name_the_problem(data: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        sections(data)


def test_finalize_shorthand() -> None:
    assert FinalizeSpec.model_validate("leave-canary").action == "leave-canary"


@given(st.integers(0, 48), st.integers(0, 59), st.integers(0, 59))
def test_durations(hours: int, minutes: int, seconds: int) -> None:
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + f"{seconds}s"
    assert parse_duration(text) == hours * 3600 + minutes * 60 + seconds
    assert parse_duration("250ms") == 0.25


BASE: dict[str, Any] = {
    "apiVersion": "rollouts.dev/v1alpha1",
    "kind": "Rollout",
    "metadata": {"name": "podinfo", "namespace": "test"},
    "spec": {
        "git": {"url": "file:///tmp/repo.git", "branch": "master"},
        "route": {
            "kind": "VirtualService",
            "path": "workloads/podinfo/vs.yaml",
            "stable": "ga",
            "canary": "canary",
        },
        "canary": {"path": "workloads/podinfo/canary.yaml"},
        "steps": [10, 60, 100],
    },
}


def test_rollout_documents_carry_the_sections_and_errors_name_the_field() -> None:
    from rollouts.spec import SpecError, parse_spec

    doc = {**BASE, "spec": {**BASE["spec"], "analysis": {"interval": "30s"}, "finalize": "leave-canary"}}
    rollout = parse_spec(doc, source="rollout.yaml")
    assert rollout.spec.analysis.interval == 30.0
    bad = {**BASE, "spec": {**BASE["spec"], "analysis": {"interval": "soon"}, "load": {"mode": "local"}}}
    with pytest.raises(SpecError) as info:
        parse_spec(bad, source="rollout.yaml")
    lines = str(info.value).splitlines()
    assert (
        "rollout.yaml: spec.analysis.interval: must be a duration like 30s, 1m or 1m30s, got 'soon'" in lines
    )
    assert any(line.startswith("rollout.yaml: spec.load: ") and "needs target" in line for line in lines)
