"""The load drivers against a server conforming to the ``loadtest serve`` contract."""

from __future__ import annotations

import sys
import time

import pytest

from rollouts.load import (
    LoadRejectedError,
    LoadRequest,
    LoadUnavailableError,
    LocalLoad,
    NoLoad,
    ServeLoad,
)
from tests.fixtures.httpjson import json_server
from tests.load.conforming_serve import ConformingServe
from tests.support import free_port

TARGET = "http://127.0.0.1:9898/"


def test_start_status_stop_round_trip() -> None:
    app = ConformingServe(token="s3cret")
    with json_server(app) as server:
        load = ServeLoad(server.url, "s3cret")
        job = load.start(LoadRequest(target=TARGET, duration=60, rate=25))
        assert job == "job-0"
        running = load.status(job)
        assert running is not None and running.state == "running" and running.requests == 10
        final = load.stop(job)
        assert final is not None and final.state == "stopped"
        assert "job-0 stopped: 10 requests, 0 errors, 25.0 rps" in final.describe()
        assert load.stop("job-0") is not None  # stopping twice answers the final figures again
        assert load.stop("unknown") is None  # a job that is gone is not an error
        load.close()
    post = next(r for r in server.requests if r.method == "POST")
    assert post.body == {
        "target": TARGET,
        "rate": 25,
        "concurrency": None,
        "duration": 60,
        "method": "GET",
        "headers": {},
    }
    assert post.headers["Authorization"] == "Bearer s3cret"


@pytest.mark.parametrize(
    ("token", "target", "status", "words"),
    [
        ("wrong", TARGET, 401, "wrong or missing token"),
        ("s3cret", "http://example.com/", 403, "outside the allowlist"),
    ],
)
def test_refusals_are_rejections(token: str, target: str, status: int, words: str) -> None:
    with (
        json_server(ConformingServe(token="s3cret")) as server,
        pytest.raises(LoadRejectedError, match=words) as info,
    ):
        ServeLoad(server.url, token).start(LoadRequest(target=target, duration=10))
    assert info.value.status == status


def test_too_many_jobs_is_a_rejection() -> None:
    with json_server(ConformingServe(token="t", max_jobs=1)) as server:
        load = ServeLoad(server.url, "t")
        load.start(LoadRequest(target=TARGET, duration=10))
        with pytest.raises(LoadRejectedError, match="429 too many jobs"):
            load.start(LoadRequest(target=TARGET, duration=10))


def test_endpoint_down_is_unavailable_not_rejected() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(LoadUnavailableError, match="unreachable"):
        ServeLoad(url, "t", timeout=1).start(LoadRequest(target=TARGET, duration=10))


def test_server_errors_and_garbage_are_unavailable() -> None:
    with (
        json_server(lambda _: (503, {})) as server,
        pytest.raises(LoadUnavailableError, match="answered 503"),
    ):
        ServeLoad(server.url, "t").start(LoadRequest(target=TARGET, duration=10))
    with (
        json_server(lambda _: (201, {"no": "id"})) as server,
        pytest.raises(LoadUnavailableError, match="not a load"),
    ):
        ServeLoad(server.url, "t").start(LoadRequest(target=TARGET, duration=10))


def test_no_load_drives_nothing() -> None:
    load = NoLoad()
    job = load.start(LoadRequest(target=TARGET, duration=10))
    assert job is None and load.status(job) is None and load.stop(job) is None


def test_local_subprocess_driver() -> None:
    command = [sys.executable, "-m", "tests.load.conforming_serve"]
    load = LocalLoad(command, startup_timeout=20)
    try:
        job = load.start(LoadRequest(target=TARGET, duration=30))
        first = load.status(job)
        assert first is not None and first.state == "running"
        final = load.stop(job)
        assert final is not None and final.state == "stopped"
        process = load._process
        assert process is not None and process.poll() is None
    finally:
        load.close()
    assert process.poll() is not None  # the subprocess is gone


def test_local_driver_reports_a_command_that_dies() -> None:
    load = LocalLoad([sys.executable, "-c", "import sys; sys.exit('no serve here')"], startup_timeout=10)
    with pytest.raises(LoadUnavailableError, match="no serve here"):
        load.start(LoadRequest(target=TARGET, duration=30))
    load.close()


def test_local_driver_with_the_real_loadtest_serve() -> None:
    hits: list[str] = []

    def target(request):
        hits.append(request.path)
        return 200, {"ok": True}

    with json_server(target) as service:
        load = LocalLoad(startup_timeout=30)
        try:
            job = load.start(LoadRequest(target=service.url + "/", duration=30, rate=40))
            deadline = time.monotonic() + 15
            stats = load.status(job)
            while stats is not None and stats.requests < 5 and time.monotonic() < deadline:
                time.sleep(0.2)
                stats = load.status(job)
            final = load.stop(job)
        finally:
            load.close()
    assert stats is not None and stats.requests >= 5, stats
    assert final is not None and final.state in {"stopped", "finished"}
    assert len(hits) >= 5
    with pytest.raises(LoadRejectedError, match="403"):
        # outside the loopback allowlist the real server refuses, as the contract says
        load2 = LocalLoad(startup_timeout=30)
        try:
            load2.start(LoadRequest(target="http://example.com/", duration=5))
        finally:
            load2.close()
