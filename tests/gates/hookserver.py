"""Webhook servers on loopback for the gate tests: real HTTP, each path a behaviour.

``/ok`` 200, ``/accepted`` 202, ``/nocontent`` 204, ``/forbidden`` 403 (``Forbidden``, as
flagger-loadtester's closed gate), ``/flaky`` 503 for the first ``flaky`` calls then 200, ``/hang``
never answers before the test ends, ``/garbage`` writes bytes that are not HTTP and closes, ``/huge``
answers 500 with a megabyte of body. Every request's path and JSON body are kept.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class HookServer:
    url: str = ""
    flaky: int = 0
    calls: list[tuple[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def paths(self) -> list[str]:
        return [path for path, _body in self.calls]


def serve() -> Iterator[HookServer]:
    state = HookServer()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: bytes = b"") -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw
            path = self.path.split("?", 1)[0]
            state.calls.append((path, body))
            if path == "/ok":
                self._answer(200, b"OK")
            elif path == "/accepted":
                self._answer(202)
            elif path == "/nocontent":
                self._answer(204)
            elif path == "/forbidden":
                self._answer(403, b"Forbidden\n")
            elif path == "/flaky":
                if state.flaky > 0:
                    state.flaky -= 1
                    self._answer(503, b"upstream not ready")
                else:
                    self._answer(200, b"OK")
            elif path == "/hang":
                state.release.wait(30)
            elif path == "/garbage":
                self.wfile.write(b"\x00\x01 this is not HTTP\r\n\r\n")
                self.close_connection = True
            elif path == "/huge":
                self._answer(500, b"x" * (1 << 20))
            else:
                self._answer(404, b"no such hook")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        block_on_close = False

    httpd = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
