"""A podinfo-compatible service: the workload of the guide, on one machine.

It answers podinfo's endpoints with podinfo's JSON shapes and methods (``/``, ``/api/info``,
``/version``, ``/healthz``, ``/readyz``, ``/readyz/enable``, ``/readyz/disable``,
``/delay/{seconds}``, ``/status/{code}``, ``/env``, ``/headers``, ``/echo``, ``/api/echo``,
``/panic``, ``/fault_injection/enable|disable|status``), takes podinfo's own flags in Go's
spellings (``-port=9898``, ``--random-delay=false``; the ones it does not implement are accepted
with a warning), and exposes podinfo's RED metrics on ``/metrics`` (and on ``--port-metrics``):

- ``http_request_duration_seconds`` histogram, labels ``method``, ``path``, ``status``, Prometheus'
  default buckets with ``le`` written as Go's client writes it (``"1"``, not ``"1.0"``); ``path``
  is podinfo's route label (``/api/info`` -> ``api_info``, ``/`` -> ``root``, ``/delay/{wait}`` ->
  ``delay``);
- ``http_requests_total`` counter, label ``status``.

Faults, as podinfo's flags: ``--random-delay`` (with ``--random-delay-min``, ``--random-delay-max``,
``--random-delay-unit s|ms``) and ``--random-error`` (one request in three fails with 500, 400 or
409). Two more make a regressing canary on purpose: ``--latency-factor F`` stretches the time each
request spends in the service by F (delays included), ``--error-rate P`` answers 500 with probability
P. Unlike podinfo, faults never touch ``/healthz``, ``/readyz`` and ``/metrics``: a scrape that is
delayed or failed would hide the very data the canary analysis needs.

Two metrics of its own, for custom-metric analysis: the gauge ``podinfo_queue_depth``
(``--queue-depth N``, ``POST /fault/queue_depth/{n}``) and the counter ``podinfo_cache_misses_total``
(each served request misses with probability ``--cache-miss-rate P``, also
``POST /fault/cache_miss_rate/{p}``).

What it must never do: exit or crash on a request (``/panic`` drops the connection and turns the
probes to 503 instead of podinfo's ``os.Exit(255)``), or hand out the machine's environment
(``/env`` shows only ``PODINFO_*`` variables and ``HOSTNAME``).

Run it with ``python -m rollouts.local.podinfo --port 9898 --version 6.5.0``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import random
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from typing import Any

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from rollouts.local.errors import ConfigError
from rollouts.local.process import run_async, serve_until_signalled

#: Prometheus' default buckets (client_golang ``prometheus.DefBuckets``), as podinfo uses them.
DEFAULT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: Endpoints that faults never touch (probes and the scrape endpoint).
FAULT_EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})
#: Routes that are not podinfo's own traffic and never reach the request metrics.
UNMEASURED = frozenset({"panic", "fault_queue_depth", "fault_cache_miss_rate"})
#: podinfo's ``maxRequestBodySize`` (10 MiB), for ``/echo``.
MAX_BODY = 10 << 20
#: Environment variables ``/env`` shows (podinfo shows them all; a laptop's hold credentials).
ENV_SHOWN_PREFIX = "PODINFO_"

_RANDOM_ERROR_CODES = (500, 400, 409)
_UNITS = {"s": 1.0, "ms": 0.001}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


log = logging.getLogger("rollouts.local.podinfo")


@dataclass(frozen=True)
class PodinfoConfig:
    """Options of one podinfo-compatible service; field names follow podinfo's flags."""

    port: int = 9898
    host: str = "127.0.0.1"
    port_metrics: int = 0
    version: str = "6.5.0"
    revision: str = "local"
    hostname: str = field(default_factory=socket.gethostname)
    ui_color: str = "#34577c"
    ui_message: str = ""
    ui_logo: str = ""
    random_delay: bool = False
    random_delay_min: int = 0
    random_delay_max: int = 5
    random_delay_unit: str = "s"
    random_error: bool = False
    latency_factor: float = 1.0
    error_rate: float = 0.0
    queue_depth: float = 0.0
    cache_miss_rate: float = 0.0
    unhealthy: bool = False
    unready: bool = False
    seed: int | None = None

    def __post_init__(self) -> None:
        for flag, port in (("--port", self.port), ("--port-metrics", self.port_metrics)):
            if not 0 <= port <= 65535:
                raise ConfigError(f"{flag} must be 0-65535, got {port}")
        if self.random_delay_unit not in _UNITS:
            raise ConfigError(f"--random-delay-unit must be 's' or 'ms', got {self.random_delay_unit!r}")
        if self.random_delay and not 0 <= self.random_delay_min < self.random_delay_max:
            raise ConfigError(
                "--random-delay-min must be >= 0 and below --random-delay-max, got"
                f" {self.random_delay_min} and {self.random_delay_max}"
            )
        if not self.latency_factor >= 1.0:  # also rejects NaN
            raise ConfigError(f"--latency-factor must be >= 1, got {self.latency_factor}")
        for flag, rate in (("--error-rate", self.error_rate), ("--cache-miss-rate", self.cache_miss_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ConfigError(f"{flag} must be between 0 and 1, got {rate}")
        if not (math.isfinite(self.queue_depth) and self.queue_depth >= 0):
            raise ConfigError(f"--queue-depth must be a finite number >= 0, got {self.queue_depth}")

    @property
    def message(self) -> str:
        """podinfo's UI message, ``greetings from podinfo v<version>`` unless set."""
        return self.ui_message or f"greetings from podinfo v{self.version}"


def go_float(value: float) -> str:
    """``value`` as Go's Prometheus client writes it (``strconv.FormatFloat(v, 'g', -1, 64)``):
    ``1`` not ``1.0``, ``1e+06`` not ``1000000.0``, ``+Inf``. Prometheus 2.x treats ``le="1"`` and
    ``le="1.0"`` as two series, so the service must spell its bounds as podinfo does."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    # repr() gives the shortest digits that round-trip, as Go's -1 precision does; only the layout differs
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    point = len(text) + exponent  # the decimal point's place after the first `point` digits
    if point - 1 < -4 or point - 1 >= 6:  # %e, as Go's 'g' with the shortest precision (eprec 6)
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        out = f"{mantissa}e{'-' if point - 1 < 0 else '+'}{abs(point - 1):02d}"
    elif point <= 0:
        out = "0." + "0" * -point + text
    elif point >= len(text):
        out = text + "0" * (point - len(text))
    else:
        out = text[:point] + "." + text[point:]
    return ("-" if sign else "") + out


class _GoBounds(Collector):
    """A histogram's samples with ``le`` spelled by :func:`go_float` (at scrape time only)."""

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram

    def collect(self) -> Iterable[Metric]:
        """The histogram's families, ``le`` rewritten."""
        for family in self._histogram.collect():
            family.samples = [_go_le(sample) for sample in family.samples]
            yield family


def _go_le(sample: Sample) -> Sample:
    le = sample.labels.get("le")
    if le is None:
        return sample
    return sample._replace(labels={**sample.labels, "le": go_float(float(le))})


def _json(data: object, status: int = 200, *, sort_keys: bool = True) -> web.Response:
    # podinfo pretty-prints with two spaces; Go's json.Marshal sorts map keys, keeps struct order.
    body = json.dumps(data, indent=2, sort_keys=sort_keys)
    response = web.Response(
        text=body, status=status, reason=_reason(status), content_type="application/json", charset="utf-8"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _reason(status: int) -> str:
    """Go's reason phrase: the standard one, or ``status code N`` for codes it does not know."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"status code {status}"


def canonical_header(name: str) -> str:
    """Go's ``textproto.CanonicalMIMEHeaderKey``: ``x-api-version`` -> ``X-Api-Version``; a name with
    a character outside a token is left as it is."""
    if not name or any(not (c.isascii() and (c.isalnum() or c in "!#$%&'*+-.^_`|~")) for c in name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


class Podinfo:
    """The service: an aiohttp application with podinfo's routes, metrics and faults.

    Each instance has its own metrics registry, so several services can live in one process
    (tests) without sharing counters.
    """

    def __init__(self, config: PodinfoConfig) -> None:
        self.config = config
        self.registry = CollectorRegistry(auto_describe=True)
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Seconds spent serving HTTP requests.",
            ["method", "path", "status"],
            buckets=DEFAULT_BUCKETS,
            registry=None,
        )
        self.registry.register(_GoBounds(self.duration))
        self.requests = Counter(
            "http_requests_total", "The total number of HTTP requests.", ["status"], registry=self.registry
        )
        self.queue_depth = Gauge(
            "podinfo_queue_depth", "Items waiting in the (simulated) work queue.", registry=self.registry
        )
        self.queue_depth.set(config.queue_depth)
        self.cache_misses = Counter(
            "podinfo_cache_misses", "Requests that missed the (simulated) cache.", registry=self.registry
        )
        self.cache_miss_rate = config.cache_miss_rate
        self.healthy = not config.unhealthy
        self.ready = not config.unready
        self.fault_injection = False
        self._random = random.Random(config.seed)
        # prometheus_client's labels() takes a lock and builds a key on every call; caching the
        # children keeps the per-request cost to one dict lookup (the 2,000 req/s target).
        self._children: dict[tuple[str, str, str], tuple[Histogram, Counter]] = {}

    # -- application ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application serving podinfo's routes (and methods: HEAD is not GET, 405)."""
        app = web.Application(
            middlewares=[self._router_errors, self._metrics_middleware, self._fault_middleware],
            client_max_size=MAX_BODY,
        )

        def get(path: str, handler: Handler, name: str) -> web.RouteDef:
            return web.get(path, handler, name=name, allow_head=False)

        def methods(verbs: Iterable[str], path: str, handler: Handler, name: str) -> Iterator[web.RouteDef]:
            return (web.route(verb, path, handler, name=name) for verb in verbs)

        app.add_routes(
            [
                get("/", self._info, name="root"),
                get("/api/info", self._info, name="api_info"),
                get("/version", self._version, name="version"),
                get("/healthz", self._healthz, name="healthz"),
                get("/readyz", self._readyz, name="readyz"),
                web.post("/readyz/enable", self._ready_enable, name="readyz_enable"),
                web.post("/readyz/disable", self._ready_disable, name="readyz_disable"),
                get(r"/delay/{wait:[0-9]+}", self._delay, name="delay"),
                *methods(("GET", "POST", "PUT"), r"/status/{code:[0-9]+}", self._status, name="status"),
                *methods(("GET", "POST"), "/env", self._env, name="env"),
                *methods(("GET", "POST"), "/headers", self._headers, name="headers"),
                web.route("*", "/echo", self._echo, name="echo"),
                web.route("*", "/echo/{tail:.*}", self._echo, name="echo_"),
                web.route("*", "/api/echo", self._echo, name="api_echo"),
                web.route("*", "/api/echo/{tail:.*}", self._echo, name="api_echo_"),
                get("/panic", self._panic, name="panic"),
                web.post("/fault_injection/enable", self._fault_enable, name="fault_injection_enable"),
                web.post("/fault_injection/disable", self._fault_disable, name="fault_injection_disable"),
                get("/fault_injection/status", self._fault_status, name="fault_injection_status"),
                web.post(
                    r"/fault/queue_depth/{n:[0-9]+(\.[0-9]+)?}", self._set_queue, name="fault_queue_depth"
                ),
                web.post(
                    r"/fault/cache_miss_rate/{p:[0-9.]+}", self._set_miss_rate, name="fault_cache_miss_rate"
                ),
                get("/metrics", self._metrics, name="metrics"),
            ]
        )
        return app

    def metrics_app(self) -> web.Application:
        """podinfo's ``--port-metrics`` server: ``/metrics`` and a plain ``/healthz``."""
        app = web.Application()
        app.add_routes(
            [
                web.get("/metrics", self._metrics, allow_head=False),
                web.get("/healthz", self._plain_ok, allow_head=False),
            ]
        )
        return app

    # -- middlewares ---------------------------------------------------------------------------

    @web.middleware
    async def _router_errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # gorilla/mux's answers: "404 page not found" (net/http's NotFound), an empty 405
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return web.Response(text="404 page not found\n", status=404, content_type="text/plain")
        except web.HTTPMethodNotAllowed:
            return web.Response(status=405)

    @web.middleware
    async def _metrics_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # Outermost, as in podinfo: injected delays and errors are part of what is measured.
        route_name = request.match_info.route.name
        if route_name is None or route_name in UNMEASURED:
            # no route matched: podinfo's router never reaches its middleware
            return await handler(request)
        route_name = route_name.rstrip("_")  # echo_ (the /echo/... prefix) is podinfo's echo too
        begin = time.perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            self._observe(request.method, route_name, exc.status, begin)
            raise
        except Exception:
            self._observe(request.method, route_name, 500, begin)
            raise
        if self.config.latency_factor > 1.0 and not _fault_exempt(request.path):
            await asyncio.sleep((time.perf_counter() - begin) * (self.config.latency_factor - 1.0))
        self._observe(request.method, route_name, response.status, begin)
        return response

    def _observe(self, method: str, path: str, status: int, begin: float) -> None:
        key = (method, path, str(status))
        children = self._children.get(key)
        if children is None:
            children = (self.duration.labels(*key), self.requests.labels(key[2]))
            self._children[key] = children
        children[0].observe(time.perf_counter() - begin)
        children[1].inc()

    @web.middleware
    async def _fault_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        config = self.config
        if _fault_exempt(request.path):
            return await handler(request)
        if self.fault_injection:  # podinfo's /fault_injection/enable: http.Error, text/plain
            return web.Response(
                text='{"status":"fault injection enabled"}\n', status=500, content_type="text/plain"
            )
        if config.random_delay:
            units = self._random.randrange(config.random_delay_min, config.random_delay_max)
            await asyncio.sleep(units * _UNITS[config.random_delay_unit])
        if config.random_error and self._random.randrange(3) == 0:
            return web.Response(status=self._random.choice(_RANDOM_ERROR_CODES))
        if config.error_rate > 0.0 and self._random.random() < config.error_rate:
            return _json({"code": 500, "message": "injected error (--error-rate)"}, status=500)
        if self.cache_miss_rate > 0.0 and self._random.random() < self.cache_miss_rate:
            self.cache_misses.inc()
        return await handler(request)

    # -- handlers ------------------------------------------------------------------------------

    async def _info(self, request: web.Request) -> web.Response:
        config = self.config
        return _json(
            {
                "hostname": config.hostname,
                "version": config.version,
                "revision": config.revision,
                "color": config.ui_color,
                "logo": config.ui_logo,
                "message": config.message,
                "goos": sys.platform,
                "goarch": os.uname().machine,
                "runtime": f"python{sys.version_info.major}.{sys.version_info.minor}",
                "num_goroutine": str(len(asyncio.all_tasks())),
                "num_cpu": str(os.cpu_count() or 1),
            },
            sort_keys=False,
        )

    async def _version(self, request: web.Request) -> web.Response:
        return _json({"commit": self.config.revision, "version": self.config.version})

    async def _healthz(self, request: web.Request) -> web.Response:
        return _json({"status": "OK"}) if self.healthy else web.Response(status=503)

    async def _readyz(self, request: web.Request) -> web.Response:
        return _json({"status": "OK"}) if self.ready else web.Response(status=503)

    async def _plain_ok(self, request: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def _ready_enable(self, request: web.Request) -> web.Response:
        self.ready = True
        return web.Response(status=202)

    async def _ready_disable(self, request: web.Request) -> web.Response:
        self.ready = False
        return web.Response(status=202)

    async def _delay(self, request: web.Request) -> web.Response:
        wait = int(request.match_info["wait"])
        await asyncio.sleep(wait)
        return _json({"delay": wait})

    async def _status(self, request: web.Request) -> web.StreamResponse:
        # podinfo writes whatever code it is given; Go's net/http takes 100-999 and aborts the
        # connection (a recovered panic) on anything else, so do the same.
        code = int(request.match_info["code"]) if len(request.match_info["code"]) < 6 else 0
        if not 100 <= code <= 999:
            return _abort(request)
        if code < 200:  # Go sends a 1xx as informational, then the body as an implicit 200
            return _json({"status": code}, status=200)
        return _json({"status": code}, status=code)

    async def _env(self, request: web.Request) -> web.Response:
        shown = sorted(
            f"{k}={v}" for k, v in os.environ.items() if k.startswith(ENV_SHOWN_PREFIX) or k == "HOSTNAME"
        )
        return _json(shown)

    async def _headers(self, request: web.Request) -> web.Response:
        headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            if name.lower() != "host":  # Go keeps Host in r.Host, not in r.Header
                headers.setdefault(canonical_header(name), []).append(value)
        # podinfo's versionMiddleware sets these on the request before any handler runs
        headers["X-Api-Version"] = [self.config.version]
        headers["X-Api-Revision"] = [self.config.revision]
        return _json(headers)

    async def _echo(self, request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _json({"code": 413, "message": "request body too large"})  # podinfo: status 200
        response = web.Response(body=body, status=202, content_type="application/octet-stream")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = "default-src 'none'"
        response.headers["X-Color"] = self.config.ui_color
        return response

    async def _panic(self, request: web.Request) -> web.StreamResponse:
        # podinfo calls os.Exit(255). Seen from outside, a crashed pod drops the connection and then
        # fails its probes until it is restarted: do that, without ending a process of the stack.
        log.warning("panic command received: dropping the connection; /healthz and /readyz now answer 503")
        self.healthy = self.ready = False
        return _abort(request)

    async def _fault_enable(self, request: web.Request) -> web.Response:
        self.fault_injection = True
        return _json({"fault_injection": "enabled"}, status=202)

    async def _fault_disable(self, request: web.Request) -> web.Response:
        self.fault_injection = False
        return _json({"fault_injection": "disabled"}, status=202)

    async def _fault_status(self, request: web.Request) -> web.Response:
        return _json({"fault_injection": "enabled" if self.fault_injection else "disabled"})

    async def _set_queue(self, request: web.Request) -> web.Response:
        depth = float(request.match_info["n"])
        self.queue_depth.set(depth)
        return _json({"queue_depth": depth}, status=202)

    async def _set_miss_rate(self, request: web.Request) -> web.Response:
        try:
            rate = float(request.match_info["p"])
        except ValueError:
            rate = -1.0
        if not 0.0 <= rate <= 1.0:
            return _json({"code": 400, "message": "cache miss rate must be between 0 and 1"}, status=400)
        self.cache_miss_rate = rate
        return _json({"cache_miss_rate": rate}, status=202)

    async def _metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(self.registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response


def _fault_exempt(path: str) -> bool:
    """podinfo's ``faultInjectionExcluded`` (probes, metrics, the fault switches), and ours."""
    return path in FAULT_EXEMPT or path.startswith(("/fault_injection", "/fault/", "/debug/"))


def _abort(request: web.Request) -> web.StreamResponse:
    """Close the connection without an answer (what a client of a crashed handler sees)."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)  # never sent: the transport is gone


# -- command line: podinfo's flags, in Go's spellings ---------------------------------------------

#: podinfo's flags (cmd/podinfo/main.go) this service does not implement: accepted, with a warning.
IGNORED_FLAGS = (
    "prefix", "secure-port", "grpc-port", "grpc-service-name", "level", "backend-url",
    "http-client-timeout", "http-server-timeout", "server-shutdown-timeout", "data-path",
    "config-path", "cert-path", "config", "ui-path", "stress-cpu", "stress-memory", "cache-server",
    "otel-service-name",
)  # fmt: skip
IGNORED_BOOL_FLAGS = ("h2c",)
_BOOL_FLAGS = ("random-delay", "random-error", "unhealthy", "unready", *IGNORED_BOOL_FLAGS)
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


class _GoFlagParser(argparse.ArgumentParser):
    """argparse that also reads Go's spellings: ``-port=9898`` (one dash) and ``--flag=false``."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        return super().parse_known_args(self._go(sys.argv[1:] if args is None else args), namespace)

    def _go(self, argv: Iterable[str]) -> list[str]:
        out: list[str] = []
        for given in argv:
            # Go's flag package: -name and --name are the same flag
            single = len(given) > 2 and given[0] == "-" and given[1] != "-" and not _number(given)
            arg = "-" + given if single else given
            name, sep, value = arg.partition("=")
            if sep and name.startswith("--") and name[2:] in _BOOL_FLAGS:
                if value in _GO_FALSE and name[2:] not in IGNORED_BOOL_FLAGS:
                    continue  # every boolean defaults to false (an ignored one is still warned about)
                if value not in (*_GO_TRUE, *_GO_FALSE):
                    self.error(f"invalid boolean value {value!r} for {name}: use true or false")
                arg = name
            out.append(arg)
        return out


def _number(arg: str) -> bool:
    try:
        float(arg)
    except ValueError:
        return False
    return True


class _Version(argparse.Action):
    """podinfo's ``--version``/``-v`` prints the version; ``--version X`` sets the one to report."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option: str | None = None,
    ) -> None:
        if values is None:
            version = getattr(namespace, "version", None) or PodinfoConfig(hostname="").version
            sys.stdout.write(f"{version}\n")  # podinfo prints it on stdout
            parser.exit(0)
        namespace.version = values


def parser() -> argparse.ArgumentParser:
    """Command-line flags, named as podinfo's (and spelt as Go's flag package allows)."""
    p = _GoFlagParser(
        prog="python -m rollouts.local.podinfo",
        description=(__doc__ or "").split("\n\n")[0],
        allow_abbrev=False,
    )
    d = PodinfoConfig(hostname="")
    p.add_argument("--port", type=int, default=d.port, help="HTTP port (default %(default)s)")
    p.add_argument("--host", default=d.host, help="address to bind (default %(default)s, not podinfo's all)")
    p.add_argument("--port-metrics", type=int, default=0, help="also serve /metrics on this port (0: no)")
    p.add_argument(
        "-v", "--version", nargs="?", action=_Version, default=None, help="version to report; alone: print it"
    )
    p.add_argument("--revision", default=None, help="revision (commit) to report")
    p.add_argument("--hostname", default=None, help="hostname to report (default: this machine's)")
    p.add_argument("--ui-color", default=None)
    p.add_argument("--ui-message", default=None)
    p.add_argument("--ui-logo", default=None)
    p.add_argument("--random-delay", action="store_true", help="random delay between min and max units")
    p.add_argument("--random-delay-min", type=int, default=None)
    p.add_argument("--random-delay-max", type=int, default=None)
    p.add_argument("--random-delay-unit", default=None, choices=sorted(_UNITS))
    p.add_argument("--random-error", action="store_true", help="1/3 chance of a 500, 400 or 409")
    p.add_argument("--latency-factor", type=float, default=None, help="stretch each request's time by F >= 1")
    p.add_argument("--error-rate", type=float, default=None, help="answer 500 with probability P")
    p.add_argument("--queue-depth", type=float, default=None, help="value of the podinfo_queue_depth gauge")
    p.add_argument(
        "--cache-miss-rate",
        type=float,
        default=None,
        help="podinfo_cache_misses_total grows with probability P",
    )
    p.add_argument("--unhealthy", action="store_true", help="/healthz answers 503")
    p.add_argument("--unready", action="store_true", help="/readyz answers 503 until enabled")
    p.add_argument("--seed", type=int, default=None, help="seed for the fault generator")
    ignored = p.add_argument_group("podinfo's flags that are accepted and ignored (with a warning)")
    for flag in IGNORED_FLAGS:
        ignored.add_argument(f"--{flag}", dest=f"ignored_{flag}", default=None, help=argparse.SUPPRESS)
    for flag in IGNORED_BOOL_FLAGS:
        ignored.add_argument(f"--{flag}", dest=f"ignored_{flag}", action="store_true", help=argparse.SUPPRESS)
    return p


def config_from_args(argv: Sequence[str] | None = None) -> PodinfoConfig:
    """Parse flags into a :class:`PodinfoConfig`; exits with status 2 and the flag's name when invalid.
    Flags of podinfo that this service does not implement are named in one warning on stderr."""
    p = parser()
    args = p.parse_args(argv)
    values = vars(args)
    ignored = sorted(
        k.removeprefix("ignored_").replace("_", "-")
        for k, v in values.items()
        if k.startswith("ignored_") and v
    )
    if ignored:
        names = ", ".join("--" + f for f in ignored)
        sys.stderr.write(f"{p.prog}: warning: podinfo flags not implemented here, ignored: {names}\n")
    options = {k: v for k, v in values.items() if v is not None and not k.startswith("ignored_")}
    try:
        return PodinfoConfig(**options)
    except ConfigError as exc:
        p.error(str(exc))
        raise  # unreachable: error() exits


def main(argv: Sequence[str] | None = None) -> None:
    """Run the service until SIGTERM or SIGINT."""
    config = config_from_args(argv)
    # podinfo (client_golang) exposes no *_created series; keep the scrape the same shape.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    print(f"podinfo {config.version} listening on http://{config.host}:{config.port}", flush=True)
    service = Podinfo(config)
    runners = [
        (web.AppRunner(service.app(), access_log=None, shutdown_timeout=0.5), config.host, config.port)
    ]
    if config.port_metrics:
        metrics = web.AppRunner(service.metrics_app(), access_log=None, shutdown_timeout=0.5)
        runners.append((metrics, config.host, config.port_metrics))
    run_async(serve_until_signalled(runners))


if __name__ == "__main__":
    main()

# The errors are defined in errors.py and raised here: importable from here too.
__all__ = [
    "DEFAULT_BUCKETS",
    "FAULT_EXEMPT",
    "ConfigError",
    "Handler",
    "Podinfo",
    "PodinfoConfig",
    "config_from_args",
    "main",
    "parser",
]
