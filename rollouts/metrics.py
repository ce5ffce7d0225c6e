"""The controller's own metrics (names fixed in docs/architecture.md, read by the Grafana dashboards)
and its ``/metrics`` + ``/healthz`` HTTP server. Every ``ControllerMetrics`` has its own registry:
two controllers (or two tests) in one process never share counters."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

PHASES = ("idle", "progressing", "paused", "promoted", "rolledback", "failed")
ACTIONS = ("promote", "hold", "rollback")
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

    def set_phase(self, rollout: str, phase: str) -> None:
        """Set ``phase`` to 1 and every other phase of the rollout to 0."""
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


class MetricsServer:
    """Serves ``/metrics`` (the registry) and ``/healthz`` (``health()`` -> (ok, detail)) in a thread."""

    def __init__(
        self,
        metrics: ControllerMetrics,
        host: str = "127.0.0.1",
        port: int = 9797,
        health: Callable[[], tuple[bool, str]] = lambda: (True, "ok"),
    ) -> None:
        metrics_app = make_wsgi_app(metrics.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == "/healthz":
                ok, detail = health()
                start_response(
                    "200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")]
                )
                return [detail.encode() + b"\n"]
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
