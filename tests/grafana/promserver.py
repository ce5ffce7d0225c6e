"""A real Prometheus on loopback for the dashboard tests (the Debian package ``prometheus``)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.support import free_port

STARTUP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Prometheus:
    """A running Prometheus and the one call the tests need."""

    url: str

    def query(self, expr: str) -> dict[str, Any]:
        """``GET /api/v1/query``: Prometheus' JSON answer, ``status`` "success" or "error"."""
        response = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        answer: dict[str, Any] = response.json()
        return answer


@contextmanager
def run_prometheus(binary: str, workdir: Path, scrape_configs: str = "") -> Iterator[Prometheus]:
    """Start Prometheus with an empty TSDB in ``workdir``; stop it on exit.

    ``scrape_configs`` (YAML under ``scrape_configs:``) is where scraped data comes in later: the
    same queries can then be required to return data, not only to parse.
    """
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        + (f"scrape_configs:\n{scrape_configs}" if scrape_configs else "")
    )
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited with {process.returncode}: see {workdir / 'prometheus.log'}"
                )
            try:
                if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus not ready after {STARTUP_TIMEOUT_S} s")
            time.sleep(0.1)
        yield Prometheus(url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
