"""The rollout's state and phase from Git facts, without Git: ``derive`` and ``position`` as tables."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from rollouts.routes import Weights
from rollouts.state import FinalizeStage, GitFacts, Phase, Position, derive
from tests.state.facts import GA, PROMOTE_GA, V1, V2, facts, rec, spec


def at(phase: Phase, weight: int, step: int = 0, since: float | None = None, **kw: Any) -> Position:
    """The expected position (its reason is prose, not compared)."""
    return Position(phase, weight, "", since=since, step=step, **kw)


# (name, spec extras, facts, expected position)
CASES = [
    ("never rolled out", {}, facts(0), at(Phase.START, 0)),
    ("never ours, at the first step's weight", {}, facts(10), at(Phase.PROGRESSING, 10, 1, adopted=True)),
    (
        "new revision at the first step's weight: analysed from now on",
        {},
        facts(10, rec("promote", 100, "1/3"), images=V2),
        at(Phase.PROGRESSING, 10, 1),
    ),
    ("someone else's weight, never ours", {}, facts(30), at(Phase.PROGRESSING, 30, adopted=True)),
    ("our step 1", {}, facts(10, rec("promote", 100, "1/3")), at(Phase.PROGRESSING, 10, 1, 100.0)),
    (
        "resumed after our step: the step starts at the resume",
        {},
        facts(
            60, rec("promote", 100, "1/3"), rec("promote", 200, "2/3"), rec("pause", 300), rec("resume", 400)
        ),
        at(Phase.PROGRESSING, 60, 2, 400.0),
    ),
    ("paused", {}, facts(60, rec("promote", 200, "2/3"), rec("pause", 300)), at(Phase.PAUSED, 60)),
    ("aborted", {}, facts(0, rec("promote", 200, "2/3"), rec("abort", 300)), at(Phase.PAUSED, 0)),
    (
        "a human changed our weights",
        {},
        facts(30, rec("promote", 100, "1/3"), then=Weights.for_canary(10), touched="h"),
        at(Phase.PROGRESSING, 30, adopted=True),
    ),
    ("rolled back", {}, facts(0, rec("rollback", 100, "1/3")), at(Phase.ROLLEDBACK, 0)),
    ("promoted, leave-canary", {}, facts(100, rec("finalize", 100, "3/3")), at(Phase.PROMOTED, 100)),
    (
        "new revision at our step: start again",
        {},
        facts(60, rec("promote", 100, "2/3"), images=V2),
        at(Phase.START, 60),
    ),
    (
        "promote-ga, GA still old: copy the images",
        PROMOTE_GA,
        facts(100, rec("finalize", 500, "3/3"), ga_images=GA),
        at(Phase.FINALIZING, 100, since=500.0, finalize=FinalizeStage.GA_IMAGE),
    ),
    (
        "promote-ga, GA names the canary: route back",
        PROMOTE_GA,
        facts(100, rec("finalize", 500, "3/3"), rec("finalize", 600, finalize="ga-image"), ga_images=V1),
        at(Phase.FINALIZING, 100, since=600.0, finalize=FinalizeStage.ROUTE_GA),
    ),
    (
        "promote-ga done",
        PROMOTE_GA,
        facts(0, rec("finalize", 700, finalize="route-ga"), ga_images=V1),
        at(Phase.PROMOTED, 0),
    ),
    (
        "promote-ga, but a human set the weights: no finalizing",
        PROMOTE_GA,
        facts(100, rec("finalize", 500, "3/3"), then=Weights.for_canary(60), ga_images=GA),
        at(Phase.PROMOTED, 100),
    ),
]


MIRROR = {"analysis": {"iterations": 3, "mirror": True}}
MIRROR_CASES = [
    ("mirror: never rolled out: the mirror stage is due", MIRROR, facts(0), at(Phase.START, 0)),
    (
        "mirror: at the first step's weight, never ours: the mirror stage is still due",
        MIRROR,
        facts(10, rec("promote", 100, "1/3"), images=V2),
        at(Phase.START, 10),
    ),
    (
        "mirror: our mirror commit at 0%: the mirror stage is analysed",
        MIRROR,
        facts(0, rec("promote", 100, "mirror")),
        at(Phase.PROGRESSING, 0, since=100.0, stage="mirror"),
    ),
    (
        "mirror: resumed in the mirror stage",
        MIRROR,
        facts(0, rec("promote", 100, "mirror"), rec("pause", 150), rec("resume", 160)),
        at(Phase.PROGRESSING, 0, since=160.0, stage="mirror"),
    ),
    (
        "mirror: rolled back at the mirror stage",
        MIRROR,
        facts(0, rec("promote", 100, "mirror"), rec("rollback", 200, "mirror")),
        at(Phase.ROLLEDBACK, 0),
    ),
    (
        "mirror: after the mirror stage, step 1",
        MIRROR,
        facts(10, rec("promote", 100, "mirror"), rec("promote", 200, "1/3")),
        at(Phase.PROGRESSING, 10, 1, 200.0),
    ),
    (
        "mirror: blue/green switched 0 -> 100",
        {"steps": [100], **MIRROR},
        facts(100, rec("promote", 100, "mirror"), rec("finalize", 200, "1/1")),
        at(Phase.PROMOTED, 100),
    ),
    (
        "mirror: a new revision in the mirror stage starts again",
        MIRROR,
        facts(0, rec("promote", 100, "mirror"), images=V2),
        at(Phase.START, 0),
    ),
]
AB = {"analysis": {"iterations": 3, "match": [{"headers": {"x-user": {"exact": "beta"}}}]}}
MIRROR_CASES += [
    ("ab: never rolled out: the match stage is due", AB, facts(0), at(Phase.START, 0)),
    (
        "ab: our match commit at 0%: the match stage is analysed",
        AB,
        facts(0, rec("promote", 100, "match")),
        at(Phase.PROGRESSING, 0, since=100.0, stage="match"),
    ),
    (
        "ab: rolled back at the match stage",
        AB,
        facts(0, rec("promote", 100, "match"), rec("rollback", 200, "match")),
        at(Phase.ROLLEDBACK, 0),
    ),
    (
        "ab: after the match stage, step 1",
        AB,
        facts(10, rec("promote", 100, "match"), rec("promote", 200, "1/3")),
        at(Phase.PROGRESSING, 10, 1, 200.0),
    ),
]
CASES += MIRROR_CASES


@pytest.mark.parametrize(("extra", "given", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_position_from_facts(extra: dict[str, Any], given: GitFacts, expected: Position) -> None:
    where = derive(spec(**extra), given).position
    assert replace(where, reason="") == expected
    assert where.reason  # every position says why, in words


def test_state_flags_from_facts() -> None:
    rollout = spec()
    state = derive(rollout, facts(30, rec("promote", 100, "1/3"), then=Weights.for_canary(10), touched="h"))
    assert (state.human_override, state.override_commit, state.new_revision, state.paused) == (
        True,
        "h",
        False,
        False,
    )
    assert state.last is not None and state.last.sha == "promote-100"
    unreadable_then = GitFacts(
        rollout="test/podinfo",
        branch="main",
        head="head",
        weights=Weights.for_canary(10),
        images=V2,
        revision="0.2.1",
        records=(rec("promote", 100, "1/3"),),
        weights_then=Weights.for_canary(10),
        images_then=None,  # the canary manifest was unreadable at our commit: the trailer decides
    )
    assert derive(rollout, unreadable_then).new_revision
    assert "steps" not in derive(rollout, facts(0)).to_dict()


def test_history_is_the_current_rollout_of_the_revision_oldest_first() -> None:
    given = facts(
        60,
        rec("promote", 10, "1/3", revision="0.1.9"),  # an earlier revision's rollout
        rec("rollback", 20, "1/3", revision="0.2.0"),  # an earlier rollout of this revision
        rec("promote", 30, "1/3"),
        rec("pause", 35),
        rec("resume", 36),
        rec("promote", 40, "2/3"),
    )
    history = derive(spec(), given).history
    assert [r.sha for r in history] == ["promote-30", "promote-40"]


def test_history_of_a_mirrored_rollout_begins_at_the_mirror_stage() -> None:
    given = facts(
        60,
        rec("promote", 10, "mirror", revision="0.1.9"),
        rec("promote", 15, "1/3", revision="0.1.9"),
        rec("promote", 20, "mirror"),
        rec("promote", 30, "1/3"),
        rec("promote", 40, "2/3"),
    )
    history = derive(spec(**MIRROR), given).history
    assert [r.sha for r in history] == ["promote-20", "promote-30", "promote-40"]
    # Without the mirror stage before it, "1/3" is the start, as before.
    plain = facts(
        60, rec("promote", 20, "1/3", revision="0.1.9"), rec("promote", 30, "1/3"), rec("promote", 40, "2/3")
    )
    assert [r.sha for r in derive(spec(), plain).history] == ["promote-30", "promote-40"]
    # An earlier rollout of the revision that reached 1/3 from the mirror stage and rolled back ends it.
    again = facts(
        0,
        rec("promote", 20, "mirror"),
        rec("rollback", 25, "mirror"),
        rec("promote", 30, "mirror"),
    )
    assert [r.sha for r in derive(spec(**MIRROR), again).history] == ["promote-30"]
