"""Load stays on for a whole step: ``ensure_running`` against a real ``loadtest serve`` subprocess."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rollouts.load import LoadRequest, LocalLoad, NoLoad


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def target() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _state(load: LocalLoad, job: str | None) -> str:
    stats = load.status(job)
    assert stats is not None
    return stats.state


def test_a_finished_job_is_replaced_and_a_running_one_kept(target: str) -> None:
    load = LocalLoad()
    try:
        request = LoadRequest(target=target, duration=1.0, rate=20.0)
        first = load.ensure_running(None, request)
        assert first is not None and _state(load, first) == "running"
        assert load.ensure_running(first, LoadRequest(target=target, duration=60.0, rate=20.0)) == first
        deadline = time.monotonic() + 15
        while _state(load, first) == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _state(load, first) != "running"  # the job's duration ran out: the step would lose load
        second = load.ensure_running(first, request)
        assert second not in (None, first) and _state(load, second) == "running"
        # Close to its end (less than renew_within left): handed over before it ends, not after.
        third = load.ensure_running(second, request, renew_within=5.0)
        assert third not in (None, second) and _state(load, third) == "running"
        assert _state(load, second) != "running"
        # A job the endpoint does not know (it restarted) is replaced, not an error.
        fourth = load.ensure_running("no-such-job", LoadRequest(target=target, duration=60.0, rate=20.0))
        assert fourth is not None and _state(load, fourth) == "running"
        load.stop(fourth)
    finally:
        load.close()


def test_no_load_keeps_nothing_running() -> None:
    assert NoLoad().ensure_running(None, LoadRequest(target="http://127.0.0.1:9/", duration=1)) is None
