"""The report's custom-metric rows come from the commits' evidence, newest first, hostile values refused."""

from __future__ import annotations

import math
from dataclasses import replace

from rollouts.report.custom import custom_rows
from rollouts.state.message import evidence_line, parse_message


def event_with(evidence: dict[str, str], sha: str):
    from rollouts.report.history import Event

    fields = {f: None for f in Event.__dataclass_fields__}
    fields.update(sha=sha, evidence=evidence)
    return Event(**fields)  # type: ignore[arg-type]


def test_rows_are_the_newest_figures_per_metric():
    old = event_with({"custom.queue-lag.ratio": "1.1", "custom.queue-lag.alpha": "0.005"}, "a" * 40)
    new = event_with(
        {
            "custom.queue-lag.ratio": "1.8",
            "custom.queue-lag.ga_mean": "0.4",
            "custom.queue-lag.canary_mean": "0.72",
            "custom.queue-lag.harm_e": "541",
            "custom.queue-lag.alpha": "0.005",
            "custom.cache-misses.ratio": "inf",
            "custom.cache-misses.harm_e": "<script>",
            "custom.x.unknown_field": "1",
            "harm_e": "3",
        },
        "b" * 40,
    )
    rows = custom_rows([old, new])
    assert [r.metric for r in rows] == ["cache-misses", "queue-lag"]
    lag = rows[1]
    assert (lag.sha, lag.ratio, lag.ga_mean, lag.canary_mean, lag.harm_e) == ("b" * 40, 1.8, 0.4, 0.72, 541.0)
    assert lag.harm_threshold == 200.0 and math.isnan(lag.safety_e)
    assert math.isnan(rows[0].ratio) and math.isnan(rows[0].harm_e)  # not numbers: missing
    assert custom_rows([replace(old, evidence={})]) == []


def test_the_evidence_a_verdict_commit_writes_reads_back_as_rows():
    figures = {
        "custom.queue-lag.ratio": 1.8,
        "custom.queue-lag.ga_mean": 0.4,
        "custom.queue-lag.alpha": 0.005,
    }
    message = parse_message(
        "podinfo: rollback\n\n- queue lag: canary 1.80x GA\n" + evidence_line(figures) + "\n"
    )
    (row,) = custom_rows([event_with(message.evidence, "c" * 40)])
    assert (row.metric, row.ratio, row.ga_mean, row.harm_threshold) == ("queue-lag", 1.8, 0.4, 200.0)


def test_the_page_shows_each_custom_metric_ga_and_canary_side_by_side():
    from rollouts.report import StepMetricsReport, Timeline, render

    evidence = {
        "custom.queue-lag.ga_mean": "0.4",
        "custom.queue-lag.canary_mean": "0.72",
        "custom.queue-lag.ratio": "1.8",
        "custom.queue-lag.harm_e": "541",
        "custom.queue-lag.alpha": "0.005",
        "custom.<b>x</b>.ratio": "2",  # not a metric name: left out
    }
    event = event_with(evidence, "d" * 40)
    event = replace(
        event,
        timestamp=1_700_000_000,
        author="rollouts",
        subject="rollback",
        message="rollback",
        ours=True,
        reasons=("queue lag: canary 1.80× GA over 7 windows, e = 541 ≥ 200",),
    )
    timeline = Timeline(
        rollout="test/podinfo",
        route_path="vs.yaml",
        stable="ga",
        canary="canary",
        branch="main",
        head="e" * 40,
        events=(event,),
    )
    page = render(
        timeline, StepMetricsReport(url=None, steps=(), selection=None, error="off"), generated=0, end=0
    ).html
    row = page.split('<tr id="custom-queue-lag">', 1)[1].split("</tr>", 1)[0]
    cells = [c.split(">", 1)[1].split("</td", 1)[0] for c in row.split("<td")[1:]]
    assert cells[:7] == ["queue-lag", "0.4", "0.72", "1.8", "541", "200", "–"]
    assert "<b>x</b>" not in page
    empty = replace(timeline, events=(replace(event, evidence={}),))
    assert (
        "Custom metrics"
        not in render(
            empty, StepMetricsReport(url=None, steps=(), selection=None, error="off"), generated=0, end=0
        ).html
    )
