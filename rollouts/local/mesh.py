"""The local mesh: Istio plus Flux on one machine.

One traffic port routes each request to the stable (GA) or the canary backend, at random with the
weights of the route file (``VirtualService``, ``HTTPRoute`` or ``TrafficSplit``, read by the route
editors of :mod:`rollouts.routes`) on the remote branch of a Git repo. Like Flux, it polls the remote
(every second by default): ``git ls-remote`` to see whether the branch moved, then a fetch into a
private bare repository and a read of the one blob, with no checkout. Requests are passed through
byte for byte by :mod:`rollouts.local.forwarder` over pooled keep-alive connections.

The strategies are served as Envoy serves them: the routes of the file apply in order (Gateway
API: by match precedence) with their header, cookie (a regex on ``cookie``) and query conditions; a
route's mirror sends a copy of the request to the canary with ``-shadow`` on its ``Host`` and drops
the answer; a ``Set-Cookie`` response header on a destination is added to that destination's answers,
and the session-affinity route sends the cookie's holders back to it. A request no route takes is
answered 404, as Envoy answers it.

A revision whose route file does not parse, or names subsets the mesh does not have, is not
applied: the mesh keeps the last good weights and reports the error on ``/status``.

It emits Istio's standard telemetry for every proxied request, as the destination sidecar would
(``reporter="destination"``), so that the same PromQL works here and in a cluster:
``istio_requests_total`` and ``istio_request_duration_milliseconds`` (Envoy's default buckets).
A mirrored copy is counted there too, at the canary, as Istio's destination sidecar counts it (the
source side never sees a shadow request, so Istio has no ``reporter="source"`` series for it); the
mesh's own ``rollouts_mesh_mirrored_requests_total`` counts the copies separately, for people.

Service ports (:class:`ServicePort`) play Kubernetes Services that select the pods of one version
only, as a blue/green preview Service selects the canary's (and a Service of GA alone, for the
analysis after the switch): every request on one goes to its version, whatever the route file says,
and is reported with that Service's ``destination_service_name``.

With a ``segment_label`` the mesh adds one label to its Istio metrics, as Istio's Telemetry API
``tagOverrides`` adds a tag computed from the request: its ``value`` on the requests that satisfy
its ``match`` (the A/B match, whichever version serves them), ``other`` on the rest. The A/B judge
uses it (``analysis.segmentLabel``) to compare the canary with GA on the matching requests alone.

A second, admin port (like Envoy's admin and Istio's agent ports) serves ``/status`` (the sync
gate's view, see docs/architecture.md), ``/metrics``, ``/healthz``, ``/readyz`` and ``POST /reconcile``
(poll the remote now, as Flux's reconcile annotation asks Flux); keeping them off
the traffic port means the services' own ``/status/{code}`` and ``/metrics`` stay reachable through
the mesh.

Run it with ``python -m rollouts.local.mesh --config mesh.json`` (a JSON :class:`MeshConfig`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from analyzer.redaction import redact
from rollouts.local.forwarder import Exchange, Forwarder, Head, Route, Upstream
from rollouts.local.forwarder import start as start_forwarder
from rollouts.local.process import run_async, serve_until_signalled
from rollouts.routes.base import RouteEditor, Weights
from rollouts.routes.strategies import Match, Request, RouteTable, Rule
from rollouts.spec_strategy import MatchSpec

#: Envoy's default histogram buckets, in milliseconds, as Istio's standard metrics use them.
ENVOY_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
    300000, 600000, 1800000, 3600000,
)  # fmt: skip

#: Labels of the Istio standard metrics the mesh emits (a subset of Istio's, the ones queries use).
ISTIO_LABELS = (
    "reporter",
    "destination_workload",
    "destination_workload_namespace",
    "destination_version",
    "destination_service_name",
    "response_code",
)

#: Response header naming the subset that served a request (for people and tests).
SUBSET_HEADER = "x-rollouts-subset"


class Destination(BaseModel):
    """One backend of the split: the route file's name for it and the telemetry it is reported as."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="subset (VirtualService) or backend service name in the route file")
    url: str = Field(description="base URL of the backend, e.g. http://127.0.0.1:9898")
    workload: str = Field(description="destination_workload, e.g. podinfo-ga")
    version: str = Field(description="destination_version, e.g. ga")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parsed = urlsplit(url)
        if parsed.scheme != "http" or not parsed.hostname or parsed.path not in ("", "/"):
            raise ValueError(f"must be http://host:port, got {url!r}")
        return url

    @property
    def address(self) -> tuple[str, int]:
        """Host and port of the backend."""
        parsed = urlsplit(self.url)
        return parsed.hostname or "127.0.0.1", parsed.port or 80


class ServicePort(BaseModel):
    """A Service of one version alone (blue/green's preview Service): its own port, its own name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    port: int = Field(ge=0, le=65535, description="traffic port of the Service")
    name: str = Field(description="destination_service_name of its requests, e.g. podinfo-preview")
    destination: Literal["stable", "canary"] = Field(description="the version its pods run")


class SegmentLabel(BaseModel):
    """One label added to the Istio metrics from the request (Istio: a Telemetry ``tagOverrides``
    tag whose CEL expression is the A/B match): ``value`` when ``match`` holds, else ``other``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="request_segment", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    value: str = Field(default="match", min_length=1)
    other: str = Field(default="other", min_length=1)
    match: tuple[MatchSpec, ...] = Field(min_length=1, description="as analysis.match: any one holds")

    @field_validator("name")
    @classmethod
    def _own(cls, name: str) -> str:
        if name in ISTIO_LABELS:
            raise ValueError(f"{name!r} is one of the Istio labels the mesh already emits")
        return name


class MeshConfig(BaseModel):
    """Everything the mesh needs; the defaults follow the guide's layout (namespace test, podinfo)."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535, description="traffic port")
    admin_port: int = Field(ge=0, le=65535, description="port of /status and /metrics")
    repo: str = Field(description="Git remote: URL or path of a (bare) repository")
    branch: str = "master"
    path: str = Field(description="route file inside the repo")
    kind: Literal["VirtualService", "HTTPRoute", "TrafficSplit"] = "VirtualService"
    route_name: str | None = None
    namespace: str = "test"
    service: str = "podinfo"
    stable: Destination
    canary: Destination
    services: tuple[ServicePort, ...] = ()
    segment_label: SegmentLabel | None = None
    poll_interval: float = Field(default=1.0, gt=0, le=3600)
    upstream_timeout: float = Field(default=60.0, gt=0)
    seed: int | None = None

    def editor(self) -> RouteEditor:
        """The route editor for this mesh's route file."""
        from rollouts.routes import editor_for

        options: dict[str, object] = {}
        if self.kind == "VirtualService":
            # Unknown subsets in the route file are errors: the mesh has exactly these two.
            options["subsets"] = (self.stable.name, self.canary.name)
        return editor_for(
            self.kind,
            stable=self.stable.name,
            canary=self.canary.name,
            route_name=self.route_name,
            source=self.path,
            **options,  # type: ignore[arg-type]
        )


@dataclass
class MeshStatus:
    """What ``/status`` answers: the applied revision and weights, and the newest error."""

    branch: str
    kind: str
    path: str
    revision: str | None = None
    weights: Weights | None = None
    error: str | None = None
    last_poll: float | None = None

    def to_json(self) -> dict[str, object]:
        """The JSON document of docs/architecture.md ("Local mesh status")."""
        return {
            "revision": self.revision,
            "branch": self.branch,
            "weights": None
            if self.weights is None
            else {"stable": self.weights.stable, "canary": self.weights.canary},
            "route": {"kind": self.kind, "path": self.path},
            "error": self.error,
            "last_poll": self.last_poll,
        }


class RouteWatcher:
    """Follows the route file on the remote branch, as Flux's source controller follows a repo.

    Git is driven through GitPython (plumbing only: ``ls-remote``, ``fetch``, a blob read), in a
    private bare repository, so nothing is checked out and the user's clones are never touched.
    """

    def __init__(self, config: MeshConfig, workdir: Path) -> None:
        import git

        self.config = config
        self.editor = config.editor()
        self.status = MeshStatus(branch=config.branch, kind=config.kind, path=config.path)
        self._repo = git.Repo.init(workdir, bare=True)
        self._attempted: str | None = None  # newest remote sha we tried to apply
        self.table: RouteTable | None = None  # the routes in force, with the weights of status

    def remote_head(self) -> str:
        """The sha the remote branch points at; ``RuntimeError`` when it cannot be read."""
        ref = f"refs/heads/{self.config.branch}"
        out = str(self._repo.git.ls_remote(self.config.repo, ref))
        for line in out.splitlines():
            sha, _, name = line.partition("\t")
            if name == ref:
                return sha
        raise RuntimeError(f"branch {self.config.branch!r} not found on remote {redact(self.config.repo)}")

    def read_route(self, sha: str) -> tuple[Weights, RouteTable]:
        """Fetch ``sha`` and read the weights and the routes of the route file at that revision."""
        branch = self.config.branch
        self._repo.git.fetch(
            "--quiet", "--no-tags", self.config.repo, f"+refs/heads/{branch}:refs/remotes/origin/{branch}"
        )
        try:
            blob = self._repo.commit(sha).tree / self.config.path
        except KeyError:
            raise ValueError(f"{self.config.path}: no such file at revision {sha[:12]}") from None
        from rollouts.yamlsafe import ROUTE, decode

        if blob.size > ROUTE.max_bytes:  # before reading it: the size is in the object header
            raise ValueError(
                f"{self.config.path}: {blob.size} bytes at revision {sha[:12]}, more than the "
                f"{ROUTE.max_bytes // 1024} KiB a route file may have"
            )
        text = decode(blob.data_stream.read(), self.config.path)
        return self.editor.read(text), self.editor.table(text)

    def poll(self) -> MeshStatus:
        """One poll: apply the remote's newest revision if it is new and good; never raises."""
        status = self.status
        try:
            sha = self.remote_head()
            if sha != self._attempted:
                self._attempted = sha
                weights, table = self.read_route(sha)
                status.revision, status.weights, status.error = sha, weights, None
                self.table = table
        except Exception as exc:  # a bad revision or an unreachable remote must not stop the mesh
            status.error = _one_line(exc)
        status.last_poll = time.time()
        return status


def request_of(head: Head) -> Request:
    """What the route matches look at in a request head (method, path, query, headers)."""
    parts = head.start.split(b" ")
    method = parts[0].decode("latin-1") if parts else "GET"
    target = urlsplit(parts[1].decode("latin-1") if len(parts) > 1 else "/")
    headers = []
    for line in head.lines:
        name, sep, value = line.partition(b":")
        if sep:
            headers.append((name.strip().decode("latin-1").lower(), value.strip().decode("latin-1")))
    query = tuple(parse_qsl(target.query, keep_blank_values=True))
    return Request(method=method, path=target.path or "/", headers=tuple(headers), query=query)


def _one_line(exc: BaseException) -> str:
    text = " ".join(redact(str(exc)).split()) or type(exc).__name__
    return text if len(text) <= 500 else text[:497] + "..."


class Mesh:
    """The mesh as two aiohttp applications (traffic and admin) sharing one state."""

    def __init__(self, config: MeshConfig, workdir: Path) -> None:
        self.config = config
        self.watcher = RouteWatcher(config, workdir)
        self.registry = CollectorRegistry(auto_describe=True)
        segment = config.segment_label
        labels = (*ISTIO_LABELS, segment.name) if segment is not None else ISTIO_LABELS
        self._segment_match = (
            Match(tuple(m.request_match() for m in segment.match)) if segment is not None else None
        )
        self.requests = Counter(
            "istio_requests_total",
            "Requests processed by the local mesh, as Istio's standard metric.",
            labels,
            registry=self.registry,
        )
        self.duration = Histogram(
            "istio_request_duration_milliseconds",
            "Request duration at the destination, in milliseconds, as Istio's standard metric.",
            labels,
            buckets=ENVOY_BUCKETS_MS,
            registry=self.registry,
        )
        self.mirrored = Counter(
            "rollouts_mesh_mirrored_requests",
            "Mirrored copies sent to the canary by the local mesh (their answers are dropped).",
            ["destination_workload", "response_code"],
            registry=self.registry,
        )
        self._random = random.Random(config.seed)
        self._upstreams = {d.name: Upstream(*d.address) for d in (config.stable, config.canary)}
        self._children: dict[tuple[str, str, int, str], tuple[Counter, Histogram]] = {}
        self._poll_lock = asyncio.Lock()  # one poll at a time: the periodic one or a /reconcile

    @property
    def weights(self) -> Weights:
        """Weights in force: the last applied, or everything to stable before the first good read."""
        return self.watcher.status.weights or Weights(stable=100, canary=0)

    def pick(self, weights: Weights | None = None) -> Destination:
        """The destination of the next request, at random with ``weights`` (default: those in force)."""
        canary = (weights or self.weights).canary
        if canary and self._random.random() * 100 < canary:
            return self.config.canary
        return self.config.stable

    def rule_for(self, head: Head) -> Rule | None:
        """The route that takes the request with ``head``; the weights in force when the file has
        one plain route (the fast path: nothing in the request is looked at)."""
        table = self.watcher.table
        if table is None:
            return Rule(matches=(), weights=self.weights)
        if len(table.rules) == 1 and not table.rules[0].matches:
            return table.rules[0]
        return table.route(request_of(head))

    def segment_of(self, head: Head) -> str:
        """The segment label's value for the request with ``head`` ("" without a segment label)."""
        segment = self.config.segment_label
        if segment is None or self._segment_match is None:
            return ""
        return segment.value if self._segment_match.holds(request_of(head)) else segment.other

    def _record(
        self,
        destination: Destination,
        code: int,
        millis: float,
        service: str | None = None,
        segment: str = "",
    ) -> None:
        service = service or self.config.service
        key = (destination.name, service, code, segment)
        children = self._children.get(key)
        if children is None:
            labels = {
                "reporter": "destination",
                "destination_workload": destination.workload,
                "destination_workload_namespace": self.config.namespace,
                "destination_version": destination.version,
                "destination_service_name": service,
                "response_code": str(code),
            }
            if self.config.segment_label is not None:
                labels[self.config.segment_label.name] = segment or self.config.segment_label.other
            children = (self.requests.labels(**labels), self.duration.labels(**labels))
            self._children[key] = children
        children[0].inc()
        children[1].observe(millis)

    # -- traffic -------------------------------------------------------------------------------

    def _route(self, head: Head) -> Route:
        rule = self.rule_for(head)
        if rule is None:
            return Route(None, "none")
        destination = self.pick(rule.weights)
        canary = self.config.canary
        mirror = None
        if rule.mirror is not None and self._random.random() * 100 < rule.mirror:
            mirror = (self._upstreams[canary.name], canary.name)
        side = "canary" if destination is canary else "stable"
        cookies = tuple(b"set-cookie: " + value.encode() for who, value in rule.set_cookie if who == side)
        return Route(
            self._upstreams[destination.name], destination.name, mirror, cookies, self.segment_of(head)
        )

    def _on_exchange(self, name: str, exchange: Exchange) -> None:
        if name not in self._upstreams:
            return  # no route: no destination to report it
        destination = self.config.canary if name == self.config.canary.name else self.config.stable
        self._record(destination, exchange.status, exchange.seconds * 1000.0, segment=exchange.segment)
        if exchange.mirrored:
            self.mirrored.labels(destination.workload, str(exchange.status)).inc()

    def _service_forwarder(self, service: ServicePort) -> Forwarder:
        """The forwarder of a Service of one version: every request to it (its selector)."""
        destination = self.config.canary if service.destination == "canary" else self.config.stable
        upstream = self._upstreams[destination.name]

        def route(head: Head) -> Route:
            return Route(upstream, destination.name, segment=self.segment_of(head))

        def record(name: str, exchange: Exchange) -> None:
            millis = exchange.seconds * 1000.0
            self._record(destination, exchange.status, millis, service.name, exchange.segment)

        return Forwarder(route, record, subset_header=SUBSET_HEADER, timeout=self.config.upstream_timeout)

    # -- admin ---------------------------------------------------------------------------------

    async def status(self, request: web.Request) -> web.Response:
        """``GET /status``: applied revision, weights, route and the newest error."""
        return web.json_response(self.watcher.status.to_json())

    async def metrics(self, request: web.Request) -> web.Response:
        """``GET /metrics``: Istio's standard metrics for the proxied requests."""
        response = web.Response(body=generate_latest(self.registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def healthz(self, request: web.Request) -> web.Response:
        """``GET /healthz``: the process is up."""
        return web.json_response({"status": "OK"})

    async def readyz(self, request: web.Request) -> web.Response:
        """``GET /readyz``: 200 once a revision of the route file has been applied."""
        if self.watcher.status.revision is None:
            return web.json_response(
                {"status": "no revision applied", "error": self.watcher.status.error}, status=503
            )
        return web.json_response({"status": "OK"})

    async def reconcile(self, request: web.Request) -> web.Response:
        """``POST /reconcile``: poll the remote now, then answer the status (Flux's ``requestedAt``
        annotation, on one machine)."""
        await self._poll_once()
        return web.json_response(self.watcher.status.to_json())

    # -- lifecycle -----------------------------------------------------------------------------

    async def _poll_once(self) -> None:
        async with self._poll_lock:
            await asyncio.to_thread(self.watcher.poll)

    async def _poll_forever(self) -> None:
        while True:
            await self._poll_once()
            await asyncio.sleep(self.config.poll_interval)

    async def _lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        forwarder = Forwarder(
            self._route, self._on_exchange, subset_header=SUBSET_HEADER, timeout=self.config.upstream_timeout
        )
        servers = [await start_forwarder(forwarder, self.config.host, self.config.port)]
        for service in self.config.services:
            servers.append(
                await start_forwarder(self._service_forwarder(service), self.config.host, service.port)
            )
        poller = asyncio.create_task(self._poll_forever())
        yield
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        for server in servers:
            server.close()
        for upstream in self._upstreams.values():
            upstream.close()

    def admin_app(self) -> web.Application:
        """The application on the admin port; it also owns the upstream session and the Git poller."""
        app = web.Application()
        app.cleanup_ctx.append(self._lifecycle)
        app.add_routes(
            [
                web.get("/status", self.status),
                web.get("/metrics", self.metrics),
                web.get("/healthz", self.healthz),
                web.get("/readyz", self.readyz),
                web.post("/reconcile", self.reconcile),
            ]
        )
        return app

    def runners(self) -> list[tuple[web.BaseRunner, str, int]]:
        """The admin application's runner and address; it starts the traffic port with it."""
        runner = web.AppRunner(self.admin_app(), access_log=None, shutdown_timeout=0.5)
        return [(runner, self.config.host, self.config.admin_port)]


def load_config(path: Path) -> MeshConfig:
    """Read a JSON :class:`MeshConfig`; ``ValueError`` naming the file and the field when invalid."""
    try:
        return MeshConfig.model_validate_json(path.read_text())
    except OSError as exc:
        raise ValueError(f"{path}: cannot read mesh config: {exc}") from exc
    except ValidationError as exc:
        raise ValueError(f"{path}: invalid mesh config: {exc}") from exc


async def _run(config: MeshConfig) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="rollouts-mesh-"))
    try:
        mesh = Mesh(config, workdir)
        print(
            f"mesh listening on http://{config.host}:{config.port} (admin :{config.admin_port}),"
            f" following {redact(config.repo)} {config.branch}:{config.path}",
            flush=True,
        )
        await serve_until_signalled(mesh.runners())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m rollouts.local.mesh --config mesh.json``."""
    parser = argparse.ArgumentParser(prog="python -m rollouts.local.mesh", description="the local mesh")
    parser.add_argument("--config", type=Path, required=True, help="JSON MeshConfig")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    disable_created_metrics()  # type: ignore[no-untyped-call]  # Istio exposes no *_created series
    run_async(_run(config))


if __name__ == "__main__":
    main()

__all__ = [
    "ENVOY_BUCKETS_MS",
    "ISTIO_LABELS",
    "Destination",
    "Mesh",
    "MeshConfig",
    "MeshStatus",
    "RouteWatcher",
    "ServicePort",
    "request_of",
]
