"""The pipeline's pure plan: table-driven, no Git, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rollouts.pipeline import EnvironmentFacts, Event, Pin, TransitionState, parse_pipeline, plan
from rollouts.pipeline.plan import MergeFacts, in_window, next_window

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # a Tuesday


def pipeline(promotion: dict | None = None, envs: int = 2):
    names = ["staging", "production", "production-us"][:envs]
    environments = [{"name": n, "rollout": f"{n}/podinfo.yaml"} for n in names]
    for env in environments[1:]:
        env["promotion"] = promotion or {}
    return parse_pipeline(
        {
            "apiVersion": "rollouts.dev/v1alpha1",
            "kind": "Pipeline",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"environments": environments},
        }
    )


def finalized(revision: str, at: datetime, sha: str = "f" * 40) -> Event:
    return Event(
        revision=revision, kind="finalize", at=at, sha=sha, images={"podinfo": f"podinfo:{revision}"}
    )


def env(name: str, canary: str, *events: Event, **kw) -> EnvironmentFacts:
    return EnvironmentFacts(name=name, canary_revision=canary, events=tuple(events), **kw)


def one(pipe, facts, now=T0):
    result = plan(pipe, facts, now)
    assert len(result.transitions) == len(facts) - 1
    return result.transitions[0]


@pytest.mark.parametrize(
    "case",
    [
        ({}, [], "0.1.0", T0, TransitionState.IDLE, "finalized no revision"),
        ({}, [finalized("0.2.0", T0)], "0.1.0", T0, TransitionState.READY, "hand over to production"),
        ({}, [finalized("0.2.0", T0)], "0.2.0", T0, TransitionState.DONE, "production has 0.2.0"),
        (
            {"soak": "30m"},
            [finalized("0.2.0", T0)],
            "0.1.0",
            T0 + timedelta(minutes=10),
            TransitionState.SOAKING,
            "20m left",
        ),
        (
            {"soak": "30m"},
            [finalized("0.2.0", T0)],
            "0.1.0",
            T0 + timedelta(minutes=30),
            TransitionState.READY,
            "",
        ),
        (
            {"approval": "command"},
            [finalized("0.2.0", T0)],
            "0.1.0",
            T0,
            TransitionState.AWAITING_APPROVAL,
            "rollouts approve",
        ),
        (
            {"approval": "merge"},
            [finalized("0.2.0", T0)],
            "0.1.0",
            T0,
            TransitionState.READY,
            "through a branch",
        ),
        # Tuesday 10:00 UTC is 11:00 in Berlin; the window is Monday only.
        (
            {"windows": [{"days": ["Mon"], "from": "09:00", "to": "17:00"}], "timezone": "Europe/Berlin"},
            [finalized("0.2.0", T0)],
            "0.1.0",
            T0,
            TransitionState.OUTSIDE_WINDOW,
            "Mon 2026-12-07 09:00 Europe/Berlin",
        ),
        (
            {"windows": [{"days": ["Tue"], "from": "09:00", "to": "17:00"}], "timezone": "Europe/Berlin"},
            [finalized("0.2.0", T0)],
            "0.1.0",
            T0,
            TransitionState.READY,
            "",
        ),
    ],
)
def test_transition_states(case):
    promotion, staging, production, now, state, words = case
    t = one(pipeline(promotion), [env("staging", "0.2.0", *staging), env("production", production)], now)
    assert t.state is state, t.reason
    assert words in t.reason
    if state is TransitionState.READY:
        assert t.revision == "0.2.0"
        assert t.images == {"podinfo": "podinfo:0.2.0"}
        assert t.via_branch == (promotion.get("approval") == "merge")


def test_approved_revision_is_ready_and_only_that_one():
    pipe = pipeline({"approval": "command"})
    staging = env("staging", "0.2.0", finalized("0.2.0", T0))
    assert (
        one(pipe, [staging, env("production", "0.1.0", approvals=frozenset({"0.2.0"}))]).state
        is TransitionState.READY
    )
    assert (
        one(pipe, [staging, env("production", "0.1.0", approvals=frozenset({"0.1.9"}))]).state
        is TransitionState.AWAITING_APPROVAL
    )


def test_rollback_in_source_stops_the_line_and_a_later_revision_supersedes():
    pipe = pipeline(envs=3)
    rolled = Event(
        revision="0.2.1", kind="rollback", at=T0 + timedelta(minutes=5), reason="evidence of harm 216"
    )
    staging = env(
        "staging", "0.2.1", finalized("0.2.0", T0 - timedelta(hours=1)), finalized("0.2.1", T0), rolled
    )
    result = plan(
        pipe, [staging, env("production", "0.2.0"), env("production-us", "0.2.0")], T0 + timedelta(minutes=6)
    )
    first, second = result.transitions
    assert first.state is TransitionState.BLOCKED
    assert "rolled back in staging" in first.reason and "evidence of harm 216" in first.reason
    assert second.state is TransitionState.IDLE  # production finalized nothing
    assert [(s.revision, s.environment) for s in result.stops] == [("0.2.1", "staging")]
    assert result.ready == ()
    # 0.2.2 passes staging later: it supersedes the stopped 0.2.1.
    staging2 = env("staging", "0.2.2", *staging.events, finalized("0.2.2", T0 + timedelta(minutes=30)))
    result = plan(
        pipe, [staging2, env("production", "0.2.0"), env("production-us", "0.2.0")], T0 + timedelta(hours=1)
    )
    assert result.transitions[0].state is TransitionState.READY
    assert result.transitions[0].revision == "0.2.2"


def test_rollback_in_a_middle_ring_blocks_every_later_ring():
    pipe = pipeline(envs=3)
    staging = env("staging", "0.2.0", finalized("0.2.0", T0))
    production = env(
        "production",
        "0.2.0",
        Event(revision="0.2.0", kind="handover", at=T0),
        Event(revision="0.2.0", kind="start", at=T0),
        finalized("0.2.0", T0 + timedelta(minutes=10)),
        Event(revision="0.2.0", kind="rollback", at=T0 + timedelta(minutes=20), reason="slo_p99 broken"),
    )
    result = plan(pipe, [staging, production, env("production-us", "0.1.0")], T0 + timedelta(hours=1))
    assert result.transitions[0].state is TransitionState.DONE
    assert result.transitions[1].state is TransitionState.BLOCKED
    assert "production" in result.transitions[1].reason


def test_out_of_order_failure_is_reported():
    pipe = pipeline()
    # production got 0.2.0 (someone put it there), then staging rolled it back.
    staging = env("staging", "0.2.0", Event(revision="0.2.0", kind="rollback", at=T0, reason="errors 6x GA"))
    result = plan(pipe, [staging, env("production", "0.2.0")], T0)
    assert [(o.revision, o.failed_in, o.present_in) for o in result.out_of_order] == [
        ("0.2.0", "staging", "production")
    ]
    assert "check production" in result.out_of_order[0].reason


def test_a_pin_after_the_candidate_passed_wins_and_is_reported():
    pipe = pipeline()
    staging = env("staging", "0.2.0", finalized("0.2.0", T0))
    pinned = Pin(sha="a" * 40, at=T0 + timedelta(minutes=1), revision="0.1.5", author="alice")
    t = one(pipe, [staging, env("production", "0.1.5", pin=pinned)], T0 + timedelta(minutes=2))
    assert t.state is TransitionState.PINNED
    assert "alice" in t.reason and "0.1.5" in t.reason
    # A pin older than the candidate's finalize does not hold it back.
    old = Pin(sha="a" * 40, at=T0 - timedelta(minutes=1), revision="0.1.5")
    assert one(pipe, [staging, env("production", "0.1.5", pin=old)]).state is TransitionState.READY


def test_the_same_facts_give_the_same_plan():
    pipe = pipeline({"soak": "5m"})
    facts = [env("staging", "0.2.0", finalized("0.2.0", T0)), env("production", "0.1.0")]
    assert plan(pipe, facts, T0 + timedelta(minutes=6)) == plan(pipe, facts, T0 + timedelta(minutes=6))


def test_facts_must_match_the_environments():
    with pytest.raises(ValueError, match="in order"):
        plan(pipeline(), [env("production", "x"), env("staging", "y")], T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        plan(pipeline(), [env("staging", "x"), env("production", "y")], T0.replace(tzinfo=None))


def test_windows_across_a_dst_change_and_the_end_of_the_day():
    promo = pipeline(
        {"windows": [{"days": ["Sun"], "from": "22:00", "to": "23:59"}], "timezone": "Europe/Berlin"}
    )
    promotion = promo.spec.environments[1].promotion
    # 2026-03-29 is the spring DST change in Berlin (UTC+1 -> UTC+2).
    sunday_night = datetime(2026, 3, 29, 21, 30, tzinfo=UTC)  # 23:30 CEST
    assert in_window(promotion, sunday_night)
    assert not in_window(promotion, datetime(2026, 3, 29, 19, 30, tzinfo=UTC))  # 21:30 CEST
    opens = next_window(promotion, datetime(2026, 3, 29, 19, 30, tzinfo=UTC))
    assert opens == datetime(2026, 3, 29, 20, 0, tzinfo=UTC)


# -- approval: merge: where a proposed hand-over stands (the shell reads MergeFacts from Git and the forge)

BR = "rollouts/pipeline/test/podinfo/production/0.2.0"
URL = "https://github.com/org/cluster/pull/7"


def merge_plan(
    merge: MergeFacts | None, *, promotion: dict | None = None, production=None, now=T0, staging=None
):
    pipe = pipeline(promotion or {"approval": "merge"})
    staging = staging or env("staging", "0.2.0", finalized("0.2.0", T0))
    merges = {("production", "0.2.0"): merge} if merge is not None else None
    return plan(pipe, [staging, production or env("production", "0.1.0")], now, merges).transitions[0]


@pytest.mark.parametrize(
    ("merge", "state", "reason"),
    [
        (None, TransitionState.READY, "0.2.0 passed staging (finalized 2026-12-01 10:00 UTC): hand over to "
         "production through a branch to merge"),
        (MergeFacts(BR, proposed=False, exists=False), TransitionState.READY, "through a branch to merge"),
        (MergeFacts(BR, proposed=True, exists=True, opened_at=T0), TransitionState.AWAITING_APPROVAL,
         f"0.2.0 waits for approval to enter production: merge branch {BR}, since 2026-12-01 10:00 UTC"),
        (MergeFacts(BR, proposed=True, exists=True, review="open", review_url=URL),
         TransitionState.AWAITING_APPROVAL, f"production: merge {URL} (branch {BR})"),
        (MergeFacts(BR, proposed=True, exists=True, review="closed", review_url=URL), TransitionState.BLOCKED,
         f"approval rejected: {URL} was closed without merging; 0.2.0 stays out of production"),
        (MergeFacts(BR, proposed=True, exists=False), TransitionState.BLOCKED,
         f"approval rejected: branch {BR} was deleted before its merge; 0.2.0 stays out of production"),
        # closed and deleted (GitHub deletes head branches on close): the request names it
        (MergeFacts(BR, proposed=True, exists=False, review="closed", review_url=URL),
         TransitionState.BLOCKED, f"approval rejected: {URL} was closed"),
        (MergeFacts(BR, proposed=True, exists=False, landed_commit="c" * 40), TransitionState.PINNED,
         f"branch {BR} was merged (cccccccccccc) but production's canary manifest does not carry 0.2.0"),
        (MergeFacts(BR, proposed=True, exists=True, review="merged", review_url=URL), TransitionState.PINNED,
         "the merge dropped the hand-over"),
    ],
)  # fmt: skip
def test_a_proposed_handover_stands_where_its_merge_stands(merge, state, reason):
    t = merge_plan(merge)
    assert t.state is state, t.reason
    assert reason in t.reason
    assert t.via_branch
    if merge is not None and merge.proposed:
        assert t.branch == BR and t.review_url == merge.review_url


def test_merged_is_done_by_the_manifest_or_the_trailers():
    merged = MergeFacts(BR, proposed=True, exists=False, landed_commit="c" * 40, review="merged")
    by_manifest = merge_plan(merged, production=env("production", "0.2.0"))
    by_trailers = merge_plan(
        merged, production=env("production", "0.1.0", Event(revision="0.2.0", kind="handover", at=T0))
    )
    assert by_manifest.state is by_trailers.state is TransitionState.DONE


def test_no_branch_before_the_soak_and_the_window_and_a_proposal_outlives_the_window():
    promotion = {
        "approval": "merge",
        "soak": "30m",
        "windows": [{"days": ["Tue"], "from": "09:00", "to": "11:00"}],
    }
    none = MergeFacts(BR, proposed=False, exists=False)
    assert (
        merge_plan(none, promotion=promotion, now=T0 + timedelta(minutes=10)).state is TransitionState.SOAKING
    )
    late = T0 + timedelta(hours=2)  # Tuesday 12:00 UTC: the window closed
    assert merge_plan(none, promotion=promotion, now=late).state is TransitionState.OUTSIDE_WINDOW
    ready = merge_plan(none, promotion=promotion, now=T0 + timedelta(minutes=40))
    assert ready.state is TransitionState.READY and ready.via_branch
    # Once proposed, the merge is the people's to make: the plan waits for it, window or not.
    waiting = MergeFacts(BR, proposed=True, exists=True)
    assert merge_plan(waiting, promotion=promotion, now=late).state is TransitionState.AWAITING_APPROVAL


def test_a_rollback_or_a_pin_wins_over_an_open_request():
    waiting = MergeFacts(BR, proposed=True, exists=True, review="open", review_url=URL)
    rolled = env(
        "staging",
        "0.2.0",
        finalized("0.2.0", T0),
        Event(revision="0.2.0", kind="rollback", at=T0 + timedelta(minutes=5), reason="slo broken"),
    )
    assert merge_plan(waiting, staging=rolled).state is TransitionState.BLOCKED
    pinned = Pin(sha="a" * 40, at=T0 + timedelta(minutes=1), revision="0.1.5", author="alice")
    assert (
        merge_plan(waiting, production=env("production", "0.1.5", pin=pinned)).state is TransitionState.PINNED
    )


def test_merge_facts_of_another_revision_or_approval_mode_are_ignored():
    waiting = MergeFacts(BR, proposed=True, exists=True)
    assert merge_plan(waiting, promotion={"approval": "none"}).state is TransitionState.READY
    assert not merge_plan(waiting, promotion={"approval": "none"}).via_branch
    pipe = pipeline({"approval": "merge"})
    staging = env("staging", "0.2.1", finalized("0.2.1", T0))
    t = plan(pipe, [staging, env("production", "0.1.0")], T0, {("production", "0.2.0"): waiting}).transitions[
        0
    ]
    assert t.state is TransitionState.READY and t.revision == "0.2.1"


def test_an_open_request_for_an_older_revision_is_superseded():
    pipe = pipeline({"approval": "merge"})
    staging = env("staging", "0.2.1", finalized("0.2.0", T0), finalized("0.2.1", T0 + timedelta(hours=1)))
    old = MergeFacts(BR, proposed=True, exists=True, review="open", review_url=URL, revision="0.2.0")
    others = [
        old,
        MergeFacts(BR + "x", proposed=True, exists=True, revision="0.1.9", review="closed"),  # closed
        MergeFacts(BR + "y", proposed=True, exists=True, revision="0.1.8", landed_commit="d" * 40),
        MergeFacts(BR + "z", proposed=True, exists=True, revision="0.2.1"),  # the candidate's own
    ]
    result = plan(
        pipe, [staging, env("production", "0.1.0")], T0 + timedelta(hours=2), None, {"production": others}
    )
    (s,) = result.superseded
    assert (s.target, s.revision, s.by, s.branch, s.review_url) == ("production", "0.2.0", "0.2.1", BR, URL)
    assert s.reason == f"{URL} (0.2.0 into production) is superseded: staging finalized 0.2.1 since"
    assert result.transitions[0].state is TransitionState.READY and result.transitions[0].revision == "0.2.1"
    # Without a candidate (staging finalized nothing) nothing is superseded.
    idle = plan(pipe, [env("staging", "0.2.1"), env("production", "0.1.0")], T0, None, {"production": others})
    assert idle.superseded == ()
