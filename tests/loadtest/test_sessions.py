"""``--sessions``: a share of the workers keep the cookies the target sets and send them back."""

from __future__ import annotations

import collections
import http.server
import threading
from collections.abc import Iterator

import pytest

from tests.loadtest.run import run_loadtest
from tests.support import free_port


class CookieTarget(http.server.ThreadingHTTPServer):
    """Sets ``sid=<n>`` on every answer to a request without it; counts the Cookie headers it saw."""

    daemon_threads = True

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.seen: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.sessions = 0


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: CookieTarget

    def do_GET(self) -> None:
        cookie = self.headers.get("Cookie") or ""
        with self.server.lock:
            self.server.seen[cookie] += 1
            new = "sid=" not in cookie
            if new:
                self.server.sessions += 1
                sid = self.server.sessions
        self.send_response(200)
        if new:
            self.send_header("Set-Cookie", f"sid={sid}; Max-Age=3600; Path=/")
            self.send_header("Set-Cookie", "gone=1; Max-Age=0")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def cookie_target() -> Iterator[CookieTarget]:
    server = CookieTarget(free_port())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_half_the_workers_keep_their_session_cookie(cookie_target: CookieTarget) -> None:
    url = f"http://127.0.0.1:{cookie_target.server_port}/"
    result = run_loadtest("-n", "40", "-c", "4", "--sessions", "0.5", "-H", "Cookie: canary=always", url)
    assert result.returncode == 0, result.stderr
    seen = cookie_target.seen
    # Two workers keep a session: one request each without sid, then nine with their own sid.
    with_sid = {cookie: n for cookie, n in seen.items() if "sid=" in cookie}
    assert sorted(with_sid.values()) == [9, 9]
    assert all(cookie.startswith("canary=always; sid=") for cookie in with_sid)
    assert not any("gone=" in cookie for cookie in seen)  # Max-Age=0 deletes
    # The other two never send a cookie back: every one of their requests starts a session.
    assert seen["canary=always"] == 40 - 18
    assert cookie_target.sessions == 2 + 20


def test_no_sessions_by_default_and_the_share_is_checked(cookie_target: CookieTarget) -> None:
    url = f"http://127.0.0.1:{cookie_target.server_port}/"
    assert run_loadtest("-n", "20", "-c", "2", url).returncode == 0
    assert set(cookie_target.seen) == {""} and cookie_target.sessions == 20
    bad = run_loadtest("-n", "20", "--sessions", "1.5", url)
    assert bad.returncode == 2
    assert "--sessions must be a share between 0 and 1" in bad.stderr
