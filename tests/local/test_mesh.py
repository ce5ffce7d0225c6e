"""The local mesh against a real bare Git repo and real services: weights, /status, telemetry."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rollouts.local.mesh import ENVOY_BUCKETS_MS
from rollouts.local.stack import LocalStack, guide_virtual_service
from tests.local import traffic

pytestmark = pytest.mark.integration


def send(stack: LocalStack, n: int, path: str = "/version") -> collections.Counter[tuple[str, int]]:
    """``n`` requests to ``path`` through the mesh, 16 at a time (see :func:`traffic.send`)."""
    return traffic.send(stack, [path] * n, concurrency=16)


def remote_head(stack: LocalStack) -> str:
    out = subprocess.run(
        ["git", "--git-dir", str(stack.repo_path), "rev-parse", "master"],
        capture_output=True, text=True, check=True, timeout=10,
    )  # fmt: skip
    return out.stdout.strip()


def istio_counts(stack: LocalStack) -> dict[tuple[str, str], float]:
    with urllib.request.urlopen(stack.mesh_admin_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    counts = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "istio_requests_total":
                counts[(s.labels["destination_workload"], s.labels["response_code"])] = s.value
    return counts


def test_status_reports_the_applied_revision_exactly_as_documented(stack):
    sha = stack.set_canary_weight(0, "reset")
    status = stack.wait_for_revision(sha)
    assert set(status) == {"revision", "branch", "weights", "route", "error", "last_poll"}
    assert status["revision"] == remote_head(stack) == sha
    assert status["branch"] == "master"
    assert status["weights"] == {"stable": 100, "canary": 0}
    assert status["route"] == {"kind": "VirtualService", "path": "workloads/podinfo/virtual-service.yaml"}
    assert status["error"] is None
    assert isinstance(status["last_poll"], float)


def test_a_commit_on_the_remote_changes_the_split(stack):
    sha = stack.set_canary_weight(30, "podinfo: canary 30%")
    status = stack.wait_for_revision(sha, timeout=5)
    assert status["weights"] == {"stable": 70, "canary": 30}
    served = send(stack, 400)
    canary = served[("canary", 200)]
    assert canary + served[("ga", 200)] == 400
    assert 80 <= canary <= 160  # 120 expected, binomial sd ~9.2


def test_weight_zero_and_hundred_are_exact(stack):
    stack.wait_for_revision(stack.set_canary_weight(100, "all canary"))
    assert send(stack, 30) == {("canary", 200): 30}
    stack.wait_for_revision(stack.set_canary_weight(0, "all GA"))
    assert send(stack, 30) == {("ga", 200): 30}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("apiVersion: networking.istio.io/v1\nkind: [VirtualService\n", "YAML"),
        (guide_virtual_service(50).replace("subset: canary", "subset: blue"), "blue"),
    ],
    ids=["does-not-parse", "unknown-subset"],
)
def test_bad_route_file_keeps_the_last_good_weights_and_reports_the_error(stack, text, message):
    good = stack.set_canary_weight(0, "good")
    stack.wait_for_revision(good)
    bad = stack.commit_route(text, "broken route")
    status = stack.wait_for_status(lambda s: s["error"] is not None, timeout=5, what="an error")
    assert message in status["error"]
    assert status["revision"] == good != bad
    assert status["weights"] == {"stable": 100, "canary": 0}
    assert send(stack, 20) == {("ga", 200): 20}  # still routing by the last good weights
    fixed = stack.commit_route(guide_virtual_service(0), "fixed")
    assert stack.wait_for_revision(fixed)["error"] is None


def test_istio_telemetry_names_labels_buckets_and_counts(stack):
    stack.wait_for_revision(stack.set_canary_weight(50, "half"))
    before = istio_counts(stack)
    served = send(stack, 60, "/status/503") + send(stack, 60)
    after = istio_counts(stack)
    for (subset, code), n in served.items():
        key = (f"podinfo-{subset}", str(code))
        assert after[key] - before.get(key, 0.0) == n
    with urllib.request.urlopen(stack.mesh_admin_url + "/metrics", timeout=5) as response:
        families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
    histogram = families["istio_request_duration_milliseconds"]
    sample = next(s for s in histogram.samples if s.name.endswith("_bucket"))
    assert set(sample.labels) == {
        "reporter", "destination_workload", "destination_workload_namespace",
        "destination_version", "destination_service_name", "response_code", "le",
    }  # fmt: skip
    assert sample.labels["reporter"] == "destination"
    assert sample.labels["destination_workload_namespace"] == "test"
    assert sample.labels["destination_service_name"] == "podinfo"
    bounds = sorted({float(s.labels["le"]) for s in histogram.samples if s.name.endswith("_bucket")})
    assert bounds == [*map(float, ENVOY_BUCKETS_MS), float("inf")]


def test_podinfo_status_and_metrics_stay_reachable_through_the_mesh(stack):
    stack.wait_for_revision(stack.set_canary_weight(0, "all GA"))
    with urllib.request.urlopen(stack.mesh_url + "/metrics", timeout=5) as response:
        assert "http_request_duration_seconds_bucket" in response.read().decode()
    assert send(stack, 1, "/status/418") == {("ga", 418): 1}


def test_mesh_rejects_a_bad_config_file_naming_the_field(tmp_path):
    config = tmp_path / "mesh.json"
    config.write_text(json.dumps({"port": 1, "admin_port": 2, "repo": "r", "path": "p"}))
    result = subprocess.run(
        [sys.executable, "-m", "rollouts.local.mesh", "--config", str(config)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "stable" in result.stderr
