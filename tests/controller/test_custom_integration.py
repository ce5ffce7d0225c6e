"""A custom metric rolls a rollout back, end to end: the real local stack (Prometheus, mesh, Git),
the controller's state machine wired as ``rollouts run`` wires it, and a test exporter whose
queue-lag gauge is twice as high for the canary as for GA while latency and errors are identical."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import git
import pytest

from analyzer.prometheus import MetricsReader, PrometheusClient
from rollouts.controller.custom import wiring
from rollouts.controller.machine import Machine
from rollouts.controller.source import PrometheusSource
from rollouts.gitops import Workspace
from rollouts.load import LoadRequest, LocalLoad
from rollouts.local.prometheus import ScrapeTarget
from rollouts.local.stack import LocalStack, StackConfig
from rollouts.metrics import ControllerMetrics
from rollouts.sync import LocalMeshGate
from tests.controller.machinery import rollout_spec
from tests.fixtures.gitrepo import deployment
from tests.grafana.live import CANARY_PATH, commit_file
from tests.providers.exporter import exporter
from tests.support import require_binary

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LAG = {
    "name": "queue-lag",
    "selector": {"namespace": "namespace", "service": "app", "version": "version"},
    "query": "max by ({{ by }}) (max_over_time(queue_lag_seconds{ {{ selector }} }[{{ window }}]))",
    "direction": "higher-is-worse",
    "margin": 0.1,
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, str]]:
    require_binary("prometheus", "apt-get install prometheus")
    require_binary("git")
    with exporter() as made:
        made.set_lag("ga", 0.40)
        made.set_lag("canary", 0.80)
        config = StackConfig(
            canary_weight=0, poll_interval=0.2, extra_targets=(ScrapeTarget("lag", made.address),)
        )
        with LocalStack(config, workdir=tmp_path_factory.mktemp("custom")) as running:
            load = LocalLoad()
            try:
                load.start(LoadRequest(target=running.mesh_url + "/", duration=150, rate=80))
                yield running, made.address
            finally:
                load.close()


def test_the_custom_metric_rolls_back_with_its_reason_in_the_commit(stack, tmp_path: Path) -> None:
    running, _ = stack
    commit_file(running, CANARY_PATH, deployment("podinfo-canary", "6.5.1"), "podinfo canary 6.5.1")
    # GA and canary are the same service; on a loaded 2-core machine their latency still differs
    # window to window, so the built-in harm margins are set wide: this test is about the custom metric.
    quiet = {"harm_latency_margin": 0.45, "harm_tail_ratio": 50.0, "harm_error_ratio": 50.0}
    analysis = {
        "interval": "3s",
        "metrics": ["istio", LAG],
        "policy": {"min_windows": 2, "min_canary_requests": 50, **quiet},
    }
    spec = rollout_spec(str(running.repo_path), analysis=analysis)
    policy = spec.spec.analysis.policy
    source = PrometheusSource(MetricsReader(PrometheusClient(running.prometheus_url)))
    source.register(spec)
    metrics = ControllerMetrics()
    metrics_source, judge_factory = wiring({}, source, spec, policy, metrics)
    machine = Machine(
        spec,
        workspace=Workspace.for_spec(spec, cache_dir=tmp_path / "cache"),
        gate=LocalMeshGate(running.mesh_admin_url),
        metrics_source=metrics_source,
        judge_factory=judge_factory,
        metrics=metrics,
        settle=running.config.scrape_interval,
    )
    results = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            result = machine.tick()
            results.append(result)
            if result.action == "rollback":
                break
            time.sleep(0.5)
    finally:
        machine.close()
    actions = [r.action for r in results]
    assert actions[-1] == "rollback", [(r.action, r.reasons[:2]) for r in results[-5:]]
    reasons = results[-1].reasons
    assert reasons[0].startswith("queue lag: canary 2.00× GA over "), reasons
    assert "e = " in reasons[0] and "≥ 200" in reasons[0]  # α/2: the metric's share of α = 1 %
    log = git.Repo(running.repo_path).git.log("-1", "--format=%B", running.config.branch)
    assert "Rollout-Verdict: rollback" in log and "queue lag: canary 2.00× GA" in log
