"""``spec.analysis.policy`` is the analyzer's ``Policy`` itself: loading a spec gives a typed policy,
and every bad policy key is an error that names its field path in the spec file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analyzer.policy import Policy
from rollouts.spec import SpecError, json_schema, load_spec
from tests.rollouts.test_spec import ISSUE_SPEC, write


def _with_policy(tmp_path: Path, policy: str) -> Path:
    return write(tmp_path, ISSUE_SPEC + f"  analysis:\n    policy: {policy}\n")


def test_the_policy_is_typed_and_defaults_to_the_analyzers(tmp_path):
    assert load_spec(write(tmp_path, ISSUE_SPEC)).spec.analysis.policy == Policy()
    policy = load_spec(
        _with_policy(
            tmp_path,
            "{alpha: 0.05, on_max_windows: rollback, harm_weights: {errors: 0.5, latency: 0.25, tail: 0.25}}",
        )
    ).spec.analysis.policy
    assert isinstance(policy, Policy)
    assert policy.alpha == 0.05 and policy.on_max_windows == "rollback"
    assert policy.harm_weights.latency == 0.25
    assert policy.harm_threshold == pytest.approx(20.0)


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ("{alpha: 2}", "spec.analysis.policy.alpha: Input should be less than 1"),
        ("{alpah: 0.05}", "spec.analysis.policy.alpah: unknown field"),
        ("{on_max_windows: stop}", "spec.analysis.policy.on_max_windows: must be 'pause' or 'rollback'"),
        (
            "{harm_weights: {errors: 0.5, latency: 0.1, tail: 0.1}}",
            "spec.analysis.policy.harm_weights: harm_weights must sum to 1",
        ),
        ("{harm_weights: {error: 1}}", "spec.analysis.policy.harm_weights.error: unknown field"),
        ("[0.05]", "spec.analysis.policy: must be a mapping"),
    ],
)
def test_a_bad_policy_key_is_named_with_its_path(tmp_path, policy, message):
    path = _with_policy(tmp_path, policy)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert f"{path}: {message}" in str(caught.value)


def test_the_published_schema_validates_policy_keys_too():
    schema = json_schema()
    policy = schema["$defs"]["AnalysisSpec"]["properties"]["policy"]
    assert policy["$ref"] == "#/$defs/Policy"
    definition = schema["$defs"]["Policy"]
    assert definition["additionalProperties"] is False
    assert "alpha" in definition["properties"] and "harm_weights" in definition["properties"]
    committed = json.loads(
        (Path(__file__).resolve().parents[2] / "deploy/schema/rollout.schema.json").read_text()
    )
    assert committed["$defs"]["Policy"] == definition
