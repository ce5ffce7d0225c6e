"""What a rollout waits for now, read from Git only (for ``rollouts status``): the approval of the next
step, if the spec gates it and its branch was proposed, and what became of it; and, on a protected
branch, a commit of ours that holds the rollout on a branch of ours (a rollback awaiting merge, a
promote-ga stage, a pause record). Never proposes anything and never opens a request."""

from __future__ import annotations

from rollouts.gates.approval import ApprovalStatus, approval_branch, decide, gated
from rollouts.gates.bymerge import MergeWait
from rollouts.gates.proposals import Proposals
from rollouts.gitops.approvals import read_facts, remote_branch_exists, was_proposed
from rollouts.gitops.workspace import Workspace
from rollouts.routes import Weights
from rollouts.spec import Rollout


def pending_approval(
    ws: Workspace, rollout: Rollout, weights: Weights, revision: str
) -> ApprovalStatus | None:
    """The approval of the step after ``weights`` (the current ones), or None when that step is not
    gated or was not proposed yet."""
    steps = rollout.spec.steps
    index = next((i for i, w in enumerate(steps) if w > weights.canary), None)
    if index is None or not gated(rollout.spec.approval, steps, index):
        return None
    meta = rollout.metadata
    branch = approval_branch(
        rollout.spec.approval.branch_prefix, meta.namespace, meta.name, revision, index + 1
    )
    if not (remote_branch_exists(ws, branch) or was_proposed(ws, branch)):
        return None
    return decide(read_facts(ws, rollout, branch=branch, expected=Weights.for_canary(steps[index])))


def awaiting_merge(ws: Workspace, rollout: Rollout, revision: str) -> MergeWait | None:
    """The commit of ours for ``revision`` that waits on a branch of ours and holds the rollout
    (None without ``protectedBranch``, or when none waits). No forge is asked: the branch is named."""
    if not rollout.spec.approval.protected_branch:
        return None
    return Proposals(rollout, workspace=ws).outstanding(revision)
