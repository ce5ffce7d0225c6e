"""The Rollout spec: the issue's YAML loads; every bad field is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollouts.spec import Rollout, SpecError, load_spec, schema_text

ISSUE_SPEC = """apiVersion: rollouts.dev/v1alpha1
kind: Rollout
metadata:
  name: podinfo
  namespace: test
spec:
  git:
    url: git@github.com:org/cluster.git   # any Git URL or a local path to a repo
    branch: master
  route:
    kind: VirtualService                  # or HTTPRoute, TrafficSplit
    path: workloads/podinfo/virtual-service.yaml
    stable: ga                            # subset, backend (HTTPRoute), service (TrafficSplit)
    canary: canary
  canary:
    path: workloads/podinfo/canary-deployment.yaml   # its container images are the canary revision
  steps: [10, 60, 100]
"""

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rollout.yaml"
    path.write_text(text)
    return path


def test_issue_spec_loads(tmp_path):
    rollout = load_spec(write(tmp_path, ISSUE_SPEC))
    assert isinstance(rollout, Rollout)
    assert rollout.key == "test/podinfo"
    assert rollout.spec.git.url == "git@github.com:org/cluster.git"
    assert rollout.spec.git.branch == "master"
    assert rollout.spec.route.kind == "VirtualService"
    assert (rollout.spec.route.stable, rollout.spec.route.canary, rollout.spec.route.name) == (
        "ga",
        "canary",
        None,
    )
    assert rollout.spec.canary.path == "workloads/podinfo/canary-deployment.yaml"
    assert rollout.spec.steps == [10, 60, 100]
    assert rollout.spec.git.author.name == "gitops-rollouts"


def test_relative_local_url_is_relative_to_the_spec(tmp_path):
    path = write(tmp_path, ISSUE_SPEC.replace("git@github.com:org/cluster.git", "../remote.git"))
    assert load_spec(path).spec.git.url == str((tmp_path.parent / "remote.git").resolve())


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("[10, 60, 100]", "[10, 160, 100]", "spec.steps[1]: must be between 1 and 100"),
        ("[10, 60, 100]", "[10, 0]", "spec.steps[1]: must be between 1 and 100"),
        ("[10, 60, 100]", "[60, 10, 100]", "spec.steps: must be strictly ascending (10 after 60)"),
        ("[10, 60, 100]", "[10, 10]", "spec.steps: must be strictly ascending"),
        ("[10, 60, 100]", "[]", "spec.steps: "),
        ("[10, 60, 100]", "[10, '60']", "spec.steps[1]: must be an integer, got str '60'"),
        (
            "kind: VirtualService ",
            "kind: Ingress ",
            "spec.route.kind: must be 'VirtualService', 'HTTPRoute' or",
        ),
        ("  canary:\n    path", "  canary:\n    pth", "spec.canary.pth: unknown field"),
        ("    branch: master\n", "", None),
        ("  namespace: test\n", "  namespace: Test_1\n", "metadata.namespace: must be a DNS-1123 label"),
        ("    canary: canary\n", "    canary: ga\n", "spec.route.canary: must differ from stable"),
        ("path: workloads/podinfo/virtual", "path: /etc/virtual", "spec.route.path: must be a relative path"),
        ("path: workloads/podinfo/canary", "path: ../../canary", "spec.canary.path: must be a relative path"),
        ("kind: Rollout", "kind: Rollout\nextra: 1", "extra: unknown field"),
        ("apiVersion: rollouts.dev/v1alpha1", "apiVersion: rollouts.dev/v2", "apiVersion: must be"),
        (
            "    url: git@github.com:org/cluster.git",
            "    url: https://bob:s3cret@example.com/r.git",
            "spec.git.url: must not contain credentials",
        ),
        ("  route:\n", "  router:\n", "spec.route: required field is missing"),
    ],
)
def test_errors_name_file_and_field(tmp_path, old, new, message):
    assert old in ISSUE_SPEC
    path = write(tmp_path, ISSUE_SPEC.replace(old, new))
    if message is None:  # a valid variation
        assert load_spec(path).spec.git.branch == "main"
        return
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert f"{path}: {message}" in str(info.value)
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://ghp_token@github.com/org/cluster.git", False),
        ("ssh://git:pw@example.com/cluster.git", False),
        ("ssh://git@example.com/cluster.git", True),
        ("git@github.com:org/cluster.git", True),
        ("https://github.com/org/cluster.git", True),
        ("file:///srv/git/cluster.git", True),
    ],
)
def test_urls_with_secrets_are_refused(tmp_path, url, ok):
    path = write(tmp_path, ISSUE_SPEC.replace("git@github.com:org/cluster.git", url))
    if ok:
        assert load_spec(path).spec.git.url == url
    else:
        with pytest.raises(SpecError, match=r"spec\.git\.url: must not contain credentials"):
            load_spec(path)


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(SpecError, match=r"missing\.yaml: cannot read"):
        load_spec(tmp_path / "missing.yaml")
    with pytest.raises(SpecError, match=r"rollout\.yaml: malformed YAML"):
        load_spec(write(tmp_path, "spec: [\n"))
    with pytest.raises(SpecError, match=r"rollout\.yaml: must be a YAML mapping"):
        load_spec(write(tmp_path, "- 1\n"))
    with pytest.raises(SpecError, match="exactly one Rollout document, found 2"):
        load_spec(write(tmp_path, ISSUE_SPEC + "---\n" + ISSUE_SPEC))


def test_published_schema_is_current():
    published = (ROOT / "deploy/schema/rollout.schema.json").read_text()
    assert published == schema_text(), "regenerate with: rollouts schema > deploy/schema/rollout.schema.json"


def test_schema_describes_the_issue_keys():
    import json

    schema = json.loads(schema_text())
    assert schema["properties"]["apiVersion"]["const"] == "rollouts.dev/v1alpha1"
    spec = schema["$defs"]["RolloutSpec"]
    assert spec["additionalProperties"] is False
    controller = {"analysis", "load", "notify", "finalize"}  # rollouts/spec_controller.py
    gates = {"flux", "approval", "webhooks"}  # rollouts/spec_gates.py
    assert set(spec["properties"]) == {"git", "route", "canary", "steps"} | controller | gates
    assert "sshKeyFile" in schema["$defs"]["GitSpec"]["properties"]


def test_schema_command_prints_the_published_schema(capsys):
    from rollouts.cli import main

    assert main(["schema"]) == 0
    assert capsys.readouterr().out == (ROOT / "deploy/schema/rollout.schema.json").read_text()
