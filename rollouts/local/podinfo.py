"""A podinfo-compatible service: the workload of the guide, on one machine.

It answers podinfo's endpoints with podinfo's JSON shapes (``/``, ``/api/info``, ``/version``,
``/healthz``, ``/readyz``, ``/readyz/enable``, ``/readyz/disable``, ``/delay/{seconds}``,
``/status/{code}``) and exposes podinfo's RED metrics on ``/metrics``:

- ``http_request_duration_seconds`` histogram, labels ``method``, ``path``, ``status``, Prometheus'
  default buckets; ``path`` is podinfo's route label (``/api/info`` -> ``api_info``, ``/`` -> ``root``,
  ``/delay/{wait}`` -> ``delay``);
- ``http_requests_total`` counter, label ``status``.

Faults, as podinfo's flags: ``--random-delay`` (with ``--random-delay-min``, ``--random-delay-max``,
``--random-delay-unit s|ms``) and ``--random-error`` (one request in three fails with 500, 400 or
409). Two more make a regressing canary on purpose: ``--latency-factor F`` stretches the time each
request spends in the service by F (delays included), ``--error-rate P`` answers 500 with probability
P. Unlike podinfo, faults never touch ``/healthz``, ``/readyz`` and ``/metrics``: a scrape that is
delayed or failed would hide the very data the canary analysis needs.

Run it with ``python -m rollouts.local.podinfo --port 9898 --version 6.5.0``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from rollouts.local.errors import ConfigError
from rollouts.local.process import run_async, serve_until_signalled

#: Prometheus' default buckets (client_golang ``prometheus.DefBuckets``), as podinfo uses them.
DEFAULT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: Endpoints that faults never touch (probes and the scrape endpoint).
FAULT_EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})

_RANDOM_ERROR_CODES = (500, 400, 409)
_UNITS = {"s": 1.0, "ms": 0.001}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class PodinfoConfig:
    """Options of one podinfo-compatible service; field names follow podinfo's flags."""

    port: int = 9898
    host: str = "127.0.0.1"
    version: str = "6.5.0"
    revision: str = "local"
    hostname: str = field(default_factory=socket.gethostname)
    ui_color: str = "#34577c"
    ui_message: str = ""
    random_delay: bool = False
    random_delay_min: int = 0
    random_delay_max: int = 5
    random_delay_unit: str = "s"
    random_error: bool = False
    latency_factor: float = 1.0
    error_rate: float = 0.0
    unhealthy: bool = False
    unready: bool = False
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be 0-65535, got {self.port}")
        if self.random_delay_unit not in _UNITS:
            raise ConfigError(f"--random-delay-unit must be 's' or 'ms', got {self.random_delay_unit!r}")
        if self.random_delay and not 0 <= self.random_delay_min < self.random_delay_max:
            raise ConfigError(
                "--random-delay-min must be >= 0 and below --random-delay-max, got"
                f" {self.random_delay_min} and {self.random_delay_max}"
            )
        if not self.latency_factor >= 1.0:  # also rejects NaN
            raise ConfigError(f"--latency-factor must be >= 1, got {self.latency_factor}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ConfigError(f"--error-rate must be between 0 and 1, got {self.error_rate}")

    @property
    def message(self) -> str:
        """podinfo's UI message, ``greetings from podinfo v<version>`` unless set."""
        return self.ui_message or f"greetings from podinfo v{self.version}"


def _json(data: object, status: int = 200, *, sort_keys: bool = True) -> web.Response:
    # podinfo pretty-prints with two spaces; Go's json.Marshal sorts map keys, keeps struct order.
    body = json.dumps(data, indent=2, sort_keys=sort_keys)
    response = web.Response(text=body, status=status, content_type="application/json", charset="utf-8")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


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
            registry=self.registry,
        )
        self.requests = Counter(
            "http_requests_total", "The total number of HTTP requests.", ["status"], registry=self.registry
        )
        self.healthy = not config.unhealthy
        self.ready = not config.unready
        self._random = random.Random(config.seed)
        # prometheus_client's labels() takes a lock and builds a key on every call; caching the
        # children keeps the per-request cost to one dict lookup (the 2,000 req/s target).
        self._children: dict[tuple[str, str, str], tuple[Histogram, Counter]] = {}

    # -- application ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application serving podinfo's routes."""
        app = web.Application(middlewares=[self._metrics_middleware, self._fault_middleware])
        get = web.get
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
                web.route("*", r"/status/{code:[0-9]+}", self._status, name="status"),
                get("/metrics", self._metrics, name="metrics"),
            ]
        )
        return app

    # -- middlewares ---------------------------------------------------------------------------

    @web.middleware
    async def _metrics_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # Outermost, as in podinfo: injected delays and errors are part of what is measured.
        route_name = request.match_info.route.name
        if route_name is None:  # no route matched: podinfo's router never reaches its middleware
            return await handler(request)
        begin = time.perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            self._observe(request.method, route_name, exc.status, begin)
            raise
        except Exception:
            self._observe(request.method, route_name, 500, begin)
            raise
        if self.config.latency_factor > 1.0 and request.path not in FAULT_EXEMPT:
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
        if request.path in FAULT_EXEMPT:
            return await handler(request)
        if config.random_delay:
            units = self._random.randrange(config.random_delay_min, config.random_delay_max)
            await asyncio.sleep(units * _UNITS[config.random_delay_unit])
        if config.random_error and self._random.randrange(3) == 0:
            return web.Response(status=self._random.choice(_RANDOM_ERROR_CODES))
        if config.error_rate > 0.0 and self._random.random() < config.error_rate:
            return _json({"code": 500, "message": "injected error (--error-rate)"}, status=500)
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
                "logo": "",
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

    async def _status(self, request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        if not 100 <= code <= 599:
            return _json({"code": 400, "message": f"invalid status code {code}"}, status=400)
        return _json({"status": code}, status=code)

    async def _metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(self.registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response


def parser() -> argparse.ArgumentParser:
    """Command-line flags, named as podinfo's."""
    p = argparse.ArgumentParser(prog="python -m rollouts.local.podinfo", description=__doc__.split("\n\n")[0])
    d = PodinfoConfig(hostname="")
    p.add_argument("--port", type=int, default=d.port, help="HTTP port (default %(default)s)")
    p.add_argument("--host", default=d.host, help="address to bind (default %(default)s)")
    p.add_argument("--version", default=d.version, help="version to report (default %(default)s)")
    p.add_argument("--revision", default=d.revision, help="revision (commit) to report")
    p.add_argument("--hostname", default=None, help="hostname to report (default: this machine's)")
    p.add_argument("--ui-color", default=d.ui_color)
    p.add_argument("--ui-message", default="")
    p.add_argument("--random-delay", action="store_true", help="random delay between min and max units")
    p.add_argument("--random-delay-min", type=int, default=d.random_delay_min)
    p.add_argument("--random-delay-max", type=int, default=d.random_delay_max)
    p.add_argument("--random-delay-unit", default=d.random_delay_unit, choices=sorted(_UNITS))
    p.add_argument("--random-error", action="store_true", help="1/3 chance of a 500, 400 or 409")
    p.add_argument("--latency-factor", type=float, default=1.0, help="stretch each request's time by F >= 1")
    p.add_argument("--error-rate", type=float, default=0.0, help="answer 500 with probability P")
    p.add_argument("--unhealthy", action="store_true", help="/healthz answers 503")
    p.add_argument("--unready", action="store_true", help="/readyz answers 503 until enabled")
    p.add_argument("--seed", type=int, default=None, help="seed for the fault generator")
    return p


def config_from_args(argv: Sequence[str] | None = None) -> PodinfoConfig:
    """Parse flags into a :class:`PodinfoConfig`; exits with status 2 and the flag's name when invalid."""
    p = parser()
    args = p.parse_args(argv)
    values = {k: v for k, v in vars(args).items() if v is not None}
    try:
        return PodinfoConfig(**values)
    except ConfigError as exc:
        p.error(str(exc))
        raise  # unreachable: error() exits


def main(argv: Sequence[str] | None = None) -> None:
    """Run the service until SIGTERM or SIGINT."""
    config = config_from_args(argv)
    # podinfo (client_golang) exposes no *_created series; keep the scrape the same shape.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    print(f"podinfo {config.version} listening on http://{config.host}:{config.port}", flush=True)
    runner = web.AppRunner(Podinfo(config).app(), access_log=None, shutdown_timeout=0.5)
    run_async(serve_until_signalled([(runner, config.host, config.port)]))


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
