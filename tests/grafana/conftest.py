"""Fixtures for the dashboard tests: the real local stack and the real controller, for one rollout.

One stack per module: Prometheus (1 s scrapes), the podinfo-compatible GA and canary services, the
local mesh emitting Istio telemetry and following the route file in a bare Git repo, and the
controller's own ``/metrics`` server. The controller's state machine for ``test/podinfo`` runs real
ticks on that repo: it starts the rollout (a commit to 10 %), waits at the sync gate for the mesh,
and judges the first analysis window from Prometheus; beside it a pipeline job (the stack's rollout as
staging, a second repository's as production) reads both from Git and sets where each environment
stands (``rollouts_pipeline_revision``). Traffic goes through the mesh in bounded
bursts, so GA and canary series (successes and errors) both exist.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import git
import pytest

from analyzer.prometheus import MetricsReader, PrometheusClient
from rollouts.controller.custom import wiring as custom_wiring
from rollouts.controller.machine import Machine, grid_start
from rollouts.controller.source import PrometheusSource
from rollouts.gitops import Workspace
from rollouts.local.prometheus import ScrapeTarget
from rollouts.local.stack import LocalStack, StackConfig
from rollouts.metrics import ControllerMetrics, MetricsServer
from rollouts.pipeline.job import PipelineJob
from rollouts.pipeline.runner import LoadedPipeline, PipelineRunner, Stage
from rollouts.pipeline.spec import parse_pipeline
from rollouts.spec import Rollout, parse_spec
from rollouts.sync import LocalMeshGate
from tests.controller.machinery import rollout_spec
from tests.fixtures.gitrepo import deployment, guide_rollout
from tests.grafana.live import CANARY_PATH, TOTAL, Live, commit_file
from tests.grafana.promserver import Prometheus
from tests.local.traffic import send
from tests.pipeline.world import environment
from tests.support import require_binary

INTERVAL_S = 3.0  # analysis window: three scrapes, so increase() always has two samples in it
DATA_TIMEOUT_S = 30.0
PRODUCTION = {"name": "podinfo-prod", "namespace": "test"}
BURST = ["/version"] * 45 + ["/status/500"] * 5
# What every panel needs before the tests look: both subsets' traffic, a commit and a verdict seen
# as increases by rate()/increase() (two samples each), the evidence of the judged window.
READY_QUERIES = (
    ('sum by (destination_version) (rate(istio_requests_total{response_code="500"}[1m])) > 0', 2),
    ('increase(rollouts_commits_total{verdict="promote"}[1m]) > 0', 1),
    ('increase(rollouts_verdicts_total{action="hold"}[1m]) > 0', 1),
    ('rate(rollouts_analysis_duration_seconds_count{rollout="test/podinfo"}[1m]) > 0', 1),
    ('count(rollouts_evidence{rollout="test/podinfo"})', 1),
    ('rollouts_pipeline_revision{pipeline="test/podinfo"} == 1', 2),
)


def poll(what: str, done: Callable[[], bool], timeout: float = DATA_TIMEOUT_S, step: float = 0.2) -> None:
    """Wait until ``done()``, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s")
        time.sleep(step)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The stack and one rollout driven by the controller's state machine, with data in Prometheus."""
    require_binary("prometheus", "Debian package prometheus; `make system` installs it")
    require_binary("git")
    workdir = tmp_path_factory.mktemp("grafana-live")
    metrics = ControllerMetrics()
    server = MetricsServer(metrics, port=0).start()
    controller = ScrapeTarget("controller", f"127.0.0.1:{server.port}")
    try:
        config = StackConfig(canary_weight=0, poll_interval=0.2, extra_targets=(controller,))
        with LocalStack(config, workdir=workdir) as stack:
            yield drive(stack, metrics, workdir)
    finally:
        server.stop()


# A custom metric the local stack has data for: each subset's request rate, from the mesh's telemetry.
REQUEST_RATE = {
    "name": "request-rate",
    "kind": "value",
    "selector": {"namespace": "destination_workload_namespace", "workload": "destination_workload"},
    "query": "sum by ({{ by }}) "
    '(rate(istio_requests_total{reporter="destination", {{ selector }} }[{{ window }}]))',
    "direction": "lower-is-worse",
    "role": "show",
}


def drive(stack: LocalStack, metrics: ControllerMetrics, workdir: Path) -> Live:
    """Warm up both subsets, let the machine start the rollout and judge one window; wait for data."""
    prometheus = Prometheus(stack.prometheus_url)
    served: Counter[tuple[str, int]] = Counter()
    commit_file(stack, CANARY_PATH, deployment("podinfo-canary", "6.5.1"), "podinfo canary 6.5.1")
    # Warm-up by a human at 50 %: every series (200 and 500, both subsets) exists before the step,
    # so no analysis window meets a series that does not exist yet. Back to 0 % for the controller.
    stack.wait_for_revision(stack.set_canary_weight(50, "warm-up"))
    served += send(stack, BURST * 2)
    stack.wait_for_revision(stack.set_canary_weight(0, "warm-up done"))

    spec = rollout_spec(
        str(stack.repo_path), analysis={"interval": f"{INTERVAL_S:g}s", "metrics": ["istio", REQUEST_RATE]}
    )
    policy = spec.spec.analysis.policy
    # The controller's own source: the built-in Istio template, GA and canary as the stack names them,
    # and one custom metric (the dashboards' custom-metric row), wired as `rollouts run` does.
    source = PrometheusSource(MetricsReader(PrometheusClient(stack.prometheus_url)))
    source.register(spec)
    metrics_source, judge_factory = custom_wiring({}, source, spec, policy, metrics)
    machine = Machine(
        spec,
        workspace=Workspace.for_spec(spec, cache_dir=workdir / "cache"),
        gate=LocalMeshGate(stack.mesh_admin_url),
        metrics_source=metrics_source,
        judge_factory=judge_factory,
        metrics=metrics,
        settle=stack.config.scrape_interval,  # a window is judged once its last scrape is in
    )
    try:
        # The counters exist at 0 from the machine's creation: let Prometheus see that first.
        poll(
            "controller scraped", lambda: has(prometheus, 'rollouts_commits_total{verdict="promote"} == 0', 1)
        )
        ticks = [machine.tick()]  # start: the commit to the first step
        head = git.Repo(stack.repo_path).commit(stack.config.branch)
        stack.wait_for_revision(head.hexsha)
        ticks.append(machine.tick())  # the sync gate opens
        # The step's windows lie on the interval grid from the commit's time.
        first_window_end = grid_start(head.committed_date, INTERVAL_S) + INTERVAL_S
        # Bounded traffic at the committed split until the first window is complete and scraped.
        for _ in range(100):
            served += send(stack, BURST)
            if time.time() > first_window_end + 1.5 * stack.config.scrape_interval:
                break
            time.sleep(0.1)
        ticks.append(machine.tick())
        pipeline = pipeline_job(spec, metrics, workdir)
        handing = pipeline.tick()  # where each environment stands: rollouts_pipeline_revision
        pipeline.close()
        # Bounded: what is still missing then fails the panels that need it, by name.
        deadline = time.monotonic() + DATA_TIMEOUT_S
        for expr, count in READY_QUERIES:
            while not has(prometheus, expr, count) and time.monotonic() < deadline:
                time.sleep(0.2)
        # Targets are scraped at their own offsets: wait for the mesh's scrape after the last burst.
        sent = sum(served.values())
        while scraped_requests(prometheus) < sent and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        machine.close()
    return Live(prometheus, ticks, served, handing)


def pipeline_job(staging: Rollout, metrics: ControllerMetrics, workdir: Path) -> PipelineJob:
    """A pipeline from the stack's rollout (staging) to a second repository's (production): its
    job reads both from Git and sets each environment's series, as ``rollouts run`` does."""
    remote = environment(workdir / "production", "6.5.0")
    production = parse_spec({**guide_rollout(str(remote.bare)), "metadata": PRODUCTION})
    document = {
        "apiVersion": "rollouts.dev/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "environments": [
                {"name": "staging", "rollout": "staging.yaml"},
                {"name": "production", "rollout": "production.yaml", "promotion": {"soak": "10m"}},
            ]
        },
    }
    loaded = LoadedPipeline(
        parse_pipeline(document),
        (Stage("staging", staging), Stage("production", production)),
        "pipeline.yaml",
    )
    return PipelineJob(PipelineRunner.for_pipeline(loaded, cache_dir=workdir / "cache"), metrics)


def has(prometheus: Prometheus, expr: str, results: int) -> bool:
    """Does ``expr`` return at least ``results`` series now?"""
    return len(prometheus.query(expr)["data"]["result"]) >= results


def scraped_requests(prometheus: Prometheus) -> float:
    """Requests of the stack's service that Prometheus has scraped from the mesh so far."""
    result = prometheus.query(f"sum({TOTAL})")["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


@pytest.fixture(scope="module")
def prometheus(live: Live) -> Prometheus:
    """The stack's Prometheus, with the data of :func:`live` in it."""
    return live.prometheus
