"""The controller's kustomize base passes a security review, and its Dockerfile is sound."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from tests.deploy.manifests import DEPLOY, load_documents

CONTROLLER = DEPLOY / "controller"
READ_VERBS = {"get", "list", "watch"}
# The only writes: Events on the rollout's target and the leader-election Lease.
ALLOWED_WRITES = {
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
    ("coordination.k8s.io", "leases"): {"create", "get", "update", "patch"},
}


def _objects(kind: str) -> list[dict[str, Any]]:
    found = []
    for path in sorted(CONTROLLER.glob("*.yaml")):
        found += [d.body for d in load_documents(path) if d.body.get("kind") == kind]
    return found


def rbac_violations(rules: list[dict[str, Any]]) -> list[str]:
    """What in ``rules`` goes beyond reading and writing Events and Leases."""
    problems = []
    for rule in rules:
        groups, resources, verbs = (
            rule.get("apiGroups", []),
            rule.get("resources", []),
            set(rule.get("verbs", [])),
        )
        if "*" in groups or "*" in resources or "*" in verbs:
            problems.append(f"wildcard in {rule}")
            continue
        if rule.get("nonResourceURLs"):
            problems.append(f"nonResourceURLs in {rule}")
        for group in groups:
            for resource in resources:
                if resource in {"secrets", "configmaps", "pods/exec", "serviceaccounts/token"}:
                    problems.append(f"{resource} must not be readable")
                writes = verbs - READ_VERBS
                allowed = ALLOWED_WRITES.get((group, resource), set())
                if writes - allowed:
                    problems.append(f"writes {sorted(writes - allowed)} on {group or 'core'}/{resource}")
                if resource == "leases" and rule.get("resourceNames") is None and verbs - {"create"}:
                    problems.append("leases other than our own may not be read or changed")
    return problems


def test_rbac_reads_routes_deployments_and_flux_and_writes_only_events_and_leases() -> None:
    rules = [r for kind in ("ClusterRole", "Role") for obj in _objects(kind) for r in obj["rules"]]
    assert rbac_violations(rules) == []
    readable = {
        (g, r)
        for rule in rules
        if set(rule["verbs"]) >= READ_VERBS
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    assert {
        ("networking.istio.io", "virtualservices"),
        ("gateway.networking.k8s.io", "httproutes"),
        ("split.smi-spec.io", "trafficsplits"),
        ("apps", "deployments"),
        ("kustomize.toolkit.fluxcd.io", "kustomizations"),
        ("source.toolkit.fluxcd.io", "gitrepositories"),
        ("image.toolkit.fluxcd.io", "imagepolicies"),
    } <= readable
    # Nothing may write a weight to the cluster: routes are read-only.
    route_resources = {"virtualservices", "httproutes", "trafficsplits"}
    assert all(set(r["verbs"]) <= READ_VERBS for r in rules if route_resources & set(r["resources"]))


@pytest.mark.parametrize(
    "rule",
    [
        {"apiGroups": ["networking.istio.io"], "resources": ["virtualservices"], "verbs": ["get", "patch"]},
        {"apiGroups": ["*"], "resources": ["deployments"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "update"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["delete"]},
    ],
)
def test_the_rbac_check_catches_excess(rule: dict[str, Any]) -> None:
    assert rbac_violations([rule]) != []


def test_bindings_name_the_controller_service_account() -> None:
    (account,) = _objects("ServiceAccount")
    bindings = _objects("ClusterRoleBinding") + _objects("RoleBinding")
    roles = {o["metadata"]["name"] for kind in ("ClusterRole", "Role") for o in _objects(kind)}
    assert len(bindings) == len(roles) == 3
    for binding in bindings:
        assert binding["roleRef"]["name"] in roles
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "rollouts-system"}
        ]


def test_the_controller_pod_is_locked_down() -> None:
    (deployment,) = _objects("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "rollouts-controller"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert container["args"][:1] == ["run"]
    assert "--path=rollouts/" in container["args"]
    assert any(a.startswith("--repo=") for a in container["args"])
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    # Writable places are emptyDirs; the Git cache is one of them.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/var/cache/rollouts"]]
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        assert "emptyDir" in volume or mount.get("readOnly") is True, mount


def test_secrets_are_referenced_never_included() -> None:
    (deployment,) = _objects("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    secret_names = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    env = pod["containers"][0]["env"]
    secret_names |= {
        e["valueFrom"]["secretKeyRef"]["name"] for e in env if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert secret_names == {"rollouts-git", "rollouts-notify"}
    assert _objects("Secret") == []


def test_the_metrics_service_selects_the_controller() -> None:
    (deployment,) = _objects("Deployment")
    (service,) = _objects("Service")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    ports = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


# --- Dockerfile: no Docker engine here, so it is linted, not built --------------------------------


def dockerfile_problems(path: Path) -> list[str]:
    """What makes ``path`` unfit as the controller's build file (empty when it is fine)."""
    parser = DockerfileParser(path=str(path))
    instructions = parser.structure
    problems = []
    stages = [i for i in instructions if i["instruction"] == "FROM"]
    if len(stages) < 2:
        problems.append("not multi-stage: build and runtime must be separate stages")
    if not any(i["instruction"] == "COPY" and "--from=" in i["value"] for i in instructions) and not any(
        i["instruction"] == "RUN" and "from=" in i["value"] and "--mount" in i["value"] for i in instructions
    ):
        problems.append("the runtime stage takes nothing from the build stage")
    for i in instructions:
        if i["instruction"] == "ADD" and "://" in i["value"]:
            problems.append(f"line {i['startline'] + 1}: ADD of a URL (unverified download)")
        if i["instruction"] == "FROM" and ":latest" in i["value"]:
            problems.append(f"line {i['startline'] + 1}: base image tagged latest")
    last_from = max(i["startline"] for i in stages) if stages else -1
    users = [
        i["value"].split(":")[0].strip()
        for i in instructions
        if i["instruction"] == "USER" and i["startline"] > last_from
    ]
    if not users:
        problems.append("the final stage has no USER: it would run as root")
    elif users[-1] in {"root", "0"}:
        problems.append(f"the final stage runs as {users[-1]}")
    elif not users[-1].isdigit():
        problems.append(f"USER {users[-1]} is not numeric: runAsNonRoot cannot verify it")
    return problems


@pytest.mark.parametrize("path", sorted(DEPLOY.rglob("Dockerfile")), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_dockerfile_is_multi_stage_and_non_root(path: Path) -> None:
    assert dockerfile_problems(path) == []


def test_the_controller_dockerfile_builds_wheels_of_the_project() -> None:
    path = CONTROLLER / "Dockerfile"
    parser = DockerfileParser(path=str(path))
    assert parser.baseimage.startswith("python:")  # the final stage's base
    assert any("pip wheel" in i["value"] for i in parser.structure if i["instruction"] == "RUN")
    # It copies what pyproject.toml packages.
    copied = " ".join(i["value"] for i in parser.structure if i["instruction"] == "COPY")
    for part in ("pyproject.toml", "analyzer/", "rollouts/", "loadtest/"):
        assert part in copied


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("FROM python:3.11-slim\nUSER 10001\n", "not multi-stage"),
        ("FROM python:3.11 AS b\nFROM python:3.11-slim\nCOPY --from=b /w /w\n", "no USER"),
        ("FROM python:3.11 AS b\nFROM python:3.11-slim\nCOPY --from=b /w /w\nUSER root\n", "runs as root"),
        ("FROM python:3.11 AS b\nFROM python:3.11-slim\nCOPY --from=b /w /w\nUSER app\n", "not numeric"),
        ("FROM python:3.11 AS b\nFROM python:3.11-slim\nADD https://x.io/a.tgz /a\nUSER 1\n", "ADD of a URL"),
        ("FROM python:latest AS b\nFROM python:3.11-slim\nCOPY --from=b /w /w\nUSER 1\n", "latest"),
    ],
)
def test_the_dockerfile_lint_catches(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    assert any(problem in p for p in dockerfile_problems(path)), dockerfile_problems(path)


def test_the_kustomization_lists_every_manifest_of_the_base() -> None:
    (kustomization,) = load_documents(CONTROLLER / "kustomization.yaml")
    on_disk = {p.name for p in CONTROLLER.glob("*.yaml") if p.name != "kustomization.yaml"}
    assert set(kustomization.body["resources"]) == on_disk
    assert kustomization.body["namespace"] == "rollouts-system"
    (deployment,) = _objects("Deployment")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"].rpartition(":")[0]
    assert [i["name"] for i in kustomization.body["images"]] == [image]
