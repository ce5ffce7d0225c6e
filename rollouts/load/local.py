"""Load on one machine: ``loadtest serve`` as a subprocess on loopback, driven through its API.

Running the same control API locally (instead of parsing the ``hey``-style report of a one-shot
``loadtest URL``) keeps one code path for the pod and the laptop; Locust stays in its own process
because importing it monkey-patches the interpreter with gevent.

The server never outlives the controller: it is started with ``--parent-pid`` (it exits when we
die, even by ``kill -9``), and it has a pid file so that a controller starting up stops the servers
a dead one left behind (:mod:`rollouts.load.pidfile`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from rollouts.load import pidfile
from rollouts.load.base import LoadRequest, LoadStats
from rollouts.load.errors import LoadUnavailableError
from rollouts.load.serve import ServeLoad


def default_command() -> list[str]:
    """The ``loadtest`` console script next to this interpreter (the same virtualenv), else on PATH."""
    beside = Path(sys.executable).with_name("loadtest")
    found = str(beside) if beside.exists() else shutil.which("loadtest")
    if found is None:
        raise LoadUnavailableError("the loadtest command is not installed (pip install -e .)")
    return [found, "serve"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


LOOPBACK = ("127.0.0.1", "localhost")


class LocalLoad:
    """Starts ``<command> --host 127.0.0.1 --port P --allow ...`` with a fresh token in
    ``$LOADTEST_TOKEN`` on first use, then behaves as :class:`ServeLoad`. ``allow`` is the target
    allowlist (host patterns or URL prefixes, as ``loadtest serve --allow``). ``close()`` stops the
    subprocess. ``pid_dir`` holds the servers' pid files (default :func:`pidfile.default_dir`); the
    servers there whose controller died are stopped before the first one of ours starts."""

    def __init__(
        self,
        command: list[str] | None = None,
        *,
        allow: tuple[str, ...] = LOOPBACK,
        startup_timeout: float = 20.0,
        pid_dir: Path | None = None,
    ) -> None:
        self._command = command
        self._allow = allow
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._client: ServeLoad | None = None
        self._pid_dir = pid_dir or pidfile.default_dir()
        self._pid_file: pidfile.PidFile | None = None
        self._reaped = False

    def _ensure(self) -> ServeLoad:
        if self._client is not None and self._process is not None and self._process.poll() is None:
            return self._client
        self.close()
        if not self._reaped:
            pidfile.reap_stale(self._pid_dir)
            self._reaped = True
        port, token = _free_port(), secrets.token_urlsafe(24)
        command = [*(self._command or default_command()), "--host", "127.0.0.1", "--port", str(port)]
        command += ["--parent-pid", str(os.getpid())]
        for pattern in self._allow:
            command += ["--allow", pattern]
        env = {**os.environ, "LOADTEST_TOKEN": token}
        try:
            self._process = subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        except OSError as exc:
            raise LoadUnavailableError(f"cannot start {command[0]}: {exc}") from exc
        self._pid_file = pidfile.record(self._pid_dir, self._process.pid, os.getpid())
        client = ServeLoad(f"http://127.0.0.1:{port}", token)
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = (
                    self._process.stderr.read().decode(errors="replace")[-500:]
                    if self._process.stderr
                    else ""
                )
                self._process = None
                self._forget_pid_file()
                raise LoadUnavailableError(f"loadtest serve exited at start: {err.strip()}")
            if client.healthy():
                self._client = client
                return client
            time.sleep(0.1)
        self.close()
        raise LoadUnavailableError(
            f"loadtest serve did not answer /healthz within {self._startup_timeout:.0f}s"
        )

    def start(self, request: LoadRequest) -> str | None:
        """Start the subprocess if needed, then ``POST /jobs``."""
        return self._ensure().start(request)

    def status(self, job: str | None) -> LoadStats | None:
        """``GET /jobs/{id}`` on the subprocess."""
        return self._ensure().status(job)

    def ensure_running(
        self, job: str | None, request: LoadRequest, *, renew_within: float = 0.0
    ) -> str | None:
        """``job`` while it runs, else a new one (after restarting the subprocess if it died)."""
        return self._ensure().ensure_running(job, request, renew_within=renew_within)

    def stop(self, job: str | None) -> LoadStats | None:
        """``DELETE /jobs/{id}`` (the subprocess keeps running for the next step)."""
        if self._client is None:
            return None
        return self._client.stop(job)

    def close(self) -> None:
        """Stop the subprocess (terminate, then kill after 5 s)."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
            if self._process.stderr is not None:
                self._process.stderr.close()
            self._process = None
        self._forget_pid_file()

    @property
    def pid(self) -> int | None:
        """The running server's pid (None before the first job or after ``close()``)."""
        return self._process.pid if self._process is not None else None

    def _forget_pid_file(self) -> None:
        if self._pid_file is not None:
            self._pid_file.remove()
            self._pid_file = None
