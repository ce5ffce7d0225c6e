"""``/healthz`` of ``rollouts run``: the real scheduler (apscheduler) and the real HTTP server.

The machines are stand-ins that tick, fail like Git does, or hang: liveness is about the scheduler
ticking them, not about what a tick does.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import requests

from rollouts.controller.machine import TickResult
from rollouts.controller.scheduler import Scheduler
from rollouts.metrics import ControllerMetrics, Liveness, MetricsServer


@dataclass
class StandIn:
    key: str
    interval: float
    result: TickResult = field(
        default_factory=lambda: TickResult("progressing", "hold", ("too few requests",))
    )
    hang: threading.Event | None = None
    ticks: int = 0
    rollout: SimpleNamespace = field(init=False)

    def __post_init__(self) -> None:
        self.rollout = SimpleNamespace(spec=SimpleNamespace(analysis=SimpleNamespace(interval=self.interval)))

    def tick(self) -> TickResult:
        self.ticks += 1
        if self.hang is not None:
            self.hang.wait(timeout=30)
        return self.result

    def close(self) -> None:
        pass


def _get(server: MetricsServer) -> tuple[int, dict]:
    answer = requests.get(f"{server.url}/healthz", timeout=5)
    assert answer.headers["Content-Type"] == "application/json"
    return answer.status_code, answer.json()


def _until(predicate, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert predicate()


def test_healthz_follows_the_scheduler_not_git_or_prometheus() -> None:
    machine = StandIn("test/podinfo", interval=1.0)
    scheduler = Scheduler()
    scheduler.add(machine)  # type: ignore[arg-type]
    server = MetricsServer(
        ControllerMetrics(), port=0, health=Liveness(scheduler, stale_intervals=2, grace=0.5).check
    ).start()
    release = threading.Event()
    try:
        code, body = _get(server)
        assert code == 503 and body["problems"] == ["scheduler is not running"]
        scheduler.start()
        _until(lambda: machine.ticks >= 1)
        _until(lambda: "phase" in _get(server)[1]["rollouts"]["test/podinfo"])
        code, body = _get(server)
        assert code == 200 and body["status"] == "ok" and body["problems"] == []
        entry = body["rollouts"]["test/podinfo"]
        assert entry["interval"] == 1.0 and entry["last_tick_age"] < 3 and entry["action"] == "hold"

        # Git down: the machine reports an error and retries; a restart would not help -> still alive.
        machine.result = TickResult("unknown", "error", ("git fetch failed: connection refused",))
        _until(lambda: _get(server)[1]["degraded"] != [])
        code, body = _get(server)
        assert code == 200 and body["status"] == "degraded"
        assert body["degraded"] == ["test/podinfo: git fetch failed: connection refused"]

        # A tick that hangs: no new tick starts (max_instances=1) -> after 2 intervals + 0.5 s, 503.
        machine.hang = release
        _until(lambda: _get(server)[0] == 503, seconds=15)
        code, body = _get(server)
        assert body["status"] == "unhealthy"
        assert body["problems"][0].startswith("test/podinfo: no tick started for ")
        release.set()
        machine.hang = None
        _until(lambda: _get(server)[0] == 200, seconds=10)
    finally:
        release.set()
        scheduler.stop()
        code, body = _get(server)
        server.stop()
    assert code == 503 and "scheduler is not running" in body["problems"]


def test_a_rollout_never_ticked_is_judged_from_when_it_was_first_seen() -> None:
    now = [1000.0]
    scheduler = SimpleNamespace(running=True, beats={}, results={}, jobs=lambda: {"a/b": 10.0})
    liveness = Liveness(scheduler, stale_intervals=3, grace=5, clock=lambda: now[0])  # type: ignore[arg-type]
    assert liveness.check()[0]
    now[0] += 35  # the limit is 3 x 10 s + 5 s
    assert liveness.check()[0]
    now[0] += 1
    ok, body = liveness.check()
    assert not ok and body["problems"] == ["a/b: no tick for 36s (limit 35s)"]
    assert body["rollouts"]["a/b"]["last_tick_age"] is None
    # Metrics unavailable is an outage, shown but not fatal.
    scheduler.beats["a/b"] = now[0]
    scheduler.results["a/b"] = TickResult(
        "progressing", "hold", ("metrics unavailable (1 of 3 in a row): timeout",)
    )
    ok, body = liveness.check()
    assert ok and body["degraded"] == ["a/b: metrics unavailable (1 of 3 in a row): timeout"]
