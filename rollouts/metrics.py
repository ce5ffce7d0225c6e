"""The controller's own metrics (names fixed in docs/architecture.md, read by the Grafana dashboards)
and its ``/metrics`` + ``/healthz`` HTTP server. Every ``ControllerMetrics`` has its own registry:
two controllers (or two tests) in one process never share counters."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

from rollouts.state import GAUGE_PHASES, Phase

#: ``rollouts_phase``'s ``phase`` labels: the gauge phases of :class:`rollouts.state.Phase`.
PHASES = GAUGE_PHASES
#: ``rollouts_verdicts``' ``action`` labels: the judge's verdict actions.
ACTIONS = ("promote", "hold", "rollback", "pause")
TESTS = ("latency", "errors", "tail")
EVIDENCE_KINDS = ("harm", "safety")
COMMIT_VERDICTS = ("promote", "rollback", "abort", "manual", "finalize", "pause")


class ControllerMetrics:
    """The metrics of one controller process, labelled by rollout (``namespace/name``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.canary_weight = Gauge(
            "rollouts_canary_weight", "Canary weight in percent", ["rollout"], registry=r
        )
        self.phase = Gauge(
            "rollouts_phase", "1 for the rollout's current phase", ["rollout", "phase"], registry=r
        )
        self.verdicts = Counter(
            "rollouts_verdicts", "Verdicts of the judge", ["rollout", "action"], registry=r
        )
        self.analysis_duration = Histogram(
            "rollouts_analysis_duration_seconds",
            "Time to analyse one window (query, judge)",
            ["rollout"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=r,
        )
        self.evidence = Gauge(
            "rollouts_evidence", "Current evidence figure (e-value)", ["rollout", "test", "kind"], registry=r
        )
        self.git_push_retries = Counter(
            "rollouts_git_push_retries", "Pushes retried after a rejection", ["rollout"], registry=r
        )
        self.git_errors = Counter(
            "rollouts_git_errors", "Git operations that failed", ["rollout"], registry=r
        )
        self.prometheus_errors = Counter(
            "rollouts_prometheus_errors",
            "Prometheus queries that failed or had no data",
            ["rollout"],
            registry=r,
        )
        self.commits = Counter(
            "rollouts_commits", "Commits made, by verdict", ["rollout", "verdict"], registry=r
        )
        self.pipeline_revision = Gauge(
            "rollouts_pipeline_revision",
            "1 for the canary revision of each pipeline environment; state: where its way in stands",
            ["pipeline", "environment", "revision", "state"],
            registry=r,
        )
        # The labels each pipeline environment's series carries now (one series per environment).
        self._pipeline_series: dict[tuple[str, str], tuple[str, str]] = {}

    def track(self, rollout: str) -> None:
        """Create the rollout's counters and its duration histogram at zero.

        A labelled series only exists once it is touched: without this, a healthy rollout has no
        ``rollouts_git_errors_total`` series at all (the dashboards show "No data", not 0), and the
        first increment of a counter is invisible to ``increase()``, which needs a sample before it.
        Gauges are left alone: an evidence or weight of 0 would be a claim, not a default.
        """
        for counter in (self.git_push_retries, self.git_errors, self.prometheus_errors):
            counter.labels(rollout=rollout)
        for action in ACTIONS:
            self.verdicts.labels(rollout=rollout, action=action)
        for verdict in COMMIT_VERDICTS:
            self.commits.labels(rollout=rollout, verdict=verdict)
        self.analysis_duration.labels(rollout=rollout)

    def set_phase(self, rollout: str, phase: Phase | str) -> None:
        """Set ``phase`` (as its gauge phase) to 1 and every other phase of the rollout to 0."""
        phase = Phase(phase).gauge if phase in tuple(Phase) else phase
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
        for name in PHASES:
            self.phase.labels(rollout=rollout, phase=name).set(1 if name == phase else 0)

    def set_weight(self, rollout: str, weight: int) -> None:
        """The canary weight now routed."""
        self.canary_weight.labels(rollout=rollout).set(weight)

    def verdict(self, rollout: str, action: str, seconds: float | None = None) -> None:
        """Count one verdict (and how long its analysis took)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
        self.verdicts.labels(rollout=rollout, action=action).inc()
        if seconds is not None:
            self.analysis_duration.labels(rollout=rollout).observe(seconds)

    def set_evidence(self, rollout: str, test: str, kind: str, value: float) -> None:
        """One evidence figure: ``test`` latency|errors|tail, ``kind`` harm|safety."""
        if test not in TESTS or kind not in EVIDENCE_KINDS:
            raise ValueError(f"evidence must be one of {TESTS} x {EVIDENCE_KINDS}, got {test!r}/{kind!r}")
        self.evidence.labels(rollout=rollout, test=test, kind=kind).set(value)

    def set_pipeline_environment(self, pipeline: str, environment: str, revision: str, state: str) -> None:
        """Where a pipeline's environment stands: its canary ``revision`` and the ``state`` of the
        transition into it (``source`` for the first environment); the previous series goes."""
        key = (pipeline, environment)
        previous = self._pipeline_series.get(key)
        if previous is not None and previous != (revision, state):
            _remove(self.pipeline_revision, (pipeline, environment, *previous))
        self._pipeline_series[key] = (revision, state)
        self.pipeline_revision.labels(
            pipeline=pipeline, environment=environment, revision=revision, state=state
        ).set(1)

    def forget(self, rollout: str) -> None:
        """Drop every series of a rollout that no longer exists (its spec was removed)."""
        for metric in (
            self.canary_weight,
            self.analysis_duration,
            self.git_push_retries,
            self.git_errors,
            self.prometheus_errors,
        ):
            _remove(metric, (rollout,))
        for phase in PHASES:
            _remove(self.phase, (rollout, phase))
        for action in ACTIONS:
            _remove(self.verdicts, (rollout, action))
        for test in TESTS:
            for kind in EVIDENCE_KINDS:
                _remove(self.evidence, (rollout, test, kind))
        for verdict in COMMIT_VERDICTS:
            _remove(self.commits, (rollout, verdict))


def _remove(metric: Any, labels: tuple[str, ...]) -> None:
    with contextlib.suppress(KeyError):  # never set: nothing to remove
        metric.remove(*labels)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes every 15 s would flood the log
        pass


class _TickResult(Protocol):
    @property
    def phase(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def reasons(self) -> tuple[str, ...]: ...


class Ticking(Protocol):
    """What :class:`Liveness` reads of the scheduler (``rollouts.controller.Scheduler``)."""

    @property
    def running(self) -> bool:
        """The background scheduler is started and not shut down."""
        ...

    @property
    def beats(self) -> Mapping[str, float]:
        """Rollout -> ``time.monotonic()`` when its last tick began (leader or not)."""
        ...

    @property
    def results(self) -> Mapping[str, _TickResult | None]:
        """Rollout -> what its last tick as leader did."""
        ...

    def jobs(self) -> dict[str, float]:
        """Rollout -> interval (seconds) of every scheduled job."""
        ...


# Reasons of a tick that held or failed because a dependency is down: reported, never a liveness
# failure (restarting the controller does not bring Git or Prometheus back).
_OUTAGE_PREFIXES = ("metrics unavailable", "load endpoint down")


class Liveness:
    """``/healthz`` of ``rollouts run``: alive while the scheduler runs and every rollout's job has
    started a tick within ``stale_intervals`` of its intervals plus ``grace`` seconds.

    A hung tick (``max_instances=1`` skips the next ones), a dead scheduler thread or a stopped
    scheduler make it fail, which a restart fixes. Git, Prometheus or load outages do not: the
    machines hold and retry, so they only appear in the body under ``degraded``.
    """

    def __init__(
        self,
        scheduler: Ticking,
        *,
        stale_intervals: float = 5.0,
        grace: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._scheduler = scheduler
        self._stale_intervals = stale_intervals
        self._grace = grace
        self._clock = clock
        self._first_seen: dict[str, float] = {}  # a rollout not ticked yet is judged from here
        self._lock = threading.Lock()

    def check(self) -> tuple[bool, dict[str, Any]]:
        """(alive, JSON body): ``status``, ``problems`` (why not alive), ``degraded`` (outages),
        and per rollout its interval, seconds since its last tick and what that tick did."""
        now = self._clock()
        problems: list[str] = []
        degraded: list[str] = []
        rollouts: dict[str, dict[str, Any]] = {}
        if not self._scheduler.running:
            problems.append("scheduler is not running")
        intervals = self._scheduler.jobs()
        with self._lock:
            for gone in set(self._first_seen) - set(intervals):
                del self._first_seen[gone]
            for key, interval in sorted(intervals.items()):
                first = self._first_seen.setdefault(key, now)
                beat = self._scheduler.beats.get(key)
                age = now - (first if beat is None else beat)
                limit = self._stale_intervals * interval + self._grace
                if age > limit:
                    what = "no tick" if beat is None else "no tick started"
                    problems.append(f"{key}: {what} for {age:.0f}s (limit {limit:.0f}s)")
                entry: dict[str, Any] = {
                    "interval": interval,
                    "last_tick_age": None if beat is None else round(age, 1),
                }
                result = self._scheduler.results.get(key)
                if result is not None:
                    entry.update(phase=result.phase, action=result.action, reasons=list(result.reasons))
                    if result.action == "error" or any(
                        r.startswith(_OUTAGE_PREFIXES) for r in result.reasons
                    ):
                        degraded.append(f"{key}: {'; '.join(result.reasons) or result.action}")
                rollouts[key] = entry
        body = {
            "status": "unhealthy" if problems else ("degraded" if degraded else "ok"),
            "problems": problems,
            "degraded": degraded,
            "rollouts": rollouts,
        }
        return not problems, body


class MetricsServer:
    """Serves ``/metrics`` (the registry) and ``/healthz`` in a thread.

    ``health()`` returns (ok, detail): 200 when ok, else 503; a mapping detail is sent as JSON
    (e.g. :meth:`Liveness.check`), a string as plain text.
    """

    def __init__(
        self,
        metrics: ControllerMetrics,
        host: str = "127.0.0.1",
        port: int = 9797,
        health: Callable[[], tuple[bool, str | Mapping[str, Any]]] = lambda: (True, "ok"),
    ) -> None:
        metrics_app = make_wsgi_app(metrics.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == "/healthz":
                try:
                    ok, detail = health()
                except Exception as exc:  # a broken check is an unhealthy answer, not a 500 page
                    ok, detail = False, {"status": "unhealthy", "problems": [f"health check failed: {exc}"]}
                status = "200 OK" if ok else "503 Service Unavailable"
                if isinstance(detail, str):
                    start_response(status, [("Content-Type", "text/plain")])
                    return [detail.encode() + b"\n"]
                start_response(status, [("Content-Type", "application/json")])
                return [json.dumps(detail).encode() + b"\n"]
            if environ.get("PATH_INFO") in ("/metrics", "/"):
                result: Iterable[bytes] = metrics_app(environ, start_response)
                return result
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]

        self._server: WSGIServer = make_server(host, port, app, handler_class=_QuietHandler)
        self.port: int = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="metrics", daemon=True
        )

    def start(self) -> MetricsServer:
        """Start serving; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
