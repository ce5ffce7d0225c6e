"""The podinfo-compatible service: podinfo's endpoints, JSON shapes, metrics and faults."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from rollouts.local.podinfo import (
    DEFAULT_BUCKETS,
    ConfigError,
    Podinfo,
    PodinfoConfig,
    config_from_args,
    go_float,
)
from tests.support import free_port

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


# -- fidelity to podinfo (read from stefanprodan/podinfo: pkg/api/http/*.go, cmd/podinfo/main.go) ---


def test_bucket_bounds_are_spelled_as_gos_client_writes_them():
    """Regression: ``le="1.0"`` where podinfo writes ``le="1"`` (two series on Prometheus 2.x)."""

    async def scenario(client):
        await client.get("/version")
        return await (await client.get("/metrics")).text()

    text = run(PodinfoConfig(), scenario)
    les = re.findall(r'http_request_duration_seconds_bucket\{le="([^"]+)",method="GET",path="version"', text)
    assert les == ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]


@pytest.mark.parametrize(
    ("value", "go"),
    [
        (1.0, "1"), (10.0, "10"), (0.005, "0.005"), (2.5, "2.5"), (1e6, "1e+06"), (100000.0, "100000"),
        (1e-05, "1e-05"), (0.0001, "0.0001"), (1.5e-07, "1.5e-07"), (123456789.0, "1.23456789e+08"),
        (-2.0, "-2"), (float("inf"), "+Inf"), (0.1 + 0.2, "0.30000000000000004"), (0.0, "0"),
    ],
)  # fmt: skip
def test_go_float_matches_strconv_format_float_g_shortest(value, go):
    assert go_float(value) == go


def test_head_is_405_and_not_counted_like_podinfo():
    """Regression: HEAD answered 200 and was counted (gorilla/mux routes GET only: 405)."""

    async def scenario(client):
        head = await client.head("/api/info")
        post = await client.post("/version")
        echo = await client.head("/echo")  # /echo takes any method in podinfo
        metrics = await (await client.get("/metrics")).text()
        return head.status, post.status, await post.text(), echo.status, metrics

    head, post, post_body, echo, metrics = run(PodinfoConfig(), scenario)
    assert (head, post, post_body, echo) == (405, 405, "", 202)
    got = samples(metrics)
    assert not any(dict(labels).get("status") == "405" for _, labels in got)
    assert (
        got[
            ("http_request_duration_seconds_count", (("method", "HEAD"), ("path", "echo"), ("status", "202")))
        ]
        == 1
    )


def test_status_echoes_any_code_go_can_write_and_drops_the_rest():
    """Regression: ``/status/600`` answered 400; podinfo echoes it (Go writes 100-999)."""

    async def scenario(client):
        out = {}
        for code in (600, 999, 418, 201):
            response = await client.get(f"/status/{code}")
            out[code] = (response.status, response.reason, json.loads(await response.text()))
        put = (await client.put("/status/503")).status
        dropped = []
        for path in ("/status/1000", "/status/0", "/status/99999999999999999999"):
            try:
                await client.get(path)
                dropped.append(False)
            except aiohttp.ClientError:
                dropped.append(True)
        return out, put, dropped

    out, put, dropped = run(PodinfoConfig(), scenario)
    assert out[600] == (600, "status code 600", {"status": 600})
    assert out[999][0] == 999 and out[418][:2] == (418, "I'm a Teapot") and out[201][2] == {"status": 201}
    assert put == 503
    assert dropped == [True, True, True]  # Go's WriteHeader panics outside 100-999: no answer


def test_env_headers_echo_and_fault_injection(monkeypatch):
    monkeypatch.setenv("PODINFO_UI_COLOR", "#123456")
    monkeypatch.setenv("SECRET_TOKEN", "do-not-show")

    async def scenario(client):
        env = json.loads(await (await client.get("/env")).text())
        headers = json.loads(await (await client.get("/headers", headers={"x-request-id": "abc"})).text())
        echo = await client.post("/api/echo", data=b"\x00payload")
        echo_body = await echo.read()
        enabled = await client.post("/fault_injection/enable")
        faulted = (await client.get("/version")).status, (await client.get("/healthz")).status
        status = json.loads(await (await client.get("/fault_injection/status")).text())
        await client.post("/fault_injection/disable")
        return (
            env,
            headers,
            echo.status,
            echo.headers,
            echo_body,
            enabled.status,
            faulted,
            status,
            (await client.get("/version")).status,
        )

    env, headers, echo, echo_headers, echo_body, enabled, faulted, status, after = run(
        PodinfoConfig(version="6.5.1", ui_color="#ff0000"), scenario
    )
    assert "PODINFO_UI_COLOR=#123456" in env and not any("do-not-show" in e for e in env)
    assert headers["X-Request-Id"] == ["abc"] and headers["X-Api-Version"] == ["6.5.1"]
    assert "Host" not in headers
    assert echo == 202 and echo_body == b"\x00payload"
    assert echo_headers["Content-Type"] == "application/octet-stream" and echo_headers["X-Color"] == "#ff0000"
    assert enabled == 202 and faulted == (500, 200) and status == {"fault_injection": "enabled"}
    assert after == 200


def test_panic_drops_the_connection_and_fails_the_probes_without_exiting():
    async def scenario(client):
        try:
            await client.get("/panic")
            answered = True
        except aiohttp.ClientError:
            answered = False
        probes = (await client.get("/healthz")).status, (await client.get("/readyz")).status
        served = (await client.get("/version")).status
        return answered, probes, served

    assert run(PodinfoConfig(), scenario) == (False, (503, 503), 200)


def test_custom_metrics_move_with_their_flags_and_endpoints():
    async def scenario(client):
        for _ in range(50):
            await client.get("/version")
        before = samples(await (await client.get("/metrics")).text())
        assert (await client.post("/fault/queue_depth/42")).status == 202
        assert (await client.post("/fault/cache_miss_rate/0")).status == 202
        assert (await client.post("/fault/cache_miss_rate/1.5")).status == 400
        for _ in range(20):
            await client.get("/version")
        after = samples(await (await client.get("/metrics")).text())
        return before, after

    before, after = run(PodinfoConfig(queue_depth=7, cache_miss_rate=1.0), scenario)
    assert before[("podinfo_queue_depth", ())] == 7
    assert before[("podinfo_cache_misses_total", ())] == 50  # every request missed
    assert after[("podinfo_queue_depth", ())] == 42
    assert after[("podinfo_cache_misses_total", ())] == 50  # rate 0 since: no more misses
    # the control endpoints are not podinfo's traffic: never in the request metrics
    assert not any(dict(labels).get("path", "").startswith("fault") for _, labels in after)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["-port=9898", "--random-delay=false", "--random-error=false"],
            {"port": 9898, "random_delay": False},
        ),
        (
            ["--port=9899", "--random-delay=true", "-random-delay-unit=ms"],
            {"port": 9899, "random_delay": True},
        ),
        (
            ["-port", "9000", "--random-error=1", "--ui-color=#ff0000"],
            {"random_error": True, "ui_color": "#ff0000"},
        ),
        (["--queue-depth=3", "--cache-miss-rate=0.25"], {"queue_depth": 3.0, "cache_miss_rate": 0.25}),
    ],
)
def test_podinfos_go_style_flags_are_accepted(argv, expected):
    """Regression: ``-port=9898`` and ``--random-delay=false`` (the guide's and Flagger's) were errors."""
    config = config_from_args(argv)
    assert {k: getattr(config, k) for k in expected} == expected


def test_podinfo_flags_we_do_not_implement_are_ignored_with_one_warning(capsys):
    # Flagger's podinfo Deployment, word for word
    argv = ["--port=9898", "--port-metrics=9797", "--grpc-port=9999", "--grpc-service-name=podinfo",
            "--level=info", "--random-delay=false", "--random-error=false"]  # fmt: skip
    argv += ["--h2c=false", "--h2c"]
    config = config_from_args(argv)
    assert (config.port, config.port_metrics, config.random_delay) == (9898, 9797, False)
    err = capsys.readouterr().err
    assert err.count("warning") == 1
    assert "--grpc-port" in err and "--level" in err and "--h2c" in err and "--port-metrics" not in err


def test_a_bad_go_boolean_and_version_alone():
    with pytest.raises(SystemExit) as exc:
        config_from_args(["--random-delay=maybe"])
    assert exc.value.code == 2
    result = subprocess.run(
        [sys.executable, "-m", "rollouts.local.podinfo", "--version"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout.strip() == "6.5.0"
    assert config_from_args(["--version", "1.2.3"]).version == "1.2.3"
    assert config_from_args(["-version=1.2.4"]).version == "1.2.4"


def test_port_metrics_serves_the_same_registry_on_its_own_port():
    port, metrics_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rollouts.local.podinfo", f"-port={port}", f"--port-metrics={metrics_port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=1).read()
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        assert 'path="version",status="200"} 1.0' in text
        assert urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/healthz", timeout=5).read() == b"OK"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
