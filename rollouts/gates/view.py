"""The approval a rollout waits for now, read from Git only (for ``rollouts status``): the next step,
if the spec gates it and its branch was proposed, and what became of it. Never proposes anything."""

from __future__ import annotations

from rollouts.gates.approval import ApprovalStatus, approval_branch, decide, gated
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
