"""What the state-machine tests run on: the real Git workspace on a bare repo, the real mesh's route
watcher behind a ``/status`` endpoint, the real judge, and a metrics source that models the service.

The metrics source is not a mock of Prometheus: it is a different source of windows (a seeded model
of GA and canary latency and errors), which is what the machine's ``MetricsSource`` interface takes.
The same window start always gives the same window, so a restarted machine replays what it saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analyzer import Histogram, Judge, SubsetWindow, Window
from rollouts.controller.machine import Machine, MetricsUnavailableError, NoDataError, TickResult, grid_start
from rollouts.gitops import Workspace
from rollouts.local.mesh import Destination, MeshConfig, RouteWatcher
from rollouts.metrics import ControllerMetrics
from rollouts.notify import Notice
from rollouts.spec import Rollout, parse_spec
from rollouts.sync import LocalMeshGate
from tests.fixtures.httpjson import json_server

BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, float("inf")]
INTERVAL = 10.0


def rollout_spec(url: str, **sections: Any) -> Rollout:
    """The guide's rollout with fast analysis (10 s windows, small minimum data)."""
    analysis = {
        "interval": "10s",
        "threshold": 3,
        "syncTimeout": "60s",
        "policy": {"min_windows": 2, "min_canary_requests": 50},
    }
    analysis.update(sections.pop("analysis", {}))
    return parse_spec(
        {
            "apiVersion": "rollouts.dev/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "git": {"url": url, "branch": "master"},
                "route": {
                    "kind": "VirtualService",
                    "path": "workloads/podinfo/virtual-service.yaml",
                    "stable": "ga",
                    "canary": "canary",
                },
                "canary": {"path": "workloads/podinfo/canary-deployment.yaml"},
                "steps": [10, 60, 100],
                "analysis": analysis,
                **sections,
            },
        },
        source="test",
    )


@dataclass
class ServiceModel:
    """GA and canary as a seeded model: ``slowdown`` multiplies the canary's median latency."""

    rate: float = 200.0  # requests per second through the mesh
    slowdown: float = 1.0
    error_rate: float = 0.001
    canary_error_rate: float = 0.001
    down: str | None = None  # a message: every read fails, as when Prometheus is down
    empty: bool = False  # Prometheus answers, but has no series for the window
    reads: list[tuple[float, float, int]] = field(default_factory=list)
    # Percent of GA's requests mirrored to the canary at weight 0 (the mirror stage): the copies
    # are counted at the canary, as Istio's destination reporter counts them.
    mirrored: float = 0.0
    # Percent of the requests an A/B match takes to the canary at weight 0 (GA serves the rest).
    matched: float = 0.0
    # Percent of the requests that reach GA on its own Service at weight 100 (blue/green's analysis
    # after the switch: the controller's load to GA, every user on the canary).
    ga_own: float = 0.0

    def window(self, rollout: Rollout, start: float, end: float, weight: int) -> Window:
        """The window ``[start, end)`` at ``weight``; the same start always gives the same window."""
        self.reads.append((start, end, weight))
        if self.down is not None:
            raise MetricsUnavailableError(self.down)
        if self.empty:
            raise NoDataError(f"no series for podinfo-canary in the last {end - start:g}s")
        rng = np.random.default_rng(int(start * 1000) % 2**32)
        total = int(self.rate * (end - start))
        canary = int(total * weight / 100)
        served = total - canary
        if weight == 0 and self.mirrored:
            canary = int(total * self.mirrored / 100)  # copies of GA's requests, GA still serves all
        if weight == 100 and self.ga_own:
            served = int(total * self.ga_own / 100)
        if weight == 0 and self.matched:
            canary = int(total * self.matched / 100)  # the matching requests, taken from GA
            served = total - canary
        return Window(
            baseline=self._subset(rng, served, 1.0, self.error_rate),
            canary=self._subset(rng, canary, self.slowdown, self.canary_error_rate),
            weight=weight,
        )

    @staticmethod
    def _subset(rng: np.random.Generator, n: int, slowdown: float, error_rate: float) -> SubsetWindow:
        latencies = rng.lognormal(np.log(0.02 * slowdown), 0.5, n)
        counts = [int((latencies <= bound).sum()) for bound in BOUNDS]
        errors = int(rng.binomial(n, error_rate)) if n else 0
        return SubsetWindow(histogram=Histogram.from_cumulative(BOUNDS, counts), requests=n, errors=errors)


class Clock:
    """Wall-clock time that the test moves forward (starting now, so Git's commit times fit in)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = INTERVAL) -> None:
        self.now += seconds


@contextmanager
def mesh_status(bare: Path, tmp: Path) -> Iterator[str]:
    """The real mesh's route watcher following ``bare``, behind ``GET /status``; yields the URL."""
    config = MeshConfig(
        port=0,
        admin_port=0,
        repo=str(bare),
        branch="master",
        path="workloads/podinfo/virtual-service.yaml",
        stable=Destination(name="ga", url="http://127.0.0.1:1", workload="podinfo-ga", version="ga"),
        canary=Destination(
            name="canary", url="http://127.0.0.1:1", workload="podinfo-canary", version="canary"
        ),
    )
    watcher = RouteWatcher(config, tmp / "mesh")
    with json_server(lambda _request: (200, watcher.poll().to_json())) as server:
        yield server.url


@dataclass
class Rig:
    """A machine and everything it runs on."""

    machine: Machine
    model: ServiceModel
    clock: Clock
    notices: list[Notice]
    metrics: ControllerMetrics
    workspace: Workspace
    spec: Rollout
    gate: LocalMeshGate

    def fresh(self) -> Machine:
        """A new machine on the same Git, gate, metrics and clock: the controller after a restart."""
        return build(
            self.spec,
            workspace=self.workspace,
            gate=self.gate,
            model=self.model,
            clock=self.clock,
            notices=self.notices,
            metrics=self.metrics,
        )

    def start(self) -> Any:
        """The start tick (the commit to the first step), then the clock moved on (never back) to
        where the step's first window on the interval grid can be complete at the next tick.

        The step begins at the commit's time, which is the wall clock's; the test's clock began
        when the rig was built. On a loaded machine the commit can come seconds later, and the
        step's first grid boundary then lies past the next tick: that tick would find no window
        complete, and a test counting one window per tick would see one tick too few.
        """
        result = self.run(1)[0]
        since = self.workspace.read_state(self.spec).position.since
        if since is not None:
            self.clock.now = max(self.clock.now, grid_start(since, INTERVAL))
        return result

    def run(self, ticks: int, *, until: str | None = None) -> list[Any]:
        """Tick (advancing the clock one interval before each) until an action ``until``."""
        results = []
        for _ in range(ticks):
            self.clock.advance()
            result = self.machine.tick()
            results.append(result)
            if result.action == until:
                break
        return results


def tick_dated(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> TickResult:
    """Move the rig's clock one interval on and tick, our commits dated at the test clock's time (so
    the steps' spans in Git, which a restarted machine replays, follow the test clock)."""
    rig.clock.advance()
    stamp = f"@{int(rig.clock.now)} +0000"
    monkeypatch.setenv("GIT_AUTHOR_DATE", stamp)
    monkeypatch.setenv("GIT_COMMITTER_DATE", stamp)
    return rig.machine.tick()


@contextmanager
def rig_on(
    remote_bare: Path, tmp: Path, spec: Rollout, model: ServiceModel | None = None, **machine: Any
) -> Iterator[Rig]:
    """A machine for ``spec`` on the bare repo, its mesh gate, a fresh clock and ``model`` (a
    healthy service by default): what the machine tests' ``rig`` fixtures yield. ``machine``: more
    options of the Machine (``gates``, ``ga_readiness``)."""
    workspace = Workspace.for_spec(spec, cache_dir=tmp / "cache")
    with mesh_status(remote_bare, tmp) as url:
        gate = LocalMeshGate(url, interval=0.01)
        clock, metrics = Clock(), ControllerMetrics()
        model = model if model is not None else ServiceModel()
        notices: list[Notice] = []
        built = build(
            spec,
            workspace=workspace,
            gate=gate,
            model=model,
            clock=clock,
            notices=notices,
            metrics=metrics,
            **machine,
        )
        yield Rig(built, model, clock, notices, metrics, workspace, spec, gate)


def build(
    spec: Rollout,
    *,
    workspace: Workspace,
    gate: LocalMeshGate,
    model: ServiceModel,
    clock: Callable[[], float],
    notices: list[Notice],
    metrics: ControllerMetrics,
    **kwargs: Any,
) -> Machine:
    policy = spec.spec.analysis.policy
    return Machine(
        spec,
        workspace=workspace,
        gate=gate,
        metrics_source=model,
        judge_factory=lambda history: Judge(policy, history=history),
        notify=notices.append,
        metrics=metrics,
        clock=clock,
        **kwargs,
    )
