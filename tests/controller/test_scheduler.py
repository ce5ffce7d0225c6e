"""The scheduler: one apscheduler job per rollout, real time, real Git, the real judge."""

from __future__ import annotations

import time
from pathlib import Path

from rollouts.controller.machine import TickResult
from rollouts.controller.scheduler import Scheduler
from rollouts.gitops import Workspace
from rollouts.metrics import ControllerMetrics
from rollouts.notify import Notice
from rollouts.sync import LocalMeshGate
from tests.controller.machinery import ServiceModel, build, mesh_status, rollout_spec
from tests.fixtures.gitrepo import Remote, git, vs_with

ROUTE = "workloads/podinfo/virtual-service.yaml"


def test_a_rollout_walks_its_steps_on_the_scheduler(remote: Remote, tmp_path: Path) -> None:
    remote.commit_file(ROUTE, vs_with(100, 0), "podinfo: all traffic to GA")
    spec = rollout_spec(str(remote.bare), analysis={"interval": "300ms"})
    ticks: list[tuple[str, TickResult]] = []
    notices: list[Notice] = []
    with mesh_status(remote.bare, tmp_path) as url:
        machine = build(
            spec,
            workspace=Workspace.for_spec(spec, cache_dir=tmp_path / "cache"),
            gate=LocalMeshGate(url, interval=0.05),
            model=ServiceModel(rate=2000),
            clock=time.time,
            notices=notices,
            metrics=ControllerMetrics(),
        )
        scheduler = Scheduler(on_tick=lambda key, result: ticks.append((key, result)))
        scheduler.add(machine)
        scheduler.start()
        try:
            job = scheduler._scheduler.get_job("test/podinfo") if scheduler._scheduler else None
            assert job is not None and job.max_instances == 1 and job.coalesce
            assert scheduler.jobs() == {"test/podinfo": 0.3}
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any(r.action == "finalize" for _, r in ticks):
                time.sleep(0.1)
        finally:
            scheduler.stop()
    actions = [r.action for _, r in ticks]
    assert "finalize" in actions, actions
    verdicts = git(remote.bare, "log", "--format=%(trailers:key=Rollout-Verdict,valueonly)", "master").split()
    assert verdicts[:3] == ["finalize", "promote", "promote"]


def test_followers_do_not_tick(remote: Remote, tmp_path: Path) -> None:
    remote.commit_file(ROUTE, vs_with(100, 0), "podinfo: all traffic to GA")
    spec = rollout_spec(str(remote.bare))

    class Follower:
        def is_leader(self) -> bool:
            return False

    with mesh_status(remote.bare, tmp_path) as url:
        machine = build(
            spec,
            workspace=Workspace.for_spec(spec, cache_dir=tmp_path / "cache"),
            gate=LocalMeshGate(url),
            model=ServiceModel(),
            clock=time.time,
            notices=[],
            metrics=ControllerMetrics(),
        )
        follower = Scheduler(leadership=Follower())
        follower.add(machine)
        assert follower.run_once() == {"test/podinfo": None}
        leader = Scheduler()
        leader.add(machine)
        result = leader.run_once()["test/podinfo"]
    assert result is not None and result.action == "start"
