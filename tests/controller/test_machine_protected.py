"""The state machine on a protected branch, end to end: a real bare remote whose ``pre-receive`` hook
refuses every update of ``master`` but a person's merge, the demo's reviewer merging, and the recorded
GitHub API on loopback. Every commit of ours goes by a branch of ours and waits for its merge:
a rollback by pull request (``directRollback: false``, auto-merge asked), both stages of
``finalize: promote-ga`` (with a restart between them), and a pause record. Nothing of ours is ever
pushed to ``master`` (the hook counts refusals: none)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rollouts.controller.machine import Machine, TickResult
from rollouts.forge import ForgeConfig, forge_for
from rollouts.forge.base import Retry
from rollouts.gates.step import StepGates
from rollouts.gates.webhooks import Webhooks
from rollouts.gitops import Workspace
from rollouts.local.reviewer import Reviewer
from rollouts.metrics import ControllerMetrics
from rollouts.notify import Notice
from rollouts.spec import Rollout
from rollouts.sync import LocalMeshGate
from tests.controller.machinery import Clock, ServiceModel, build, mesh_status, rollout_spec
from tests.controller.test_machine import ROUTE, trailers
from tests.fixtures.gitrepo import Remote, git, protect_but_merges, vs_with
from tests.forge.forgeapi import TOKEN, ForgeApi
from tests.forge.forgeapi import serve as serve_forge

GA = "workloads/podinfo/ga-deployment.yaml"
PREFIX = "rollouts/test/podinfo/0.2.0"


@pytest.fixture
def forge_api() -> Iterator[ForgeApi]:
    yield from serve_forge()


@dataclass
class Protected:
    """A machine on the protected remote, and what a restart needs."""

    spec: Rollout
    machine: Machine
    workspace: Workspace
    clock: Clock
    model: ServiceModel
    notices: list[Notice]
    metrics: ControllerMetrics
    gate: LocalMeshGate
    reviewer: Reviewer
    cache: Path
    forge: Any = None

    def restart(self) -> None:
        """The controller killed and started again (a new cache too: nothing but the remote is kept)."""
        self.cache = self.cache.with_name(self.cache.name + "-again")
        self.workspace = Workspace.for_spec(self.spec, cache_dir=self.cache)
        self.machine = _machine(self)

    def tick(self, *, merge: bool = False) -> TickResult:
        self.clock.advance()
        result = self.machine.tick()
        if merge:
            self.reviewer.tick()  # the person merges whatever waits, after the tick
        return result

    def until(self, check: Any, ticks: int = 40, *, merge: bool = True) -> list[TickResult]:
        results = []
        for _ in range(ticks):
            results.append(self.tick(merge=merge))
            if check(results[-1]):
                return results
        raise AssertionError(f"never reached: {[(r.action, r.weight, r.reasons[:1]) for r in results]}")


def _machine(rig: Protected) -> Machine:
    gates = StepGates(
        rig.spec,
        workspace=Workspace.for_spec(rig.spec, cache_dir=rig.cache),
        webhooks=Webhooks((), backoff=0.01),
        forge=rig.forge,
    )
    return build(
        rig.spec,
        workspace=rig.workspace,
        gate=rig.gate,
        model=rig.model,
        clock=rig.clock,
        notices=rig.notices,
        metrics=rig.metrics,
        gates=gates,
    )


@contextmanager
def protected(remote: Remote, tmp_path: Path, forge: Any = None, **sections: Any) -> Iterator[Protected]:
    remote.commit_file(ROUTE, vs_with(100, 0), "podinfo: all traffic to GA")
    protect_but_merges(remote)
    spec = rollout_spec(str(remote.bare), **sections)
    cache = tmp_path / "cache"
    with mesh_status(remote.bare, tmp_path) as url:
        rig = Protected(
            spec=spec,
            machine=None,  # type: ignore[arg-type]
            workspace=Workspace.for_spec(spec, cache_dir=cache),
            clock=Clock(),
            model=ServiceModel(),
            notices=[],
            metrics=ControllerMetrics(),
            gate=LocalMeshGate(url, interval=0.01),
            reviewer=Reviewer(remote.bare, tmp_path / "reviewer", delay=0),
            cache=cache,
            forge=forge,
        )
        rig.machine = _machine(rig)
        yield rig
        assert not (remote.bare / "refused").exists(), "something of ours was pushed to master directly"


def _branches(remote: Remote) -> list[str]:
    return git(remote.bare, "for-each-ref", "--format=%(refname:short)", "refs/heads/rollouts/").split()


def test_a_rollback_by_pull_request_holds_until_merged_also_across_a_restart(
    remote: Remote, tmp_path: Path, forge_api: ForgeApi
) -> None:
    config = ForgeConfig(kind="github", repository="org/cluster", token=TOKEN, url=forge_api.base)
    forge = forge_for(config, retry=Retry(attempts=2, backoff=0.01, sleep=lambda s: None), timeout=5)
    forge_spec = {"kind": "github", "repository": "org/cluster", "tokenEnv": "NONE", "autoMerge": True}
    approval = {"protectedBranch": True, "directRollback": False, "forge": forge_spec}
    with protected(remote, tmp_path, forge, approval=approval) as rig:
        # Step 1 waits for its approval like any step; the person merges it.
        rig.until(lambda r: r.weight == 10 and r.action == "hold")
        rig.model.slowdown = 3.0  # the canary turns harmful
        results = rig.until(
            lambda r: r.action == "wait" and "rollback awaiting merge" in r.reasons[0], merge=False
        )
        reason = results[-1].reasons[0]
        assert f"merge https://github.com/org/cluster/pull/2 (branch {PREFIX}/rollback)" in reason
        assert "; rollback: " in reason  # the harm verdict, on record
        assert "weight: 10\n" in remote.show(ROUTE)  # not rolled back yet: it is a pull request
        pull = forge_api.pulls[2]
        assert pull["head"]["ref"] == f"{PREFIX}/rollback" and "rollback" in pull["body"]
        assert forge_api.graphql and "enablePullRequestAutoMerge" in str(forge_api.graphql[-1])
        assert trailers(remote, f"{PREFIX}/rollback")["Rollout-Verdict"] == "rollback"
        # While it waits: no further step, the wait told once, and the same after a restart.
        held = [rig.tick() for _ in range(3)]
        assert {(r.action, r.weight) for r in held} == {("wait", 10)}
        rig.restart()
        again = rig.tick()
        assert again.action == "wait" and "rollback awaiting merge" in again.reasons[0]
        assert forge_api.creates() == 2  # the request was found again, never a second one
        told = [n for n in rig.notices if "rollback awaiting merge" in n.summary]
        assert len(told) == 2 and told[0].kind == "rollback"  # once per process
        # The forge merges it (auto-merge): the rollback lands, and the rollout is rolled back.
        rig.reviewer.tick()
        forge_api.merge(2)
        done = rig.until(lambda r: r.phase == "rolledback", merge=False)
        assert "weight: 100   # GA" in remote.show(ROUTE)
        assert any("rollback merged" in n.summary for n in rig.notices)
        assert done[-1].weight == 0 and _branches(remote) == []


def test_promote_ga_goes_by_two_merges_each_waited_for_and_rebuilt_from_git_after_restarts(
    remote: Remote, tmp_path: Path
) -> None:
    finalize = {"action": "promote-ga", "gaPath": GA}
    with protected(remote, tmp_path, approval={"protectedBranch": True}, finalize=finalize) as rig:
        rig.reviewer.prefix = f"{PREFIX}/step-*"  # the person merges the steps only, for now
        results = rig.until(lambda r: r.action == "wait" and "GA image commit" in r.reasons[0], ticks=80)
        assert results[-1].phase == "finalizing" and results[-1].weight == 100
        assert "podinfo:0.1.0" in remote.show(GA)  # GA not promoted yet: a branch waits
        assert "podinfo:0.2.0" in remote.show(GA, f"{PREFIX}/ga-image")
        assert trailers(remote, f"{PREFIX}/ga-image")["Rollout-Finalize"] == "ga-image"
        rig.restart()
        assert (
            rig.tick()
            .reasons[0]
            .startswith("test/podinfo: GA image commit (finalize, stage 1 of 2) awaiting")
        )
        rig.reviewer.prefix = "rollouts/"
        rig.reviewer.tick()  # stage 1 merged
        rig.restart()  # killed between the two stages: Git says where it stands
        second = rig.until(lambda r: r.action == "wait" and "route back to GA" in r.reasons[0], merge=False)
        assert "weight: 100   # GA" not in remote.show(ROUTE)  # the traffic is still the canary's
        assert trailers(remote, f"{PREFIX}/route-ga")["Rollout-Finalize"] == "route-ga"
        assert second[-1].phase == "finalizing"
        rig.reviewer.tick()  # stage 2 merged
        done = rig.until(lambda r: r.phase == "promoted", merge=False)
        assert done[-1].weight == 0 and "weight: 100   # GA" in remote.show(ROUTE)
        stages = [t.get("Rollout-Finalize") for t in map(lambda s: trailers(remote, s), _ours(remote))]
        assert stages[-2:] == ["ga-image", "route-ga"]
        assert any("route back to GA (finalize, stage 2 of 2) merged" in n.summary for n in rig.notices)


def _ours(remote: Remote) -> list[str]:
    """Our commits that reached master (by their trailers), oldest first."""
    out = git(remote.bare, "log", "--topo-order", "--format=%H", "--grep=Rollout-Approval", "master")
    return list(reversed(out.split()))


def test_a_pause_record_goes_by_merge_and_holds_meanwhile(remote: Remote, tmp_path: Path) -> None:
    with protected(remote, tmp_path, approval={"protectedBranch": True}) as rig:
        rig.until(lambda r: r.weight == 10 and r.action == "hold")
        rig.model.down = "Prometheus down"  # analysis.threshold (3) unreadable windows: onError pause
        results = rig.until(lambda r: r.action == "wait" and "pause record" in r.reasons[0], merge=False)
        assert f"branch {PREFIX}/pause-1" in results[-1].reasons[0]
        assert trailers(remote, f"{PREFIX}/pause-1")["Rollout-Verdict"] == "pause"
        assert git(remote.bare, "diff", "--stat", "master", f"{PREFIX}/pause-1").strip() == ""  # empty
        rig.model.down = None
        assert {rig.tick().action for _ in range(3)} == {"wait"}  # held: no analysis, no step
        rig.reviewer.tick()
        paused = rig.until(lambda r: r.phase == "paused", merge=False)
        assert paused[-1].weight == 10 and trailers(remote, "master^2")["Rollout-Verdict"] == "pause"
