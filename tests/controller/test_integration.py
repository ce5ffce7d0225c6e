"""The controller against the real local stack: real Prometheus, real mesh, real load, real Git."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import git
import pytest
from rich.console import Console

from analyzer.prometheus import MetricsReader, PrometheusClient
from rollouts.controller.machine import NoDataError
from rollouts.controller.source import PrometheusSource
from rollouts.load import LoadRequest, LocalLoad
from rollouts.local.demo import Demo
from rollouts.local.stack import LocalStack, StackConfig
from rollouts.spec import Rollout, parse_spec
from tests.support import require_binary

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def spec(name: str, prometheus: str) -> Rollout:
    return parse_spec(
        {
            "apiVersion": "rollouts.dev/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": name, "namespace": "test"},
            "spec": {
                "git": {"url": "/unused.git", "branch": "master"},
                "route": {"kind": "VirtualService", "path": "vs.yaml", "stable": "ga", "canary": "canary"},
                "canary": {"path": "canary.yaml"},
                "steps": [10, 60],
                "analysis": {"interval": "5s", "prometheus": {"url": prometheus}},
            },
        }
    )


def wait_for_traffic(prometheus: str, workloads: tuple[str, ...], timeout: float = 60.0) -> None:
    """Poll (bounded) until Prometheus holds traffic for every workload in any 5 s window on the grid
    the tests read (ending up to 7 s ago): a fixed sleep is too short on a loaded machine, where new
    scrape targets are picked up late."""
    client = PrometheusClient(prometheus)
    selector = 'istio_requests_total{destination_workload_namespace="test"}'
    promql = f"sum by (destination_workload) (increase({selector}[5s]))"
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        samples = client.query(promql, time.time() - 7)
        seen = {s.labels.get("destination_workload", "") for s in samples if s.value > 0}
        if seen >= set(workloads):
            return
        time.sleep(0.5)
    pytest.fail(f"no traffic in Prometheus for {sorted(set(workloads) - seen)} after {timeout:.0f} s")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    require_binary("prometheus", "apt-get install prometheus")
    with LocalStack(StackConfig(canary_weight=20), workdir=tmp_path_factory.mktemp("stack")) as running:
        load = LocalLoad()
        try:
            load.start(LoadRequest(target=running.mesh_url + "/", duration=120, rate=100))
            wait_for_traffic(running.prometheus_url, ("podinfo-ga", "podinfo-canary"))
            yield running
        finally:
            load.close()


def test_one_batched_round_serves_every_rollout(stack: LocalStack) -> None:
    client = PrometheusClient(stack.prometheus_url)
    source = PrometheusSource(MetricsReader(client))
    rollouts = [spec("podinfo", stack.prometheus_url)] + [
        spec(f"other-{i}", stack.prometheus_url) for i in range(5)
    ]
    for rollout in rollouts:
        source.register(rollout)
    end = math.floor((time.time() - 2) / 5) * 5
    window = source.window(rollouts[0], end - 5, end, 20)
    assert window.baseline.requests > 0 and window.canary.requests > 0
    share = window.canary.requests / (window.canary.requests + window.baseline.requests)
    assert 0.1 < share < 0.3  # the mesh split 80/20
    for other in rollouts[1:]:  # no traffic for these workloads: no data, and no further queries
        with pytest.raises(NoDataError, match="no series"):
            source.window(other, end - 5, end, 20)
    assert (source.rounds_read, client.requests_sent) == (1, 3)


def test_demo_rolls_back_the_slow_canary(tmp_path: Path) -> None:
    require_binary("prometheus", "apt-get install prometheus")
    out = tmp_path / "out"
    with (tmp_path / "tty").open("w") as tty:
        demo = Demo("slow", interval=5.0, rate=200.0, out=out, timeout=90.0, console=Console(file=tty))
        assert demo.run() == 0
    verdicts = (
        git.Repo(out / "repo.git")
        .git.log("--format=%(trailers:key=Rollout-Verdict,valueonly)", "master")
        .split()
    )
    assert verdicts[:2] == ["rollback", "promote"]
    lines = [json.loads(line) for line in (out / "controller.log").read_text().splitlines()]
    rollback = [line for line in lines if line.get("action") == "rollback" and "reasons" in line]
    assert rollback and any("evidence of harm" in reason for reason in rollback[0]["reasons"])
    assert "**rollback**" in (out / "report.md").read_text()


def _trailers(out: Path, key: str) -> list[str]:
    log = git.Repo(out / "repo.git").git.log(f"--format=%(trailers:key={key},valueonly)", "master")
    return [line for line in log.splitlines() if line.strip()]


def _run_demo(tmp_path: Path, story: str, **settings: Any) -> Path:
    """``rollouts run`` on the real stack through the demo (5 s windows); its output directory."""
    require_binary("prometheus", "apt-get install prometheus")
    out = tmp_path / "out"
    with (tmp_path / "tty").open("w") as tty:
        demo = Demo(story, interval=5.0, out=out, console=Console(file=tty), **settings)
        assert demo.run() == 0, (out / "report.md").read_text() if (out / "report.md").exists() else ""
    return out


ROUTE = "workloads/podinfo/virtual-service.yaml"


def test_rollouts_run_rolls_back_a_slow_canary_in_the_mirror_stage(tmp_path: Path) -> None:
    """The controller on the real stack: the mirror commit, windows of mirrored copies judged from the
    real Prometheus (counted at the canary, reporter destination), a rollback that removes the mirror."""
    out = _run_demo(tmp_path, "slow", rate=100.0, timeout=120.0, strategy="iterations: 3\n    mirror: true")
    assert _trailers(out, "Rollout-Verdict")[:2] == ["rollback", "promote"]
    assert _trailers(out, "Rollout-Step")[:2] == ["mirror", "mirror"]
    repo = git.Repo(out / "repo.git")
    assert "mirror:" in repo.git.show(f"master~1:{ROUTE}") and "mirror:" not in repo.git.show(
        f"master:{ROUTE}"
    )
    lines = [json.loads(line) for line in (out / "controller.log").read_text().splitlines()]
    rollback = [line for line in lines if line.get("action") == "rollback" and "reasons" in line]
    assert rollback and any("evidence of harm" in reason for reason in rollback[0]["reasons"])


def test_rollouts_run_blue_green_by_mirroring_switches_a_good_canary_in_one_commit(tmp_path: Path) -> None:
    """Blue/green on the real stack: the preview judged on mirrored copies, one 0 -> 100 commit
    (the mirror removed in it), then ``promote-ga``."""
    out = _run_demo(
        tmp_path, "good", rate=100.0, timeout=240.0, strategy="iterations: 3\n    mirror: true", steps="[100]"
    )
    steps = _trailers(out, "Rollout-Step")[::-1]
    assert steps[:2] == ["mirror", "1/1"]
    verdicts = _trailers(out, "Rollout-Verdict")[::-1]
    assert verdicts[:2] == ["promote", "finalize"]
    repo = git.Repo(out / "repo.git")
    sha = repo.git.log("--format=%H", "--grep=Rollout-Step: 1/1", "master").split()[0]
    switched = repo.git.show(f"{sha}:{ROUTE}")
    assert "mirror:" not in switched and "weight: 100" in switched


def test_rollouts_run_rolls_back_a_slow_canary_in_the_ab_stage(tmp_path: Path) -> None:
    """A/B on the real stack: the controller's load carries ``x-user: beta`` (the match takes it to
    the canary), a second load without it is GA's; the slow canary is rolled back in the match
    stage and the rollback commit removes the match route."""
    out = _run_demo(
        tmp_path,
        "slow",
        rate=60.0,
        timeout=120.0,
        strategy="iterations: 3\n    match: [{headers: {x-user: {exact: beta}}}]",
        load="headers: {x-user: beta}",
        background_rate=100.0,
    )
    assert _trailers(out, "Rollout-Verdict")[:2] == ["rollback", "promote"]
    assert _trailers(out, "Rollout-Step")[:2] == ["match", "match"]
    repo = git.Repo(out / "repo.git")
    assert "x-user" in repo.git.show(f"master~1:{ROUTE}") and "x-user" not in repo.git.show(f"master:{ROUTE}")


def test_rollouts_run_blue_green_on_the_preview_service_then_one_switch(tmp_path: Path) -> None:
    """Blue/green on the preview's own Service: the controller's load goes to the preview Service
    (the canary alone), users (a second load) all stay on GA with the route unchanged while the
    windows judge the canary against GA; then one commit switches 0 -> 100."""
    out = _run_demo(
        tmp_path,
        "good",
        rate=60.0,
        timeout=240.0,
        strategy="iterations: 3",
        preview=True,
        steps="[100]",
        background_rate=100.0,
    )
    assert _trailers(out, "Rollout-Step")[::-1][:2] == ["preview", "1/1"]
    assert _trailers(out, "Rollout-Verdict")[::-1][:2] == ["promote", "finalize"]
    repo = git.Repo(out / "repo.git")
    start, switch = (
        repo.git.log("--format=%H", f"--grep=Rollout-Step: {step}", "master").split()[-1]
        for step in ("preview", "1/1")
    )
    assert repo.git.diff(f"{start}~1", start) == ""  # the preview stage changes no route
    assert "weight: 100" in repo.git.show(f"{switch}:{ROUTE}")
    assert repo.git.diff("--stat", f"{switch}~1", switch).count("|") == 1  # the switch: the route only
    lines = [json.loads(line) for line in (out / "controller.log").read_text().splitlines()]
    judged = [line for line in lines if line.get("action") == "finalize" and "reasons" in line]
    assert judged and any("non-inferiority" in reason for reason in judged[0]["reasons"])


def test_rollouts_run_switches_back_a_blue_green_version_that_degrades_after_the_switch(
    tmp_path: Path,
) -> None:
    """``postPromotionAnalysis`` on the real stack: 0.2.3 passes the preview (load to its preview
    Service), is switched 0 -> 100, then slows down under every user's traffic; judged against GA
    (the controller's load now on GA's own Service) it is switched back 100 -> 0 in one commit."""
    out = _run_demo(tmp_path, "switchback", timeout=240.0)
    assert _trailers(out, "Rollout-Step")[::-1][:3] == ["preview", "1/1", "1/1"]
    assert _trailers(out, "Rollout-Verdict")[::-1][:3] == ["promote", "promote", "rollback"]
    repo = git.Repo(out / "repo.git")
    body = repo.git.log("-1", "--format=%B", "master")
    assert "canary 100% -> 0%" in body and "postPromotionAnalysis: harm after the switch" in body
    assert "weight: 0" in repo.git.show(f"master:{ROUTE}").split("subset: canary")[1]
    assert repo.git.diff("--stat", "master~1", "master").count("|") == 1  # the switch back: the route only
