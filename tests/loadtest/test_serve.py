"""``loadtest serve``: the control API as a subprocess, driven over HTTP on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.loadtest.target import Target
from tests.support import free_port

pytestmark = pytest.mark.integration

TOKEN = "test-token-0123456789abcdef"


@dataclass
class Api:
    base: str
    target: str
    proc: subprocess.Popen[bytes]
    port: int  # the target's port

    @property
    def narrow(self) -> str:
        """The allowlist entry ``http://localhost:PORT/ok/;host=podinfo.test``, without its option."""
        return f"http://localhost:{self.port}/ok/"

    def call(self, method: str, path: str, token: str | None = TOKEN, **kw: object) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.request(method, self.base + path, headers=headers, timeout=20, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    target = Target(free_port()).start()
    token_file = Path(tmp_path_factory.mktemp("serve")) / "token"
    token_file.write_text(TOKEN + "\n")
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loadtest",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--token-file",
            str(token_file),
            "--allow",
            f"http://127.0.0.1:{target.port}/",
            "--allow",
            f"http://localhost:{target.port}/ok/;host=podinfo.test",
            "--max-jobs",
            "2",
        ],
        env={k: v for k, v in os.environ.items() if k != "LOADTEST_TOKEN"},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(base + "/healthz", timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    yield Api(base, f"http://127.0.0.1:{target.port}/", proc, target.port)
    proc.terminate()
    proc.wait(timeout=20)
    target.stop()


def test_health_and_metrics_need_no_token(api: Api) -> None:
    assert api.call("GET", "/healthz", token=None).json()["status"] == "ok"
    assert api.call("GET", "/metrics", token=None).status_code == 200


def test_token_is_required(api: Api) -> None:
    assert api.call("GET", "/jobs", token=None).status_code == 401
    assert api.call("GET", "/jobs", token="wrong-token-0123456789").status_code == 401
    assert api.call("POST", "/jobs", token="x", json={"target": api.target}).status_code == 401


def test_job_runs_reports_and_stops(api: Api) -> None:
    created = api.call("POST", "/jobs", json={"target": api.target + "api", "rate": 50, "duration": 30})
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["state"] == "running"
    time.sleep(1.5)
    live = api.call("GET", f"/jobs/{job['id']}").json()
    assert live["requests"] > 30 and live["errors"] == 0 and live["latency"]["p50"] > 0
    assert any(j["id"] == job["id"] for j in api.call("GET", "/jobs").json())
    metrics = api.call("GET", "/metrics", token=None).text
    assert f'loadtest_requests_total{{code="200",job="{job["id"]}"' in metrics
    assert "loadtest_request_duration_seconds_bucket" in metrics
    stopped = api.call("DELETE", f"/jobs/{job['id']}")
    assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"
    final = stopped.json()["requests"]
    time.sleep(0.5)
    assert api.call("GET", f"/jobs/{job['id']}").json()["requests"] == final


def test_short_job_finishes_by_itself(api: Api) -> None:
    job = api.call("POST", "/jobs", json={"target": api.target, "concurrency": 2, "duration": 0.5}).json()
    time.sleep(2)
    done = api.call("GET", f"/jobs/{job['id']}").json()
    assert done["state"] == "finished" and done["requests"] > 0


def test_job_limit_gives_429(api: Api) -> None:
    ids = [
        api.call("POST", "/jobs", json={"target": api.target, "rate": 5, "duration": 30}).json()["id"]
        for _ in range(2)
    ]
    assert (
        api.call("POST", "/jobs", json={"target": api.target, "rate": 5, "duration": 30}).status_code == 429
    )
    for job_id in ids:
        api.call("DELETE", f"/jobs/{job_id}")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"target": "http://169.254.169.254/latest/meta-data"}, 403),
        ({"target": "http://user@127.0.0.1:1/"}, 403),
        ({"target": "not a url"}, 400),
        ({"target": "http://127.0.0.1/", "rate": -1}, 400),
        ({"target": "http://127.0.0.1/", "command": "rm -rf /"}, 400),
        ({"target": "http://127.0.0.1/", "method": "BREW"}, 400),
        ([1, 2], 400),
        # Regression: booleans and numeric strings were taken as numbers (true -> a 1 s job).
        ({"target": "http://127.0.0.1/", "duration": True}, 400),
        ({"target": "http://127.0.0.1/", "rate": "5"}, 400),
        ({"target": "http://127.0.0.1/", "concurrency": True}, 400),
    ],
)
def test_bad_jobs_are_refused(api: Api, body: object, code: int) -> None:
    assert api.call("POST", "/jobs", json=body).status_code == code


def test_a_bad_method_is_named_as_the_cli_names_it(api: Api) -> None:
    response = api.call("POST", "/jobs", json={"target": api.target, "method": "BREW"})
    assert response.status_code == 400
    assert "method 'BREW' is not one of GET, POST, PUT, DELETE" in response.text


def test_unknown_job_is_404(api: Api) -> None:
    assert api.call("GET", "/jobs/nope").status_code == 404
    assert api.call("DELETE", "/jobs/nope").status_code == 404


def test_malformed_json_is_400(api: Api) -> None:
    response = requests.post(
        api.base + "/jobs",
        data=b"{not json",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers()
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
bodies = (
    st.fixed_dictionaries(
        {},
        optional={
            "target": st.text(max_size=40) | st.just("http://127.0.0.1:1/"),
            "rate": json_values,
            "concurrency": json_values,
            "duration": json_values,
            "method": json_values,
            "headers": json_values,
        },
    )
    | json_values
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_fuzzed_bodies_never_crash_the_server(api: Api, body: object) -> None:
    response = api.call("POST", "/jobs", json=body)
    assert response.status_code in (201, 400, 403, 429)
    if response.status_code == 201:
        api.call("DELETE", f"/jobs/{response.json()['id']}")
    assert api.call("GET", "/healthz", token=None).status_code == 200


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200), path=st.sampled_from(["/jobs", "/jobs/x", "/healthz", "/nothing"]))
def test_raw_bytes_never_crash_the_server(api: Api, data: bytes, path: str) -> None:
    response = requests.post(
        api.base + path,
        data=data,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code in (201, 400, 403, 404, 405, 429)
    if response.status_code == 201:
        api.call("DELETE", f"/jobs/{response.json()['id']}")
    assert api.call("GET", "/healthz", token=None).status_code == 200


@pytest.mark.parametrize(
    "path", ["a/../../admin", "%2e%2e/admin", "a/..%2f..%2fadmin", "a\\..\\..\\admin", "./x"]
)
def test_dot_segments_cannot_climb_out_of_an_allowed_prefix(api: Api, path: str) -> None:
    """Regression: ``http://host/ok/../admin`` passed the ``http://host/ok/`` prefix check."""
    response = api.call("POST", "/jobs", json={"target": api.target + path, "rate": 1, "duration": 1})
    assert response.status_code == 403, response.text
    assert "not in the allowlist" in response.json()["error"]


def test_json_body_without_a_json_content_type_is_accepted(api: Api) -> None:
    """Regression: ``curl -d '{...}'`` (a form content type) answered "body must be a JSON object"."""
    body = f'{{"target": "{api.target}", "rate": 1, "duration": 1}}'
    response = requests.post(
        api.base + "/jobs",
        data=body,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    api.call("DELETE", f"/jobs/{response.json()['id']}")


def test_chunked_bodies_are_read_and_limited(api: Api) -> None:
    """Regression: a chunked body over 64 KiB was cut short and answered 400 "not a JSON object"."""
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def chunks(data: bytes) -> Iterator[bytes]:  # a generator body makes requests send it chunked
        yield from (data[i : i + 8192] for i in range(0, len(data), 8192))

    big = b'{"target": "' + b"x" * 100_000 + b'"}'
    response = requests.post(api.base + "/jobs", data=chunks(big), headers=headers, timeout=10)
    assert response.status_code == 413, response.text
    small = f'{{"target": "{api.target}", "rate": 1, "duration": 1}}'.encode()
    response = requests.post(api.base + "/jobs", data=chunks(small), headers=headers, timeout=10)
    assert response.status_code == 201, response.text
    api.call("DELETE", f"/jobs/{response.json()['id']}")


@pytest.mark.parametrize(
    "name",
    [
        "Connection",
        "Keep-Alive",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Content-Length",
        "content-length",
    ],
)
def test_hop_by_hop_and_framing_headers_are_refused(api: Api, name: str) -> None:
    """Regression: Content-Length and Transfer-Encoding were sent as given (keep-alive desync)."""
    body = {"target": api.target, "rate": 1, "duration": 1, "headers": {name: "5"}}
    response = api.call("POST", "/jobs", json=body)
    assert response.status_code == 400, response.text
    assert "hop-by-hop or framing" in response.json()["error"]


def test_host_only_where_the_entry_permits_it(api: Api) -> None:
    """Regression: any Host was sent, so a proxy routing by Host reached any service."""
    refused = api.call(
        "POST",
        "/jobs",
        json={"target": api.target, "rate": 1, "duration": 1, "headers": {"Host": "admin.svc"}},
    )
    assert refused.status_code == 403 and "Host 'admin.svc' is not permitted" in refused.json()["error"]
    other = {"target": api.narrow, "rate": 1, "duration": 1, "headers": {"HOST": "admin.svc"}}
    assert api.call("POST", "/jobs", json=other).status_code == 403
    allowed = {"target": api.narrow + "x", "rate": 5, "duration": 0.5, "headers": {"Host": "podinfo.test"}}
    created = api.call("POST", "/jobs", json=allowed)
    assert created.status_code == 201, created.text
    time.sleep(1.5)
    done = api.call("GET", f"/jobs/{created.json()['id']}").json()
    assert done["state"] == "finished" and done["requests"] > 0 and "error" not in done


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("{t}\u00fc", {}),
        ("{t}\u4e2d\u6587", {}),
        ("{t}", {"X-Name": "\u20ac"}),
        ("{t}", {"X-Name": "caf\u00e9 \u4e2d"}),
        ("{t}", {"X-N\u00e4me": "v"}),
    ],
)
def test_non_latin1_headers_and_paths_are_400_not_a_failed_job(
    api: Api, target: str, headers: dict[str, str]
) -> None:
    """Regression: accepted with 201, then the job failed with a UnicodeEncodeError traceback."""
    body = {"target": target.format(t=api.target), "rate": 1, "duration": 1, "headers": headers}
    response = api.call("POST", "/jobs", json=body)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    "path",
    [
        "..;/admin",
        "%252e%252e/admin",
        "%2e%2e/admin",
        "./x",
        "..%2fadmin",
        ";jsessionid=1/x",
        "a%3bb",
        "%5c..%5cadmin",
    ],
)
def test_an_allowed_prefix_cannot_be_left_by_normalisation(api: Api, path: str) -> None:
    """Regression: ``/ok/..;/admin`` and ``/ok/%252e%252e/admin`` passed the ``/ok/`` prefix."""
    response = api.call("POST", "/jobs", json={"target": api.narrow + path, "rate": 1, "duration": 1})
    assert response.status_code == 403, response.text
    assert "not in the allowlist" in response.json()["error"]


_HOSTILE_NAMES = st.sampled_from(
    ["Host", "host", "Content-Length", "transfer-encoding", "Connection", "Proxy-X", "TE", "X-Ok", "A:b"]
) | st.text(max_size=8)
_HOSTILE_VALUES = st.sampled_from(
    ["podinfo.test", "admin.svc", "5", "chunked", "\u20ac", "a\r\nb", "\u00e9"]
) | st.text(max_size=10)
_SEGMENTS = ["ok", "x", "..", ".", "%2e%2e", "%252e%252e", "..;", ";p", "%3b", "\\", "%5c", "\u00fc", "%00"]
_HOSTILE_PATHS = st.lists(st.sampled_from(_SEGMENTS), max_size=5).map("/".join)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(headers=st.dictionaries(_HOSTILE_NAMES, _HOSTILE_VALUES, max_size=3), path=_HOSTILE_PATHS)
def test_hostile_headers_and_paths_get_an_answer_and_never_a_failed_job(
    api: Api, headers: dict[str, str], path: str
) -> None:
    body = {"target": api.narrow + path, "rate": 20, "duration": 0.3, "headers": headers}
    response = api.call("POST", "/jobs", json=body)
    assert response.status_code in (201, 400, 403, 429), response.text
    if response.status_code == 201:
        lowered = {k.lower() for k in headers}
        assert not lowered & {"content-length", "transfer-encoding", "connection", "te"}
        assert all(v.lower() == "podinfo.test" for k, v in headers.items() if k.lower() == "host")
        job = response.json()["id"]
        deadline = time.monotonic() + 10
        while (state := api.call("GET", f"/jobs/{job}").json())["state"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert state["state"] == "finished" and "error" not in state, state
    assert api.call("GET", "/healthz", token=None).status_code == 200
