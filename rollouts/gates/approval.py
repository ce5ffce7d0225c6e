"""Approval as a merge, the pure part: which steps wait, the branch of ours, and what Git says now.

A gated step's change is committed to a branch of ours,
``<prefix>/<namespace>/<name>/<revision>/step-<n>``, with one more trailer,
``Rollout-Approval: <that branch>``. The step begins once that change is *reachable from the watched
branch*, whatever the merge strategy:

- merge commit, fast-forward, rebase: our commit (or its rebased copy) is on the branch with its
  message, trailers included;
- squash: the squash commit's message holds our message (GitHub's default lists every commit's
  message in the body), so the ``Rollout-Approval`` line is found anywhere in the message, not only
  in the last paragraph; for squash templates that keep only the title (GitLab's default), a forge
  that reports the request **merged** stands in for the line.

Never the SHA: rebase and squash make new ones. And never the line alone: the watched branch must
also carry the weights the change set, so a merge that resolved a conflict the other way (our line
in the message, not our weights in the file) is told apart (``dropped``) and never counts as an
approval. A request closed without merging, or our branch deleted before the change landed, is
``rejected``: the rollout rolls back with that reason.

Everything here is a pure function of facts the caller gathered (Git, the forge); no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from rollouts.routes.base import Weights
from rollouts.spec_gates import ApprovalSpec
from rollouts.state.message import APPROVAL, approval_line

__all__ = [  # APPROVAL and approval_line are the commit protocol's (rollouts.state.message)
    "APPROVAL",
    "ApprovalFacts",
    "ApprovalState",
    "ApprovalStatus",
    "ReviewState",
    "approval_branch",
    "approval_line",
    "carries",
    "decide",
    "gated",
    "landed",
    "pipeline_branch",
    "pipeline_branch_prefix",
    "proposal_branch",
    "revision_prefix",
]

ApprovalState = Literal["waiting", "approved", "rejected", "dropped"]
ReviewState = Literal["open", "merged", "closed"]
_REF_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def gated(spec: ApprovalSpec, steps: Sequence[int], index: int) -> bool:
    """True when step ``index`` (0-based into ``steps``) waits for a merge."""
    last = index == len(steps) - 1
    if spec.protected_branch:
        return True  # no direct push to the branch: every step goes by a branch of ours
    if index == 0 and spec.confirm_rollout:
        return True
    if last and spec.confirm_promotion:
        return True
    increase = spec.confirm_traffic_increase
    if index > 0 and increase is True:
        return True
    return isinstance(increase, list) and steps[index] in increase


def _segment(text: str) -> str:
    """One safe ref-name segment (``git check-ref-format``: no ``..``, ``@{``, ``~^:?*[\\``, spaces,
    no leading ``.`` or ``-``, no trailing ``.lock``)."""
    cleaned = _REF_UNSAFE.sub("-", text).strip(".-") or "x"
    cleaned = re.sub(r"\.{2,}", ".", cleaned)
    return cleaned[:-5] + "-lock" if cleaned.endswith(".lock") else cleaned


def proposal_branch(prefix: str, namespace: str, name: str, revision: str, leaf: str) -> str:
    """``rollouts/<namespace>/<name>/<revision>/<leaf>``, safe as a ref name: the branch of ours
    one commit waits on (``step-<n>``, ``rollback``, ``ga-image``, ``route-ga``, ``pause-<n>``)."""
    parts = [*prefix.split("/"), namespace, name, revision, leaf]
    return "/".join(_segment(part) for part in parts)


def approval_branch(prefix: str, namespace: str, name: str, revision: str, step: int) -> str:
    """``rollouts/<namespace>/<name>/<revision>/step-<n>`` (``step`` 1-based), safe as a ref name."""
    return proposal_branch(prefix, namespace, name, revision, f"step-{step}")


def revision_prefix(prefix: str, namespace: str, name: str, revision: str) -> str:
    """The branches of one rollout of ``revision``: ``rollouts/<namespace>/<name>/<revision>/``."""
    return proposal_branch(prefix, namespace, name, revision, "x")[:-1]


def pipeline_branch_prefix(prefix: str, namespace: str, pipeline: str, environment: str) -> str:
    """``rollouts/pipeline/<namespace>/<pipeline>/<environment>``: what every hand-over branch into
    ``environment`` starts with."""
    parts = [*prefix.split("/"), "pipeline", namespace, pipeline, environment]
    return "/".join(_segment(part) for part in parts)


def pipeline_branch(prefix: str, namespace: str, pipeline: str, environment: str, revision: str) -> str:
    """``rollouts/pipeline/<namespace>/<pipeline>/<environment>/<revision>``: where a pipeline's
    hand-over into ``environment`` waits for its merge (``approval: merge``), safe as a ref name."""
    return f"{pipeline_branch_prefix(prefix, namespace, pipeline, environment)}/{_segment(revision)}"


def carries(message: str, branch: str) -> bool:
    """True when ``message`` has the ``Rollout-Approval: <branch>`` line anywhere (squash bodies
    hold our message below the title, so the line need not be in the last paragraph)."""
    want = approval_line(branch)
    return any(line.strip().lstrip("*- ").strip() == want for line in message.splitlines())


def landed(messages: Iterable[tuple[str, str]], branch: str) -> str | None:
    """The sha of the first ``(sha, message)`` that carries the approval of ``branch``."""
    return next((sha for sha, message in messages if carries(message, branch)), None)


@dataclass(frozen=True)
class ApprovalFacts:
    """What the caller read: the watched branch, our branch, and (optionally) the forge's request."""

    branch: str
    expected: Weights  # what our gated commit sets
    current: Weights  # the route file on the watched branch's head
    landed_commit: str | None  # a commit reachable from the watched branch carrying our line
    branch_exists: bool  # our approval branch is still on the remote
    review: ReviewState | None = None  # the forge's request, when a forge is configured
    review_url: str | None = None
    opened_at: float | None = None  # when our branch commit was made (for "since")


@dataclass(frozen=True)
class ApprovalStatus:
    """Where an approval stands, and the sentence for the log, the status and the notification."""

    state: ApprovalState
    reason: str
    branch: str
    review_url: str | None = None
    since: float | None = None


def decide(facts: ApprovalFacts) -> ApprovalStatus:
    """The rules of the module docstring, in order: landed with our weights -> approved; landed
    without them -> dropped; a merged request with our weights -> approved (squash templates
    that drop trailers); a closed request or a deleted branch -> rejected; else waiting."""
    where = facts.review_url or f"branch {facts.branch}"

    def status(state: ApprovalState, reason: str) -> ApprovalStatus:
        return ApprovalStatus(state, reason, facts.branch, facts.review_url, facts.opened_at)

    ours = facts.current == facts.expected
    if facts.landed_commit is not None:
        if ours:
            return status("approved", f"approved: {where} merged ({facts.landed_commit[:12]})")
        return status(
            "dropped",
            f"{where} was merged ({facts.landed_commit[:12]}) but the watched branch does not carry its "
            f"weights (canary {facts.expected.canary}% expected, {facts.current.canary}% found): "
            "the merge dropped our change",
        )
    if facts.review == "merged":
        if ours:
            return status("approved", f"approved: {where} merged")
        return status(
            "dropped",
            f"{where} is merged but the watched branch does not carry its weights "
            f"(canary {facts.expected.canary}% expected, {facts.current.canary}% found)",
        )
    if facts.review == "closed":
        return status("rejected", f"approval rejected: {where} was closed without merging")
    if not facts.branch_exists:
        return status("rejected", f"approval rejected: branch {facts.branch} was deleted before its merge")
    return status("waiting", f"waiting for approval: merge {where}")
