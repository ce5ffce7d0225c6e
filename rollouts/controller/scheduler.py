"""Many rollouts in one process: one apscheduler job per rollout, at its analysis interval.

Each job ticks its state machine; ``max_instances=1`` means a slow tick (a long Git push, a slow
Prometheus) is never overlapped by the next one of the same rollout, and ``coalesce`` folds the ticks
missed meanwhile into one (a tick judges every complete window anyway, so nothing is skipped). Only
the leader ticks: a follower replica's jobs return at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from rollouts.controller.machine import AlwaysLeader, Leadership, TickResult
from rollouts.state import Action, Phase

log = logging.getLogger("rollouts.controller")


class Job(Protocol):
    """What the scheduler ticks: a rollout's :class:`Machine`, or a pipeline's hand-over job."""

    key: str

    @property
    def interval(self) -> float: ...

    def tick(self) -> TickResult: ...

    def close(self) -> None: ...


@dataclass
class Scheduler:
    """Runs ``tick`` of every job (a rollout's machine, a pipeline) at its interval in a thread pool."""

    leadership: Leadership = field(default_factory=AlwaysLeader)
    workers: int = 8
    on_tick: Callable[[str, TickResult], None] | None = None
    machines: dict[str, Job] = field(default_factory=dict)
    # For /healthz (rollouts.metrics.Liveness): when each rollout's last tick began, leader or not,
    # and what its last tick as leader did.
    beats: dict[str, float] = field(default_factory=dict)
    results: dict[str, TickResult | None] = field(default_factory=dict)
    _scheduler: BackgroundScheduler | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, machine: Job) -> None:
        """Schedule ``machine`` (replacing the rollout's previous machine, if any)."""
        with self._lock:
            self.machines[machine.key] = machine
            if self._scheduler is not None:
                self._schedule(machine)

    def remove(self, key: str) -> None:
        """Stop ticking rollout ``key`` (its spec was removed)."""
        with self._lock:
            machine = self.machines.pop(key, None)
            self.beats.pop(key, None)
            self.results.pop(key, None)
            if self._scheduler is not None and self._scheduler.get_job(key) is not None:
                self._scheduler.remove_job(key)
        if machine is not None:
            machine.close()

    def tick(self, key: str) -> TickResult | None:
        """One tick of rollout ``key`` (what each job runs); None when we are not the leader."""
        self.beats[key] = time.monotonic()
        machine = self.machines.get(key)
        if machine is None or not self.leadership.is_leader():
            return None
        try:
            result = machine.tick()
        except Exception as exc:  # a bug in one rollout must not stop the others
            log.exception("%s: tick failed", key)
            self.results[key] = TickResult(Phase.UNKNOWN, Action.ERROR, (f"tick failed: {exc}",))
            return None
        self.results[key] = result
        if self.on_tick is not None:
            self.on_tick(key, result)
        return result

    def run_once(self, keys: Iterable[str] | None = None) -> dict[str, TickResult | None]:
        """One tick of every rollout, in this thread (``rollouts run --once``, tests)."""
        return {key: self.tick(key) for key in list(keys or self.machines)}

    def start(self) -> None:
        """Start the background scheduler; every rollout ticks now, then at its interval."""
        with self._lock:
            if self._scheduler is not None:
                raise RuntimeError("scheduler already started")
            self._scheduler = BackgroundScheduler(
                timezone=dt.UTC,
                executors={"default": {"type": "threadpool", "max_workers": self.workers}},
                job_defaults={"max_instances": 1, "coalesce": True},
            )
            for machine in self.machines.values():
                self._schedule(machine)
            self._scheduler.start()

    def _schedule(self, machine: Job) -> None:
        assert self._scheduler is not None
        interval = machine.interval
        self._scheduler.add_job(
            self.tick,
            IntervalTrigger(seconds=interval, timezone=dt.UTC),
            args=[machine.key],
            id=machine.key,
            name=machine.key,
            replace_existing=True,
            next_run_time=dt.datetime.now(dt.UTC),
            misfire_grace_time=max(1, int(interval)),
        )

    @property
    def running(self) -> bool:
        """The background scheduler is started and not shut down."""
        scheduler = self._scheduler
        return scheduler is not None and bool(scheduler.running)

    def jobs(self) -> dict[str, float]:
        """Rollout -> interval (seconds) of every scheduled job."""
        if self._scheduler is None:
            return {}
        return {job.id: job.trigger.interval.total_seconds() for job in self._scheduler.get_jobs()}

    def stop(self, wait: bool = True) -> None:
        """Stop scheduling; with ``wait`` the running ticks finish first. Machines are closed."""
        with self._lock:
            scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=wait)
        for machine in list(self.machines.values()):
            machine.close()
