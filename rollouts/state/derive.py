"""From Git facts to the rollout's state and phase: one pure function, :func:`derive`.

The workspace reads the facts (:class:`GitFacts`: the route's weights, the canary images, our
records, the weights and images at our last weight commit); :func:`derive` interprets them into a
:class:`RolloutState`, whose :attr:`RolloutState.position` says where the rollout stands. Nothing
here runs Git, reads a file or looks at a clock: the same facts always give the same state, so the
table-driven tests need no repository.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rollouts.routes import Weights
from rollouts.spec import Rollout
from rollouts.state.message import (
    MATCH_STEP,
    MIRROR_STEP,
    PRELUDE_STEPS,
    PREVIEW_STEP,
    SWITCHED_STAGE,
    Message,
    is_first_step,
)
from rollouts.state.vocabulary import (
    ALL_VERDICTS,
    RECORD_VERDICTS,
    WEIGHT_VERDICTS,
    CommitVerdict,
    FinalizeStage,
    Phase,
)


@dataclass(frozen=True)
class Record:
    """One commit of ours for a rollout, from its trailers."""

    sha: str
    verdict: CommitVerdict
    step: str | None
    revision: str | None
    subject: str
    timestamp: int
    author: str
    finalize: str | None = None  # Rollout-Finalize: ga-image | route-ga (``finalize: promote-ga``)
    reasons: tuple[str, ...] = ()  # the body's reasons (a rollback's say why; pipelines show them)


def record_of(rollout_key: str, sha: str, timestamp: int, author: str, message: Message) -> Record | None:
    """The :class:`Record` of a parsed commit message, None when it is not ours for ``rollout_key``."""
    verdict = message.verdict
    if not message.ours(rollout_key) or verdict is None or verdict not in ALL_VERDICTS:
        return None
    return Record(
        sha=sha,
        verdict=verdict,
        step=message.step,
        revision=message.revision,
        subject=message.subject,
        timestamp=timestamp,
        author=author,
        finalize=message.finalize,
        reasons=message.reasons,
    )


def last_weight_record(records: Sequence[Record]) -> Record | None:
    """Our newest commit that set weights (or aborted); ``records`` newest first."""
    return next((r for r in records if r.verdict in WEIGHT_VERDICTS), None)


def latest_record(records: Sequence[Record], verdicts: Sequence[str] = RECORD_VERDICTS) -> Record | None:
    """Our newest commit with one of ``verdicts`` (by default the pause/resume/abort records)."""
    return next((r for r in records if r.verdict in verdicts), None)


@dataclass(frozen=True)
class GitFacts:
    """What the workspace read from Git for one rollout at one head, uninterpreted.

    ``records`` are our commits for the rollout, newest first. ``weights_then`` and ``images_then``
    are the route's weights and the canary's images at our last weight commit (None when there is
    none, or when the manifest was unreadable then); ``touched`` is the newest commit since ours that
    touched the route file. ``ga_images``: the GA manifest's images (``finalize: promote-ga``).
    """

    rollout: str
    branch: str
    head: str
    weights: Weights
    images: dict[str, str]
    revision: str
    records: tuple[Record, ...] = ()
    weights_then: Weights | None = None
    images_then: dict[str, str] | None = None
    touched: str | None = None
    ga_images: dict[str, str] | None = None


@dataclass(frozen=True)
class Position:
    """Where the rollout stands: the phase, and for ``progressing`` the step being analysed."""

    phase: Phase
    weight: int
    reason: str
    since: float | None = None  # when the current step began (commit or resume time); None: unknown
    step: int = 0  # 1-based index into spec.steps of the current weight (0: not a step weight)
    adopted: bool = False  # the weight was set by someone else
    finalize: FinalizeStage | None = None  # finalizing: copy the images, or route back to GA
    # "mirror", "match" or "preview": the stage at 0 %, before the first step; "switched": blue/green
    # at 100 % while postPromotionAnalysis judges the switched version.
    stage: str | None = None


@dataclass(frozen=True)
class RolloutState:
    """Everything about a rollout that Git knows (Git is the state), and where that puts it."""

    rollout: str
    branch: str
    head: str
    weights: Weights
    images: dict[str, str]
    revision: str
    last: Record | None  # our last commit that set weights (or aborted)
    last_record: Record | None  # our last commit of any kind, pause/resume included
    paused: bool
    human_override: bool  # the weights differ from what our last weight commit set
    override_commit: str | None  # the newest commit that touched the route file since ours
    new_revision: bool  # the canary images changed since our last weight commit
    ga_images: dict[str, str] | None = None  # the GA manifest's images (``finalize: promote-ga`` only)
    # Our weight commits of the current rollout of this revision, oldest first: the start (step 1)
    # up to ``last``. The controller replays every step's windows from them after a restart.
    history: tuple[Record, ...] = ()
    # From the spec the state was derived for: where the rollout stands depends on them.
    steps: tuple[int, ...] = ()
    promote_ga: bool = False
    # ``analysis.mirror``, ``match`` or ``previewService``: a rollout begins with that stage at 0 %.
    first_stage: str | None = None
    # ``analysis.postPromotionAnalysis``: a blue/green switch (a promote at 100 %) is judged again.
    post_promotion: bool = False

    @property
    def position(self) -> Position:
        """Where the rollout stands (pure: :func:`position_of`)."""
        return position_of(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (the Git facts; ``rollouts status --json``)."""
        out = asdict(self)
        out["weights"] = {"stable": self.weights.stable, "canary": self.weights.canary}
        for derived_from_spec in ("steps", "promote_ga", "first_stage", "post_promotion"):
            del out[derived_from_spec]
        return out


def derive(rollout: Rollout, facts: GitFacts) -> RolloutState:
    """The rollout's state from Git's facts (pure)."""
    records = facts.records
    last = last_weight_record(records)
    latest_pause = latest_record(records)
    human_override, override_commit, new_revision = False, None, False
    if last is not None:
        if facts.weights_then is not None and facts.weights_then != facts.weights:
            human_override, override_commit = True, facts.touched
        if facts.images_then is not None:
            new_revision = facts.images_then != facts.images
        else:  # the manifest was unreadable then: fall back on the trailer
            new_revision = last.revision is not None and last.revision != facts.revision
    return RolloutState(
        rollout=facts.rollout,
        branch=facts.branch,
        head=facts.head,
        weights=facts.weights,
        images=facts.images,
        revision=facts.revision,
        last=last,
        last_record=records[0] if records else None,
        paused=latest_pause is not None
        and latest_pause.verdict in (CommitVerdict.PAUSE, CommitVerdict.ABORT),
        human_override=human_override,
        override_commit=override_commit,
        new_revision=new_revision,
        ga_images=facts.ga_images,
        history=_history(records, facts.revision),
        steps=tuple(rollout.spec.steps),
        promote_ga=rollout.spec.finalize.action == "promote-ga",
        first_stage=first_stage(rollout),
        post_promotion=rollout.spec.analysis.post_promotion is not None,
    )


def first_stage(rollout: Rollout) -> str | None:
    """The stage a rollout of ``rollout`` begins with before its first step: ``"mirror"``,
    ``"match"`` (A/B), ``"preview"`` (blue/green's preview Service), or None (the first step)."""
    kind = rollout.spec.analysis.kind
    return {"mirror": MIRROR_STEP, "ab": MATCH_STEP, "preview": PREVIEW_STEP}.get(kind)


def _history(records: Sequence[Record], revision: str) -> tuple[Record, ...]:
    """Our weight commits of the current rollout of ``revision``, oldest first."""
    history: list[Record] = []
    weight_records = [r for r in records if r.verdict in WEIGHT_VERDICTS]  # pause / resume: no weights
    for index, record in enumerate(weight_records):  # newest first
        if record.revision != revision or (
            history and record.verdict not in (CommitVerdict.PROMOTE, CommitVerdict.MANUAL)
        ):
            break  # another revision, or the end of an earlier rollout of this one
        history.append(record)
        if record.verdict == CommitVerdict.PROMOTE and is_first_step(record.step):
            older = weight_records[index + 1] if index + 1 < len(weight_records) else None
            if record.step in PRELUDE_STEPS or not _prelude_start(older, revision):
                break  # the rollout's start
    return tuple(reversed(history))


def _prelude_start(record: Record | None, revision: str) -> bool:
    """Is ``record`` the mirror or A/B stage that began the rollout of ``revision`` (before its
    ``1/N``)?"""
    return (
        record is not None
        and record.verdict == CommitVerdict.PROMOTE
        and record.step in PRELUDE_STEPS
        and record.revision == revision
    )


def _step(steps: Sequence[int], weight: int) -> int:
    return steps.index(weight) + 1 if weight in steps else 0


def position_of(state: RolloutState) -> Position:
    """Where the rollout stands (pure: the state in, a :class:`Position` out)."""
    steps = state.steps
    weight = state.weights.canary
    last = state.last
    prelude = state.first_stage is not None
    if state.paused:
        return Position(Phase.PAUSED, weight, "paused by a pause or abort commit; resume to continue")
    if state.new_revision:
        return _start(steps, weight, f"new canary revision {state.revision}", prelude=prelude)
    if last is None:
        if weight == 0:
            return _start(
                steps,
                weight,
                f"canary {state.revision} has never been rolled out",
                prelude=prelude,
            )
        return Position(
            Phase.PROGRESSING,
            weight,
            f"canary at {weight}% set by someone else",
            adopted=True,
            step=_step(steps, weight),
        )
    promote_ga = state.promote_ga and not state.human_override
    if weight == 0 and last.verdict == CommitVerdict.PROMOTE and last.step in PRELUDE_STEPS:
        what = {
            MIRROR_STEP: "mirrored requests",
            MATCH_STEP: "the requests analysis.match takes",
            PREVIEW_STEP: "the load to its preview Service",
        }[last.step]
        return Position(
            Phase.PROGRESSING,
            weight,
            f"analysing canary {state.revision} on {what} (canary 0%)",
            since=_since(state, float(last.timestamp)),
            stage=last.step,
        )
    if weight == 0:
        if promote_ga and last.verdict == CommitVerdict.FINALIZE and last.finalize == FinalizeStage.ROUTE_GA:
            return Position(Phase.PROMOTED, weight, f"GA runs {state.revision}; traffic routed back to GA")
        who = "by a human" if state.human_override else f"({last.verdict})"
        return Position(Phase.ROLLEDBACK, weight, f"canary {state.revision} routed 0% {who}")
    if weight == 100 and state.post_promotion and last.verdict == CommitVerdict.PROMOTE:
        if state.human_override:
            return Position(Phase.PROMOTED, weight, f"canary {state.revision} at 100% set by someone else")
        return Position(
            Phase.PROGRESSING,
            weight,
            f"analysing canary {state.revision} after the switch to 100% (postPromotionAnalysis; GA "
            "still runs)",
            since=_since(state, float(last.timestamp)),
            step=_step(steps, weight),
            stage=SWITCHED_STAGE,
        )
    if weight == 100:
        if promote_ga:
            # Stage 1 commits the canary's images into GA; stage 2 waits for GA, then routes back.
            since = float(last.timestamp)
            if state.ga_images != state.images:
                reason = f"canary {state.revision} serves 100%: its images go into the GA manifest"
                return Position(
                    Phase.FINALIZING, weight, reason, since=since, finalize=FinalizeStage.GA_IMAGE
                )
            reason = f"GA manifest names {state.revision}: traffic goes back to GA once GA is ready"
            return Position(Phase.FINALIZING, weight, reason, since=since, finalize=FinalizeStage.ROUTE_GA)
        return Position(Phase.PROMOTED, weight, f"canary {state.revision} serves 100%")
    since = _since(state, float(last.timestamp))
    if state.human_override:
        return Position(
            Phase.PROGRESSING,
            weight,
            f"canary weight {weight}% set by someone else",
            since=None,
            step=_step(steps, weight),
            adopted=True,
        )
    return Position(
        Phase.PROGRESSING,
        weight,
        f"analysing canary {state.revision} at {weight}%",
        since=since,
        step=_step(steps, weight),
    )


def _since(state: RolloutState, committed: float) -> float:
    """When the current step's clock started: its commit, or a later resume."""
    resumed = state.last_record
    if resumed is not None and resumed.verdict == CommitVerdict.RESUME and resumed.timestamp > committed:
        return float(resumed.timestamp)  # windows before a pause do not count for the step
    return committed


def _start(steps: Sequence[int], weight: int, reason: str, *, prelude: bool = False) -> Position:
    """A revision to roll out: ``start`` (the first step is due), or, already at the first step's
    weight, ``progressing`` from now on (nothing to commit; its time is when it is first seen).
    With a ``prelude`` (mirror or A/B) the first stage is at 0 % and always needs its commit."""
    if steps and weight == steps[0] and not prelude:
        return Position(Phase.PROGRESSING, weight, reason, since=None, step=1)
    return Position(Phase.START, weight, reason)


def position(rollout: Rollout, state: RolloutState) -> Position:
    """Where ``rollout`` stands in ``state`` (the state derived for ``rollout``'s spec)."""
    if (
        state.steps != tuple(rollout.spec.steps)
        or state.promote_ga != (rollout.spec.finalize.action == "promote-ga")
        or state.first_stage != first_stage(rollout)
        or state.post_promotion != (rollout.spec.analysis.post_promotion is not None)
    ):
        raise ValueError(f"{rollout.key}: the state was derived for another spec")
    return state.position
