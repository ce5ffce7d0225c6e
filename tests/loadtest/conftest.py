"""Fixtures: a real HTTP target on loopback, and the ``loadtest`` command as a subprocess."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.loadtest.target import Target
from tests.support import free_port


@pytest.fixture
def target() -> Iterator[Target]:
    """A keep-alive HTTP target on 127.0.0.1 that counts the requests it answered."""
    server = Target(free_port()).start()
    yield server
    server.stop()


def run_loadtest(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``loadtest ARGS`` in its own process (Locust must never be imported by the test process)."""
    return subprocess.run(
        [sys.executable, "-m", "loadtest", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
