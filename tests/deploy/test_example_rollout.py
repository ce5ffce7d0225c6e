"""The example repo works with the GitOps engine: its spec loads, and every step it commits to the
VirtualService is still a valid VirtualService whose weights the editor reads back."""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML

from rollouts.routes import editor_for
from rollouts.routes.base import Weights
from rollouts.spec import load_spec
from tests.deploy.manifests import DEPLOY, Document, validate_document

EXAMPLE = DEPLOY / "example-repo"
SPEC = EXAMPLE / "rollouts" / "podinfo.yaml"


def test_the_spec_loads_with_the_engine() -> None:
    rollout = load_spec(SPEC)
    assert (rollout.metadata.namespace, rollout.metadata.name) == ("test", "podinfo")
    assert rollout.spec.route.path == "workloads/podinfo/virtual-service.yaml"
    assert list(rollout.spec.steps) == [10, 60, 100]


def test_every_step_leaves_a_valid_virtual_service() -> None:
    path = EXAMPLE / "workloads" / "podinfo" / "virtual-service.yaml"
    editor = editor_for("VirtualService", stable="ga", canary="canary", source=str(path))
    text = path.read_text()
    assert editor.read(text) == Weights(stable=100, canary=0)
    yaml = YAML(typ="safe", pure=True)
    for canary in (10, 60, 100, 0):  # the guide's walk, then a rollback
        text = editor.write(text, Weights.for_canary(canary))
        assert editor.read(text) == Weights.for_canary(canary)
        body = yaml.load(text)
        report = validate_document(Document(Path(path), 0, body))
        assert report.errors == [], f"after {canary}%: {report.errors}"
        # Only the route's weights change: hosts, gateways and the rest stay as they were.
        assert body["spec"]["hosts"] == ["podinfo", "podinfo.example.com"]
        subsets = {d["destination"]["subset"]: d["weight"] for d in body["spec"]["http"][0]["route"]}
        assert subsets["ga"] == 100 - canary
