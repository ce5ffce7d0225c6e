"""The page: figures as measured, verdicts with evidence and commits, everything from Git escaped."""

from __future__ import annotations

import base64
import html
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollouts.report import (
    Event,
    StepMetricsReport,
    Timeline,
    render,
)
from tests.report.scenario import HUMAN_SUBJECT

pytestmark = pytest.mark.integration


def _cells(page: str, row_id: str) -> list[str]:
    row = re.search(rf'<tr id="{row_id}">(.*?)</tr>', page, re.S)
    assert row is not None, row_id
    return [
        html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
        for c in re.findall(r"<td[^>]*>(.*?)</td>", row[1], re.S)
    ]


def _ms(text: str) -> float:
    return float(text.removesuffix(" ms"))


def test_step_rows_show_the_measured_figures(built, measured):
    for item in measured.steps:
        cells = _cells(built.html, f"step-{item.step.index}")
        assert cells[0] == str(item.step.index)
        assert cells[3] == f"{item.step.weights.canary}%"
        assert cells[4] == item.step.event.sha[:10]
        rest = cells[5:]
        for data in (item.stable, item.canary):
            if data is None:
                assert rest[0].startswith("no data: no series")
                rest = rest[1:]
                continue
            requests, errors, p50, p90, p99 = rest[:5]
            rest = rest[5:]
            assert int(requests) == round(data.requests)
            assert int(errors.split()[0]) == round(data.errors)
            for shown, q in ((p50, 0.5), (p90, 0.9), (p99, 0.99)):
                if data.requests == 0:
                    assert shown == "–"
                else:  # three significant digits
                    assert _ms(shown) == pytest.approx(data.histogram.quantile(q) * 1000, rel=5e-3)
        assert rest == []


def test_canary_error_rate_of_the_bad_step_is_on_the_page(built, measured):
    sixty = measured.steps[2].canary
    assert sixty is not None and sixty.errors > 0
    assert f"{sixty.errors:.0f} ({100 * sixty.error_rate:.2f}%)" in _cells(built.html, "step-3")


def test_verdicts_with_reasons_evidence_and_commits(built, scenario):
    for key, verdict in (("10", "promote"), ("60", "promote"), ("human", "human"), ("pause", "pause")):
        cells = _cells(built.html, f"commit-{scenario.shas[key][:12]}")
        assert cells[1] == scenario.shas[key][:10]
        assert cells[4] == verdict
    sixty = _cells(built.html, f"commit-{scenario.shas['60'][:12]}")
    assert sixty[3] == "10% → 60%" and sixty[5] == "2/3" and sixty[6] == "0.2.0"
    assert "latency non-inferior (e=25.0 >= 20)" in sixty[7]
    assert "<dt>latency.e_harm</dt><dd>0.42</dd>" in built.html
    assert "Rollout-Verdict: promote" in sixty[9]  # the full message
    assert f'id="commit-{scenario.shas["image"][:12]}"' not in built.html


def test_commit_messages_are_escaped(built):
    assert HUMAN_SUBJECT not in built.html
    assert html.escape(HUMAN_SUBJECT) in built.html
    assert "<script" not in built.html.lower()  # the page has no script of its own either


def test_charts_are_embedded_and_written_beside(built):
    embedded = dict(re.findall(r'<img id="chart-(\w+)"[^>]*src="data:image/png;base64,([^"]+)"', built.html))
    assert sorted(embedded) == ["errors", "evidence", "latency", "weights"]
    for name, data in embedded.items():
        png = (built.directory / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and base64.b64decode(data) == png
    assert sorted(p.name for p in built.directory.iterdir()) == [
        "errors.png",
        "evidence.png",
        "index.html",
        "latency.png",
        "weights.png",
    ]
    assert "4 measured step(s)" in built.stdout and "5 commit(s)" in built.stdout


OUR_TAGS = {
    t
    for name in [
        "h1",
        "h2",
        "div",
        "code",
        "b",
        "p",
        "table",
        "tr",
        "th",
        "td",
        "span",
        "ul",
        "li",
        "dl",
        "dt",
        "dd",
        "details",
        "summary",
        "pre",
    ]
    for t in (name, f"/{name}")
} | {"/body", "/html"}
_HOSTILE = st.text(max_size=40) | st.sampled_from(
    ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "&amp;<"]
)


@settings(max_examples=30)
@given(subject=_HOSTILE, author=_HOSTILE, reason=_HOSTILE, key=_HOSTILE, name=_HOSTILE)
def test_whatever_git_says_is_text_on_the_page(subject, author, reason, key, name):
    event = Event(
        sha="a" * 40,
        timestamp=1_700_000_000,
        author=author,
        subject=subject,
        message=f"{subject}\n\n- {reason}",
        before=None,
        after=None,
        ours=False,
        verdict=None,
        step=None,
        revision=name,
        reasons=(reason,),
        evidence={key: name},
        error=name,
    )
    timeline = Timeline(
        rollout=f"test/{name}",
        route_path=name,
        stable=name,
        canary=name,
        branch=name,
        head="b" * 40,
        events=(event,),
    )
    page = render(
        timeline, StepMetricsReport(url=None, steps=(), selection=None, error=name), generated=0, end=0
    ).html
    body = page.split("<body>", 1)[1]
    # The only markup is ours: every '<' in the body opens one of the tags the renderer writes.
    tags = set(re.findall(r"<(/?[a-z0-9]+)", body))
    assert tags <= OUR_TAGS
    for text in (subject, author, reason, key, name):
        assert html.escape(text) in body


@pytest.mark.parametrize("available", [False, True])
def test_a_chart_with_nothing_to_draw_is_said_under_its_heading(available):
    timeline = Timeline(
        rollout="test/podinfo",
        route_path="vs.yaml",
        stable="ga",
        canary="canary",
        branch="master",
        head="b" * 40,
        events=(),
    )
    metrics = StepMetricsReport(
        url="http://127.0.0.1:9" if available else None,
        steps=(),
        selection=None,
        error=None if available else "x",
    )
    rendered = render(timeline, metrics, generated=0, end=0)
    assert rendered.charts == ()
    assert (
        '<h2>Weights over time</h2>\n<p class="meta">No weights found in the history of the route file.</p>'
        in (rendered.html)
    )
    latency = '<h2>Latency per step</h2>\n<p class="meta">No latency data for any step.</p>'
    errors = '<h2>Error rate per step</h2>\n<p class="meta">No request data for any step.</p>'
    assert (latency in rendered.html) is available
    assert (errors in rendered.html) is available


def test_the_evidence_of_each_window_is_plotted_against_its_threshold(scenario, built):
    """The report replays the steps' windows (1 s here) through the rollout's judge."""
    import git as gitpython

    from rollouts.gitops import Workspace
    from rollouts.report import read_evidence, read_timeline, select_subsets

    assert "<h2>Evidence per window</h2>" in built.html
    workspace = Workspace.for_spec(scenario.rollout, cache_dir=scenario.cache)
    timeline = read_timeline(gitpython.Repo(workspace.path), scenario.rollout)
    trace = read_evidence(
        scenario.prometheus, timeline.steps(scenario.end), select_subsets(scenario.rollout), scenario.rollout
    )
    assert trace.error is None and trace.judged
    weights = {w.weight for w in trace.judged}
    assert weights <= {10.0, 60.0}
    for w in trace.judged:
        assert w.verdict is not None
        assert w.verdict.evidence["harm_threshold"] == 100.0
        assert "e_harm" in w.verdict.evidence and "e_safety_errors" in w.verdict.evidence
    # The 60 % canary is 25x slower and fails a quarter of its requests: its windows end in a rollback.
    at_60 = [w for w in trace.judged if w.weight == 60.0]
    assert at_60 and at_60[-1].verdict is not None and at_60[-1].verdict.action == "rollback"


def test_no_judged_window_is_no_evidence_chart() -> None:
    from rollouts.report.evidence import EvidenceTrace
    from rollouts.report.render import evidence_chart

    assert evidence_chart(None) is None
    assert evidence_chart(EvidenceTrace(error="Prometheus at x did not answer")) is None
