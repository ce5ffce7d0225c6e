"""The machine gives the judge GA's windows from before the rollout began, and a restarted machine
asks for the same ones (the rollout's first commit, from Git, fixes them)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from analyzer import SubsetWindow
from rollouts.controller.machine import TickResult
from rollouts.gitops import Workspace
from rollouts.metrics import ControllerMetrics
from rollouts.spec import Rollout
from rollouts.sync import LocalMeshGate
from tests.controller.machinery import (
    INTERVAL,
    Clock,
    Rig,
    ServiceModel,
    build,
    mesh_status,
    rig_on,
    rollout_spec,
    tick_dated,
)
from tests.fixtures.gitrepo import Remote, git, vs_with

ROUTE = "workloads/podinfo/virtual-service.yaml"


@dataclass
class ServiceWithHistory(ServiceModel):
    """The service model, and GA's past windows as Prometheus would give them (newest first)."""

    asked: list[tuple[float, float, int]] = field(default_factory=list)

    def history(self, rollout: Rollout, before: float, interval: float, count: int) -> list[SubsetWindow]:
        self.asked.append((before, interval, count))
        out = []
        for k in range(count):
            rng = np.random.default_rng(int((before - k * interval) * 1000) % 2**32)
            out.append(self._subset(rng, int(self.rate * interval), 1.0, self.error_rate))
        return out


@pytest.fixture
def rig(remote: Remote, tmp_path: Path) -> Iterator[Rig]:
    remote.commit_file(ROUTE, vs_with(100, 0), "podinfo: all traffic to GA")
    spec = rollout_spec(str(remote.bare), analysis={"policy": {"history_windows": 30}})
    with rig_on(remote.bare, tmp_path, spec, ServiceWithHistory()) as rig:
        yield rig


def test_the_judge_gets_ga_history_from_before_the_first_commit_and_again_after_a_restart(
    rig: Rig, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    def tick() -> TickResult:
        return tick_dated(rig, monkeypatch)

    model = rig.model
    assert isinstance(model, ServiceWithHistory)
    actions = [tick().action]
    while "promote" not in actions and len(actions) < 30:
        actions.append(tick().action)
    assert actions[0] == "start" and "promote" in actions
    first = int(
        git(remote.bare, "log", "--reverse", "--format=%ct", "--grep=Rollout-Verdict", "master").split()[0]
    )
    before = math.floor(first / INTERVAL) * INTERVAL
    assert model.asked == [(before, INTERVAL, 30)]  # once per revision, not per step
    lost = rig.machine.memory.judge
    assert lost is not None and lost.history is not None and lost.history.windows == 30

    assert tick().action == "hold"  # mid step 2
    rig.machine = rig.fresh()
    assert rig.machine.tick().action == "hold"
    assert model.asked[-1] == (before, INTERVAL, 30)  # the same hour, fixed by Git
    rebuilt = rig.machine.memory.judge
    assert rebuilt is not None and rebuilt.history == lost.history
    probe = model.window(rig.spec, rig.clock.now, rig.clock.now + INTERVAL, 60)
    assert rebuilt.judge(probe).evidence == lost.judge(probe).evidence


def test_history_windows_zero_reads_nothing(remote: Remote, tmp_path: Path) -> None:
    remote.commit_file(ROUTE, vs_with(100, 0), "podinfo: all traffic to GA")
    spec = rollout_spec(str(remote.bare), analysis={"policy": {"history_windows": 0}})
    workspace = Workspace.for_spec(spec, cache_dir=tmp_path / "cache")
    with mesh_status(remote.bare, tmp_path) as url:
        clock, model = Clock(), ServiceWithHistory()
        machine = build(
            spec,
            workspace=workspace,
            gate=LocalMeshGate(url, interval=0.01),
            model=model,
            clock=clock,
            notices=[],
            metrics=ControllerMetrics(),
        )
        for _ in range(3):
            clock.advance()
            machine.tick()
        assert machine.memory.judge is not None and machine.memory.judge.history is None
        assert model.asked == []
