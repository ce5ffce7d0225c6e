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
