"""The podinfo-compatible service: podinfo's endpoints, JSON shapes, metrics and faults."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from rollouts.local.podinfo import DEFAULT_BUCKETS, ConfigError, Podinfo, PodinfoConfig

Scenario = Callable[[TestClient[Any, Any]], Awaitable[Any]]


def run(config: PodinfoConfig, scenario: Scenario) -> Any:
    """Serve ``config`` on loopback and run ``scenario`` against it."""

    async def main() -> Any:
        async with TestClient(TestServer(Podinfo(config).app(), host="127.0.0.1")) as client:
            return await scenario(client)

    return asyncio.run(main())


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_endpoints_answer_podinfo_shapes():
    async def scenario(client):
        answers = {}
        for path in ("/version", "/api/info", "/", "/healthz", "/readyz", "/delay/0", "/status/418"):
            response = await client.get(path)
            answers[path] = (response.status, await response.text(), response.headers["Content-Type"])
        return answers

    answers = run(PodinfoConfig(version="1.2.3", revision="abc", hostname="podinfo-ga"), scenario)
    assert json.loads(answers["/version"][1]) == {"commit": "abc", "version": "1.2.3"}
    info = json.loads(answers["/api/info"][1])
    assert list(info) == [
        "hostname", "version", "revision", "color", "logo", "message",
        "goos", "goarch", "runtime", "num_goroutine", "num_cpu",
    ]  # fmt: skip
    assert info["hostname"] == "podinfo-ga"
    assert info["message"] == "greetings from podinfo v1.2.3"
    root = json.loads(answers["/"][1])
    assert {k: v for k, v in root.items() if k != "num_goroutine"} == {
        k: v for k, v in info.items() if k != "num_goroutine"
    }
    assert json.loads(answers["/healthz"][1]) == {"status": "OK"}
    assert json.loads(answers["/delay/0"][1]) == {"delay": 0}
    assert answers["/status/418"][0] == 418
    assert json.loads(answers["/status/418"][1]) == {"status": 418}
    assert answers["/version"][1].startswith('{\n  "commit"')  # podinfo pretty-prints
    assert answers["/version"][2].startswith("application/json")


def test_metrics_follow_podinfo_names_labels_and_buckets():
    async def scenario(client):
        for _ in range(3):
            await client.get("/api/info")
        await client.get("/status/503")
        await client.get("/no/such/route")
        return await (await client.get("/metrics")).text()

    got = samples(run(PodinfoConfig(), scenario))
    count = (
        "http_request_duration_seconds_count",
        (("method", "GET"), ("path", "api_info"), ("status", "200")),
    )
    assert got[count] == 3
    assert got[("http_requests_total", (("status", "200"),))] == 3
    assert got[("http_requests_total", (("status", "503"),))] == 1
    bounds = sorted(
        float(dict(labels)["le"])
        for (name, labels) in got
        if name == "http_request_duration_seconds_bucket" and dict(labels)["path"] == "api_info"
    )
    assert bounds == [*DEFAULT_BUCKETS, float("inf")]
    # as in podinfo, a request that matches no route is not counted
    assert not any(dict(labels).get("status") == "404" for _, labels in got)


def test_error_rate_one_fails_requests_but_not_probes_or_metrics():
    async def scenario(client):
        codes = [(await client.get("/api/info")).status for _ in range(5)]
        probes = [(await client.get(p)).status for p in ("/healthz", "/readyz", "/metrics")]
        return codes, probes

    codes, probes = run(PodinfoConfig(error_rate=1.0), scenario)
    assert codes == [500] * 5
    assert probes == [200, 200, 200]


def test_random_error_uses_podinfos_codes_about_a_third_of_the_time():
    async def scenario(client):
        return [(await client.get("/version")).status for _ in range(300)]

    codes = run(PodinfoConfig(random_error=True, seed=7), scenario)
    failed = [c for c in codes if c != 200]
    assert set(failed) <= {500, 400, 409}
    assert 60 <= len(failed) <= 140  # 1/3 of 300 = 100, binomial sd ~8


def test_random_delay_and_latency_factor_stretch_the_measured_time():
    async def scenario(client):
        for _ in range(5):
            await client.get("/version")
        text = await (await client.get("/metrics")).text()
        key = (
            "http_request_duration_seconds_sum",
            (("method", "GET"), ("path", "version"), ("status", "200")),
        )
        return samples(text)[key] / 5

    delay = {"random_delay": True, "random_delay_unit": "ms", "random_delay_min": 20, "random_delay_max": 21}
    plain = run(PodinfoConfig(**delay), scenario)
    slow = run(PodinfoConfig(**delay, latency_factor=3.0), scenario)
    assert 0.020 <= plain < 0.040
    assert 0.060 <= slow < 0.100


def test_readyz_disable_and_enable():
    async def scenario(client):
        before = (await client.get("/readyz")).status
        await client.post("/readyz/disable")
        during = (await client.get("/readyz")).status
        await client.post("/readyz/enable")
        return before, during, (await client.get("/readyz")).status

    assert run(PodinfoConfig(), scenario) == (200, 503, 200)


@pytest.mark.parametrize(
    ("options", "flag"),
    [
        ({"error_rate": 1.5}, "--error-rate"),
        ({"latency_factor": 0.5}, "--latency-factor"),
        ({"latency_factor": float("nan")}, "--latency-factor"),
        ({"random_delay": True, "random_delay_min": 5, "random_delay_max": 5}, "--random-delay-min"),
        ({"random_delay_unit": "h"}, "--random-delay-unit"),
        ({"port": 70000}, "--port"),
    ],
)
def test_bad_options_name_the_flag(options, flag):
    with pytest.raises(ConfigError, match=flag):
        PodinfoConfig(**options)


def test_command_line_rejects_bad_flag_with_exit_2():
    result = subprocess.run(
        [sys.executable, "-m", "rollouts.local.podinfo", "--error-rate", "2"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--error-rate" in result.stderr
