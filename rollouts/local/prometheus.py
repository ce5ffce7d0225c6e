"""Start a real Prometheus for the local stack and the tests.

:class:`PrometheusServer` finds the ``prometheus`` binary (argument, ``$PROMETHEUS_BINARY`` or
``PATH``), writes a config that scrapes every target once a second, keeps its TSDB in a temporary
directory, listens on a free port on 127.0.0.1, waits for ``/-/ready`` and, on exit, kills its
process group and removes the directory.

Targets live in a file-based service discovery file, so they can change while Prometheus runs
(:meth:`PrometheusServer.set_targets`): the controller and the load generator start after the
services, and Prometheus picks them up within a second without a restart.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from rollouts.local.errors import ProcessError, PrometheusNotFoundError
from rollouts.local.process import ChildProcess, free_port

#: Install hint shown when the binary is missing.
INSTALL_HINT = "install it with 'apt-get install prometheus' or point $PROMETHEUS_BINARY at it"


@dataclass(frozen=True)
class ScrapeTarget:
    """One endpoint Prometheus scrapes: ``job`` and extra ``labels`` are attached to its series."""

    job: str
    address: str  # host:port
    labels: Mapping[str, str] = field(default_factory=dict)
    metrics_path: str = "/metrics"

    def __post_init__(self) -> None:
        host, _, port = self.address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"scrape target {self.job!r}: address must be host:port, got {self.address!r}")
        for name in self.labels:
            if name.startswith("__") or name in {"job", "instance"}:
                raise ValueError(f"scrape target {self.job!r}: label {name!r} is reserved")

    def to_file_sd(self) -> dict[str, object]:
        """This target as one entry of a Prometheus ``file_sd`` JSON file."""
        labels = {**self.labels, "job": self.job, "__metrics_path__": self.metrics_path}
        return {"targets": [self.address], "labels": labels}


def find_prometheus(binary: str | os.PathLike[str] | None = None) -> Path:
    """Path of the Prometheus binary: ``binary``, else ``$PROMETHEUS_BINARY``, else ``PATH``."""
    candidate = str(binary) if binary is not None else os.environ.get("PROMETHEUS_BINARY")
    if candidate:
        path = Path(candidate)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        found = shutil.which(candidate)
        if found:
            return Path(found)
        raise PrometheusNotFoundError(
            f"prometheus binary {candidate!r} is not an executable file; {INSTALL_HINT}"
        )
    found = shutil.which("prometheus")
    if found is None:
        raise PrometheusNotFoundError(f"prometheus not found on PATH; {INSTALL_HINT}")
    return Path(found)


def render_config(targets_file: Path, scrape_interval: float) -> str:
    """The Prometheus config: one job discovering its targets from ``targets_file``."""
    interval = f"{int(scrape_interval * 1000)}ms"
    # JSON is valid YAML; writing it this way needs no YAML emitter and no quoting rules.
    config = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": "local",
                "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "1s"}],
            }
        ],
    }
    return json.dumps(config, indent=2) + "\n"


class PrometheusServer:
    """A Prometheus process on 127.0.0.1 with a temporary TSDB; a context manager.

    >>> with PrometheusServer([ScrapeTarget("podinfo", "127.0.0.1:9898")]) as prom:  # doctest: +SKIP
    ...     print(prom.url)
    """

    def __init__(
        self,
        targets: Iterable[ScrapeTarget] = (),
        *,
        binary: str | os.PathLike[str] | None = None,
        scrape_interval: float = 1.0,
        port: int | None = None,
        workdir: Path | None = None,
        ready_timeout: float = 30.0,
    ) -> None:
        if not 0.1 <= scrape_interval <= 60:
            raise ValueError(f"scrape_interval must be 0.1-60 seconds, got {scrape_interval}")
        self.binary = find_prometheus(binary)
        self.scrape_interval = scrape_interval
        self.ready_timeout = ready_timeout
        self._targets: list[ScrapeTarget] = list(targets)
        self._requested_port = port
        self._parent_dir = workdir
        self._dir: Path | None = None
        self._process: ChildProcess | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``."""
        if self._process is None:
            raise RuntimeError("Prometheus is not running: use it as a context manager or call start()")
        return f"http://127.0.0.1:{self.port}"

    @property
    def directory(self) -> Path:
        """The working directory: config, targets file, TSDB and log."""
        if self._dir is None:
            raise RuntimeError("Prometheus is not running")
        return self._dir

    @property
    def targets(self) -> tuple[ScrapeTarget, ...]:
        """The targets scraped now."""
        return tuple(self._targets)

    def set_targets(self, targets: Iterable[ScrapeTarget]) -> None:
        """Replace the scraped targets; Prometheus picks the change up within about a second."""
        self._targets = list(targets)
        if self._dir is not None:
            self._write_targets()

    def add_target(self, target: ScrapeTarget) -> None:
        """Scrape one more target."""
        self.set_targets([*self._targets, target])

    def _write_targets(self) -> None:
        path = self.directory / "targets.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([t.to_file_sd() for t in self._targets], indent=2))
        tmp.replace(path)  # atomic: Prometheus never reads half a file

    def start(self, *, wait_for_targets: bool = True) -> PrometheusServer:
        """Start Prometheus and wait until it is ready and, unless told not to, has scraped every
        target once; ``ProcessError`` with its log when it fails."""
        if self._process is not None:
            return self
        self._dir = Path(tempfile.mkdtemp(prefix="rollouts-prometheus-", dir=self._parent_dir))
        try:
            (self._dir / "data").mkdir()
            self._write_targets()
            config = self._dir / "prometheus.yml"
            config.write_text(render_config(self._dir / "targets.json", self.scrape_interval))
            # A free port can be taken between our probe and Prometheus' bind: retry that case only.
            attempts = 1 if self._requested_port else 3
            for attempt in range(attempts):
                self.port = self._requested_port or free_port()
                argv = [
                    str(self.binary),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self._dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1d",
                    "--log.level=warn",
                ]
                process = ChildProcess("prometheus", argv, self._dir / "prometheus.log")
                self._process = process
                try:
                    process.wait_http(f"{self.url}/-/ready", timeout=self.ready_timeout)
                    if wait_for_targets and self._targets:
                        self.wait_for_targets(timeout=self.ready_timeout)
                    return self
                except ProcessError:
                    process.stop()
                    self._process = None
                    if attempt == attempts - 1 or "address already in use" not in process.log_tail():
                        raise
            raise AssertionError("unreachable")  # pragma: no cover
        except BaseException:
            self.stop()
            raise

    def wait_for_targets(self, timeout: float = 30.0) -> None:
        """Block until every configured target has been scraped at least once (up or down).

        Prometheus' discovery hands new targets to the scrape loop at most every 5 seconds, so a
        target added now starts producing series only after that; callers that need the data wait.
        """
        wanted = {t.address for t in self._targets}
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/api/v1/targets?state=active", timeout=2) as r:
                    active = json.load(r)["data"]["activeTargets"]
            except (OSError, ValueError, KeyError):
                active = []
            seen = {t["discoveredLabels"].get("__address__", "") for t in active if t["health"] != "unknown"}
            if wanted <= seen:
                return
            time.sleep(0.1)
        raise ProcessError(f"prometheus: targets {sorted(wanted - seen)} not scraped after {timeout:.0f}s")

    def stop(self) -> None:
        """Stop Prometheus (its whole process group) and remove the working directory."""
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


__all__ = [
    "ProcessError",
    "PrometheusNotFoundError",
    "PrometheusServer",
    "ScrapeTarget",
    "find_prometheus",
    "render_config",
]
