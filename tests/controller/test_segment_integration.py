"""The A/B judge on GA's matching requests, against the real local stack and real Prometheus.

The mesh labels its Istio metrics with ``request_segment`` (``match`` when the request carries
``x-user: beta``, as a Telemetry ``tagOverrides`` tag would); with ``analysis.segmentLabel`` the
source reads both sides of the match stage from that segment, and falls back to all of GA's requests,
with a note, once the match route sends every matching request to the canary.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest

from analyzer.prometheus import MetricsReader, PrometheusClient
from rollouts.controller.segment import NotedWindow
from rollouts.controller.source import PrometheusSource
from rollouts.load import LoadRequest, LocalLoad
from rollouts.local.mesh import SegmentLabel
from rollouts.local.stack import LocalStack, StackConfig, guide_virtual_service
from rollouts.routes import editor_for
from rollouts.spec import Rollout, parse_spec
from rollouts.spec_strategy import MatchSpec, StrategySpec
from tests.support import require_binary

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BETA = {"headers": {"x-user": {"exact": "beta"}}}


def route(match_canary: int) -> str:
    """The guide's VirtualService (all to GA) with our match route for ``x-user: beta``, as the
    match stage commits it (``analysis.matchWeight``: ``match_canary`` percent to the canary)."""
    editor = editor_for("VirtualService", stable="ga", canary="canary", source="vs.yaml")
    strategy = {"iterations": 1, "match": [BETA], "matchWeight": match_canary}
    match = StrategySpec.model_validate(strategy).to_match()
    return editor.set_match(guide_virtual_service(0), match)


def rollout(name: str, prometheus: str, *, segment: bool) -> Rollout:
    analysis: dict[str, object] = {"interval": "5s", "prometheus": {"url": prometheus}}
    if segment:
        analysis |= {"iterations": 3, "match": [BETA], "segmentLabel": {"name": "request_segment"}}
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
                "analysis": analysis,
            },
        }
    )


def wait_for_segment(prometheus: str, workloads: set[str], after: float, timeout: float = 60.0) -> float:
    """Poll (bounded) until Prometheus has ``request_segment="match"`` requests of every workload
    in a whole 5 s window on the grid that begins at or after ``after``; that window's end."""
    client = PrometheusClient(prometheus)
    promql = (
        'sum by (destination_workload) (increase(istio_requests_total{destination_workload_namespace="test", '
        'request_segment="match"}[5s]))'
    )
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        end = math.floor((time.time() - 2) / 5) * 5
        if end - 5 >= after:
            seen = {
                s.labels.get("destination_workload", "") for s in client.query(promql, end) if s.value > 0
            }
            if seen >= workloads:
                return end
        time.sleep(0.5)
    pytest.fail(f"no segment traffic for {sorted(workloads - seen)} after {timeout:.0f} s")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    require_binary("prometheus", "apt-get install prometheus")
    config = StackConfig(
        route_text=route(50),
        segment_label=SegmentLabel(name="request_segment", match=(MatchSpec.model_validate(BETA),)),
    )
    with LocalStack(config, workdir=tmp_path_factory.mktemp("stack")) as running:
        beta, others = LocalLoad(), LocalLoad()
        try:
            url = running.mesh_url + "/"
            beta.start(LoadRequest(target=url, duration=120, rate=40, headers={"x-user": "beta"}))
            others.start(LoadRequest(target=url, duration=120, rate=40))
            yield running
        finally:
            beta.close()
            others.close()


def test_the_match_stage_compares_the_segment_and_falls_back_to_all_of_ga_saying_so(
    stack: LocalStack,
) -> None:
    client = PrometheusClient(stack.prometheus_url)
    source = PrometheusSource(MetricsReader(client))
    ab, plain = (
        rollout("podinfo", stack.prometheus_url, segment=True),
        rollout("plain", stack.prometheus_url, segment=False),
    )
    # The plain rollout reads the same workloads without the segment: all of GA's requests.
    plain = plain.model_copy(update={"metadata": ab.metadata})
    source.register(ab)
    other = PrometheusSource(MetricsReader(client))
    other.register(plain)

    # Our match route splits beta users 50/50 (matchWeight 50): GA serves matching requests, and
    # they are GA's side.
    # A window that begins once every series exists (a series born inside a window loses its first
    # counts to increase()), so that the segment and all of GA are read over the same requests.
    end = wait_for_segment(stack.prometheus_url, {"podinfo-ga", "podinfo-canary"}, after=time.time() + 6)
    window = source.window(ab, end - 5, end, 0)
    everyone = other.window(plain, end - 5, end, 0)
    assert not isinstance(window, NotedWindow)
    assert window.canary.requests > 0 and window.baseline.requests > 0
    # GA's segment is the beta half of GA's beta share (about 20/s of its 60/s): well below all of GA.
    assert window.baseline.requests < 0.6 * everyone.baseline.requests
    assert window.canary.requests == pytest.approx(everyone.canary.requests, rel=0.01)

    # A pure match route (matchWeight 100, every beta user to the canary): GA serves no matching
    # request, and the window says that GA's side is all of GA's requests.
    sha = stack.commit_route(route(100), "the match route sends every beta user to the canary")
    stack.wait_for_revision(sha, timeout=20.0)
    applied = time.time()
    end = math.ceil((applied + 1) / 5) * 5 + 5  # the first whole window after the change
    while time.time() < end + 3:  # and one scrape after it
        time.sleep(0.5)
    window = source.window(ab, end - 5, end, 0)
    everyone = other.window(plain, end - 5, end, 0)
    assert (
        isinstance(window, NotedWindow) and "GA served no request with request_segment='match'" in window.note
    )
    assert window.baseline.requests == pytest.approx(everyone.baseline.requests, rel=0.01)
    # At a weight step the segment is not used: the steps split every user.
    stepped = source.window(ab, end - 5, end, 10)
    assert not isinstance(stepped, NotedWindow)
