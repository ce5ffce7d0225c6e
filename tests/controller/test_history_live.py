"""GA's windows before a rollout, read from a real Prometheus (backfilled with promtool): as many as
GA has, newest first, stopping at the first window without GA, and what the judge makes of them."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from analyzer import Judge, Policy, SubsetWindow
from analyzer.prometheus import MetricsReader, PrometheusClient
from analyzer.replay import Source as ReplaySource
from analyzer.replay import ga_history
from rollouts.controller.source import PrometheusSource
from rollouts.spec import parse_spec
from rollouts.workloads import subsets_of, template_of
from tests.fixtures.backfill import backfilled_prometheus
from tests.fixtures.gitrepo import guide_rollout, make_spec

pytestmark = pytest.mark.integration

INTERVAL = 60
STEP = 15
#: GA served traffic for the 20 minutes before this moment (aligned, two hours ago).
BEGAN = (int(time.time()) // 3600 - 2) * 3600
GA_MINUTES = 20
RATE = 20.0  # GA requests per second
ERROR_RATE = 0.05
BOUNDS_MS = ("25", "50", "100", "250", "+Inf")
SHARE = (0.3, 0.6, 0.9, 0.99, 1.0)


def _openmetrics() -> str:
    start = BEGAN - GA_MINUTES * 60
    times = range(start, BEGAN + 1, STEP)
    labels = 'reporter="destination",destination_workload_namespace="test",destination_workload="podinfo-ga"'
    lines = ["# TYPE istio_requests counter"]
    for code, share in (("200", 1 - ERROR_RATE), ("503", ERROR_RATE)):
        lines += [
            f'istio_requests_total{{{labels},response_code="{code}"}} {RATE * share * (t - start)} {t}'
            for t in times
        ]
    lines.append("# TYPE istio_request_duration_milliseconds histogram")
    for bound, share in zip(BOUNDS_MS, SHARE, strict=True):
        series = f'istio_request_duration_milliseconds_bucket{{{labels},le="{bound}"}}'
        lines += [f"{series} {RATE * share * (t - start)} {t}" for t in times]
    return "\n".join([*lines, "# EOF"]) + "\n"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusSource]:
    with backfilled_prometheus(Path(tmp_path_factory.mktemp("history")), _openmetrics()) as url:
        yield PrometheusSource(MetricsReader(PrometheusClient(url)))


def test_history_reads_ga_windows_newest_first_and_stops_where_ga_began(source: PrometheusSource) -> None:
    rollout = make_spec("file:///nowhere")
    source.register(rollout)
    windows = source.history(rollout, float(BEGAN), INTERVAL, 60)
    # 20 minutes of GA: the windows that lie inside them (the oldest may lack the samples increase()
    # needs), never the 60 asked for, and nothing from before GA existed.
    assert GA_MINUTES - 2 <= len(windows) <= GA_MINUTES
    for w in windows:
        assert math.isclose(w.requests, RATE * INTERVAL, rel_tol=0.01)
        assert math.isclose(w.errors, RATE * INTERVAL * ERROR_RATE, rel_tol=0.01)
        assert math.isclose(w.histogram.total, RATE * INTERVAL, rel_tol=0.01)
    assert source.history(rollout, float(BEGAN), INTERVAL, 5) == windows[:5]
    # Before GA existed: nothing.
    assert source.history(rollout, float(BEGAN - 3600), INTERVAL, 10) == []
    # An unregistered rollout has no history (and no error).
    doc = guide_rollout("file:///elsewhere")
    doc["metadata"]["name"] = "other"
    other = parse_spec(doc)
    assert source.history(other, float(BEGAN), INTERVAL, 10) == []

    # The judge takes them (oldest first): tail bounds fixed, and perfectly steady GA traffic measures
    # no variation at all, far below the policy's prior floor.
    judge = Judge(Policy(), history=windows[::-1])
    assert judge.history is not None
    assert judge.history.windows == len(windows)
    assert judge.history.tail_bound is not None
    assert judge.history.error_cv2 < Policy().window_error_cv ** 2 / 10


def test_replay_reads_the_same_history_as_the_controller(source: PrometheusSource) -> None:
    """``analyzer replay`` gives its judge what the controller's judge gets (oldest first here)."""
    rollout = make_spec("file:///nowhere")
    source.register(rollout)
    stable, canary = subsets_of(rollout)
    replay_source = ReplaySource(source.reader, template_of(rollout), stable, canary, INTERVAL)
    cache: dict[float, SubsetWindow | None] = {}
    replayed = ga_history(replay_source, float(BEGAN), 60, cache)
    assert replayed == source.history(rollout, float(BEGAN), INTERVAL, 60)[::-1]
    assert ga_history(replay_source, float(BEGAN), 60, cache) == replayed  # from the cache
