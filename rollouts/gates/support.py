"""Gate settings the controller does not act on yet: a rollout that asks for one is refused, with the
field named, rather than run without the gate it asked for (a silent gate would let a step through
that someone meant to approve). Pure."""

from __future__ import annotations

from rollouts.spec import Rollout


def not_yet_honoured(rollout: Rollout) -> list[str]:
    """The ``spec`` fields of ``rollout`` that ``rollouts run`` would not act on."""
    fields = []
    if rollout.spec.webhooks:
        fields.append("spec.webhooks")
    approval = rollout.spec.approval
    if approval.confirm_rollout or approval.confirm_traffic_increase or approval.confirm_promotion:
        fields.append("spec.approval (confirm*)")
    if approval.protected_branch:
        fields.append("spec.approval.protectedBranch")
    return fields
