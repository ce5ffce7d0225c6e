"""``loadtest serve``: the HTTP control API of the load-test pod (docs/architecture.md).

Jobs run inside the serve process, as gevent greenlets on their own Locust Environment and
LocalRunner, rather than as child processes: a job is a few dozen cooperative sockets (the rates a
rollout analysis needs are tens to hundreds of requests per second), live figures are a read of the
job's in-memory histogram instead of an IPC round trip, and a container never accumulates orphaned
children. The job limit (429) bounds the load one pod generates; beyond one core, run more pods or
Locust's distributed mode.

Safety: the request names a target URL, a rate or a concurrency, a duration, a method and headers,
all validated; nothing from a request ever reaches a shell or the file system. Targets and the
``Host`` header must match the allowlist given on the command line, and hop-by-hop and framing
headers are never accepted (:mod:`loadtest.allow`). Every call but ``/healthz`` and ``/metrics`` needs the
bearer token (compared in constant time).
"""

from __future__ import annotations

import argparse
import hmac
import itertools
import json
import logging
import os
import signal
import sys
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gevent
import gevent.event
import locust  # noqa: F401  (first: Locust monkey-patches the interpreter with gevent)
from flask import Flask, Response, jsonify, request
from gevent.pywsgi import WSGIServer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from loadtest.allow import Allowlist, check_header, check_target
from loadtest.engine import Recorder
from loadtest.histogram import bucket_value
from loadtest.lifeline import parent_gone, set_parent_death_signal
from loadtest.options import RunPlan, validate_method
from loadtest.results import Results
from loadtest.serve_args import ALLOW_ENV, TOKEN_ENV, build_parser

log = logging.getLogger("loadtest.serve")

MAX_BODY = 64 * 1024
KEEP_FINISHED = 100
LATENCY_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
JobState = Literal["running", "finished", "stopped", "failed"]


class JobRequest(BaseModel):
    """The body of ``POST /jobs``."""

    # strict: true is not a duration and "5" is not a rate (a typo never becomes a number)
    model_config = ConfigDict(extra="forbid", strict=True)

    target: str
    rate: float | None = Field(default=None, gt=0, le=100_000)
    concurrency: int | None = Field(default=None, ge=1, le=1000)
    duration: float = Field(default=60.0, gt=0, le=24 * 3600)
    method: str = "GET"
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        return check_target(value)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header_value in value.items():
            if name.lower() != "host":  # judged with the allowlist entry (Allowlist.refusal)
                check_header(name, header_value)
        return value

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        return validate_method(value)

    def plan(self) -> RunPlan:
        """The run this job asks for (open model when ``rate`` is given)."""
        default_workers = 10 if self.rate is not None else 1
        return RunPlan(
            url=self.target,
            method=self.method,
            headers=self.headers,
            requests=None,
            duration=self.duration,
            rate=self.rate,
            concurrency=self.concurrency or default_workers,
            timeout=10.0,
        )


@dataclass
class Job:
    """One load job and its live figures."""

    id: str
    spec: JobRequest
    recorder: Recorder
    stop_event: gevent.event.Event = field(default_factory=gevent.event.Event)
    state: JobState = "running"
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    error: str | None = None
    greenlet: gevent.Greenlet | None = None

    def results(self) -> Results:
        """Everything measured so far."""
        return self.recorder.snapshot()

    def status(self) -> dict[str, Any]:
        """The job as the API shows it."""
        results = self.results()
        elapsed = (self.ended or time.monotonic()) - self.started
        sending = self.recorder.elapsed or elapsed
        lat = results.latency
        body: dict[str, Any] = {
            "id": self.id,
            "state": self.state,
            "target": self.spec.target,
            "method": self.spec.method,
            "rate": self.spec.rate,
            "concurrency": self.spec.plan().concurrency,
            "duration": self.spec.duration,
            "requests": results.requests,
            "errors": results.failures,
            "rps": results.requests / sending if sending > 0 else 0.0,
            "latency": {f"p{q}": lat.quantile(q / 100) if lat.count else None for q in (50, 90, 99)},
            "elapsed": elapsed,
            "status_codes": {str(k): v for k, v in sorted(results.status.items())},
        }
        if self.spec.rate is not None:
            svc = results.service
            body["service_time"] = {
                f"p{q}": svc.quantile(q / 100) if svc.count else None for q in (50, 90, 99)
            }
        if self.error:
            body["error"] = self.error
        return body


class JobCollector(Collector):
    """Prometheus metrics of every job, computed from its histogram at scrape time (no hot-path cost)."""

    def __init__(self, jobs: OrderedDict[str, Job]) -> None:
        self.jobs = jobs

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families."""
        requests = CounterMetricFamily(
            "loadtest_requests",
            "Requests sent by load jobs, by response code",
            labels=["job", "target", "code"],
        )
        errors = CounterMetricFamily(
            "loadtest_errors", "Requests that got no response or a status >= 400", labels=["job", "target"]
        )
        latency = HistogramMetricFamily(
            "loadtest_request_duration_seconds",
            "Response time (open model: from the intended send time)",
            labels=["job", "target"],
        )
        running = GaugeMetricFamily("loadtest_jobs", "Jobs by state", labels=["state"])
        states: dict[str, int] = dict.fromkeys(("running", "finished", "stopped", "failed"), 0)
        for job in list(self.jobs.values()):
            states[job.state] += 1
            results = job.results()
            labels = [job.id, job.spec.target]
            for code, n in sorted(results.status.items()):
                requests.add_metric([*labels, str(code)], n)
            if results.error_count:
                requests.add_metric([*labels, "error"], results.error_count)
            errors.add_metric(labels, results.failures)
            lat = results.latency
            cumulative, buckets = 0, []
            pairs = iter(lat.buckets())
            pending = next(pairs, None)
            for bound in LATENCY_BOUNDS:
                while pending is not None and bucket_value(pending[0]) <= bound:
                    cumulative += pending[1]
                    pending = next(pairs, None)
                buckets.append((repr(bound), float(cumulative)))
            buckets.append(("+Inf", float(lat.count)))
            latency.add_metric(labels, buckets, lat.total)
        for state, n in states.items():
            running.add_metric([state], n)
        yield requests
        yield errors
        yield latency
        yield running


@dataclass
class Server:
    """The job table and the HTTP app around it."""

    token: bytes
    allowlist: Allowlist
    max_jobs: int = 4
    jobs: OrderedDict[str, Job] = field(default_factory=OrderedDict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def running(self) -> int:
        """Jobs that are still sending."""
        return sum(1 for job in self.jobs.values() if job.state == "running")

    def start(self, spec: JobRequest) -> Job:
        """Start a job in this process (a greenlet running Locust's LocalRunner)."""
        from loadtest.runner import run_local

        job_id = f"job-{next(self._ids)}-{os.urandom(3).hex()}"
        plan = spec.plan()
        job = Job(id=job_id, spec=spec, recorder=Recorder(name=plan.url, method=plan.method))

        def body() -> None:
            try:
                run_local(plan, stop_event=job.stop_event, recorder=job.recorder)
            except Exception as exc:
                job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
                log.exception("job %s failed", job_id)
            else:
                if job.state == "running":
                    job.state = "finished"
            finally:
                job.ended = time.monotonic()

        job.greenlet = gevent.spawn(body)
        self.jobs[job_id] = job
        self._forget_old()
        return job

    def stop(self, job: Job) -> None:
        """Stop a job and wait (briefly) for its final figures."""
        if job.state == "running":
            job.state = "stopped"
            job.stop_event.set()
            if job.greenlet is not None:
                job.greenlet.join(timeout=15)

    def _forget_old(self) -> None:
        done = [job_id for job_id, job in self.jobs.items() if job.state != "running"]
        for job_id in done[: max(len(done) - KEEP_FINISHED, 0)]:
            del self.jobs[job_id]

    def authorized(self, header: str | None) -> bool:
        """Constant-time check of ``Authorization: Bearer <token>``."""
        if not header or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[len("Bearer ") :].strip().encode(), self.token)

    def app(self) -> Flask:
        """The Flask app of the control API."""
        app = Flask("loadtest.serve")
        app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
        registry = CollectorRegistry(auto_describe=True)
        registry.register(JobCollector(self.jobs))

        def error(code: int, message: str) -> tuple[Response, int]:
            return jsonify({"error": message}), code

        @app.before_request
        def authenticate() -> tuple[Response, int] | None:
            if request.path in ("/healthz", "/metrics"):
                return None
            if not self.authorized(request.headers.get("Authorization")):
                return error(401, "missing or wrong bearer token")
            return None

        @app.get("/healthz")
        def healthz() -> Response:
            return jsonify({"status": "ok", "running": self.running()})

        @app.get("/metrics")
        def metrics() -> Response:
            return Response(generate_latest(registry), mimetype="text/plain; version=0.0.4; charset=utf-8")

        @app.post("/jobs")
        def create() -> tuple[Response, int]:
            if request.content_length is None:
                # Chunked: Werkzeug cuts such a body at MAX_CONTENT_LENGTH without a word, which
                # then reads as malformed JSON; read one byte more ourselves to answer 413.
                raw = request.environ["wsgi.input"].read(MAX_BODY + 1)
                if len(raw) > MAX_BODY:
                    return error(413, f"body larger than {MAX_BODY} bytes")
            else:
                raw = request.get_data()  # Flask answers 413 above MAX_CONTENT_LENGTH
            # Any content type: curl -d sends a JSON body as a form; the bearer token rules out browsers.
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = None
            if not isinstance(payload, dict):
                return error(400, "body must be a JSON object")
            try:
                spec = JobRequest.model_validate(payload)
                spec.plan()
            except ValidationError as exc:
                fields = "; ".join(
                    f"{'.'.join(str(x) for x in e['loc']) or 'body'}: "
                    + str(e["msg"]).removeprefix("Value error, ")
                    for e in exc.errors()
                )
                return error(400, fields)
            refusal = self.allowlist.refusal(spec.target, spec.headers)
            if refusal is not None:
                return error(403, refusal)
            if self.running() >= self.max_jobs:
                return error(429, f"{self.max_jobs} jobs are running already")
            job = self.start(spec)
            return jsonify(job.status()), 201

        @app.get("/jobs")
        def index() -> Response:
            return jsonify([job.status() for job in self.jobs.values()])

        @app.get("/jobs/<job_id>")
        def show(job_id: str) -> tuple[Response, int]:
            job = self.jobs.get(job_id)
            if job is None:
                return error(404, f"no job {job_id}")
            return jsonify(job.status()), 200

        @app.delete("/jobs/<job_id>")
        def delete(job_id: str) -> tuple[Response, int]:
            job = self.jobs.get(job_id)
            if job is None:
                return error(404, f"no job {job_id}")
            self.stop(job)
            return jsonify(job.status()), 200

        @app.errorhandler(404)
        def not_found(_: Exception) -> tuple[Response, int]:
            return error(404, "no such endpoint")

        @app.errorhandler(405)
        def not_allowed(_: Exception) -> tuple[Response, int]:
            return error(405, "method not allowed")

        @app.errorhandler(413)
        def too_large(_: Exception) -> tuple[Response, int]:
            return error(413, f"body larger than {MAX_BODY} bytes")

        @app.errorhandler(Exception)
        def crashed(exc: Exception) -> tuple[Response, int]:
            log.exception("request failed")
            return error(500, f"internal error: {type(exc).__name__}")

        return app


def _watch_parent(parent_pid: int, stopped: gevent.event.Event) -> None:
    """Stop the server once ``parent_pid`` is no longer our parent (see :mod:`loadtest.lifeline`)."""
    while not stopped.is_set():
        if parent_gone(parent_pid):
            log.warning("parent %d is gone: stopping", parent_pid)
            stopped.set()
            return
        gevent.sleep(0.5)


def _token(args: argparse.Namespace) -> bytes:
    if args.token_file:
        try:
            token = Path(args.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"--token-file {args.token_file}: {exc.strerror or exc}") from None
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
    if len(token) < 16:
        raise ValueError(
            f"a bearer token of at least 16 characters is required (--token-file or ${TOKEN_ENV})"
        )
    return token.encode()


def main(argv: list[str]) -> int:
    """``loadtest serve [--host H] [--port P] [--token-file F] [--allow PATTERN ...] [--parent-pid PID]``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="loadtest serve: %(levelname)s: %(message)s")
    logging.getLogger("locust").setLevel(logging.ERROR)  # spawning chatter, per job
    try:
        token = _token(args)
        patterns = [*args.allow, *os.environ.get(ALLOW_ENV, "").split(",")]
        allowlist = Allowlist(patterns)
    except ValueError as exc:
        sys.stderr.write(f"loadtest serve: error: {exc}\n")
        return 2
    if args.max_jobs < 1:
        sys.stderr.write("loadtest serve: error: --max-jobs must be at least 1\n")
        return 2
    if args.parent_pid is not None:
        set_parent_death_signal(signal.SIGTERM)
        if parent_gone(args.parent_pid):  # it died before prctl took effect
            sys.stderr.write(f"loadtest serve: error: parent {args.parent_pid} is gone\n")
            return 2
    if not allowlist:
        log.warning("the allowlist is empty: every job will be refused (403); pass --allow")
    server = Server(token=token, allowlist=allowlist, max_jobs=args.max_jobs)
    try:
        http = WSGIServer((args.host, args.port), server.app(), log=None)
        http.start()
    except OSError as exc:
        sys.stderr.write(f"loadtest serve: error: cannot listen on {args.host}:{args.port}: {exc.strerror}\n")
        return 2
    sys.stderr.write(f"loadtest serve: listening on {args.host}:{http.server_port}\n")
    sys.stderr.flush()
    stopped = gevent.event.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(sig, stopped.set)
    if args.parent_pid is not None:
        gevent.spawn(_watch_parent, args.parent_pid, stopped)
    stopped.wait()
    for job in list(server.jobs.values()):
        server.stop(job)
    http.stop(timeout=5)
    return 0
