"""What a waiting rollout shows: one sentence for ``rollouts status``, the log and notifications,
and the JSON fields, saying what is awaited, where, and since when. Pure: facts in, text out."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rollouts.gates.approval import ApprovalStatus
from rollouts.gates.webhooks import GateDecision

if TYPE_CHECKING:
    from rollouts.gates.bymerge import MergeWait


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _for(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def since_text(since: float | None, now: float) -> str:
    """``, since 2026-01-01 10:00:00Z (12 min)``, or nothing when it is not known."""
    return f", since {_when(since)} ({_for(now - since)})" if since is not None else ""


def approval_text(
    rollout_key: str, step: str | None, status: ApprovalStatus, now: float | None = None
) -> str:
    """``test/podinfo: step 2/3 waiting for approval: merge <url> (branch ..., since ..., 12 min)``."""
    now = time.time() if now is None else now
    head = f"{rollout_key}: step {step}" if step else rollout_key
    if status.state != "waiting":
        return f"{head}: {status.reason}"
    where = (
        f"merge {status.review_url} (branch {status.branch})"
        if status.review_url
        else f"merge branch {status.branch}"
    )
    since = f", since {_when(status.since)} ({_for(now - status.since)})" if status.since is not None else ""
    return f"{head} waiting for approval: {where}{since}"


def webhook_text(rollout_key: str, decision: GateDecision) -> str:
    """``test/podinfo: waiting for webhook gate (confirm-promotion): HTTP 403: Forbidden``."""
    if decision.outcome == "pass":
        return f"{rollout_key}: {decision.type} webhooks passed"
    detail = "; ".join(decision.reasons) or decision.outcome
    if decision.outcome == "wait" and decision.results:
        held = decision.results[-1]
        return f"{rollout_key}: waiting for webhook {held.name} ({decision.type}): {held.reason}"
    return f"{rollout_key}: {decision.type} {decision.outcome}: {detail}"


def approval_fields(status: ApprovalStatus, now: float | None = None) -> dict[str, Any]:
    """The JSON of ``rollouts status --json`` for an approval: state, branch, request, since, waited."""
    now = time.time() if now is None else now
    return {
        "state": status.state,
        "branch": status.branch,
        "request": status.review_url,
        "since": _when(status.since) if status.since is not None else None,
        "waited_seconds": round(now - status.since, 1) if status.since is not None else None,
        "reason": status.reason,
    }


def merge_fields(wait: MergeWait, now: float | None = None) -> dict[str, Any]:
    """The JSON of ``rollouts status --json`` for a commit of ours awaiting its merge."""
    now = time.time() if now is None else now
    return {
        "kind": wait.kind,
        "state": wait.state,
        "branch": wait.branch,
        "request": wait.review_url,
        "since": _when(wait.since) if wait.since is not None else None,
        "waited_seconds": round(now - wait.since, 1) if wait.since is not None else None,
        "reasons": list(wait.reasons),
    }
