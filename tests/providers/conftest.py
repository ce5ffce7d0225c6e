"""Fixtures for the provider tests: a test PKI and a real Prometheus scraping itself."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from analyzer.prometheus import PrometheusClient
from rollouts.local.prometheus import PrometheusServer, ScrapeTarget
from tests.providers.servers import Pki, make_pki
from tests.support import require_binary


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A test CA, a server certificate for 127.0.0.1 and client certificates."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    """A real Prometheus scraping itself every second (its own HTTP metrics are the data)."""
    require_binary("prometheus", "apt-get install prometheus")
    with PrometheusServer(scrape_interval=1.0) as prom:
        prom.add_target(ScrapeTarget("self", f"127.0.0.1:{prom.port}", {"namespace": "test"}))
        prom.wait_for_targets(timeout=30)
        # Bounded wait until a few scrapes of /metrics were recorded, so that increase() over the
        # last seconds has samples to work with (the tests read windows ending a second ago).
        client = PrometheusClient(prom.url)
        query = 'prometheus_http_request_duration_seconds_count{handler="/metrics"} >= 3'
        deadline = time.monotonic() + 30
        while not client.query(query, time.time() - 2) and time.monotonic() < deadline:
            time.sleep(0.5)
        yield prom
