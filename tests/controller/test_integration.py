"""The controller against the real local stack: real Prometheus, real mesh, real load, real Git."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import git
import pytest
from rich.console import Console

from analyzer.prometheus import MetricsReader, PrometheusClient
from rollouts.controller.demo import Demo
from rollouts.controller.machine import NoDataError
from rollouts.controller.source import PrometheusSource
from rollouts.load import LoadRequest, LocalLoad
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


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    require_binary("prometheus", "apt-get install prometheus")
    with LocalStack(StackConfig(canary_weight=20), workdir=tmp_path_factory.mktemp("stack")) as running:
        load = LocalLoad()
        try:
            load.start(LoadRequest(target=running.mesh_url + "/", duration=60, rate=100))
            time.sleep(8)  # a few scrapes with traffic
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
