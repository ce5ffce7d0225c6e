"""The sync gate: Kubernetes (recorded API responses) and the local mesh (its /status JSON)."""

from __future__ import annotations

import copy
from typing import Any

from rollouts.kube import api_client
from rollouts.routes.base import Weights
from rollouts.sync import FluxKustomization, KubernetesGate, LocalMeshGate, RouteTarget
from tests.fixtures.httpjson import Request, json_server
from tests.fixtures.kubeapi import RunningApi

VS = "/apis/networking.istio.io/v1beta1/namespaces/test/virtualservices/podinfo"
CANARY = "/apis/apps/v1/namespaces/test/deployments/podinfo-canary"
SHA = "4e1c0a9d2b7f3e6a8c5d1b0f9e2a7c4d6b8e0f13"
FAST: dict[str, Any] = {"interval": 0.01}


def vs_with(body: dict[str, Any], stable: int, canary: int) -> dict[str, Any]:
    body = copy.deepcopy(body)
    route = body["spec"]["http"][0]["route"]
    route[0]["weight"], route[1]["weight"] = stable, canary
    return body


def gate(kube_api: RunningApi, **kwargs: Any) -> KubernetesGate:
    route = RouteTarget("VirtualService", "test", "podinfo", stable="ga", canary="canary")
    return KubernetesGate(api_client(str(kube_api.kubeconfig)), route, **FAST, **kwargs)


def test_kubernetes_gate_opens_when_flux_has_applied_the_weights(kube_api: RunningApi) -> None:
    recorded = kube_api.state.recorded("GET", VS)
    # Flux applies the commit after two looks: the first two GETs still show 90/10.
    kube_api.state.set("GET", VS, recorded, recorded, vs_with(recorded, 40, 60))
    result = gate(kube_api, deployments=(("test", "podinfo-canary"),)).wait(Weights(40, 60), SHA, timeout=5)
    assert result.opened, result.reason
    assert result.looks == 3
    assert result.observed.weights == Weights(40, 60)


def test_kubernetes_gate_times_out_naming_what_it_saw(kube_api: RunningApi) -> None:
    result = gate(kube_api).wait(Weights(40, 60), SHA, timeout=0.05)
    assert not result.opened
    assert "live VirtualService test/podinfo routes stable 90% / canary 10%" in result.reason
    assert result.looks >= 2


def test_kubernetes_gate_waits_for_canary_readiness(kube_api: RunningApi) -> None:
    body = kube_api.state.recorded("GET", CANARY)
    body["status"]["readyReplicas"] = 1
    kube_api.state.set("GET", CANARY, body)
    result = gate(kube_api, deployments=(("test", "podinfo-canary"),)).wait(
        Weights(90, 10), SHA, timeout=0.05
    )
    assert not result.opened
    assert "Deployment test/podinfo-canary: 1 of 2 replicas ready" in result.reason


def test_kubernetes_gate_checks_flux_revision(kube_api: RunningApi) -> None:
    flux = FluxKustomization("flux-system", "apps")
    assert gate(kube_api, kustomization=flux).wait(Weights(90, 10), SHA, timeout=1).opened
    other = "0" * 40
    result = gate(kube_api, kustomization=flux).wait(Weights(90, 10), other, timeout=0.03)
    assert not result.opened
    assert f"applied master@sha1:{SHA}" in result.reason


def test_kubernetes_gate_waits_for_the_committed_mirror_and_match_routes(kube_api: RunningApi) -> None:
    """The mirror stage and its rollback both sit at canary 0 %: the weights alone cannot tell
    whether the cluster runs the mirror; the strategy's shape (rollouts.kube.shape) can."""
    from rollouts.kube.shape import shape_of

    recorded = kube_api.state.recorded("GET", VS)
    mirrored = copy.deepcopy(recorded)
    mirrored["spec"]["http"][0]["mirror"] = {"host": "podinfo", "subset": "canary"}
    mirrored["spec"]["http"][0]["mirrorPercentage"] = {"value": 50}
    shape = shape_of(mirrored, "VirtualService", stable="ga", canary="canary")
    kube_api.state.set("GET", VS, recorded)
    closed = gate(kube_api, shape=shape).wait(Weights(90, 10), SHA, timeout=0.03)
    assert not closed.opened
    assert (
        "live VirtualService test/podinfo: mirror differs (Git: 0 match route(s) to the canary, a mirror"
        in (closed.reason)
    )
    # Flux applies it after one more look (the API server writes the percentage as 50.0).
    applied = copy.deepcopy(mirrored)
    applied["spec"]["http"][0]["mirrorPercentage"] = {"value": 50.0}
    kube_api.state.set("GET", VS, recorded, applied)
    result = gate(kube_api, shape=shape).wait(Weights(90, 10), SHA, timeout=5)
    assert result.opened and result.looks == 2, result.reason
    # An A/B match route in Git that the live object lacks (or the reverse) keeps it closed too.
    matched = copy.deepcopy(recorded)
    match = {
        "match": [{"headers": {"x-user": {"exact": "beta"}}}],
        "route": [{"destination": {"host": "podinfo", "subset": "canary"}}],
    }
    matched["spec"]["http"].insert(0, match)
    for git_side, live in ((matched, recorded), (recorded, matched)):
        kube_api.state.set("GET", VS, live)
        expected = shape_of(git_side, "VirtualService", stable="ga", canary="canary")
        result = gate(kube_api, shape=expected).wait(Weights(90, 10), SHA, timeout=0.03)
        assert not result.opened and "match routes differ" in result.reason
    kube_api.state.set("GET", VS, matched)
    expected = shape_of(matched, "VirtualService", stable="ga", canary="canary")
    assert gate(kube_api, shape=expected).wait(Weights(90, 10), SHA, timeout=1).opened


def test_kubernetes_gate_api_down_is_reported(kube_api: RunningApi) -> None:
    kube_api.state.unavailable = True
    result = gate(kube_api).wait(Weights(90, 10), SHA, timeout=0.03)
    assert not result.opened
    assert "503" in result.reason


def mesh_status(revision: str, stable: int, canary: int, error: str | None = None) -> dict[str, Any]:
    return {
        "revision": revision,
        "branch": "master",
        "weights": {"stable": stable, "canary": canary},
        "route": {"kind": "VirtualService", "path": "workloads/podinfo/virtual-service.yaml"},
        "error": error,
        "last_poll": 1764441600.0,
    }


def test_local_mesh_gate_waits_for_the_revision() -> None:
    answers = [mesh_status("old", 100, 0), mesh_status("old", 100, 0), mesh_status(SHA, 90, 10)]

    def handler(request: Request) -> tuple[int, Any]:
        assert request.path == "/status"
        return 200, answers.pop(0) if len(answers) > 1 else answers[0]

    with json_server(handler) as mesh:
        result = LocalMeshGate(mesh.url, **FAST).wait(Weights(90, 10), SHA, timeout=5)
    assert result.opened, result.reason
    assert result.looks == 3


def test_local_mesh_gate_reports_mesh_error_and_times_out() -> None:
    status = mesh_status("old", 100, 0, error="virtual-service.yaml: weights must sum to 100")
    with json_server(lambda _: (200, status)) as mesh:
        result = LocalMeshGate(mesh.url, **FAST).wait(Weights(90, 10), SHA, timeout=0.05)
    assert not result.opened
    assert "mesh runs revision old" in result.reason
    assert "weights must sum to 100" in result.reason


def test_local_mesh_gate_accepts_a_descendant_with_our_weights() -> None:
    with json_server(lambda _: (200, mesh_status("newer", 90, 10))) as mesh:
        strict = LocalMeshGate(mesh.url, **FAST).wait(Weights(90, 10), SHA, timeout=0.03)
        lenient = LocalMeshGate(mesh.url, contains=lambda new, old: (new, old) == ("newer", SHA), **FAST)
        assert lenient.wait(Weights(90, 10), SHA, timeout=1).opened
        # same descendant, but someone changed the weights since: not our state, keep waiting
        assert not lenient.wait(Weights(40, 60), SHA, timeout=0.03).opened
    assert not strict.opened


def test_local_mesh_gate_unreachable_or_garbage() -> None:
    with json_server(lambda _: (200, {"weights": "nope"})) as mesh:
        result = LocalMeshGate(mesh.url, **FAST).wait(Weights(90, 10), SHA, timeout=0.03)
        url = mesh.url
    assert "unreadable" in result.reason
    down = LocalMeshGate(url, **FAST).wait(Weights(90, 10), SHA, timeout=0.03)
    assert not down.opened
    assert "unreadable" in down.reason
