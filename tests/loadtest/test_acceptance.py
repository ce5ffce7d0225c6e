"""Acceptance jobs: ``loadtest serve --acceptance FILE`` answering a Flagger pre-rollout webhook
(called with the controller's own webhook client), against a real target on loopback; and the
file's validation (fields, limits, allowlist), which happens before the server listens."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from loadtest.acceptance import AcceptanceError, Job, load, run
from loadtest.allow import Allowlist
from rollouts.gates.webhooks import Payload, call
from rollouts.spec_gates import WebhookSpec
from tests.loadtest.target import Target
from tests.support import free_port

pytestmark = pytest.mark.integration
TOKEN = "test-token-0123456789abcdef"
PAYLOAD = Payload("podinfo", "test", "Progressing", "0123456789abcdef")


def jobs_file(path: Path, base: str) -> Path:
    path.write_text(
        f"""jobs:
  smoke:
    deadline: 10
    checks:
    - {{name: root, url: "{base}/", expect: [200]}}
    - {{name: teapot, url: "{base}/status/418", expect: [418], repeat: 3}}
    - {{name: post, method: post, url: "{base}/", body: "{{}}", headers: {{Content-Type: application/json}}}}
  broken:
    checks:
    - {{name: root, url: "{base}/"}}
    - {{name: errors, url: "{base}/status/500", expect: [200, 204]}}
  slow:
    deadline: 0.5
    checks:
    - {{name: sleepy, url: "{base}/sleep/0.3", repeat: 5}}
"""
    )
    return path


@pytest.fixture(scope="module")
def hook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Target]]:
    target = Target(free_port()).start()
    root = Path(tmp_path_factory.mktemp("acceptance"))
    (root / "token").write_text(TOKEN)
    base = f"http://127.0.0.1:{target.port}"
    port = free_port()
    argv = [sys.executable, "-m", "loadtest", "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--token-file", str(root / "token"), "--allow", base + "/"]
    argv += ["--acceptance", str(jobs_file(root / "jobs.yaml", base))]
    proc = subprocess.Popen(argv, env={k: v for k, v in os.environ.items() if k != "LOADTEST_TOKEN"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(url + "/healthz", timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    try:
        yield url + "/hooks/acceptance", target
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        target.stop()


def webhook(url: str, job: str | None) -> WebhookSpec:
    metadata = {"job": job} if job else {}
    return WebhookSpec(name="acceptance", type="pre-rollout", url=url, timeout=15.0, metadata=metadata)


def test_a_passing_job_passes_the_pre_rollout_hook(hook) -> None:
    url, target = hook
    before = target.requests
    result = call(webhook(url, "smoke"), PAYLOAD)
    assert result.ok and result.status == 200
    assert target.requests - before == 5  # 1 + 3 + 1: bounded, exactly what the file says


def test_a_failing_job_fails_with_what_failed_first(hook) -> None:
    url, _target = hook
    result = call(webhook(url, "broken"), PAYLOAD)
    assert not result.ok and result.status == 500
    assert result.reason == (
        "HTTP 500: acceptance broken: failed: 1 of 2 requests failed; "
        "first: errors: answered 500, expected 200 or 204"
    )


def test_the_deadline_bounds_a_job(hook) -> None:
    url, _target = hook
    start = time.monotonic()
    result = call(webhook(url, "slow"), PAYLOAD)
    assert not result.ok and "not sent: deadline of 0.5s reached" in result.reason
    assert time.monotonic() - start < 3


def test_bad_calls(hook) -> None:
    url, _target = hook
    assert (
        "name the job in metadata.job (one of broken, slow, smoke)"
        in call(webhook(url, None), PAYLOAD).reason
    )
    assert (
        call(webhook(url, "nope"), PAYLOAD).reason
        == "HTTP 404: no acceptance job 'nope' (configured: broken, slow, smoke)"
    )
    assert requests.post(url, data=b"not json", timeout=5).status_code == 400


def test_the_file_is_checked_before_anything_runs(tmp_path: Path) -> None:
    def allow_all(url: str, headers: dict[str, str]) -> None:
        return None

    with pytest.raises(
        AcceptanceError,
        match=r"jobs\.smoke\.checks\.0\.url: target http://127\.0\.0\.1:9/ is not in the allowlist",
    ):
        load(jobs_file(tmp_path / "a.yaml", "http://127.0.0.1:9"), Allowlist(["http://10.0.0.1/"]).refusal)
    hop = tmp_path / "hop.yaml"
    hop.write_text("jobs: {x: {checks: [{url: 'http://a/', headers: {Connection: close}}]}}\n")
    with pytest.raises(AcceptanceError, match=r"jobs\.x\.checks\.0\.headers: .*'Connection' is hop-by-hop"):
        load(hop, allow_all)
    bad = tmp_path / "bad.yaml"
    bad.write_text("jobs:\n  x:\n    checks:\n    - {url: 'http://a/', expect: [700]}\n")
    with pytest.raises(
        AcceptanceError, match=r"bad\.yaml: jobs\.x\.checks\.0\.expect: .*status codes are 100-599"
    ):
        load(bad, allow_all)
    bad.write_text(
        "jobs:\n  x:\n    checks:\n    - {url: 'http://a/', repeat: 100}\n"
        + "    - {url: 'http://a/', repeat: 100}\n" * 10
    )
    with pytest.raises(AcceptanceError, match="at most 1000 requests, this one 1100"):
        load(bad, allow_all)
    bad.write_text("jobs: {x: {checks: [{url: 'http://a/', shell: 'rm -rf /'}]}}\n")
    with pytest.raises(AcceptanceError, match=r"jobs\.x\.checks\.0\.shell: Extra inputs are not permitted"):
        load(bad, allow_all)
    bad.write_text("jobs: [unclosed\n")
    with pytest.raises(AcceptanceError, match="malformed YAML"):
        load(bad, allow_all)
    with pytest.raises(AcceptanceError, match="cannot read"):
        load(tmp_path / "missing.yaml", allow_all)


def test_a_refused_connection_is_a_failed_check() -> None:
    job = Job.model_validate({"checks": [{"name": "down", "url": f"http://127.0.0.1:{free_port()}/"}]})
    result = run("down", job)
    assert not result.passed and result.results[0].error == "ConnectionError"
    assert result.summary == "acceptance down: failed: 1 of 1 requests failed; first: down: ConnectionError"


def test_serve_refuses_a_bad_acceptance_file_at_start_up(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN)
    argv = [sys.executable, "-m", "loadtest", "serve", "--port", str(free_port()), "--host", "127.0.0.1"]
    argv += ["--token-file", str(tmp_path / "token"), "--acceptance", str(tmp_path / "none.yaml")]
    done = subprocess.run(
        argv,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "none.yaml: cannot read" in done.stderr
