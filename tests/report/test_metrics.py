"""Per-step figures read from a real Prometheus, checked against Prometheus' own PromQL answers."""

from __future__ import annotations

import math

import pytest
import requests

from rollouts.report import read_step_metrics, select_subsets
from rollouts.report.metrics import MetricsConfigError
from rollouts.spec import parse_spec
from tests.support import free_port

pytestmark = pytest.mark.integration


def _promql(url: str, expr: str, at: int) -> float:
    answer = requests.get(f"{url}/api/v1/query", params={"query": expr, "time": at}, timeout=5).json()
    result = answer["data"]["result"]
    assert len(result) == 1, (expr, answer)
    return float(result[0]["value"][1])


def test_every_step_measured_with_both_subsets(measured):
    assert measured.available and measured.error is None
    assert [m.step.weights.canary for m in measured.steps] == [0, 10, 60, 0]
    baseline, _, _, back = measured.steps
    assert baseline.stable is not None and baseline.stable.requests > 0
    assert baseline.canary is None and "no series" in (baseline.canary_missing or "")
    assert back.canary is not None and back.canary.requests == 0  # series exist, no traffic


@pytest.mark.parametrize("index,version", [(1, "ga"), (1, "canary"), (2, "ga"), (2, "canary")])
def test_figures_equal_prometheus_own_answers(scenario, measured, index, version):
    item = measured.steps[index]
    data = item.stable if version == "ga" else item.canary
    assert data is not None
    step = item.step
    selector = (
        f'reporter="destination", destination_workload_namespace="test", destination_version="{version}"'
    )
    window = f"[{step.duration}s]"
    url = scenario.prometheus
    requests_total = _promql(url, f"sum(increase(istio_requests_total{{{selector}}}{window}))", step.end)
    assert data.requests == pytest.approx(requests_total, rel=1e-9)
    for q in (0.5, 0.9, 0.99):
        expected_ms = _promql(
            url,
            f"histogram_quantile({q}, sum by (le) "
            f"(increase(istio_request_duration_milliseconds_bucket{{{selector}}}{window})))",
            step.end,
        )
        assert data.histogram.quantile(q) * 1000 == pytest.approx(expected_ms, rel=1e-9)


def test_the_slow_failing_canary_shows_in_its_step(measured):
    _, ten, sixty, back = measured.steps
    assert ten.canary is not None and ten.stable is not None and sixty.canary is not None
    assert sixty.stable is not None and back.stable is not None
    # 10 %: canary as fast as GA, no errors; about one request in ten.
    assert ten.canary.errors == 0 and ten.stable.errors == 0
    assert 0.03 < ten.canary.requests / (ten.canary.requests + ten.stable.requests) < 0.25
    assert ten.canary.histogram.quantile(0.5) < 0.025
    # 60 %: canary ~300 ms with a quarter 503s; GA unchanged. reporter="source" 500s never count.
    assert sixty.canary.histogram.quantile(0.5) > 0.1
    assert sixty.stable.histogram.quantile(0.5) < 0.025
    assert 0.1 < sixty.canary.error_rate < 0.45
    assert sixty.stable.errors == 0 and back.stable.errors == 0
    assert math.isnan(back.canary.error_rate) if back.canary else True


def test_unreachable_prometheus_is_reported_not_raised(scenario, measured):
    steps = [m.step for m in measured.steps]
    dead = read_step_metrics(f"http://127.0.0.1:{free_port()}", steps, select_subsets(scenario.rollout))
    assert not dead.available and dead.steps == ()
    assert "did not answer" in (dead.error or "")
    none = read_step_metrics(None, steps, select_subsets(scenario.rollout))
    assert not none.available and "--prometheus" in (none.error or "")


def test_without_subsets_the_route_subsets_are_the_versions(scenario):
    selection = select_subsets(scenario.rollout)
    assert (
        selection.describe(selection.stable)
        == '{destination_workload_namespace="test", destination_version="ga"}'
    )
    assert (
        selection.describe(selection.canary)
        == '{destination_workload_namespace="test", destination_version="canary"}'
    )
    assert selection.note is not None and "spec.analysis.subsets is not set" in selection.note


def _with_analysis(rollout, analysis):
    data = rollout.model_dump(by_alias=True, exclude_unset=True)
    data["spec"]["analysis"] = analysis
    return parse_spec(data)


def test_the_specs_template_and_subsets_give_the_same_figures(scenario, measured):
    rollout = _with_analysis(
        scenario.rollout,
        {
            "metrics": "istio",
            "subsets": {"stable": {"workload": "podinfo-ga"}, "canary": {"workload": "podinfo-canary"}},
        },
    )
    selection = select_subsets(rollout)
    assert selection.template.name == "istio" and selection.note is None
    by_workload = read_step_metrics(scenario.prometheus, [m.step for m in measured.steps], selection)
    for a, b in zip(by_workload.steps, measured.steps, strict=True):
        for x, y in ((a.stable, b.stable), (a.canary, b.canary)):
            assert (x is None) == (y is None)
            if x is not None and y is not None:
                assert (x.requests, x.errors, x.histogram) == (y.requests, y.errors, y.histogram)


def test_subsets_the_template_cannot_select_name_the_field(scenario):
    rollout = _with_analysis(scenario.rollout, {"metrics": "podinfo"})
    with pytest.raises(MetricsConfigError, match=r"spec\.analysis\.subsets\.stable: .*needs subset\.service"):
        select_subsets(rollout)
