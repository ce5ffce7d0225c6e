"""``approval: merge`` for a pipeline's transition: the hand-over on a branch of ours, counted once merged.

The gates' machinery, not a second one: the branch is named by
:func:`rollouts.gates.approval.pipeline_branch`, proposed and read by
:func:`rollouts.gitops.approvals.propose_edit` and :func:`~rollouts.gitops.approvals.branch_facts`
(one commit of ours, never a force-push, never a second branch), and the pull or merge request is
opened through the forge clients' find-or-create (never a second request). The hand-over commit on
the branch is the one the runner would push to the watched branch (same file edit, same trailers)
plus ``Rollout-Approval: <branch>``; once a person merges it (merge commit, fast-forward, rebase or
squash), the target's canary manifest carries the revision and its trailers name the hand-over, so
the plan sees the target *done* and the target's rollout starts through the ordinary path.

What became of a proposal is read anew on every tick (:func:`merge_facts`): the branch on the remote,
the commit carrying our line reachable from the watched branch, and the forge's request. A killed
controller finds its branch and its request again; nothing is kept in between. One limit: without a
forge, "this branch was proposed and is gone" (a rejection) is known from a ref the cache keeps
(``refs/rollouts/approvals/...``, as the gates' approvals); a fresh cache proposes it again.

This module only does I/O for :mod:`rollouts.pipeline.runner`; what a transition should do is
:mod:`rollouts.pipeline.plan`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from rollouts.forge.base import Forge, ForgeError, Review
from rollouts.gates.approval import pipeline_branch, pipeline_branch_prefix
from rollouts.gitops.approvals import branch_facts, branches_under, delete_branch, was_proposed
from rollouts.gitops.workspace import Workspace
from rollouts.pipeline.plan import MergeFacts, Superseded, Transition
from rollouts.spec import Rollout
from rollouts.state import parse_message
from rollouts.state.pipeline import REVISION

log = logging.getLogger("rollouts.pipeline")


def branch_of(pipeline_key: str, environment: str, target: Rollout, revision: str) -> str:
    """The branch a hand-over of ``revision`` into ``environment`` waits on (the target Rollout's
    ``spec.approval.branchPrefix``, then ``pipeline/<namespace>/<pipeline>/<environment>/<revision>``)."""
    namespace, name = pipeline_key.split("/", 1)
    return pipeline_branch(target.spec.approval.branch_prefix, namespace, name, environment, revision)


def find_review(forge: Forge | None, branch: str, what: str) -> Review | None:
    """The forge's request for ``branch``, None without a forge or when the forge fails (the merge in
    Git is the approval: a forge that is down never blocks it, it only delays the request)."""
    if forge is None:
        return None
    try:
        return forge.find(branch)
    except ForgeError as exc:
        log.warning("%s: %s", what, exc)
        return None


def prefix_of(pipeline_key: str, environment: str, target: Rollout) -> str:
    """The part every hand-over branch into ``environment`` shares (the revision follows)."""
    namespace, name = pipeline_key.split("/", 1)
    return pipeline_branch_prefix(target.spec.approval.branch_prefix, namespace, name, environment)


def merge_facts(ws: Workspace, forge: Forge | None, branch: str, what: str) -> MergeFacts:
    """What Git and the forge say of ``branch`` now (fetches)."""
    facts = branch_facts(ws, branch)
    review = find_review(forge, branch, what)
    proposed = facts.exists or review is not None or facts.landed is not None
    return MergeFacts(
        branch=branch,
        proposed=proposed or was_proposed(ws, branch),
        exists=facts.exists,
        landed_commit=facts.landed,
        review=review.state if review else None,
        review_url=review.url if review else None,
        opened_at=datetime.fromtimestamp(facts.opened_at, UTC) if facts.opened_at else None,
        revision=parse_message(facts.message).trailers.get(REVISION, "") if facts.message else "",
    )


def proposals(
    ws: Workspace, forge: Forge | None, prefix: str, pipeline_key: str, skip: str
) -> list[MergeFacts]:
    """The merge facts of every branch of ours under ``prefix`` but ``skip`` (the candidate's)."""
    found = []
    for branch in branches_under(ws, prefix):
        if branch == skip:
            continue
        found.append(merge_facts(ws, forge, branch, pipeline_key))
    return found


def close_superseded(ws: Workspace, forge: Forge | None, superseded: Superseded, what: str) -> str:
    """Close the superseded request (a comment says why) and delete its branch (only while it is
    still our commit). Returns what was done, for the log and the tick."""
    done = []
    review = find_review(forge, superseded.branch, what)
    if forge is not None and review is not None and review.state == "open":
        try:
            forge.close(review, f"Superseded: {superseded.reason}.")
            done.append(f"closed {review.url}")
        except ForgeError as exc:
            log.warning("%s: %s", what, exc)
    facts = branch_facts(ws, superseded.branch)
    if facts.tip is not None and facts.landed is None and delete_branch(ws, superseded.branch, facts.tip):
        done.append(f"deleted branch {superseded.branch}")
    return ", ".join(done) or "nothing left to close"


def request_body(pipeline_key: str, transition: Transition, reasons: Sequence[str]) -> str:
    """The request's body: what merging does, and the evidence that passed."""
    revision, source, target = transition.revision, transition.source, transition.target
    lines = [
        f"gitops-rollouts hands **{revision}** over from **{source}** to **{target}** "
        f"(pipeline {pipeline_key}). Merge to start {target}'s canary of {revision}; close (or delete "
        f"the branch) to keep {revision} out of {target}.",
        "",
        "Evidence that passed:",
        "",
        *(f"- {' '.join(r.split())}" for r in reasons),
    ]
    if transition.evidence:
        lines += ["", f"{source}'s analysis when it finalized {revision}:", ""]
        lines += [f"- {' '.join(r.split())}" for r in transition.evidence]
    return "\n".join(lines) + "\n"
