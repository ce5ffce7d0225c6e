"""GitHub and GitLab APIs made of recorded response shapes, served over HTTP on loopback.

No forge can run here. ``recorded/*.json`` hold a repository, a pull request and a merge request as
the forges' REST APIs return them (field names and shapes from their API documentation and PyGithub's
replay data); a tiny stateful handler fills them in for the requests the forge clients make:

* GitHub: ``GET /repos/org/cluster``, ``GET|POST /repos/org/cluster/pulls`` (``head`` filter, 422
  "A pull request already exists" for a second open one), ``GET|PATCH /repos/org/cluster/pulls/N``
  (``state: closed``), ``POST /repos/org/cluster/issues/N/comments``, ``POST /graphql``
  (``enablePullRequestAutoMerge``);
* GitLab: ``GET|POST /api/v4/projects/group%2Fcluster/merge_requests`` (``source_branch`` filter,
  409 "Another open merge request already exists"), ``GET|PUT .../merge_requests/N``
  (``state_event: close``), ``PUT .../N/merge``, ``POST .../N/notes``.

Faults for the tests: ``fail`` (statuses answered, in turn, before any request is handled: 502,
429, a rate-limit 403), ``lose_create`` (make the request, then answer 502), ``race`` (hold list
requests until two have arrived, so two controllers both find nothing). Requests without the
token answer 401. Every request is kept (method, path, headers, body).
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

RECORDED = Path(__file__).parent / "recorded"
TOKEN = "ghp_recordedTOKEN0123456789abcdefABCDEF"
_GH_PULLS = re.compile(r"^/repos/org/cluster/pulls(?:/(\d+))?$")
_GL_MRS = re.compile(r"^/api/v4/projects/([^/]+)/merge_requests(?:/(\d+))?(/merge|/notes)?$")
_GH_COMMENTS = re.compile(r"^/repos/org/cluster/issues/(\d+)/comments$")
RATE_LIMITED = {
    "message": "API rate limit exceeded for installation ID 1.",
    "documentation_url": "https://docs.github.com",
}


def _fill(template: str, **values: object) -> Any:
    text = template
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    return json.loads(text)


@dataclass
class ForgeApi:
    base: str = ""
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    mrs: dict[int, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    fail: list[int] = field(default_factory=list)
    lose_create: bool = False
    race: threading.Barrier | None = None
    graphql: list[dict[str, Any]] = field(default_factory=list)
    comments: dict[int, list[str]] = field(default_factory=dict)  # request number -> comment bodies
    lock: threading.Lock = field(default_factory=threading.Lock)

    def merge(self, number: int) -> None:
        """A person merges pull request ``number`` (GitHub) / ``!number`` (GitLab)."""
        with self.lock:
            if number in self.pulls:
                self.pulls[number].update(state="closed", merged=True, merged_at="2026-12-01T10:00:00Z")
            if number in self.mrs:
                self.mrs[number].update(state="merged", merged_at="2026-12-01T10:00:00.000Z")

    def close(self, number: int) -> None:
        """A person closes ``number`` without merging."""
        with self.lock:
            if number in self.pulls:
                self.pulls[number].update(state="closed", closed_at="2026-12-01T10:00:00Z")
            if number in self.mrs:
                self.mrs[number].update(state="closed")

    def creates(self) -> int:
        return sum(
            1 for m, p, _h, _b in self.requests if m == "POST" and p.endswith(("/pulls", "/merge_requests"))
        )

    # -- dispatch -------------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        if (
            self.race is not None
            and method == "GET"
            and (path.endswith("/pulls") or path.endswith("/merge_requests"))
        ):
            with contextlib.suppress(threading.BrokenBarrierError):
                self.race.wait(timeout=20)  # generous: a loaded machine starts threads slowly
        with self.lock:
            self.requests.append((method, path, headers, copy.deepcopy(body)))
            if self.fail:
                status = self.fail.pop(0)
                if status == 403:
                    return 403, RATE_LIMITED
                return status, {"message": "Server Error"}
            if path.startswith("/api/v4/"):
                if headers.get("private-token") != TOKEN:
                    return 401, {"message": "401 Unauthorized"}
                return self._gitlab(method, path, query, body)
            if headers.get("authorization") not in (f"token {TOKEN}", f"Bearer {TOKEN}"):
                return 401, {
                    "message": "Bad credentials",
                    "documentation_url": "https://docs.github.com/rest",
                }
            return self._github(method, path, query, body)

    def _github(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if path == "/repos/org/cluster" and method == "GET":
            return 200, _fill((RECORDED / "github-repository.json").read_text(), base=self.base)
        if path == "/graphql" and method == "POST":
            self.graphql.append(body)
            pull_id = body["variables"]["input"]["pullRequestId"]
            pull = next((p for p in self.pulls.values() if p["node_id"] == pull_id), None)
            if pull is None:
                return 200, {
                    "data": None,
                    "errors": [{"type": "NOT_FOUND", "message": "Could not resolve to a node"}],
                }
            pull["auto_merge"] = {"merge_method": body["variables"]["input"]["mergeMethod"].lower()}
            actor = {"avatarUrl": "", "login": "rollouts-bot", "resourcePath": "/rollouts-bot", "url": ""}
            return 200, {"data": {"enablePullRequestAutoMerge": {"actor": actor, "clientMutationId": None}}}
        comment = _GH_COMMENTS.match(path)
        if comment is not None and method == "POST":
            number = int(comment.group(1))
            if number not in self.pulls:
                return 404, {"message": "Not Found"}
            self.comments.setdefault(number, []).append(body["body"])
            return 201, {
                "id": 1800000000 + number,
                "node_id": f"IC_kwDOABCDEF5{number}",
                "body": body["body"],
                "user": {"login": "rollouts-bot", "id": 2, "type": "Bot"},
                "created_at": "2026-12-01T10:00:00Z",
                "updated_at": "2026-12-01T10:00:00Z",
                "html_url": f"https://github.com/org/cluster/pull/{number}#issuecomment-1",
                "url": f"{self.base}/repos/org/cluster/issues/comments/1",
            }
        match = _GH_PULLS.match(path)
        if match is None:
            return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
        if match.group(1):
            pull = self.pulls.get(int(match.group(1)))
            if pull is not None and method == "PATCH" and (body or {}).get("state") == "closed":
                pull.update(state="closed", closed_at="2026-12-01T10:00:00Z")
            return (200, copy.deepcopy(pull)) if pull else (404, {"message": "Not Found"})
        if method == "GET":
            head = query.get("head", "")
            branch = head.split(":", 1)[-1]
            found = [p for p in self.pulls.values() if not head or p["head"]["ref"] == branch]
            if query.get("state", "open") != "all":
                found = [p for p in found if p["state"] == query.get("state", "open")]
            return 200, [copy.deepcopy(p) for p in sorted(found, key=lambda p: -p["number"])]
        if method == "POST":
            branch = body["head"].split(":", 1)[-1]
            exists = f"A pull request already exists for org:{branch}."
            if any(p["head"]["ref"] == branch and p["state"] == "open" for p in self.pulls.values()):
                return 422, {
                    "message": "Validation Failed",
                    "errors": [{"resource": "PullRequest", "code": "custom", "message": exists}],
                    "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
                }  # fmt: skip
            number = max([*self.pulls, *self.mrs, 0]) + 1
            pull = _fill(
                (RECORDED / "github-pull.json").read_text(), base=self.base, number=number, branch=branch
            )
            pull.update(number=number, title=body["title"], body=body.get("body", ""))
            pull["base"]["ref"] = body["base"]
            self.pulls[number] = pull
            if self.lose_create:
                self.lose_create = False
                return 502, {"message": "Server Error"}
            return 201, copy.deepcopy(pull)
        return 405, {"message": "Method Not Allowed"}

    def _gitlab(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        match = _GL_MRS.match(path)
        # The project by its path or by its id (3, the recorded merge requests' project_id).
        if match is None or unquote(match.group(1)) not in ("group/cluster", "3"):
            return 404, {"message": "404 Project Not Found"}
        iid = int(match.group(2)) if match.group(2) else None
        if iid is not None:
            mr = self.mrs.get(iid)
            if mr is None:
                return 404, {"message": "404 Not found"}
            if match.group(3) == "/merge" and method == "PUT":
                if (body or {}).get("merge_when_pipeline_succeeds"):
                    mr["merge_when_pipeline_succeeds"] = True
                return 200, copy.deepcopy(mr)
            if match.group(3) == "/notes" and method == "POST":
                self.comments.setdefault(iid, []).append(body["body"])
                return 201, {"id": 70000000 + iid, "body": body["body"], "noteable_iid": iid}
            if method == "PUT" and (body or {}).get("state_event") == "close":
                mr.update(state="closed")
            return 200, copy.deepcopy(mr)
        if method == "GET":
            branch = query.get("source_branch")
            found = [m for m in self.mrs.values() if branch is None or m["source_branch"] == branch]
            if query.get("state", "all") != "all":
                found = [m for m in found if m["state"] == query["state"]]
            return 200, [copy.deepcopy(m) for m in sorted(found, key=lambda m: -m["iid"])]
        if method == "POST":
            branch = body["source_branch"]
            existing = next(
                (m for m in self.mrs.values() if m["source_branch"] == branch and m["state"] == "opened"),
                None,
            )
            if existing is not None:
                return 409, {
                    "message": [
                        f"Another open merge request already exists for this source branch: !{existing['iid']}"  # noqa: E501
                    ]
                }
            iid = max([*self.pulls, *self.mrs, 0]) + 1
            mr = _fill((RECORDED / "gitlab-merge-request.json").read_text(), branch=branch, iid=iid)
            mr.update(
                iid=iid, id=90000000 + iid, title=body["title"], description=body.get("description", "")
            )
            mr["target_branch"] = body["target_branch"]
            self.mrs[iid] = mr
            if self.lose_create:
                self.lose_create = False
                return 502, {"message": "502 Bad Gateway"}
            return 201, copy.deepcopy(mr)
        return 405, {"message": "405 Method Not Allowed"}


def _handler(state: ForgeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, answer = state.handle(self.command, self.path, headers, body)
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            if status == 403:
                self.send_header("X-RateLimit-Remaining", "0")
                self.send_header("X-RateLimit-Reset", "1")
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = _serve  # noqa: N815 (http.server's names)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def serve() -> Iterator[ForgeApi]:
    """Start the server on 127.0.0.1 (a free port), yield its state, stop it."""
    state = ForgeApi()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
