"""`rollouts run --kubernetes`: the gate and Events resolved from Git, against recorded API responses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rollouts.cli import main
from rollouts.controller.errors import SetupError
from rollouts.controller.gitcache import CachedWorkspace, HeadCache
from rollouts.controller.run import flux_kustomization, notifier_for
from rollouts.gitops import Workspace
from rollouts.kube import EventRecorder, api_client
from rollouts.notify import Kind, Notice
from rollouts.routes import Weights
from rollouts.sync import KubernetesSpecGate
from tests.controller.machinery import rollout_spec
from tests.controller.test_run import ROUTE, spec_doc
from tests.fixtures.gitrepo import Remote, git, vs_with
from tests.fixtures.kubeapi import RunningApi


def test_gate_and_events_name_the_objects_of_the_manifests_in_git(
    remote: Remote, tmp_path: Path, kube_api: RunningApi
) -> None:
    spec = rollout_spec(str(remote.bare))
    workspace = CachedWorkspace(Workspace.for_spec(spec, cache_dir=tmp_path / "cache"), HeadCache())
    state = workspace.read_state(spec)  # clones: the gate reads metadata from the clone
    api = api_client(str(kube_api.kubeconfig))
    gate = KubernetesSpecGate(api, workspace, spec, interval=0.01)
    route, canary = gate.target()
    assert (route.kind, route.namespace, route.name) == ("VirtualService", "test", "podinfo")
    assert (canary.namespace, canary.name) == ("test", "podinfo-canary")
    assert gate.wait(Weights(90, 10), state.head, timeout=0).opened  # the recorded VS is at 90/10
    closed = gate.wait(Weights(40, 60), state.head, timeout=0)
    assert not closed.opened and "routes stable 90% / canary 10%" in closed.reason

    send = notifier_for(spec, EventRecorder(api), lambda: gate.target()[1])
    send(Notice("test/podinfo", Kind.ROLLBACK, "canary 0.2.1 rolled back at 10%", ("p99 3x GA",)))
    (event,) = kube_api.state.events
    assert event["involvedObject"]["name"] == "podinfo-canary"
    assert (event["reason"], event["type"]) == ("RolledBack", "Warning")
    assert "p99 3x GA" in event["message"]


def test_run_in_kubernetes_mode_leads_commits_and_records_events(
    remote: Remote, tmp_path: Path, kube_api: RunningApi, capsys: pytest.CaptureFixture[str]
) -> None:
    remote.commit_file(ROUTE, vs_with(100, 0), "podinfo: all traffic to GA")
    spec = tmp_path / "rollout.yaml"
    spec.write_text(json.dumps(spec_doc(str(remote.bare))))
    args = [
        "run",
        str(spec),
        "--kubernetes",
        "--kubeconfig",
        str(kube_api.kubeconfig),
        "--lease",
        "ops/rollouts",
        "--once",
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    assert main(args) == 0, capsys.readouterr().err
    lease = kube_api.state.leases[("ops", "rollouts")]
    # it was held (acquired), and released on exit so that the next replica need not wait
    assert "acquireTime" in lease["spec"] and lease["spec"].get("holderIdentity") is None
    assert lease["spec"]["leaseDurationSeconds"] == 1
    (event,) = kube_api.state.events
    assert (event["reason"], event["involvedObject"]["name"]) == ("RolloutStarted", "podinfo-canary")
    assert (
        git(remote.bare, "log", "-1", "--format=%(trailers:key=Rollout-Verdict,valueonly)").strip()
        == "promote"
    )


def test_spec_gate_waits_for_flux_when_asked(remote: Remote, tmp_path: Path, kube_api: RunningApi) -> None:
    spec = rollout_spec(str(remote.bare))
    workspace = CachedWorkspace(Workspace.for_spec(spec, cache_dir=tmp_path / "cache"), HeadCache())
    state = workspace.read_state(spec)
    api = api_client(str(kube_api.kubeconfig))
    flux = flux_kustomization("flux-system/apps")
    gate = KubernetesSpecGate(api, workspace, spec, interval=0.01, flux=flux)
    # the recorded Kustomization applied another commit than the head of this repo: not yet
    result = gate.wait(Weights(90, 10), state.head, timeout=0)
    assert (
        not result.opened
        and "Flux Kustomization flux-system/apps applied master@sha1:4e1c0a9d" in result.reason
    )
    assert gate.wait(Weights(90, 10), "4e1c0a9d2b7f3e6a8c5d1b0f9e2a7c4d6b8e0f13", timeout=0).opened
    with pytest.raises(SetupError, match="NAMESPACE/NAME"):
        flux_kustomization("apps")


def test_spec_gate_with_an_unreadable_manifest_stays_closed(
    remote: Remote, tmp_path: Path, kube_api: RunningApi
) -> None:
    spec = rollout_spec(str(remote.bare))
    workspace = CachedWorkspace(Workspace.for_spec(spec, cache_dir=tmp_path / "cache"), HeadCache())
    state = workspace.read_state(spec)
    # A canary manifest in Git without a name (the gate reads Git's files through the workspace).
    remote.commit_file("workloads/podinfo/canary-deployment.yaml", "kind: Deployment\n", "no name")
    workspace.workspace.fetch()
    gate = KubernetesSpecGate(api_client(str(kube_api.kubeconfig)), workspace, spec, interval=0.01)
    result = gate.wait(Weights(90, 10), state.head, timeout=0)
    assert not result.opened and "cannot name the objects" in result.reason


def test_ga_readiness_reads_the_live_ga_deployment_named_in_git(
    remote: Remote, tmp_path: Path, kube_api: RunningApi
) -> None:
    spec = rollout_spec(
        str(remote.bare), finalize={"action": "promote-ga", "gaPath": "workloads/podinfo/ga-deployment.yaml"}
    )
    workspace = CachedWorkspace(Workspace.for_spec(spec, cache_dir=tmp_path / "cache"), HeadCache())
    state = workspace.read_state(spec)
    assert state.ga_images == {"init": "busybox:1.36", "podinfod": "ghcr.io/stefanprodan/podinfo:0.1.0"}
    gate = KubernetesSpecGate(api_client(str(kube_api.kubeconfig)), workspace, spec, interval=0.01)
    live = kube_api.state.recorded("GET", "/apis/apps/v1/namespaces/test/deployments/podinfo-canary")
    live["metadata"]["name"] = "podinfo-ga"
    path = "/apis/apps/v1/namespaces/test/deployments/podinfo-ga"
    kube_api.state.set("GET", path, live)  # still the old images: Flux has not applied the commit
    ready, seen = gate.ga_ready(spec, state)
    assert not ready and seen == "Deployment test/podinfo-ga does not run the new images yet (init, podinfod)"
    pod = live["spec"]["template"]["spec"]
    pod["containers"][0]["image"] = "ghcr.io/stefanprodan/podinfo:0.1.0"
    pod["initContainers"] = [{"name": "init", "image": "busybox:1.36"}]
    live["metadata"]["generation"] = 5  # applied, not yet rolled out
    kube_api.state.set("GET", path, live)
    ready, seen = gate.ga_ready(spec, state)
    assert not ready and "generation 5 not yet observed" in seen
    live["status"]["observedGeneration"] = 5
    kube_api.state.set("GET", path, live)
    assert gate.ga_ready(spec, state) == (True, "Deployment test/podinfo-ga: 2 of 2 replicas ready")


def test_spec_gate_compares_the_committed_strategy_shape_with_the_live_route(
    remote: Remote, tmp_path: Path, kube_api: RunningApi
) -> None:
    """The route file in Git has the mirror stage's mirror block at the live weights (90/10): the
    gate stays closed until the live VirtualService has the same mirror."""
    from rollouts.routes import editor_for
    from rollouts.spec_strategy import RouteState, apply_state
    from rollouts.yamlsafe import ROUTE as LIMITS
    from rollouts.yamlsafe import load_all

    editor = editor_for("VirtualService", stable="ga", canary="canary", source=ROUTE)
    text = apply_state(editor, remote.show(ROUTE), RouteState(Weights(90, 10), mirror=50.0))
    remote.commit_file(ROUTE, text, "podinfo: mirror 50% to the canary")
    spec = rollout_spec(str(remote.bare))
    workspace = CachedWorkspace(Workspace.for_spec(spec, cache_dir=tmp_path / "cache"), HeadCache())
    state = workspace.read_state(spec)
    gate = KubernetesSpecGate(api_client(str(kube_api.kubeconfig)), workspace, spec, interval=0.01)
    closed = gate.wait(Weights(90, 10), state.head, timeout=0)
    assert not closed.opened and "live VirtualService test/podinfo: mirror differs" in closed.reason
    committed = next(d for d in load_all(text, ROUTE, LIMITS) if d.get("kind") == "VirtualService")
    path = "/apis/networking.istio.io/v1beta1/namespaces/test/virtualservices/podinfo"
    live = kube_api.state.recorded("GET", path)
    default = committed["spec"]["http"][0]
    live["spec"]["http"][0].update(
        mirror=json.loads(json.dumps(default["mirror"])),
        mirrorPercentage=json.loads(json.dumps(default["mirrorPercentage"])),
    )
    kube_api.state.set("GET", path, live)
    assert gate.wait(Weights(90, 10), state.head, timeout=0).opened
