"""The ``loadtest`` command as a subprocess (Locust must never be imported by the test process)."""

from __future__ import annotations

import subprocess
import sys


def run_loadtest(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``loadtest ARGS`` in its own process (Locust must never be imported by the test process)."""
    return subprocess.run(
        [sys.executable, "-m", "loadtest", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
