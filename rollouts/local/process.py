"""Child processes of the local stack: own process group, die with the parent, stopped cleanly.

``subprocess`` does the spawning; what it does not do is tie a child's life to ours. Every child
gets its own session (so a signal to its group reaches its own children too, and a Ctrl-C in the
terminal does not hit it twice) and, on Linux, ``PR_SET_PDEATHSIG`` so that it is killed when the
thread that started it dies, even by SIGKILL, which no ``atexit`` hook survives.

Caveat of ``PR_SET_PDEATHSIG``: it follows the starting *thread*, not the process. Start the stack
from a thread that lives as long as the stack should (the main thread, typically), not from a
short-lived worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from aiohttp import web

from rollouts.local.errors import (
    ProcessError,
)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ChildProcess:
    """One child process with its log file; ``stop()`` ends its whole process group.

    Use as a context manager, or call :meth:`stop` yourself; stopping twice is harmless.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = log_path.open("ab")
        try:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no locks touched
            )
        except OSError as exc:
            self._log.close()
            raise ProcessError(f"{name}: cannot start {self.argv[0]!r}: {exc}") from exc

    @property
    def pid(self) -> int:
        """The child's pid, which is also its process group id."""
        return self.popen.pid

    def running(self) -> bool:
        """True while the child has not exited."""
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the child's combined stdout and stderr."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_http(self, url: str, *, timeout: float = 15.0, interval: float = 0.05) -> None:
        """Block until ``url`` answers 200; ``ProcessError`` when the child exits or time runs out."""
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if not self.running():
                raise ProcessError(
                    f"{self.name} exited with code {self.popen.returncode} before {url} answered;"
                    f" log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=1.0) as response:
                    if response.status == 200:
                        return
                    last_error = f"HTTP {response.status}"
            except (urllib.error.URLError, OSError) as exc:
                last_error = str(exc)
            time.sleep(interval)
        self.stop()
        raise ProcessError(
            f"{self.name}: {url} not ready after {timeout:.0f}s ({last_error}); log {self.log_path}:\n"
            f"{self.log_tail()}"
        )

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the child's process group, SIGKILL it after ``timeout`` seconds, reap the child."""
        if self.popen.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout)
        else:
            # The leader is gone but grandchildren may still hold the group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        if not self._log.closed:
            self._log.close()

    def __enter__(self) -> ChildProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_async(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop when it is installed (it cut the mesh's added latency by about a
    quarter, docs/benchmarks/local-stack.md), else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


async def serve_until_signalled(runners: Sequence[tuple[web.BaseRunner, str, int]]) -> None:
    """Serve aiohttp apps on (runner, host, port) until SIGTERM or SIGINT, then clean up."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        for runner, host, port in runners:
            await runner.setup()
            await web.TCPSite(runner, host, port).start()
        await stop.wait()
    finally:
        for runner, _, _ in reversed(runners):
            await runner.cleanup()


def python_module(module: str, *args: str) -> list[str]:
    """argv that runs ``python -m module args...`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the caller must tolerate a lost race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


# The errors are defined in errors.py and raised here: importable from here too.
__all__ = ["ChildProcess", "ProcessError", "free_port", "python_module", "run_async", "serve_until_signalled"]
