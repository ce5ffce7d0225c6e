"""deploy/loadtest: the pod runs `loadtest serve` with flags the CLI accepts, locked down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dockerfile_parse import DockerfileParser

from tests.deploy.manifests import DEPLOY, load_documents
from tests.loadtest.run import run_loadtest

HERE = DEPLOY / "loadtest"


def _one(kind: str) -> dict[str, Any]:
    found = [
        d.body for p in sorted(HERE.glob("*.yaml")) for d in load_documents(p) if d.body.get("kind") == kind
    ]
    assert len(found) == 1, kind
    return found[0]


def test_deployment_runs_serve_with_known_flags_and_a_secret_token() -> None:
    pod = _one("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    assert args[0] == "serve"
    help_text = run_loadtest("serve", "--help").stdout
    for arg in args[1:]:
        assert arg.split("=", 1)[0] in help_text, arg
    token_file = next(a.split("=", 1)[1] for a in args if a.startswith("--token-file="))
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volume = {v["name"]: v for v in pod["volumes"]}[mounts[str(Path(token_file).parent)]]
    assert volume["secret"]["secretName"] == "loadtest-token"
    assert any(a.startswith("--allow=") for a in args)


def test_pod_is_non_root_read_only_probed_and_bounded() -> None:
    pod = _one("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
    service = _one("Service")
    assert service["spec"]["selector"] == _one("Deployment")["spec"]["selector"]["matchLabels"]


def test_dockerfile_is_multi_stage_and_non_root() -> None:
    parser = DockerfileParser(path=str(HERE / "Dockerfile"))
    froms = [i for i in parser.structure if i["instruction"] == "FROM"]
    assert len(froms) >= 2
    users = [i["value"] for i in parser.structure if i["instruction"] == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert parser.structure[-1]["instruction"] == "CMD" and "serve" in parser.structure[-1]["value"]
