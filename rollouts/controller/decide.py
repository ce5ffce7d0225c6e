"""What to do next: ``decide(rollout, state, progress, windows) -> Decision``, a pure function.

The machine (:mod:`rollouts.controller.machine`) reads Git into a :class:`RolloutState`, observes
what the phase needs (the sync gate, the load, the judged windows, GA's readiness) into a
:class:`Progress`, and then asks this module once what to do. The answer is one typed
:class:`Decision`: a weight commit (:class:`Commit`), the GA image commit (:class:`PromoteImages`),
a pause record (:class:`Pause`), or staying where it is (:class:`Stay`). Acting on it is the
machine's job (``Machine.act``).

Nothing here reads Git, the cluster, Prometheus or a clock: every input is an argument, so the
decisions get table-driven tests without servers. It must never gain side effects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from analyzer import Verdict, Window
from rollouts.notify import Kind
from rollouts.routes import Weights
from rollouts.spec import Rollout
from rollouts.spec_strategy import RouteState, load_misses_match
from rollouts.state import (
    Action,
    CommitVerdict,
    FinalizeStage,
    Phase,
    RolloutState,
    WeightChange,
    next_weight,
    step_label,
    with_evidence,
)
from rollouts.state.message import MATCH_STEP, MIRROR_STEP, PRELUDE_STEPS, PREVIEW_STEP, SWITCHED_STAGE


@dataclass(frozen=True)
class Commit:
    """Commit ``change``; then the rollout is in ``phase``, and people are told ``summary``.

    ``expected`` is the canary weight the decision was taken at (a failed push is retried while
    Git still says so); ``retry`` marks the judge's verdicts, which are retried on the next tick
    when the push fails; ``restart`` gives the rollout a fresh memory (a new revision's start).
    """

    change: WeightChange
    action: Action
    phase: Phase
    kind: Kind
    summary: str
    reasons: tuple[str, ...]
    expected: int
    revision: str
    evidence: Mapping[str, float] = field(default_factory=dict)
    retry: bool = False
    restart: bool = False


@dataclass(frozen=True)
class PromoteImages:
    """``finalize: promote-ga``, stage 1: commit the canary's images into the GA manifest."""

    reasons: tuple[str, ...]
    weight: int


@dataclass(frozen=True)
class Pause:
    """Record a pause at ``weight`` of ``revision`` (an empty commit); retried on the next tick
    when it fails."""

    reasons: tuple[str, ...]
    weight: int
    revision: str
    evidence: Mapping[str, float] = field(default_factory=dict)

    @property
    def expected(self) -> int:
        """The weight Git must still show for a retry."""
        return self.weight


@dataclass(frozen=True)
class Stay:
    """No commit: the tick's result is ``phase``/``action`` with ``reasons``."""

    phase: Phase
    action: Action
    reasons: tuple[str, ...]
    windows: int = 0
    stop_load: bool = False


Decision = Commit | PromoteImages | Pause | Stay
#: A decision whose Git write failed, kept for the next tick.
Pending = Commit | Pause


@dataclass(frozen=True)
class Progress:
    """What the process observed this tick besides Git, for :func:`decide`.

    Each observation is None when it was not made (the phase did not need it, or an earlier
    observation settled the tick): ``gate_closed`` is the gate's reason while the cluster does not
    run the committed weights; ``load_refused``/``load_down`` the load driver's answer;
    ``metrics_error`` the reason line of a window that could not be read (``errors`` in a row);
    ``ga`` GA's readiness and what was seen (``finalize: promote-ga``, stage 2);
    ``check_failed`` the reason of this interval's failed ``rollout`` webhook (Flagger's analysis
    hooks, asked before the windows are judged), ``checks_exhausted`` when the failed checks reached
    ``analysis.threshold``.
    """

    now: float
    since: float | None = None  # when the step's (or the GA wait's) clock started
    pending: Pending | None = None
    step_windows: int = 0  # windows judged in this step so far, this tick's included
    gate_closed: str | None = None
    load_refused: str | None = None
    load_down: str | None = None
    metrics_error: str | None = None
    errors: int = 0
    ga: tuple[bool, str] | None = None
    check_failed: str | None = None
    checks_exhausted: bool = False


def retries(state: RolloutState, pending: Pending | None) -> bool:
    """Is ``pending`` still the decision to commit (Git still at the step and revision it was taken at)?"""
    where = state.position
    return (
        pending is not None
        and where.phase == Phase.PROGRESSING
        and where.weight == pending.expected
        and state.revision == pending.revision
    )


def decide(rollout: Rollout, state: RolloutState, progress: Progress, windows: Sequence[Verdict]) -> Decision:
    """The one decision of a tick (pure). ``windows``: this tick's verdicts, in order; only the last
    can be other than a hold (the machine stops judging at the first that is not)."""
    where = state.position
    if progress.pending is not None and retries(state, progress.pending):
        return progress.pending  # a decision whose commit failed: commit it now
    if where.phase == Phase.START:
        return _start(rollout, state)
    if where.phase == Phase.FINALIZING:
        return _finalize(rollout, state, progress)
    if where.phase != Phase.PROGRESSING:
        return Stay(where.phase, Action.NONE, (where.reason,), stop_load=True)
    return _analysed(rollout, state, progress, windows)


def _route(rollout: Rollout, weight: int, *, prelude: bool = False) -> RouteState | None:
    """The route state a commit at ``weight`` applies: with ``analysis.mirror`` or ``match`` every
    commit says whether the mirror block or the match route is there (only in that stage, the
    ``prelude``); otherwise None (weights only)."""
    analysis = rollout.spec.analysis
    if analysis.kind not in ("mirror", "ab"):
        return None
    percent = float(analysis.mirror_weight) if prelude and analysis.mirror else None
    match = analysis.to_match() if prelude else None
    return RouteState(Weights.for_canary(weight), match=match, mirror=percent)


def _start(rollout: Rollout, state: RolloutState) -> Commit:
    """The rollout's first commit: step 1, or with ``analysis.mirror`` / ``match`` / ``previewService``
    the mirror, A/B or preview stage at 0 % (GA's requests mirrored to the canary, the match route
    before the default route, or the route unchanged while the load goes to the preview's Service),
    committed like any step (``Rollout-Step: mirror``, ``match`` or ``preview``)."""
    where, current, analysis = state.position, state.weights.canary, rollout.spec.analysis
    first, stage, label = rollout.spec.steps[0], step_label(rollout.spec.steps, rollout.spec.steps[0]), None
    head, place, what = "step 1", "step 1", f"canary {first}%"
    if analysis.kind in ("mirror", "ab", "preview"):
        first = 0
        stage = label = {"mirror": MIRROR_STEP, "ab": MATCH_STEP, "preview": PREVIEW_STEP}[analysis.kind]
        head, place = f"{stage} stage", f"the {stage} stage"
        preview = analysis.preview_service
        what = {
            "mirror": f"{analysis.mirror_weight}% of GA's requests mirrored to the canary",
            "ab": "the requests analysis.match takes go to the canary",
            "preview": f"the analysis load goes to the preview Service {preview.name if preview else ''}, "
            "users stay on GA",
        }[analysis.kind]
    reasons: tuple[str, ...] = (where.reason, f"{head}: {what}")
    summary = f"rollout of {state.revision} started: {what}"
    if current > first:
        # The canary Deployment already runs the new images: they served its traffic (all of it
        # at 100 %) from the moment the cluster applied them, before any analysis.
        reasons = (
            where.reason,
            f"the new revision was already serving {current}% before the controller acted",
            f"restart at {place}: canary {current}% -> {first}%" + (f", {what}" if not first else ""),
        )
        shown = f"{place} ({first}%)" if first else place
        summary = f"new revision {state.revision} was serving {current}% unanalysed: restarted at {shown}"
        label = "restart"
    change = WeightChange(
        Weights.for_canary(first),
        CommitVerdict.PROMOTE,
        reasons,
        step=stage,
        expected=Weights.for_canary(current),
        label=label,
        route=_route(rollout, first, prelude=True),
    )
    return Commit(
        change,
        Action.START,
        Phase.PROGRESSING,
        Kind.START,
        summary,
        reasons,
        current,
        state.revision,
        restart=True,
    )


def _finalize(rollout: Rollout, state: RolloutState, progress: Progress) -> Decision:
    """``finalize: promote-ga``: GA gets the canary's images (one commit), then, once GA runs them
    and is ready, the traffic goes back to GA (a second commit). The stage is derived from Git, so
    a restart between the two commits repeats neither."""
    where = state.position
    if where.finalize == FinalizeStage.GA_IMAGE:
        return PromoteImages(
            (where.reason, f"canary keeps {where.weight}% until GA runs {state.revision}"), where.weight
        )
    ready, seen = progress.ga if progress.ga is not None else (False, "GA readiness not looked at")
    if not ready:
        since = progress.since if progress.since is not None else progress.now
        if progress.now - since > rollout.spec.analysis.sync_timeout:
            return Pause(
                (f"GA did not become ready with {state.revision}: {seen}",), where.weight, state.revision
            )
        return Stay(
            Phase.FINALIZING,
            Action.WAIT,
            (f"waiting for GA to run {state.revision}: {seen}",),
            stop_load=True,
        )
    reasons = (f"GA runs {state.revision} and is ready ({seen})", "canary 0%: traffic back to GA")
    change = WeightChange(
        Weights.for_canary(0),
        CommitVerdict.FINALIZE,
        reasons,
        step=step_label(rollout.spec.steps, 0),
        expected=Weights.for_canary(where.weight),
        finalize=FinalizeStage.ROUTE_GA,
    )
    summary = f"GA runs {state.revision}: traffic routed back to GA"
    return Commit(
        change, Action.FINALIZE, Phase.PROMOTED, Kind.FINALIZE, summary, reasons, where.weight, state.revision
    )


def _analysed(
    rollout: Rollout, state: RolloutState, progress: Progress, windows: Sequence[Verdict]
) -> Decision:
    where, analysis = state.position, rollout.spec.analysis
    since = progress.since if progress.since is not None else progress.now
    if progress.gate_closed is not None:
        if progress.now - since > analysis.sync_timeout:
            return Pause((f"sync gate did not open: {progress.gate_closed}",), where.weight, state.revision)
        return Stay(Phase.PROGRESSING, Action.WAIT, (progress.gate_closed,))
    if progress.load_refused is not None:
        return Pause((f"load refused: {progress.load_refused}",), where.weight, state.revision)
    if progress.load_down is not None:
        return Stay(Phase.PROGRESSING, Action.HOLD, (f"load endpoint down: {progress.load_down}",))
    if progress.check_failed is not None:
        # A failed ``rollout`` webhook counts like a failed check (Flagger): hold, and roll back at
        # the threshold. The windows were not judged this interval; they wait for the next tick.
        failed_check: tuple[str, ...] = (progress.check_failed,)
        if progress.checks_exhausted:
            return _verdict(rollout, state, CommitVerdict.ROLLBACK, failed_check, {})
        return Stay(Phase.PROGRESSING, Action.HOLD, failed_check)
    missed = _load_misses_match(rollout) if where.stage == MATCH_STEP else None
    if missed is not None:
        return Stay(Phase.PROGRESSING, Action.HOLD, (missed,), windows=len(windows))  # never a promote
    last = windows[-1] if windows else None
    if last is not None and last.action == "rollback":
        return _verdict(rollout, state, CommitVerdict.ROLLBACK, tuple(last.reasons), last.evidence)
    iterations, field = _minimum_windows(rollout, where.stage)
    promoted = last is not None and last.action == "promote"
    if promoted and progress.step_windows < iterations:
        reasons = (
            f"{where.stage} stage: {progress.step_windows} of {field} {iterations} windows judged",
            *(last.reasons if last is not None else ()),
        )
        return Stay(Phase.PROGRESSING, Action.HOLD, reasons, windows=len(windows))
    if last is not None and last.action == "promote":
        upcoming = next_weight(rollout.spec.steps, where.weight)
        final = upcoming is None or upcoming == 100
        verdict = CommitVerdict.FINALIZE if final else CommitVerdict.PROMOTE
        return _verdict(rollout, state, verdict, tuple(last.reasons), last.evidence)
    if last is not None and last.action == "pause":
        return Pause(tuple(last.reasons), where.weight, state.revision, dict(last.evidence))
    if progress.metrics_error is not None:
        failed: tuple[str, ...] = (progress.metrics_error,)
        if progress.errors < analysis.threshold:
            return Stay(Phase.PROGRESSING, Action.HOLD, failed)
        if analysis.on_error == "rollback":
            return _verdict(rollout, state, CommitVerdict.ROLLBACK, failed, {})
        return Pause(failed, where.weight, state.revision)
    reasons = tuple(last.reasons) if last is not None else ("waiting for the next window",)
    return Stay(Phase.PROGRESSING, Action.HOLD, reasons, windows=len(windows))


def _minimum_windows(rollout: Rollout, stage: str | None) -> tuple[int, str]:
    """The windows a stage lasts at least, and the field that says so (0: no minimum)."""
    analysis = rollout.spec.analysis
    if stage in PRELUDE_STEPS:
        return analysis.iterations or 0, "iterations"
    if stage == SWITCHED_STAGE and analysis.post_promotion is not None:
        return analysis.post_promotion.iterations, "postPromotionAnalysis.iterations"
    return 0, ""


def _verdict(
    rollout: Rollout,
    state: RolloutState,
    verdict: CommitVerdict,
    reasons: tuple[str, ...],
    evidence: Mapping[str, float],
) -> Commit:
    """The commit of a judged verdict (promote, finalize = the last step, rollback)."""
    steps, at, stage = rollout.spec.steps, state.position.weight, state.position.stage
    weight = 0 if verdict == CommitVerdict.ROLLBACK else (next_weight(steps, at) or 100)
    post = rollout.spec.analysis.post_promotion
    switch = verdict == CommitVerdict.FINALIZE and post is not None and stage != SWITCHED_STAGE
    if switch:
        verdict = CommitVerdict.PROMOTE  # the switch; the switched version is judged again
    if verdict == CommitVerdict.ROLLBACK and stage == SWITCHED_STAGE:
        reasons = (f"postPromotionAnalysis: harm after the switch, switched back {at}% -> 0%", *reasons)
    change = WeightChange(
        Weights.for_canary(weight),
        verdict,
        tuple(with_evidence(reasons, evidence)),
        # A rollback names the step it was decided at.
        step=(state.position.stage if at == 0 else step_label(steps, at))
        if verdict == CommitVerdict.ROLLBACK
        else step_label(steps, weight),
        expected=Weights.for_canary(at),
        route=_route(rollout, weight),  # the mirror block or match route goes with the stage's verdict
        # The preview's rollback and the end of the switched stage change nothing in the route.
        record_unchanged=weight == at and stage in (PREVIEW_STEP, SWITCHED_STAGE),
    )
    done = Phase.FINALIZING if rollout.spec.finalize.action == "promote-ga" else Phase.PROMOTED
    phase, kind, summary = {
        CommitVerdict.PROMOTE: (
            Phase.PROGRESSING,
            Kind.STEP,
            f"canary {state.revision} promoted: {at}% -> {weight}%"
            + (
                f", judged again for postPromotionAnalysis ({post.iterations} windows)"
                if switch and post
                else ""
            ),
        ),
        CommitVerdict.FINALIZE: (
            done,
            Kind.FINALIZE,
            f"canary {state.revision} passed every step: it serves 100%",
        ),
        CommitVerdict.ROLLBACK: (
            Phase.ROLLEDBACK,
            Kind.ROLLBACK,
            _rolled_back(state),
        ),
    }[verdict]
    action = Action(verdict.value)
    return Commit(
        change, action, phase, kind, summary, reasons, at, state.revision, dict(evidence), retry=True
    )


def _rolled_back(state: RolloutState) -> str:
    """The summary of a rollback commit, naming where it was decided."""
    where, revision = state.position, state.revision
    if where.stage == SWITCHED_STAGE:
        return f"canary {revision} switched back after the blue/green switch: 100% to stable"
    if where.stage == PREVIEW_STEP:
        return f"canary {revision} rolled back at the preview stage: 100% to stable"
    if where.stage in PRELUDE_STEPS:
        return (
            f"canary {revision} rolled back at the {where.stage} stage: {where.stage} removed: 100% to stable"
        )
    return f"canary {revision} rolled back at {where.weight}%: 100% to stable"


def rollback_commit(rollout: Rollout, state: RolloutState, reasons: tuple[str, ...]) -> Commit:
    """The rollback commit of a decision taken outside the judge (a gate: a rejected approval, a
    failed pre-rollout check, a rollback webhook), like the judge's rollback."""
    return _verdict(rollout, state, CommitVerdict.ROLLBACK, reasons, {})


def _load_misses_match(rollout: Rollout) -> str | None:
    """Why the spec's load sends no request ``analysis.match`` takes (None: it does, or the load is
    not ours to know, ``mode: none``)."""
    match, load = rollout.spec.analysis.to_match(), rollout.spec.load
    if match is None or load.mode == "none" or load.target is None:
        return None
    return load_misses_match(match, str(load.target), dict(load.headers))


def load_target(rollout: Rollout, stage: str | None) -> str | None:
    """Where the analysis load goes at ``stage``: in the preview stage, the preview's own Service
    (``analysis.previewService.url``: users stay on GA, the load reaches only the canary); after a
    blue/green switch judged again, GA's own Service (``postPromotionAnalysis.stableService.url``:
    users are all on the canary); otherwise ``load.target``, the users' route."""
    preview, post = rollout.spec.analysis.preview_service, rollout.spec.analysis.post_promotion
    if stage == PREVIEW_STEP and preview is not None and preview.url is not None:
        return str(preview.url)
    stable = post.stable_service if post is not None else None
    if stage == SWITCHED_STAGE and stable is not None and stable.url is not None:
        return str(stable.url)  # after the switch: GA, on its own Service
    target = rollout.spec.load.target
    return None if target is None else str(target)


def grid_start(moment: float, interval: float) -> float:
    """The first window boundary at or after ``moment``. Windows lie on one grid (multiples of the
    interval since the epoch) for every rollout, so that rollouts with the same interval ask
    Prometheus for the same window ends and one batched query per round serves them all."""
    return math.ceil(moment / interval) * interval


def ran_committed_split(
    window: Window, weight: int, tolerance: float = 0.1, *, sticky: bool = False, mirrored: bool = False
) -> bool:
    """Did the window's traffic follow the committed split? A window the cluster ran partly at the
    old weights (before the sync, or after someone else's change) is not evidence about this step.

    With few requests the share is noise, so only a clear disagreement (5 standard errors and more
    than ``tolerance``) disqualifies a window. With session affinity (``sticky``) returning users
    stay where they were served, so the share is not the weight: only a canary without any request
    at a weight above 0 disqualifies the window. In the mirror stage (``mirrored``, weight 0) the
    canary's requests are the mirrored copies (counted at the canary with ``reporter="destination"``),
    so only a canary without any request disqualifies the window: the mirror is not running yet.
    """
    canary, baseline = float(window.canary.requests), float(window.baseline.requests)
    total = canary + baseline
    if total < 20:
        return True
    if mirrored:
        return canary > 0
    if sticky:
        return canary > 0 or weight == 0
    expected = weight / 100
    share = canary / total
    spread = 5 * math.sqrt(max(expected * (1 - expected), 1e-4) / total)
    return abs(share - expected) <= max(tolerance, spread)
