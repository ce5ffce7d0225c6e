"""Flux's objects served by a recorded-response API server on loopback, with merge-patch semantics.

``recorded/*.json`` are a GitRepository and a Kustomization as a cluster returns them. GET answers
them; PATCH with ``application/merge-patch+json`` merges the body into the stored object (RFC 7386)
and bumps ``resourceVersion``, as the API server does; any other patch type answers 415. Every
request is kept (method, path, content type, body) for the tests to read. Requests without the
kubeconfig's bearer token answer 401.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fixtures.httpjson import Request, json_server
from tests.fixtures.kubeapi import TOKEN, status_body, write_kubeconfig

RECORDED = Path(__file__).parent / "recorded"
_PLURALS = {"GitRepository": "gitrepositories", "Kustomization": "kustomizations"}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


@dataclass
class FluxApi:
    """The stored objects by path, the requests seen, and switches for faults."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, str, Any]] = field(default_factory=list)
    forbidden: set[str] = field(default_factory=set)  # paths that answer 403
    lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self) -> None:
        for path in sorted(RECORDED.glob("*.json")):
            obj = json.loads(path.read_text())
            self.objects[self.path_of(obj)] = obj

    @staticmethod
    def path_of(obj: dict[str, Any]) -> str:
        group_version, meta = obj["apiVersion"], obj["metadata"]
        plural = _PLURALS[obj["kind"]]
        return f"/apis/{group_version}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"

    def handle(self, method: str, path: str, content_type: str, body: Any) -> tuple[int, Any]:
        with self.lock:
            self.requests.append((method, path, content_type, copy.deepcopy(body)))
            name = path.rsplit("/", 1)[-1]
            if path in self.forbidden:
                return 403, status_body(403, "Forbidden", f'cannot patch "{name}"', name=name)
            current = self.objects.get(path)
            if current is None:
                return 404, status_body(404, "NotFound", f'"{name}" not found', name=name)
            if method == "GET":
                return 200, copy.deepcopy(current)
            if method == "PATCH":
                if content_type != "application/merge-patch+json":
                    return 415, status_body(415, "UnsupportedMediaType", f"unsupported patch {content_type}")
                merged = merge_patch(current, body)
                merged["metadata"]["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
                self.objects[path] = merged
                return 200, copy.deepcopy(merged)
            return 405, status_body(405, "MethodNotAllowed", "method not allowed")


@dataclass
class RunningFluxApi:
    state: FluxApi
    url: str
    kubeconfig: Path


def serve(tmp_path: Path) -> Iterator[RunningFluxApi]:
    """Start the server on 127.0.0.1 (a free port), yield it, stop it."""
    state = FluxApi()
    state.load()

    def answer(request: Request) -> tuple[int, Any]:
        headers = {k.lower(): v for k, v in request.headers.items()}
        if headers.get("authorization") != f"Bearer {TOKEN}":
            return 401, status_body(401, "Unauthorized", "Unauthorized")
        kind = (headers.get("content-type") or "").split(";")[0].strip()
        return state.handle(request.method, request.path.split("?", 1)[0], kind, request.body)

    with json_server(answer) as server:
        yield RunningFluxApi(state, server.url, write_kubeconfig(tmp_path / "kubeconfig", server.url))
