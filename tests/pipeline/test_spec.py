"""The Pipeline spec: valid documents load, bad ones name the field."""

from __future__ import annotations

import pytest

from rollouts.pipeline import PipelineSpecError, parse_pipeline


def doc(**spec):
    return {
        "apiVersion": "rollouts.dev/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": spec,
    }


ENVS = [{"name": "staging", "rollout": "staging.yaml"}, {"name": "production", "rollout": "production.yaml"}]


def test_a_full_pipeline_loads_with_its_defaults():
    pipe = parse_pipeline(
        doc(
            environments=[
                ENVS[0],
                {
                    "name": "production",
                    "rollout": "production.yaml",
                    "promotion": {
                        "soak": "30m",
                        "approval": "command",
                        "windows": [{"days": ["Mon", "Tue"], "from": "09:00", "to": "17:00"}],
                        "timezone": "Europe/Berlin",
                    },
                },
            ]
        )
    )
    assert pipe.key == "test/podinfo"
    first, second = pipe.spec.environments
    assert first.promotion.soak is None and first.promotion.approval == "none"
    assert second.promotion.soak == 1800.0
    assert second.promotion.windows[0].days == ["Mon", "Tue"]
    assert pipe.environment("production") is second


@pytest.mark.parametrize(
    ("environments", "message"),
    [
        ([ENVS[0]], "spec.environments: List should have at least 2 items"),
        ([ENVS[0], ENVS[0]], "spec.environments: environment names must be unique ('staging' appears twice)"),
        ([ENVS[0], {**ENVS[1], "name": "Prod"}], "spec.environments[1].name: must be a DNS-1123 label"),
        ([ENVS[0], {**ENVS[1], "promotion": {"soak": "soon"}}], "spec.environments[1].promotion.soak: "),
        (
            [ENVS[0], {**ENVS[1], "promotion": {"approval": "yes"}}],
            "spec.environments[1].promotion.approval: must be",
        ),
        (
            [ENVS[0], {**ENVS[1], "promotion": {"timezone": "Mars/Olympus"}}],
            "spec.environments[1].promotion.timezone: must be an IANA timezone",
        ),
        (
            [ENVS[0], {**ENVS[1], "promotion": {"windows": [{"from": "9:00"}]}}],
            "spec.environments[1].promotion.windows[0].from: must be a time of day as HH:MM",
        ),
        (
            [ENVS[0], {**ENVS[1], "promotion": {"windows": [{"from": "22:00", "to": "02:00"}]}}],
            "spec.environments[1].promotion.windows[0].to: must not be before from",
        ),
        (
            [ENVS[0], {**ENVS[1], "promotion": {"windows": [{"days": ["Friday"]}]}}],
            "spec.environments[1].promotion.windows[0].days[0]: must be",
        ),
        ([ENVS[0], {**ENVS[1], "soak": "1m"}], "spec.environments[1].soak: unknown field"),
    ],
)
def test_errors_name_the_file_and_field(environments, message):
    with pytest.raises(PipelineSpecError) as err:
        parse_pipeline(doc(environments=environments), source="pipeline.yaml")
    assert f"pipeline.yaml: {message}" in str(err.value)


def test_not_a_mapping():
    with pytest.raises(PipelineSpecError, match=r"pipeline\.yaml: must be a YAML mapping"):
        parse_pipeline(["x"], source="pipeline.yaml")
