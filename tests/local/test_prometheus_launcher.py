"""The Prometheus launcher: finds the binary, scrapes its targets every second, leaves nothing behind."""

from __future__ import annotations

import json
import os
import time
import urllib.request

import pytest

from rollouts.local.prometheus import (
    PrometheusNotFoundError,
    PrometheusServer,
    ScrapeTarget,
    find_prometheus,
    render_config,
)
from tests.support import require_binary


def query(url: str, promql: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/api/v1/query?query={urllib.parse.quote(promql)}", timeout=5) as r:
        return json.load(r)["data"]["result"]


def test_scrapes_targets_every_second_and_cleans_up():
    require_binary("prometheus")
    with PrometheusServer(scrape_interval=1.0) as prom:
        # Prometheus scraping itself: a real target with a known metric.
        prom.add_target(ScrapeTarget("self", f"127.0.0.1:{prom.port}", {"role": "test"}))
        prom.wait_for_targets(timeout=15)
        time.sleep(2.5)
        result = query(prom.url, 'count_over_time(up{job="self", role="test"}[2s])')
        pid = prom._process.pid  # type: ignore[union-attr]
        directory = prom.directory
        assert prom.url.startswith("http://127.0.0.1:")
    assert result and float(result[0]["value"][1]) >= 2  # at least two scrapes in two seconds
    assert not directory.exists()
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the whole process group is gone


def test_missing_binary_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("PROMETHEUS_BINARY", raising=False)
    with pytest.raises(PrometheusNotFoundError, match="apt-get install prometheus"):
        find_prometheus()
    with pytest.raises(PrometheusNotFoundError, match="not an executable"):
        find_prometheus(tmp_path / "nope")


def test_config_scrapes_every_second_from_the_targets_file(tmp_path):
    config = json.loads(render_config(tmp_path / "targets.json", 1.0))
    assert config["global"]["scrape_interval"] == "1000ms"
    assert config["scrape_configs"][0]["file_sd_configs"][0]["files"] == [str(tmp_path / "targets.json")]


@pytest.mark.parametrize(
    ("args", "message"),
    [(("x", "localhost"), "host:port"), (("x", "127.0.0.1:1", {"job": "y"}), "reserved")],
)
def test_bad_targets_are_rejected(args, message):
    with pytest.raises(ValueError, match=message):
        ScrapeTarget(*args)
