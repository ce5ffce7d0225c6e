"""A tiny JSON-over-HTTP server on loopback whose answers a test function computes.

The tests start it for the parts other helpers build or that live elsewhere (the local mesh's
``/status``, a ``loadtest serve``-conforming control API, an apprise ``json://`` receiver).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Request:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


Handler = Callable[[Request], tuple[int, Any]]


@dataclass
class JsonServer:
    """The running server: its URL and every request it saw."""

    url: str
    requests: list[Request] = field(default_factory=list)


def make_handler(handler: Handler, log: list[Request]) -> type[BaseHTTPRequestHandler]:
    """An ``http.server`` request handler class that answers through ``handler``, logging to ``log``."""
    lock = threading.Lock()

    class Http(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            request = Request(self.command, self.path, dict(self.headers.items()), body)
            with lock:
                log.append(request)
                status, answer = handler(request)
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815 (http.server's names)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Http


@contextmanager
def json_server(handler: Handler) -> Iterator[JsonServer]:
    """Serve ``handler`` on 127.0.0.1 (a free port) until the block ends."""
    log: list[Request] = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(handler, log))
    server = JsonServer(url=f"http://127.0.0.1:{httpd.server_address[1]}", requests=log)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
