"""What the pipeline should do now: a pure function from Git facts and the clock to a plan.

For each pair of neighbouring environments (a *transition*, source → target) the plan says where the
newest revision the source finalized stands: handed over already, soaking, awaiting approval, outside
its allowed windows, pinned by a person in the target, stopped by a rollback, or ready. The shell
(:mod:`rollouts.pipeline.runner`) reads the facts out of Git, calls :func:`plan`, writes the hand-over
commits of the ready transitions, and prints the rest. Nothing here reads Git, files or the clock:
the same facts and ``now`` give the same plan, which is what makes a killed controller safe to restart
(a hand-over that was pushed is a fact on the next read, so it is never written twice).

The rules, in the order they are checked for one transition:

1. the candidate is the newest revision the source **finalized** (a later revision supersedes an older
   one, also one that was stopped);
2. a revision rolled back in the source or any earlier environment is **blocked** from every later one
   (stop the line);
3. a revision the target already has (its canary manifest, one of our records there, or our hand-over
   commit) is **done**;
4. a change of the target's canary manifest by someone else after the candidate was finalized is a
   **pin**: the person wins, and the plan says so instead of overwriting it;
5. with ``approval: merge``, a hand-over already proposed on a branch of ours stands where its
   merge stands (:class:`MergeFacts`): **awaiting-approval** while the branch (and its request) is
   open, **blocked** once the request was closed unmerged or the branch deleted, **pinned** when a
   merge dropped our change; once merged, the target has the revision (rule 3: **done**);
6. the **soak** must have passed since the source finalized it;
7. the **approval** must exist (``command``; ``merge`` is ready and goes through a branch of ours);
8. ``now`` must lie in one of the **windows**, if any are listed.

The merge facts are gathered by the shell for the candidates of a first plan (they depend on the
revision), then the plan is made again with them: still a pure function of the facts.

Independently, a revision rolled back in one environment but present in a later one (it got there
first, or someone put it there) is reported as **out of order**, never silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal

from rollouts.pipeline.spec import DAYS, Pipeline, Promotion

ReviewState = Literal["open", "merged", "closed"]  # a forge's pull or merge request

EventKind = Literal["start", "finalize", "rollback", "handover"]


@dataclass(frozen=True)
class Event:
    """One of our commits in an environment, reduced to what the pipeline needs.

    ``kind`` is ``start`` (the rollout of ``revision`` began), ``finalize`` (it reached the end of its
    steps), ``rollback`` (it was rolled back, ``reason`` says why) or ``handover`` (the pipeline wrote
    it into this environment's canary manifest). ``at`` is the commit time, timezone-aware.
    """

    revision: str
    kind: EventKind
    at: datetime
    sha: str = ""
    reason: str = ""
    images: Mapping[str, str] = field(default_factory=dict)
    evidence: tuple[str, ...] = ()  # a finalize commit's reasons (the analysis that passed)


@dataclass(frozen=True)
class Pin:
    """The newest change to an environment's canary manifest that was not ours."""

    sha: str
    at: datetime
    revision: str
    author: str = ""


@dataclass(frozen=True)
class EnvironmentFacts:
    """What Git says about one environment (``events`` oldest first)."""

    name: str
    canary_revision: str
    canary_images: Mapping[str, str] = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    approvals: frozenset[str] = frozenset()  # revisions approved into this environment
    pin: Pin | None = None


@dataclass(frozen=True)
class MergeFacts:
    """What Git (and the forge, when one is configured) says of the branch a hand-over waits on.

    ``proposed``: the branch is on the remote, or this cache saw it there before, or the forge has a
    request for it (a branch never proposed is proposed when the other conditions hold).
    ``landed_commit``: a commit reachable from the target's watched branch carrying our line.
    """

    branch: str
    proposed: bool
    exists: bool
    landed_commit: str | None = None
    review: ReviewState | None = None
    review_url: str | None = None
    opened_at: datetime | None = None
    revision: str = ""  # the revision the branch hands over (its commit's trailer)


@dataclass(frozen=True)
class Superseded:
    """An open hand-over request for ``revision`` while the source finalized ``by`` since: the
    shell closes it (and deletes its branch), so no one merges the older revision by mistake."""

    target: str
    revision: str
    by: str
    branch: str
    review_url: str | None
    reason: str


class TransitionState(StrEnum):
    """Where a transition stands; the vocabulary of ``rollouts status PIPELINE``."""

    IDLE = "idle"  # the source has finalized no revision yet
    DONE = "done"  # the target has the candidate already
    BLOCKED = "blocked"  # the candidate was rolled back here or earlier
    PINNED = "pinned"  # a person changed the target's canary manifest after the candidate passed
    SOAKING = "soaking"
    AWAITING_APPROVAL = "awaiting-approval"
    OUTSIDE_WINDOW = "outside-window"
    READY = "ready"


@dataclass(frozen=True)
class Transition:
    """One source → target hand-over and where it stands."""

    source: str
    target: str
    state: TransitionState
    reason: str
    revision: str | None = None
    images: Mapping[str, str] = field(default_factory=dict)
    finalized_at: datetime | None = None
    ready_at: datetime | None = None  # when soaking ends or the next window opens
    via_branch: bool = False  # approval: merge: the hand-over goes on a branch of ours
    branch: str = ""  # approval: merge: that branch, once proposed
    review_url: str | None = None  # its pull or merge request, when a forge has one
    evidence_sha: str = ""  # the source's finalize commit, named in the hand-over trailers
    evidence: tuple[str, ...] = ()  # that commit's reasons


@dataclass(frozen=True)
class LineStop:
    """A revision rolled back in ``environment``: it goes no further."""

    revision: str
    environment: str
    at: datetime
    reason: str
    sha: str = ""


@dataclass(frozen=True)
class OutOfOrder:
    """A revision rolled back in ``failed_in`` that a later environment (``present_in``) has."""

    revision: str
    failed_in: str
    present_in: str
    failed_at: datetime
    reason: str


@dataclass(frozen=True)
class PipelinePlan:
    """The plan for one pipeline at one moment."""

    transitions: tuple[Transition, ...]
    stops: tuple[LineStop, ...]
    out_of_order: tuple[OutOfOrder, ...]
    superseded: tuple[Superseded, ...] = ()

    @property
    def ready(self) -> tuple[Transition, ...]:
        """The transitions whose hand-over commit should be written now."""
        return tuple(t for t in self.transitions if t.state is TransitionState.READY)


def plan(
    pipeline: Pipeline,
    facts: Sequence[EnvironmentFacts],
    now: datetime,
    merges: Mapping[tuple[str, str], MergeFacts] | None = None,
    proposals: Mapping[str, Sequence[MergeFacts]] | None = None,
) -> PipelinePlan:
    """The pipeline's plan from the facts of its environments (in pipeline order) at ``now``;
    ``merges``: the merge facts of ``(target, revision)`` hand-overs (``approval: merge``);
    ``proposals``: every branch of ours on each target's remote (the superseded are among them)."""
    names = [env.name for env in pipeline.spec.environments]
    if [f.name for f in facts] != names:
        raise ValueError(f"facts must name the environments in order {names}, got {[f.name for f in facts]}")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    stops = _stops(facts)
    first_stop: dict[str, LineStop] = {}
    for stop in stops:
        first_stop.setdefault(stop.revision, stop)
    transitions = tuple(
        _transition(
            pipeline.spec.environments[i].promotion,
            facts[i - 1],
            facts[i],
            names=names,
            first_stop=first_stop,
            now=now,
            merges=merges or {},
        )
        for i in range(1, len(facts))
    )
    return PipelinePlan(
        transitions=transitions,
        stops=stops,
        out_of_order=_out_of_order(facts, stops),
        superseded=_superseded(transitions, proposals or {}),
    )


def _superseded(
    transitions: Sequence[Transition], proposals: Mapping[str, Sequence[MergeFacts]]
) -> tuple[Superseded, ...]:
    """Open requests of ours for a revision other than the target's candidate (a newer one passed)."""
    found: list[Superseded] = []
    for t in transitions:
        if t.revision is None:
            continue
        for m in proposals.get(t.target, ()):
            if m.revision in ("", t.revision) or not m.exists or m.landed_commit is not None:
                continue
            if m.review in ("merged", "closed"):
                continue
            where = m.review_url or f"branch {m.branch}"
            why = (
                f"{where} ({m.revision} into {t.target}) is superseded: {t.source} finalized "
                f"{t.revision} since"
            )
            found.append(Superseded(t.target, m.revision, t.revision, m.branch, m.review_url, why))
    return tuple(found)


def _transition(
    promotion: Promotion,
    source: EnvironmentFacts,
    target: EnvironmentFacts,
    *,
    names: list[str],
    first_stop: Mapping[str, LineStop],
    now: datetime,
    merges: Mapping[tuple[str, str], MergeFacts],
) -> Transition:
    finalized = _newest(source.events, "finalize")
    if finalized is None:
        return Transition(
            source.name, target.name, TransitionState.IDLE, f"{source.name} has finalized no revision yet"
        )
    revision = finalized.revision
    candidate = Transition(
        source.name,
        target.name,
        TransitionState.READY,
        "",
        revision=revision,
        images=dict(finalized.images) or dict(source.canary_images),
        finalized_at=finalized.at,
        evidence_sha=finalized.sha,
        evidence=finalized.evidence,
    )
    stop = first_stop.get(revision)
    if stop is not None and names.index(stop.environment) <= names.index(source.name):
        why = f"{revision} was rolled back in {stop.environment} at {_clock(stop.at)}: {stop.reason}"
        return replace(candidate, state=TransitionState.BLOCKED, reason=why)
    if _has(target, revision):
        return replace(candidate, state=TransitionState.DONE, reason=f"{target.name} has {revision}")
    pin = target.pin
    if pin is not None and pin.at > finalized.at and pin.revision != revision:
        who = f" by {pin.author}" if pin.author else ""
        why = (
            f"{target.name}'s canary manifest was set to {pin.revision}{who} in {pin.sha[:12]} at "
            f"{_clock(pin.at)}, after {source.name} finalized {revision}: the person's change wins; "
            "commit the hand-over yourself or revert the pin to let it through"
        )
        return replace(candidate, state=TransitionState.PINNED, reason=why)
    merge = merges.get((target.name, revision)) if promotion.approval == "merge" else None
    if merge is not None and merge.proposed:
        return _merge_state(replace(candidate, via_branch=True), merge, target.name)
    soak_end = finalized.at + timedelta(seconds=promotion.soak or 0)
    if now < soak_end:
        left = _minutes(soak_end - now)
        why = f"{revision} soaks in {source.name} until {_clock(soak_end)} ({left} left, no rollback so far)"
        return replace(candidate, state=TransitionState.SOAKING, ready_at=soak_end, reason=why)
    if promotion.approval == "command" and revision not in target.approvals:
        why = (
            f"{revision} awaits approval for {target.name}: "
            f"rollouts approve PIPELINE --environment {target.name} --revision {revision}"
        )
        return replace(candidate, state=TransitionState.AWAITING_APPROVAL, reason=why)
    if promotion.windows and not in_window(promotion, now):
        opens = next_window(promotion, now)
        why = (
            f"{target.name} takes hand-overs only in its windows ({promotion.timezone}); "
            f"the next opens {_clock(opens, promotion)}"
        )
        return replace(candidate, state=TransitionState.OUTSIDE_WINDOW, ready_at=opens, reason=why)
    via_branch = promotion.approval == "merge"
    why = f"{revision} passed {source.name} (finalized {_clock(finalized.at)}): hand over to {target.name}"
    return replace(
        candidate, via_branch=via_branch, reason=why + (" through a branch to merge" if via_branch else "")
    )


def _merge_state(candidate: Transition, merge: MergeFacts, target: str) -> Transition:
    """Where a proposed hand-over stands (rule 6); the words of the gates' approvals."""
    revision = candidate.revision
    where = merge.review_url or f"branch {merge.branch}"
    found = replace(candidate, branch=merge.branch, review_url=merge.review_url)
    if merge.landed_commit is not None or merge.review == "merged":
        at = f" ({merge.landed_commit[:12]})" if merge.landed_commit else ""
        why = (
            f"{where} was merged{at} but {target}'s canary manifest does not carry {revision}: "
            "the merge dropped the hand-over; the person's change wins"
        )
        return replace(found, state=TransitionState.PINNED, reason=why)
    if merge.review == "closed":
        why = f"approval rejected: {where} was closed without merging; {revision} stays out of {target}"
        return replace(found, state=TransitionState.BLOCKED, reason=why)
    if not merge.exists:
        why = (
            f"approval rejected: branch {merge.branch} was deleted before its merge; "
            f"{revision} stays out of {target}"
        )
        return replace(found, state=TransitionState.BLOCKED, reason=why)
    since = f", since {_clock(merge.opened_at)}" if merge.opened_at else ""
    branch = f" (branch {merge.branch})" if merge.review_url else ""
    why = f"{revision} waits for approval to enter {target}: merge {where}{branch}{since}"
    return replace(found, state=TransitionState.AWAITING_APPROVAL, reason=why)


def in_window(promotion: Promotion, now: datetime) -> bool:
    """True when ``now`` lies in one of ``promotion.windows`` (all times when none are listed)."""
    if not promotion.windows:
        return True
    local = now.astimezone(promotion.zone)
    day = DAYS[local.weekday()]
    moment = local.timetz().replace(tzinfo=None)
    return any(day in w.days and w.start <= moment <= w.end for w in promotion.windows)


def next_window(promotion: Promotion, now: datetime) -> datetime:
    """The first moment after ``now`` at which a window opens (``now`` itself when one is open)."""
    if in_window(promotion, now):
        return now
    local = now.astimezone(promotion.zone)
    candidates = []
    for offset in range(8):
        date = (local + timedelta(days=offset)).date()
        day = DAYS[date.weekday()]
        for window in promotion.windows:
            if day in window.days:
                start = datetime.combine(date, window.start, tzinfo=promotion.zone)
                if start > now:
                    candidates.append(start)
    return min(candidates).astimezone(UTC)


def _stops(facts: Sequence[EnvironmentFacts]) -> tuple[LineStop, ...]:
    """Every rollback of ours, in pipeline order, then time."""
    return tuple(
        LineStop(
            revision=e.revision, environment=f.name, at=e.at, reason=e.reason or "rolled back", sha=e.sha
        )
        for f in facts
        for e in f.events
        if e.kind == "rollback"
    )


def _out_of_order(facts: Sequence[EnvironmentFacts], stops: Sequence[LineStop]) -> tuple[OutOfOrder, ...]:
    names = [f.name for f in facts]
    found: list[OutOfOrder] = []
    for stop in stops:
        for later in facts[names.index(stop.environment) + 1 :]:
            if _has(later, stop.revision):
                found.append(
                    OutOfOrder(
                        revision=stop.revision,
                        failed_in=stop.environment,
                        present_in=later.name,
                        failed_at=stop.at,
                        reason=f"{stop.revision} was rolled back in {stop.environment} at {_clock(stop.at)} "
                        f"({stop.reason}) but {later.name} has it: check {later.name}",
                    )
                )
    return tuple(found)


def _has(env: EnvironmentFacts, revision: str) -> bool:
    return env.canary_revision == revision or any(e.revision == revision for e in env.events)


def _newest(events: Sequence[Event], kind: EventKind) -> Event | None:
    return next((e for e in reversed(events) if e.kind == kind), None)


def _minutes(delta: timedelta) -> str:
    minutes = max(1, round(delta.total_seconds() / 60))
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def _clock(at: datetime, promotion: Promotion | None = None) -> str:
    if promotion is not None:
        return at.astimezone(promotion.zone).strftime(f"%a %Y-%m-%d %H:%M {promotion.timezone}")
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
