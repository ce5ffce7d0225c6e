"""`rollouts run --kubernetes`: the gate and Events resolved from Git, against recorded API responses."""

from __future__ import annotations

from pathlib import Path

from rollouts.controller.gitcache import CachedWorkspace, HeadCache
from rollouts.controller.run import KubernetesSpecGate, notifier_for
from rollouts.gitops import Workspace
from rollouts.kube import EventRecorder, api_client
from rollouts.notify import Kind, Notice
from rollouts.routes import Weights
from tests.controller.kubeapi import RunningApi
from tests.controller.machinery import rollout_spec
from tests.gitops.conftest import Remote


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
