"""Gate settings the controller does not act on yet: a rollout that asks for one is refused, with the
field named, rather than run without the gate it asked for (a silent gate would let a step through
that someone meant to stop). Pure."""

from __future__ import annotations

from rollouts.spec import Rollout

# Called by the state machine (rollouts/gates/step.py): before each step, during analysis
# (``rollout``), when the rollout ends (``post-rollout``) and with every notice (``event``).
CALLED = (
    "confirm-rollout", "pre-rollout", "confirm-traffic-increase", "confirm-promotion", "rollback",
    "rollout", "post-rollout", "event",
)  # fmt: skip


def not_yet_honoured(rollout: Rollout) -> list[str]:
    """The ``spec`` fields of ``rollout`` that ``rollouts run`` would not act on."""
    fields = [
        f"spec.webhooks[{i}] (type {hook.type})"
        for i, hook in enumerate(rollout.spec.webhooks)
        if hook.type not in CALLED
    ]
    approval = rollout.spec.approval
    if approval.protected_branch and not approval.direct_rollback:
        fields.append("spec.approval.directRollback: false (rollbacks by pull request)")
    if approval.protected_branch and rollout.spec.finalize.action == "promote-ga":
        fields.append("spec.approval.protectedBranch with finalize: promote-ga")
    return fields
