"""A Kubernetes API server made of recorded responses, served over HTTP on loopback.

No API server can run on the test machines. The controller's Kubernetes layer is thin, so it is
tested against real-shaped responses recorded from clusters (``recorded/*.json``: method, path,
status and body), served by method and path to the real ``kubernetes`` client through a kubeconfig
that points here. Two resources need state and get a tiny handler of their own:

* ``coordination.k8s.io/v1`` Leases: create (409 AlreadyExists), read (404), replace with
  ``resourceVersion`` optimistic concurrency (409 Conflict), as the API server does;
* ``core/v1`` Events: created Events are kept for the test to read.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RECORDED = Path(__file__).parent / "recorded"
TOKEN = "recorded-api-token"

_LEASES = re.compile(r"^/apis/coordination\.k8s\.io/v1/namespaces/([^/]+)/leases(?:/([^/]+))?$")
_EVENTS = re.compile(r"^/api/v1/namespaces/([^/]+)/events$")


def status_body(code: int, reason: str, message: str, kind: str = "", name: str = "") -> dict[str, Any]:
    """A ``Status`` object as the API server answers errors."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if kind or name:
        body["details"] = {"name": name, "kind": kind}
    return body


@dataclass
class RecordedApiServer:
    """The recorded responses plus the stateful Lease and Event handlers; thread-safe."""

    responses: dict[tuple[str, str], list[tuple[int, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    leases: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    unavailable: bool = False  # True: every request answers 503, as an API server that is down
    _version: int = 1000

    def load(self, directory: Path = RECORDED) -> None:
        """Serve every recorded response in ``directory``."""
        for path in sorted(directory.glob("*.json")):
            record = json.loads(path.read_text())
            self.set(record["method"], record["path"], record["body"], status=record.get("status", 200))

    def set(self, method: str, path: str, *bodies: Any, status: int = 200) -> None:
        """Answer ``method path`` with ``bodies`` in turn; the last one stays."""
        with self.lock:
            self.responses[(method.upper(), path)] = [(status, copy.deepcopy(b)) for b in bodies]

    def recorded(self, method: str, path: str) -> Any:
        """A deep copy of the (first) body recorded for ``method path``, for tests to derive from."""
        with self.lock:
            return copy.deepcopy(self.responses[(method.upper(), path)][0][1])

    def next_version(self) -> str:
        self._version += 1
        return str(self._version)

    # -- dispatch ------------------------------------------------------------------------------

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        with self.lock:
            self.requests.append((method, path))
            if self.unavailable:
                return 503, status_body(
                    503, "ServiceUnavailable", "the server is currently unable to handle the request"
                )
            if match := _LEASES.match(path):
                return self._lease(method, match.group(1), match.group(2), body)
            if (match := _EVENTS.match(path)) and method == "POST":
                return self._event(match.group(1), body)
            queue = self.responses.get((method, path))
            if not queue:
                name = path.rsplit("/", 1)[-1]
                return 404, status_body(404, "NotFound", f'"{name}" not found', name=name)
            status, answer = queue[0] if len(queue) == 1 else queue.pop(0)
            return status, copy.deepcopy(answer)

    def _lease(self, method: str, namespace: str, name: str | None, body: Any) -> tuple[int, Any]:
        if method == "POST" and name is None:
            name = body["metadata"]["name"]
            if (namespace, name) in self.leases:
                msg = f'leases.coordination.k8s.io "{name}" already exists'
                return 409, status_body(409, "AlreadyExists", msg, "leases", name)
            stored = copy.deepcopy(body)
            stored.setdefault("apiVersion", "coordination.k8s.io/v1")
            stored.setdefault("kind", "Lease")
            stored["metadata"].update(
                namespace=namespace,
                uid=str(uuid.uuid4()),
                resourceVersion=self.next_version(),
                creationTimestamp="2026-11-29T19:00:00Z",
            )
            self.leases[(namespace, name)] = stored
            return 201, copy.deepcopy(stored)
        if name is None:
            return 405, status_body(405, "MethodNotAllowed", "method not allowed")
        current = self.leases.get((namespace, name))
        if current is None:
            return 404, status_body(
                404, "NotFound", f'leases.coordination.k8s.io "{name}" not found', "leases", name
            )
        if method == "GET":
            return 200, copy.deepcopy(current)
        if method == "PUT":
            sent = (body.get("metadata") or {}).get("resourceVersion")
            if sent and sent != current["metadata"]["resourceVersion"]:
                msg = (
                    f'Operation cannot be fulfilled on leases.coordination.k8s.io "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again"
                )
                return 409, status_body(409, "Conflict", msg, "leases", name)
            stored = copy.deepcopy(body)
            stored["metadata"] = {**current["metadata"], "resourceVersion": self.next_version()}
            stored.setdefault("apiVersion", "coordination.k8s.io/v1")
            stored.setdefault("kind", "Lease")
            self.leases[(namespace, name)] = stored
            return 200, copy.deepcopy(stored)
        if method == "DELETE":
            del self.leases[(namespace, name)]
            return 200, status_body(200, "", "deleted") | {"status": "Success"}
        return 405, status_body(405, "MethodNotAllowed", "method not allowed")

    def _event(self, namespace: str, body: Any) -> tuple[int, Any]:
        stored = copy.deepcopy(body)
        stored.setdefault("apiVersion", "v1")
        stored.setdefault("kind", "Event")
        stored["metadata"].update(
            namespace=namespace, uid=str(uuid.uuid4()), resourceVersion=self.next_version()
        )
        self.events.append(stored)
        return 201, copy.deepcopy(stored)


def _handler(state: RecordedApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                status, answer = 401, status_body(401, "Unauthorized", "Unauthorized")
            else:
                body = json.loads(raw) if raw else None
                status, answer = state.handle(self.command, self.path.split("?", 1)[0], body)
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815 (http.server's names)

        def log_message(self, format: str, *args: Any) -> None:  # keep pytest output quiet
            pass

    return Handler


def write_kubeconfig(path: Path, server: str, token: str = TOKEN) -> Path:
    """A kubeconfig with one context pointing at ``server`` with a bearer token."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "recorded", "cluster": {"server": server}}],
        "users": [{"name": "controller", "user": {"token": token}}],
        "contexts": [{"name": "recorded", "context": {"cluster": "recorded", "user": "controller"}}],
        "current-context": "recorded",
    }
    path.write_text(json.dumps(config))
    return path


@dataclass
class RunningApi:
    """A running recorded API server: its state, URL and a kubeconfig file for it."""

    state: RecordedApiServer
    url: str
    kubeconfig: Path


def serve(tmp_path: Path) -> Iterator[RunningApi]:
    """Start the server on 127.0.0.1 (a free port), yield it, stop it."""
    state = RecordedApiServer()
    state.load()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield RunningApi(state, url, write_kubeconfig(tmp_path / "kubeconfig", url))
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
