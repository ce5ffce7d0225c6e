"""The example GitOps repo hangs together: what one file names, another file provides."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.manifests import DEPLOY, load_documents, manifest_files

EXAMPLE = DEPLOY / "example-repo"
PODINFO = EXAMPLE / "workloads" / "podinfo"
MARKER = re.compile(r'#\s*\{"\$imagepolicy":\s*"(?P<ns>[^":]+):(?P<name>[^"]+)"\}')


def _one(path: Path) -> dict[str, Any]:
    (doc,) = load_documents(path)
    return doc.body


def _objects() -> dict[tuple[str, str, str], dict[str, Any]]:
    """Every object of the example repo by (kind, namespace, name)."""
    found = {}
    for path in manifest_files(EXAMPLE):
        for doc in load_documents(path):
            meta = doc.body.get("metadata") or {}
            found[doc.body["kind"], meta.get("namespace", ""), meta.get("name", "")] = doc.body
    return found


def _pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_the_rollout_spec_points_at_files_of_the_repo() -> None:
    spec = _one(EXAMPLE / "rollouts" / "podinfo.yaml")["spec"]
    assert (EXAMPLE / spec["route"]["path"]).is_file()
    assert (EXAMPLE / spec["canary"]["path"]).is_file()
    assert spec["route"]["kind"] == "VirtualService"
    assert spec["steps"] == [10, 60, 100]


def test_the_virtual_service_starts_in_the_guides_initial_state() -> None:
    text = (PODINFO / "virtual-service.yaml").read_text()
    (http,) = _one(PODINFO / "virtual-service.yaml")["spec"]["http"]
    assert [(d["destination"]["subset"], d["weight"]) for d in http["route"]] == [("ga", 100)]
    # The canary destination is present as a comment, ready for the controller to restore.
    assert re.search(r"^#\s+subset: canary$", text, re.MULTILINE)
    assert re.search(r"^#\s+weight: 0$", text, re.MULTILINE)


def test_route_subsets_exist_and_select_the_right_pods() -> None:
    objects = _objects()
    spec = _one(EXAMPLE / "rollouts" / "podinfo.yaml")["spec"]
    rule = objects["DestinationRule", "test", "podinfo"]["spec"]
    subsets = {s["name"]: s["labels"] for s in rule["subsets"]}
    assert set(subsets) == {spec["route"]["stable"], spec["route"]["canary"]}
    ga = objects["Deployment", "test", "podinfo-ga"]
    canary = objects["Deployment", "test", "podinfo-canary"]
    assert _selects(subsets["ga"], _pod_labels(ga)) and not _selects(subsets["ga"], _pod_labels(canary))
    assert _selects(subsets["canary"], _pod_labels(canary)) and not _selects(
        subsets["canary"], _pod_labels(ga)
    )
    # Istio reports the pod's version label as destination_version: the dashboards rely on it.
    assert {_pod_labels(ga)["version"], _pod_labels(canary)["version"]} == {"ga", "canary"}
    service = objects["Service", "test", "podinfo"]["spec"]
    assert _selects(service["selector"], _pod_labels(ga)) and _selects(
        service["selector"], _pod_labels(canary)
    )
    vs = objects["VirtualService", "test", "podinfo"]["spec"]
    for route in vs["http"]:
        for destination in route["route"]:
            assert destination["destination"]["host"] == rule["host"] == "podinfo"
            assert destination["destination"]["subset"] in subsets


def test_the_gateway_and_the_virtual_service_agree() -> None:
    objects = _objects()
    vs = objects["VirtualService", "test", "podinfo"]["spec"]
    gateway = objects["Gateway", "test", "podinfo-gateway"]["spec"]
    assert "podinfo-gateway" in vs["gateways"]
    assert set(gateway["servers"][0]["hosts"]) <= set(vs["hosts"])


def test_the_namespace_has_sidecar_injection() -> None:
    namespace = _objects()["Namespace", "", "test"]
    assert namespace["metadata"]["labels"]["istio-injection"] == "enabled"


def test_image_automation_owns_the_canary_image_only() -> None:
    objects = _objects()
    canary_text = (PODINFO / "canary-deployment.yaml").read_text()
    markers = [m.groupdict() for m in MARKER.finditer(canary_text)]
    assert markers == [{"ns": "flux-system", "name": "podinfo"}]
    assert not MARKER.search((PODINFO / "ga-deployment.yaml").read_text())
    policy = objects["ImagePolicy", "flux-system", "podinfo"]
    repository = objects["ImageRepository", "flux-system", policy["spec"]["imageRepositoryRef"]["name"]]
    (container,) = objects["Deployment", "test", "podinfo-canary"]["spec"]["template"]["spec"]["containers"]
    assert (
        container["image"].rpartition(":")[0] == repository["spec"]["image"] == "ghcr.io/stefanprodan/podinfo"
    )
    automation = objects["ImageUpdateAutomation", "flux-system", "podinfo-canary"]["spec"]
    assert (EXAMPLE / automation["update"]["path"]).resolve() == PODINFO


def test_flux_applies_the_workloads_but_not_the_rollout_specs() -> None:
    objects = _objects()
    path = objects["Kustomization", "flux-system", "workloads"]["spec"]["path"]
    applied = EXAMPLE / path
    listed = _one(applied / "kustomization.yaml")["resources"]
    on_disk = {str(p.relative_to(applied)) for p in applied.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert set(listed) == on_disk, "every workload file is applied, and nothing else"
    assert not any(r.startswith("../") for r in listed)


def test_the_load_test_pod_runs_loadtest_serve_behind_a_service() -> None:
    objects = _objects()
    deployment = objects["Deployment", "test", "loadtest"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"].startswith("ghcr.io/gitops-rollouts/loadtest:")
    assert container["args"][0] == "serve"
    service = objects["Service", "test", "loadtest"]["spec"]
    assert _selects(service["selector"], _pod_labels(deployment))
    secret_volumes = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if "secret" in v]
    assert [v["secret"]["secretName"] for v in secret_volumes] == ["loadtest-token"]


@pytest.mark.parametrize("name", ["podinfo-ga", "podinfo-canary", "loadtest"])
def test_workloads_are_locked_down(name: str) -> None:
    pod = _objects()["Deployment", "test", name]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    for container in pod["containers"]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert "requests" in container["resources"]
