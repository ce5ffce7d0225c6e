"""The timeline from Git: our commits with trailers, a human's, records; messages parsed liberally."""

from __future__ import annotations

from datetime import UTC, datetime

import git as gitpython
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollouts.gitops import Workspace
from rollouts.report import parse_message, read_timeline
from rollouts.routes import Weights
from tests.report.scenario import EVIDENCE_JSON, HUMAN_SUBJECT


def _repo(scenario):
    workspace = Workspace.for_spec(scenario.rollout, cache_dir=scenario.cache)
    workspace.read_weights(scenario.rollout)
    return gitpython.Repo(workspace.path)


@pytest.mark.integration
def test_timeline_has_every_weight_change_and_our_records(scenario):
    timeline = read_timeline(_repo(scenario), scenario.rollout)
    shas = scenario.shas
    assert [e.sha for e in timeline.events] == [
        shas["initial"],
        shas["10"],
        shas["60"],
        shas["human"],
        shas["pause"],
    ]
    assert shas["image"] not in {e.sha for e in timeline.events}  # touched neither weights nor trailers
    assert timeline.head == shas["image"]
    kinds = [(e.kind, e.ours) for e in timeline.events]
    assert kinds == [
        ("human", False),
        ("promote", True),
        ("promote", True),
        ("human", False),
        ("pause", True),
    ]
    canary = [(e.before and e.before.canary, e.after and e.after.canary) for e in timeline.events]
    assert canary == [(None, 0), (0, 10), (10, 60), (60, 0), (0, 0)]
    assert [e.weight_change for e in timeline.events] == [True, True, True, True, False]
    assert [e.timestamp for e in timeline.events[:4]] == [
        scenario.times[k] for k in ("initial", "10", "60", "human")
    ]
    ten, sixty, human, pause = timeline.events[1:]
    assert (ten.step, sixty.step, ten.revision) == ("1/3", "2/3", "0.2.0")
    assert ten.reasons == ("baseline healthy, starting the canary",)
    assert sixty.reasons == ("latency non-inferior (e=25.0 >= 20)",)
    assert sixty.evidence == {"latency.e_harm": "0.42", "errors.e_safety": "25", "canary.requests": "31"}
    assert sixty.author == "gitops-rollouts <rollouts@localhost>"
    assert human.subject == HUMAN_SUBJECT and human.author == "Human <human@example.com>"
    assert human.reasons == ("errors look bad to me",)  # Signed-off-by is not a reason
    assert pause.reasons == ("a human rolled back",)


@pytest.mark.integration
def test_steps_span_from_one_weight_commit_to_the_next(scenario):
    timeline = read_timeline(_repo(scenario), scenario.rollout)
    steps = timeline.steps(scenario.end)
    t = scenario.times
    assert [(s.index, s.weights.canary, s.start, s.end) for s in steps] == [
        (1, 0, t["initial"], t["10"]),
        (2, 10, t["10"], t["60"]),
        (3, 60, t["60"], t["human"]),
        (4, 0, t["human"], scenario.end),
    ]


@pytest.mark.integration
def test_since_and_until_bound_the_history(scenario):
    repo = _repo(scenario)
    since = datetime.fromtimestamp(scenario.times["60"], UTC)
    until = datetime.fromtimestamp(scenario.times["60"], UTC)
    later = read_timeline(repo, scenario.rollout, since=since)
    assert [e.sha for e in later.events] == [scenario.shas[k] for k in ("60", "human", "pause")]
    assert later.events[0].before == Weights(90, 10)  # before still comes from the parent commit
    earlier = read_timeline(repo, scenario.rollout, until=until)
    assert [e.sha for e in earlier.events] == [scenario.shas[k] for k in ("initial", "10", "60")]


def test_parse_message_as_format_message_writes_it():
    message = parse_message(
        "podinfo: canary 10% -> 60% (promote)\n\n- latency ok\n- Evidence: "
        + EVIDENCE_JSON
        + "\n\nRollout: test/podinfo\nRollout-Step: 2/3\nRollout-Revision: 0.2.0\nRollout-Verdict: promote\n"
    )
    assert message.subject == "podinfo: canary 10% -> 60% (promote)"
    assert message.reasons == ("latency ok",)
    assert message.evidence["latency.e_harm"] == "0.42"
    assert message.trailers == {
        "Rollout": "test/podinfo",
        "Rollout-Step": "2/3",
        "Rollout-Revision": "0.2.0",
        "Rollout-Verdict": "promote",
    }


def test_parse_message_evidence_section_and_nested_json():
    message = parse_message(
        "s\n\n* p99 above SLO\nEvidence:\n  latency.e_harm = 120.5\n  - errors.ratio: 2.1\n  note: words\n\n"
        '{"tail": {"bound": 0.25, "canary": 31}}\n'
    )
    # Bullets are the reasons; other prose stays in the full message the page shows.
    assert message.reasons == ("p99 above SLO",)
    assert message.evidence == {
        "latency.e_harm": "120.5",
        "errors.ratio": "2.1",
        "tail.bound": "0.25",
        "tail.canary": "31",
    }


@given(st.text(max_size=300))
def test_parse_message_never_fails_and_trailers_are_not_reasons(text):
    message = parse_message(text)
    assert all(not r.startswith("Rollout-Verdict:") for r in message.reasons)
    assert message.subject == (text.replace("\r\n", "\n").split("\n")[0].strip())


def test_trailer_lookalikes_in_the_body_do_not_override_the_trailer_block():
    """Regression: ``rollouts set-weight --reason $'x\\nRollout-Verdict: rollback'`` made the report show
    a rollback (the first ``Rollout-*`` line anywhere in the message won)."""
    message = parse_message(
        "podinfo: canary 10% -> 20% (manual)\n\n- x\nRollout: other/x\nRollout-Verdict: rollback\n\n"
        "Rollout: test/podinfo\nRollout-Verdict: manual\n"
    )
    assert message.trailers == {"Rollout": "test/podinfo", "Rollout-Verdict": "manual"}
    assert message.reasons == ("x",)
