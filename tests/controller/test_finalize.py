"""``finalize``: promote-ga (GA gets the canary's images, then the traffic goes back to GA) and the
honest restart of a new revision that was serving 100 % under ``leave-canary``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rollouts.controller.machine import TickResult, position
from rollouts.gitops import RolloutState
from rollouts.local.demo_world import decision_line
from rollouts.notify import Kind
from rollouts.spec import Rollout
from rollouts.sync import VersionProbe
from tests.controller.machinery import Rig, build, rig_on, rollout_spec
from tests.controller.test_machine import our_commits
from tests.fixtures.gitrepo import Remote, deployment, git, vs_with
from tests.fixtures.httpjson import json_server

CANARY = "workloads/podinfo/canary-deployment.yaml"
GA = "workloads/podinfo/ga-deployment.yaml"
ROUTE = "workloads/podinfo/virtual-service.yaml"


@dataclass
class Switch:
    """GA readiness the test turns on (the cluster's side: GA's pods restarting with new images)."""

    ready: bool = False
    asked: int = 0

    def ga_ready(self, rollout: Rollout, state: RolloutState) -> tuple[bool, str]:
        self.asked += 1
        assert state.ga_images is not None
        return self.ready, f"GA pods {'run' if self.ready else 'are starting'} {state.ga_images['podinfod']}"


@pytest.fixture
def ga_rig(remote: Remote, tmp_path: Path) -> Iterator[tuple[Rig, Switch]]:
    remote.commit_file(ROUTE, vs_with(100, 0), "podinfo: all traffic to GA")
    spec = rollout_spec(str(remote.bare), finalize={"action": "promote-ga", "gaPath": GA})
    switch = Switch()
    with rig_on(remote.bare, tmp_path, spec, ga_readiness=switch) as rig:
        yield rig, switch


def fresh(rig: Rig, switch: Switch) -> None:
    """The controller killed and started again."""
    rig.machine = build(
        rig.spec,
        workspace=rig.workspace,
        gate=rig.gate,
        model=rig.model,
        clock=rig.clock,
        notices=rig.notices,
        metrics=rig.metrics,
        ga_readiness=switch,
    )


def test_promote_ga_copies_the_images_then_routes_back_once_ga_is_ready(
    ga_rig: tuple[Rig, Switch], remote: Remote
) -> None:
    rig, switch = ga_rig
    ga_before = remote.show(GA)
    results = rig.run(30, until="finalize")
    assert results[-1].phase == "finalizing" and "weight: 0   # GA" in remote.show(ROUTE)
    # phase 1: the GA image commit (only the GA manifest's image scalar; the canary keeps 100 %)
    assert rig.run(1)[0].action == "finalize"
    assert remote.show(GA) == ga_before.replace("podinfo:0.1.0 #", "podinfo:0.2.0 #")
    assert git(remote.bare, "show", "--name-only", "--format=", "master").split() == [GA]
    assert "weight: 0   # GA" in remote.show(ROUTE)
    assert remote.message("master").splitlines()[0] == "podinfo: GA 0.1.0 -> 0.2.0 (finalize)"
    # GA not ready yet: wait, no commit, even across a restart
    count = remote.count()
    for _ in range(3):
        fresh(rig, switch)
        assert rig.run(1)[0].action == "wait"
    assert remote.count() == count and switch.asked == 3
    # phase 2: GA ready -> canary 0 %, verdict finalize
    switch.ready = True
    fresh(rig, switch)
    result = rig.run(1)[0]
    assert (result.phase, result.action) == ("promoted", "finalize")
    assert "weight: 100   # GA" in remote.show(ROUTE)
    assert [(c["Rollout-Verdict"], c.get("Rollout-Finalize")) for c in our_commits(remote)] == [
        ("promote", None),
        ("promote", None),
        ("finalize", None),
        ("finalize", "ga-image"),
        ("finalize", "route-ga"),
    ]
    assert [n.kind for n in rig.notices][-3:] == [Kind.FINALIZE, Kind.FINALIZE, Kind.FINALIZE]
    assert "routed back to GA" in rig.notices[-1].summary
    # done: nothing more, also after a restart
    fresh(rig, switch)
    before = remote.count()
    assert {r.action for r in rig.run(3)} == {"none"}
    assert remote.count() == before
    state = rig.workspace.read_state(rig.spec)
    assert position(rig.spec, state).phase == "promoted"
    # a new canary revision starts from 0 % at the first step
    remote.commit_file(CANARY, deployment("podinfo-canary", "0.2.1"), "podinfo-canary: 0.2.1")
    start = rig.run(1)[0]
    assert start.action == "start"
    assert "weight: 90   # GA" in remote.show(ROUTE)
    assert remote.message("master").splitlines()[0] == "podinfo: canary 0% -> 10% (promote)"


def test_ga_that_never_becomes_ready_pauses(ga_rig: tuple[Rig, Switch], remote: Remote) -> None:
    rig, _switch = ga_rig
    rig.run(30, until="finalize")
    assert rig.run(1)[0].action == "finalize"  # the GA image commit
    results = rig.run(10, until="pause")
    assert results[-1].action == "pause" and "GA did not become ready" in results[-1].reasons[0]
    assert "weight: 0   # GA" in remote.show(ROUTE)  # the canary still serves everything


def test_version_probe_compares_the_ga_service_version_with_the_manifest(
    ga_rig: tuple[Rig, Switch], remote: Remote
) -> None:
    rig, _switch = ga_rig
    state = rig.workspace.read_state(rig.spec)  # GA manifest: podinfo 0.1.0
    answers = [(200, {"version": "0.0.9"}), (200, {"version": "0.1.0"}), (503, {})]
    with json_server(lambda _request: answers.pop(0)) as server:
        probe = VersionProbe(server.url)
        assert probe.ga_ready(rig.spec, state) == (False, f"GA {server.url}/version answers version 0.0.9")
        assert probe.ga_ready(rig.spec, state)[0]
        ready, seen = probe.ga_ready(rig.spec, state)
        assert not ready and "unreadable" in seen


def test_demo_decision_line_tells_time_rollout_action_weights_and_reason() -> None:
    result = TickResult("progressing", "promote", ("non-inferiority established", "step 2"), weight=60)
    line = decision_line(0.0, "test/podinfo", result)
    assert line.endswith("test/podinfo promote  GA 40% / canary 60%   non-inferiority established; step 2")
    long = decision_line(0.0, "t/p", TickResult("progressing", "hold", ("x" * 300,)))
    assert "weights ?" in long and len(long) < 160 and long.endswith("…")
