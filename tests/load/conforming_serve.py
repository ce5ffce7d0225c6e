"""A minimal server conforming to the ``loadtest serve`` control API contract (docs/architecture.md).

It generates no load: it keeps jobs and their states so the controller's client can be tested on
the contract until (and besides) the real ``loadtest serve``. Run as a script it listens like
``loadtest serve --host H --port P`` with the token in ``$LOADTEST_TOKEN``.
"""

from __future__ import annotations

import argparse
import fnmatch
import itertools
import os
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

from tests.fixtures.httpjson import Request


@dataclass
class ConformingServe:
    """The job table behind the API; ``allow`` is the target allowlist (host prefixes)."""

    token: str
    allow: tuple[str, ...] = ("127.0.0.1", "localhost")  # host patterns
    max_jobs: int = 2
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=itertools.count)

    def __call__(self, request: Request) -> tuple[int, Any]:
        path = urlparse(request.path).path
        if path == "/healthz":
            return 200, {"ok": True}
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {"error": "unauthorized"}
        if path == "/jobs" and request.method == "POST":
            return self._create(request.body)
        if path == "/jobs" and request.method == "GET":
            return 200, list(self.jobs.values())
        job = self.jobs.get(path.removeprefix("/jobs/"))
        if job is None:
            return 404, {"error": "unknown job"}
        if request.method == "DELETE":
            if job["state"] == "running":
                job["state"] = "stopped"
            return 200, job
        job["requests"] += 10  # every look shows progress, as a running job would
        job["elapsed"] += 0.5
        return 200, job

    def _create(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("target"), str) or "duration" not in body:
            return 400, {"error": "target and duration are required"}
        host = urlparse(body["target"]).hostname or ""
        if not any(fnmatch.fnmatchcase(host, pattern) for pattern in self.allow):
            return 403, {"error": f"target {body['target']} outside the allowlist"}
        if sum(job["state"] == "running" for job in self.jobs.values()) >= self.max_jobs:
            return 429, {"error": "too many jobs"}
        job_id = f"job-{next(self.ids)}"
        self.jobs[job_id] = {
            "id": job_id,
            "state": "running",
            "target": body["target"],
            "requests": 0,
            "errors": 0,
            "rps": float(body.get("rate") or 0.0),
            "latency": {"p50": 0.004, "p90": 0.009, "p99": 0.02},
            "elapsed": 0.0,
        }
        return 201, self.jobs[job_id]


def main() -> None:
    """Serve the contract on --host/--port until killed (the LocalLoad subprocess test)."""
    from tests.fixtures.httpjson import make_handler

    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--allow", action="append", default=[])
    parser.add_argument("--parent-pid", type=int, default=None)  # the contract's lifeline
    args = parser.parse_args()
    if args.parent_pid is not None:
        from loadtest.lifeline import parent_gone, set_parent_death_signal

        set_parent_death_signal()
        if parent_gone(args.parent_pid):
            raise SystemExit(f"parent {args.parent_pid} is gone")
    app = ConformingServe(token=os.environ["LOADTEST_TOKEN"], allow=tuple(args.allow))
    ThreadingHTTPServer((args.host, args.port), make_handler(app, [])).serve_forever()


if __name__ == "__main__":
    main()
