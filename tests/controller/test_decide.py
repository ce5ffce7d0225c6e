"""``decide``: the tick's one decision from the state, what was observed and the verdicts, as tables.

No Git, cluster or Prometheus: the state comes from Git facts (``tests.state.facts``), the verdicts
are the judge's shape (``analyzer.Verdict``).
"""

from __future__ import annotations

from typing import Any

import pytest

from analyzer import Verdict
from rollouts.controller.decide import Commit, Pause, Progress, PromoteImages, Stay, decide
from rollouts.notify import Kind
from rollouts.state import Action, CommitVerdict, FinalizeStage, Phase, derive
from tests.state.facts import GA, PROMOTE_GA, V1, V2, facts, rec, spec

NOW = 10_000.0
ANALYSIS = {"analysis": {"interval": "10s", "syncTimeout": "60s", "threshold": 3, "onError": "pause"}}


def state_at(canary: int, *records: Any, **kw: Any) -> Any:
    extra = {**ANALYSIS, **kw.pop("extra", {})}
    return spec(**extra), derive(spec(**extra), facts(canary, *records, **kw))


STEP1 = (rec("promote", 9_000, "1/3"),)
STEP2 = (rec("promote", 9_000, "2/3"),)


def test_start_commits_step_one_with_a_fresh_memory() -> None:
    rollout, state = state_at(0)
    chosen = decide(rollout, state, Progress(NOW), ())
    assert isinstance(chosen, Commit) and chosen.restart and chosen.action == Action.START
    assert (chosen.change.weights.canary, chosen.change.step, chosen.change.label) == (10, "1/3", None)
    assert chosen.change.expected is not None and chosen.change.expected.canary == 0
    assert chosen.kind == Kind.START and not chosen.retry


def test_a_new_revision_already_serving_restarts_at_step_one() -> None:
    rollout, state = state_at(60, *STEP2, images=V2)
    chosen = decide(rollout, state, Progress(NOW), ())
    assert isinstance(chosen, Commit) and chosen.change.label == "restart"
    assert chosen.change.weights.canary == 10 and "already serving 60%" in chosen.reasons[1]


@pytest.mark.parametrize(
    ("records", "canary", "phase"),
    [((rec("pause", 9_500),), 60, Phase.PAUSED), ((rec("rollback", 9_500, "1/3"),), 0, Phase.ROLLEDBACK)],
)
def test_nothing_to_do_stops_the_load(records: tuple[Any, ...], canary: int, phase: Phase) -> None:
    rollout, state = state_at(canary, *STEP2, *records)
    chosen = decide(rollout, state, Progress(NOW), ())
    assert chosen == Stay(phase, Action.NONE, (state.position.reason,), stop_load=True)


def verdict(action: str, **evidence: float) -> Verdict:
    return Verdict(action, [f"judged {action}"], dict(evidence))  # type: ignore[arg-type]


# (our records, canary weight, spec extras) -> (next weight, verdict, phase after, step label)
PROMOTIONS = [
    ((STEP1, 10, {}), (60, CommitVerdict.PROMOTE, Phase.PROGRESSING, "2/3")),
    ((STEP2, 60, {}), (100, CommitVerdict.FINALIZE, Phase.PROMOTED, "3/3")),
    ((STEP2, 60, PROMOTE_GA), (100, CommitVerdict.FINALIZE, Phase.FINALIZING, "3/3")),
]


@pytest.mark.parametrize(("given", "expected"), PROMOTIONS)
def test_a_promote_verdict_commits_the_next_step(given: tuple[Any, ...], expected: tuple[Any, ...]) -> None:
    records, canary, extra = given
    rollout, state = state_at(canary, *records, extra=extra, ga_images=GA if extra else None)
    chosen = decide(
        rollout, state, Progress(NOW, since=9_000.0), (verdict("hold"), verdict("promote", e=2.0))
    )
    assert isinstance(chosen, Commit) and chosen.retry
    change = chosen.change
    assert (change.weights.canary, change.verdict, chosen.phase, change.step) == expected
    assert change.reasons == ("judged promote", 'Evidence: {"e": 2.0}')
    assert chosen.reasons == ("judged promote",) and chosen.expected == canary


def test_a_rollback_names_the_step_it_was_decided_at() -> None:
    rollout, state = state_at(60, *STEP2)
    chosen = decide(rollout, state, Progress(NOW, since=9_000.0), (verdict("rollback"),))
    assert isinstance(chosen, Commit) and chosen.kind == Kind.ROLLBACK and chosen.phase == Phase.ROLLEDBACK
    assert (chosen.change.weights.canary, chosen.change.step) == (0, "2/3")


def test_an_expired_step_pauses_with_its_evidence() -> None:
    rollout, state = state_at(60, *STEP2)
    chosen = decide(rollout, state, Progress(NOW, since=9_000.0), (verdict("pause", step_expired=1.0),))
    assert chosen == Pause(("judged pause",), 60, "0.2.0", {"step_expired": 1.0})


def test_holds_say_the_last_verdict_or_that_they_wait() -> None:
    rollout, state = state_at(60, *STEP2)
    assert decide(rollout, state, Progress(NOW), ()) == Stay(
        Phase.PROGRESSING, Action.HOLD, ("waiting for the next window",)
    )
    held = decide(rollout, state, Progress(NOW), (verdict("hold"), verdict("hold")))
    assert held == Stay(Phase.PROGRESSING, Action.HOLD, ("judged hold",), windows=2)


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        (NOW - 30, Stay(Phase.PROGRESSING, Action.WAIT, ("cluster behind",))),
        (NOW - 61, Pause(("sync gate did not open: cluster behind",), 60, "0.2.0")),
    ],
)
def test_a_closed_gate_waits_until_the_sync_timeout(since: float, expected: object) -> None:
    rollout, state = state_at(60, *STEP2)
    assert decide(rollout, state, Progress(NOW, since=since, gate_closed="cluster behind"), ()) == expected


def test_load_refused_pauses_and_load_down_holds() -> None:
    rollout, state = state_at(60, *STEP2)
    refused = decide(rollout, state, Progress(NOW, since=NOW, load_refused="403"), ())
    assert refused == Pause(("load refused: 403",), 60, "0.2.0")
    down = decide(rollout, state, Progress(NOW, since=NOW, load_down="refused"), ())
    assert down == Stay(Phase.PROGRESSING, Action.HOLD, ("load endpoint down: refused",))


@pytest.mark.parametrize(
    ("errors", "on_error", "kind"),
    [(2, "pause", Stay), (3, "pause", Pause), (3, "rollback", Commit)],
)
def test_metrics_errors_hold_until_the_threshold_then_on_error(
    errors: int, on_error: str, kind: type
) -> None:
    extra = {"analysis": {**ANALYSIS["analysis"], "onError": on_error}}
    rollout, state = state_at(60, *STEP2, extra=extra)
    chosen = decide(rollout, state, Progress(NOW, since=NOW, metrics_error="down", errors=errors), ())
    assert isinstance(chosen, kind)
    if isinstance(chosen, Commit):
        assert chosen.change.weights.canary == 0 and chosen.change.reasons == ("down",)


def test_a_pending_decision_is_retried_only_at_its_step_and_revision() -> None:
    rollout, state = state_at(10, *STEP1)
    pending = decide(rollout, state, Progress(NOW), (verdict("promote"),))
    assert isinstance(pending, Commit)
    assert decide(rollout, state, Progress(NOW, pending=pending), ()) is pending
    # A new revision found at the first step's weight: the old revision's verdict is not committed.
    rollout, newer = state_at(10, *STEP1, images=V2)
    assert newer.position.phase == Phase.PROGRESSING
    assert decide(rollout, newer, Progress(NOW, pending=pending), ()) != pending


@pytest.mark.parametrize(
    ("ga", "since", "expected"),
    [
        ((False, "GA at 0.1.0"), NOW - 10, Stay),
        ((False, "GA at 0.1.0"), NOW - 61, Pause),
        ((True, "GA ready"), NOW - 10, Commit),
    ],
)
def test_promote_ga_waits_for_ga_then_routes_back(ga: tuple[bool, str], since: float, expected: type) -> None:
    records = (*STEP2, rec("finalize", 9_500, "3/3"), rec("finalize", 9_600, finalize="ga-image"))
    rollout, state = state_at(100, *records, extra=PROMOTE_GA, ga_images=V1)
    assert state.position.finalize == FinalizeStage.ROUTE_GA
    chosen = decide(rollout, state, Progress(NOW, since=since, ga=ga), ())
    assert isinstance(chosen, expected)
    if isinstance(chosen, Commit):
        assert chosen.change.finalize == FinalizeStage.ROUTE_GA and chosen.change.weights.canary == 0
        assert chosen.phase == Phase.PROMOTED


def test_promote_ga_copies_the_images_first() -> None:
    rollout, state = state_at(100, *STEP2, rec("finalize", 9_500, "3/3"), extra=PROMOTE_GA, ga_images=GA)
    assert isinstance(decide(rollout, state, Progress(NOW), ()), PromoteImages)


def test_a_window_follows_the_committed_split_unless_session_affinity_keeps_users_where_they_were():
    from analyzer import Histogram, SubsetWindow, Window
    from rollouts.controller.decide import ran_committed_split

    def window(ga: int, canary: int) -> Window:
        empty = Histogram.empty((0.1, float("inf")))
        return Window(
            baseline=SubsetWindow(histogram=empty, requests=ga, errors=0),
            canary=SubsetWindow(histogram=empty, requests=canary, errors=0),
            weight=10,
        )

    assert ran_committed_split(window(900, 100), 10)
    assert not ran_committed_split(window(600, 400), 10)  # 40 % at a 10 % step: the old weights ran
    assert ran_committed_split(window(600, 400), 10, sticky=True)  # returning canary users stay
    assert not ran_committed_split(window(1000, 0), 10, sticky=True)  # nobody reached the canary
    assert ran_committed_split(window(10, 0), 10, sticky=True)  # too few requests to tell
    assert ran_committed_split(window(1000, 500), 0, mirrored=True)  # the mirrored copies
    assert not ran_committed_split(window(1000, 500), 0)  # at 0 % without a mirror: not this split
    assert not ran_committed_split(window(1000, 0), 0, mirrored=True)  # the mirror is not running yet


MIRROR = {
    **ANALYSIS,
    "analysis": {**ANALYSIS["analysis"], "iterations": 3, "mirror": True, "mirrorWeight": 25},
}
IN_MIRROR = (rec("promote", 9_000, "mirror"),)


@pytest.mark.parametrize(
    ("canary", "records", "label"),
    [(0, (), "mirror"), (60, (rec("promote", 9_000, "2/3"),), "restart")],
    ids=["never rolled out", "a new revision serving 60%"],
)
def test_a_mirrored_rollout_starts_with_the_mirror_stage(
    canary: int, records: tuple[Any, ...], label: str
) -> None:
    rollout, state = state_at(canary, *records, extra=MIRROR, images=V2 if records else V1)
    chosen = decide(rollout, state, Progress(NOW), ())
    assert isinstance(chosen, Commit) and chosen.action == Action.START and chosen.restart
    change = chosen.change
    assert (change.weights.canary, change.step, change.label, change.verdict) == (
        0,
        "mirror",
        label,
        "promote",
    )
    assert change.route is not None and change.route.mirror == 25.0 and change.route.match is None
    assert change.expected is not None and change.expected.canary == canary


@pytest.mark.parametrize(
    ("windows", "action", "weight", "step", "mirror_removed"),
    [
        (1, Action.HOLD, None, None, False),  # the judge would promote, the iterations are not done
        (3, Action.PROMOTE, 10, "1/3", True),
    ],
)
def test_the_mirror_stage_promotes_after_its_iterations(
    windows: int, action: Action, weight: int | None, step: str | None, mirror_removed: bool
) -> None:
    rollout, state = state_at(0, *IN_MIRROR, extra=MIRROR)
    assert state.position.phase == Phase.PROGRESSING and state.position.stage == "mirror"
    chosen = decide(rollout, state, Progress(NOW, step_windows=windows), (verdict("promote"),))
    if action == Action.HOLD:
        assert isinstance(chosen, Stay) and chosen.action == Action.HOLD
        assert chosen.reasons[0] == "mirror stage: 1 of iterations 3 windows judged"
        return
    assert isinstance(chosen, Commit) and chosen.action == action
    assert (chosen.change.weights.canary, chosen.change.step) == (weight, step)
    assert chosen.change.route is not None and (chosen.change.route.mirror is None) == mirror_removed


def test_a_rollback_in_the_mirror_stage_removes_the_mirror_and_names_the_stage() -> None:
    rollout, state = state_at(0, *IN_MIRROR, extra=MIRROR)
    chosen = decide(rollout, state, Progress(NOW, step_windows=1), (verdict("rollback"),))
    assert isinstance(chosen, Commit) and chosen.action == Action.ROLLBACK
    assert (chosen.change.weights.canary, chosen.change.step) == (0, "mirror")
    assert chosen.change.route is not None and chosen.change.route.mirror is None
    assert "mirror stage" in chosen.summary


def test_blue_green_by_mirror_switches_to_100_with_the_final_verdict() -> None:
    rollout, state = state_at(0, *IN_MIRROR, extra={**MIRROR, "steps": [100]})
    chosen = decide(rollout, state, Progress(NOW, step_windows=3), (verdict("promote"),))
    assert isinstance(chosen, Commit) and chosen.change.verdict == CommitVerdict.FINALIZE
    assert (chosen.change.weights.canary, chosen.change.step) == (100, "1/1")
    assert chosen.change.route is not None and chosen.change.route.mirror is None


AB = {
    **ANALYSIS,
    "analysis": {
        **ANALYSIS["analysis"],
        "iterations": 2,
        "match": [{"headers": {"x-user": {"exact": "beta"}}}],
    },
}
IN_MATCH = (rec("promote", 9_000, "match"),)


def test_an_ab_rollout_starts_with_the_match_route_at_0_percent() -> None:
    rollout, state = state_at(0, extra=AB)
    chosen = decide(rollout, state, Progress(NOW), ())
    assert isinstance(chosen, Commit) and chosen.action == Action.START
    assert (chosen.change.weights.canary, chosen.change.step, chosen.change.label) == (0, "match", "match")
    route = chosen.change.route
    assert route is not None and route.mirror is None and route.match == rollout.spec.analysis.to_match()


@pytest.mark.parametrize(
    ("windows", "judged", "expected"),
    [
        (1, "promote", (Stay, None, None, None)),  # the iterations are not done
        (2, "promote", (Commit, 10, "1/3", "promote")),  # the match route goes with the first step
        (1, "rollback", (Commit, 0, "match", "rollback")),  # the rollback removes it
    ],
)
def test_the_ab_stage_is_judged_for_its_iterations(
    windows: int, judged: str, expected: tuple[Any, ...]
) -> None:
    rollout, state = state_at(0, *IN_MATCH, extra=AB)
    assert state.position.stage == "match"
    chosen = decide(rollout, state, Progress(NOW, step_windows=windows), (verdict(judged),))
    kind, weight, step, commit_verdict = expected
    assert isinstance(chosen, kind)
    if isinstance(chosen, Stay):
        assert chosen.reasons[0] == "match stage: 1 of iterations 2 windows judged"
        return
    assert isinstance(chosen, Commit)
    assert (chosen.change.weights.canary, chosen.change.step, chosen.change.verdict) == (
        weight,
        step,
        commit_verdict,
    )
    assert chosen.change.route is not None and chosen.change.route.match is None


@pytest.mark.parametrize(
    ("headers", "holds"),
    [({}, True), ({"X-User": "beta"}, False), ({"x-user": "alpha"}, True)],
)
def test_an_ab_stage_whose_load_misses_the_match_holds_and_names_it(
    headers: dict[str, str], holds: bool
) -> None:
    load = {"load": {"mode": "local", "target": "http://127.0.0.1:9898/", "headers": headers}}
    rollout, state = state_at(0, *IN_MATCH, extra={**AB, **load})
    chosen = decide(rollout, state, Progress(NOW, step_windows=5), (verdict("promote"),))
    if holds:
        assert isinstance(chosen, Stay) and chosen.action == Action.HOLD
        assert chosen.reasons[0].startswith("analysis.match: the load sends no request that matches")
        assert "header x-user" in chosen.reasons[0]
    else:
        assert isinstance(chosen, Commit) and chosen.change.weights.canary == 10


def test_the_load_goes_to_the_preview_service_only_in_the_preview_stage() -> None:
    from rollouts.controller.decide import load_target
    from tests.controller.machinery import rollout_spec

    preview = {"name": "podinfo-preview", "url": "http://podinfo-preview.test:9898/"}
    rollout = rollout_spec(
        "/unused.git",
        steps=[100],
        analysis={"iterations": 3, "previewService": preview},
        load={"mode": "local", "target": "http://podinfo.test:9898/version"},
    )
    assert load_target(rollout, "preview") == "http://podinfo-preview.test:9898/"
    assert load_target(rollout, None) == "http://podinfo.test:9898/version"  # after the switch: users'
    mirrored = rollout_spec("/unused.git", analysis={"iterations": 3, "mirror": True})
    assert load_target(mirrored, "mirror") is None  # no load of ours
