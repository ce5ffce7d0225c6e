"""The pipeline's words in the commit protocol: hand-over and approval commits, and what a rollout's
records mean to a pipeline.

A pipeline writes two kinds of commit, both in the *target* environment's repository:

Hand-over (the revision enters the next environment's canary manifest)::

    podinfo: production canary 0.1.0 -> 0.2.0 (handover from staging)

    - 0.2.0 passed staging: finalized in 3f9c2a1b7d0e at 2026-12-01 10:00 UTC

    Rollout-Pipeline: test/podinfo
    Rollout-Environment: production
    Rollout-Source: staging
    Rollout-Source-Commit: 3f9c2a1b7d0e...
    Rollout-Revision: 0.2.0
    Rollout-Verdict: handover

Approval (``rollouts approve``: an empty commit)::

    podinfo: approve 0.2.0 for production

    Rollout-Pipeline: test/podinfo
    Rollout-Environment: production
    Rollout-Revision: 0.2.0
    Rollout-Verdict: approve

Neither carries a ``Rollout:`` trailer: they are not the target rollout's records, so they never
change its phase; the hand-over only changes the canary manifest, which starts the target's rollout
through the ordinary path (a new revision). The verdict words live in :class:`PipelineVerdict`, apart
from :class:`~rollouts.state.vocabulary.CommitVerdict`, for the same reason.

:func:`events_of` reads a rollout's own records (finalize, rollback, the start of a revision) as the
events a pipeline plans on. This module must never run Git, read files or look at a clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from rollouts.state.derive import Record
from rollouts.state.message import Message, is_first_step
from rollouts.state.vocabulary import CommitVerdict, FinalizeStage

PIPELINE = "Rollout-Pipeline"
ENVIRONMENT = "Rollout-Environment"
SOURCE = "Rollout-Source"
SOURCE_COMMIT = "Rollout-Source-Commit"
REVISION = "Rollout-Revision"
VERDICT = "Rollout-Verdict"


class PipelineVerdict(StrEnum):
    """The ``Rollout-Verdict`` of a pipeline's commit."""

    HANDOVER = "handover"  # the revision was written into this environment's canary manifest
    APPROVE = "approve"  # a person approved the revision for this environment


@dataclass(frozen=True)
class PipelineRecord:
    """One pipeline commit, from its trailers (``at``: the commit time)."""

    sha: str
    verdict: PipelineVerdict
    pipeline: str
    environment: str
    revision: str
    at: datetime
    author: str
    source: str | None = None
    source_commit: str | None = None


def handover_subject(name: str, environment: str, before: str, revision: str, source: str) -> str:
    """``podinfo: production canary 0.1.0 -> 0.2.0 (handover from staging)``."""
    return f"{name}: {environment} canary {before} -> {revision} (handover from {source})"


def approve_subject(name: str, environment: str, revision: str) -> str:
    """``podinfo: approve 0.2.0 for production``."""
    return f"{name}: approve {revision} for {environment}"


def format_pipeline_message(
    pipeline_key: str,
    subject: str,
    *,
    verdict: PipelineVerdict,
    environment: str,
    revision: str,
    reasons: Sequence[str] = (),
    source: str | None = None,
    source_commit: str | None = None,
) -> str:
    """Subject, one reason per line, and the pipeline's trailers (always in this order)."""
    for name, value in (("environment", environment), ("revision", revision), ("pipeline", pipeline_key)):
        if not value or any(c in value for c in "\r\n"):
            raise ValueError(f"{name} must be one non-empty line, got {value!r}")
    lines = [subject, ""]
    if reasons:
        lines += [f"- {' '.join(reason.split())}" for reason in reasons] + [""]
    lines.append(f"{PIPELINE}: {pipeline_key}")
    lines.append(f"{ENVIRONMENT}: {environment}")
    if source:
        lines.append(f"{SOURCE}: {source}")
    if source_commit:
        lines.append(f"{SOURCE_COMMIT}: {source_commit}")
    lines.append(f"{REVISION}: {revision}")
    lines.append(f"{VERDICT}: {verdict}")
    return "\n".join(lines) + "\n"


def pipeline_record_of(
    pipeline_key: str, sha: str, timestamp: int, author: str, message: Message
) -> PipelineRecord | None:
    """The :class:`PipelineRecord` of a parsed commit message; None when it is not this pipeline's."""
    trailers = message.trailers
    verdict = trailers.get(VERDICT)
    environment, revision = trailers.get(ENVIRONMENT), trailers.get(REVISION)
    if trailers.get(PIPELINE) != pipeline_key or verdict not in tuple(PipelineVerdict):
        return None
    if not environment or not revision:
        return None
    return PipelineRecord(
        sha=sha,
        verdict=PipelineVerdict(verdict),
        pipeline=pipeline_key,
        environment=environment,
        revision=revision,
        at=datetime.fromtimestamp(timestamp, UTC),
        author=author,
        source=trailers.get(SOURCE),
        source_commit=trailers.get(SOURCE_COMMIT),
    )


@dataclass(frozen=True)
class RevisionEvent:
    """A rollout record read as a pipeline event: ``kind`` is start, finalize or rollback."""

    revision: str
    kind: str
    at: datetime
    sha: str
    reason: str = ""
    reasons: tuple[str, ...] = ()  # the record's reasons (a finalize's: the analysis that passed)


def events_of(records: Sequence[Record], *, promote_ga: bool = False) -> list[RevisionEvent]:
    """A rollout's records (newest first, as the workspace gives them) as events, oldest first.

    * ``start``: a ``promote`` at step ``1/N`` (the rollout of a revision began);
    * ``finalize``: the rollout of the revision completed: the ``finalize`` commit that routes the
      last step (``finalize: leave-canary``), or, with ``promote_ga``, the last of its stages
      (``route-ga``: GA runs the revision and has the traffic back);
    * ``rollback``: a ``rollback`` commit, its first reason saying why.

    Records without a revision are skipped: a pipeline plans on revisions.
    """
    done = FinalizeStage.ROUTE_GA if promote_ga else None
    events: list[RevisionEvent] = []
    for record in reversed(records):
        if not record.revision:
            continue
        kind: str | None = None
        if record.verdict is CommitVerdict.PROMOTE and is_first_step(record.step):
            kind = "start"
        elif record.verdict is CommitVerdict.FINALIZE and record.finalize == done:
            kind = "finalize"
        elif record.verdict is CommitVerdict.ROLLBACK:
            kind = "rollback"
        if kind is None:
            continue
        if (
            kind == "start"
            and events
            and events[-1].kind == "start"
            and events[-1].revision == record.revision
        ):
            continue  # "1/N" after the mirror stage: the rollout started at the mirror commit
        events.append(
            RevisionEvent(
                revision=record.revision,
                kind=kind,
                at=datetime.fromtimestamp(record.timestamp, UTC),
                sha=record.sha,
                reason=record.reasons[0] if record.reasons and kind == "rollback" else "",
                reasons=tuple(record.reasons),
            )
        )
    return events
