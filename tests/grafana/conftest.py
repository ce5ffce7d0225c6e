"""Fixtures for the dashboard tests: a real Prometheus scraping the contract metrics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.grafana.contract_exporter import serve_contract_metrics
from tests.grafana.promserver import Prometheus, run_prometheus
from tests.support import free_port, require_binary

DATA_TIMEOUT_S = 30.0
# rate() needs two samples in its window, the commit annotation an increase between them.
READY_QUERIES = (
    'rate(istio_requests_total{reporter="destination"}[1m])',
    "increase(rollouts_commits_total[1m]) > 0",
    "rate(rollouts_analysis_duration_seconds_bucket[1m])",
)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A real Prometheus on loopback that has scraped the contract metrics a few times."""
    binary = require_binary("prometheus", "Debian package prometheus; `make system` installs it")
    workdir: Path = tmp_path_factory.mktemp("prometheus")
    with serve_contract_metrics(free_port()) as target:
        scrape = (
            "  - job_name: contract\n    scrape_interval: 500ms\n"
            f"    static_configs:\n      - targets: ['{target.address}']\n"
        )
        with run_prometheus(binary, workdir, scrape) as server:
            deadline = time.monotonic() + DATA_TIMEOUT_S
            while not all(server.query(q).get("data", {}).get("result") for q in READY_QUERIES):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"no scraped data after {DATA_TIMEOUT_S} s: {workdir / 'prometheus.log'}"
                    )
                time.sleep(0.25)
            yield server
