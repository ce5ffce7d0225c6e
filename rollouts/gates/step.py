"""The gates of one step, in one call: what the state machine asks before it commits a step.

:meth:`StepGates.check` runs, in Flagger's order, the ``rollback`` hooks (a pass rolls back), the
``confirm-rollout`` hooks (first step), the ``pre-rollout`` hooks (first step; failures count
towards the threshold, then roll back), the ``confirm-traffic-increase`` hooks (later steps) and the
``confirm-promotion`` hooks (last step); then, when the spec gates the step
(``spec.approval``), the approval as a merge: propose the step's change on a branch of ours, open
(or find) the request on the forge, and read what became of it.

The answer is a :class:`GateVerdict`: ``proceed`` (commit the step: when an approval was merged its
weights are already on the watched branch, and the workspace's commit is then a no-op), ``wait``
(hold at the current weights, ask again next interval), ``rollback`` or ``override`` (a merge that
dropped our change: a person chose other weights, which wins, as every human override does). Each
carries the sentence for the log, the status and the notification.

With ``spec.approval.protectedBranch`` it also carries :attr:`StepGates.proposals`
(:mod:`rollouts.gates.proposals`): the way every other commit of ours (a rollback, promote-ga's
two stages, a pause record) goes by a branch of ours and holds the rollout until it is merged.

It holds the one piece of memory the gates need between intervals, the failed ``pre-rollout``
checks of the current revision (Flagger's ``status.failedChecks``); a restart forgets it, which can
only delay a rollback, never cause a promotion.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Literal

from rollouts.forge.base import Forge, Review
from rollouts.gates.approval import ApprovalStatus, approval_branch, decide, gated
from rollouts.gates.proposals import Proposals, open_review
from rollouts.gates.status import approval_text, webhook_text
from rollouts.gates.webhooks import FailedChecks, Payload, Phase, Webhooks, checksum
from rollouts.gitops.approvals import propose, read_facts, was_proposed
from rollouts.gitops.workspace import Workspace
from rollouts.routes import Weights
from rollouts.spec import Rollout
from rollouts.spec_gates import ApprovalSpec

log = logging.getLogger("rollouts.gates")

Action = Literal["proceed", "wait", "rollback", "override"]


@dataclass(frozen=True)
class GateVerdict:
    """What the gates say about the next step, and why (one line for log, status, notification)."""

    action: Action
    reason: str
    approval: ApprovalStatus | None = None


PROCEED = GateVerdict("proceed", "no gate")
_ACTIONS: dict[str, Action] = {
    "approved": "proceed",
    "waiting": "wait",
    "rejected": "rollback",
    "dropped": "override",
}


class StepGates:
    """The webhooks and approvals of one rollout."""

    def __init__(
        self,
        rollout: Rollout,
        *,
        workspace: Workspace,
        webhooks: Webhooks | None = None,
        forge: Forge | None = None,
        threshold: int | None = None,
    ) -> None:
        self.rollout = rollout
        self.workspace = workspace
        self.webhooks = webhooks or Webhooks(rollout.spec.webhooks)
        self.forge = forge
        self.threshold = threshold or rollout.spec.analysis.threshold
        self._failed: dict[str, FailedChecks] = {}
        self._proposed: set[str] = set()  # branches this process proposed (with the cache's refs)
        # A protected watched branch: our other commits go by a branch of ours too (bymerge.py).
        self.proposals = (
            Proposals(rollout, workspace=workspace, forge=forge)
            if rollout.spec.approval.protected_branch
            else None
        )

    def _payload(self, revision: str, phase: Phase) -> Payload:
        meta = self.rollout.metadata
        return Payload(meta.name, meta.namespace, phase, checksum(self.rollout.key, revision))

    def check(
        self, index: int, weights: Weights, revision: str, *, reasons: tuple[str, ...] = ()
    ) -> GateVerdict:
        """May step ``index`` (0-based into ``spec.steps``) of ``revision`` set ``weights`` now?"""
        steps = self.rollout.spec.steps
        key = self.rollout.key
        progressing = self._payload(revision, "Progressing")
        rollback = self.webhooks.run("rollback", progressing)
        if rollback.outcome == "rollback":
            return GateVerdict("rollback", rollback.reasons[0])
        hooks: list[tuple[str, Phase]] = []
        if index == 0:
            hooks += [("confirm-rollout", "Waiting"), ("pre-rollout", "Progressing")]
        else:
            hooks.append(("confirm-traffic-increase", "Progressing"))
        if index == len(steps) - 1:
            hooks.append(("confirm-promotion", "Progressing"))
        for hook_type, phase in hooks:
            decision = self.webhooks.run(hook_type, self._payload(revision, phase))
            if decision.outcome == "wait":
                return GateVerdict("wait", webhook_text(key, decision))
            if decision.outcome == "fail":
                failed = self._failed.get(revision, FailedChecks()).after(decision)
                self._failed[revision] = failed
                text = webhook_text(key, decision)
                if failed.exhausted(self.threshold):
                    return GateVerdict(
                        "rollback", f"{text} ({failed.count} failed checks, threshold {self.threshold})"
                    )
                return GateVerdict("wait", f"{text} (failed check {failed.count} of {self.threshold})")
        if not gated(self.rollout.spec.approval, steps, index):
            return PROCEED
        return self._approval(index, weights, revision, reasons)

    def during_analysis(self, revision: str) -> GateVerdict:
        """Flagger's ``rollout`` hooks, once per analysis interval: failures count like
        ``pre-rollout``'s, and roll back at the threshold."""
        decision = self.webhooks.run("rollout", self._payload(revision, "Progressing"))
        if decision.outcome != "fail":
            return PROCEED
        failed = self._failed.get(revision, FailedChecks()).after(decision)
        self._failed[revision] = failed
        text = webhook_text(self.rollout.key, decision)
        if failed.exhausted(self.threshold):
            return GateVerdict(
                "rollback", f"{text} ({failed.count} failed checks, threshold {self.threshold})"
            )
        return GateVerdict("wait", f"{text} (failed check {failed.count} of {self.threshold})")

    def finished(self, revision: str, *, succeeded: bool) -> None:
        """Flagger's ``post-rollout`` hooks (phase ``Succeeded`` or ``Failed``); informational."""
        phase: Phase = "Succeeded" if succeeded else "Failed"
        decision = self.webhooks.run("post-rollout", self._payload(revision, phase))
        for reason in decision.reasons:
            log.warning("%s: %s", self.rollout.key, reason)
        self._failed.pop(revision, None)

    def event(self, revision: str, message: str, *, warning: bool = False) -> None:
        """Flagger's ``event`` hooks: every notice, as Flagger sends its events; informational."""
        if not self.webhooks.of("event"):
            return
        decision = self.webhooks.event(
            self._payload(revision, "Progressing"), message, "Warning" if warning else "Normal"
        )
        for reason in decision.reasons:
            log.warning("%s: %s", self.rollout.key, reason)

    def _approval(self, index: int, weights: Weights, revision: str, reasons: tuple[str, ...]) -> GateVerdict:
        spec = self.rollout.spec
        meta = self.rollout.metadata
        step = f"{index + 1}/{len(spec.steps)}"
        branch = approval_branch(spec.approval.branch_prefix, meta.namespace, meta.name, revision, index + 1)
        facts = read_facts(self.workspace, self.rollout, branch=branch, expected=weights)
        proposed = branch in self._proposed or was_proposed(self.workspace, branch)
        if facts.landed_commit is None and not proposed and facts.current == weights:
            # Someone set these weights on the watched branch already: a person's change wins.
            return GateVerdict("proceed", f"{self.rollout.key}: step {step}: the weights are already there")
        if facts.landed_commit is None and not facts.branch_exists and not proposed:
            # Never proposed (a branch we proposed and that is gone was deleted: a rejection).
            proposal = propose(
                self.workspace, self.rollout, weights, branch=branch, step=step, reasons=reasons
            )
            self._proposed.add(branch)
            log.info(
                "%s: step %s proposed on branch %s (%s)", self.rollout.key, step, branch, proposal.sha[:12]
            )
            facts = read_facts(self.workspace, self.rollout, branch=branch, expected=weights)
        review = self._review(branch, spec.git.branch, step, weights, reasons)
        if review is not None:
            facts = dataclasses.replace(facts, review=review.state, review_url=review.url)
        status = decide(facts)
        text = approval_text(self.rollout.key, step, status)
        return GateVerdict(_ACTIONS[status.state], text, status)

    def _review(
        self, branch: str, base: str, step: str, weights: Weights, reasons: tuple[str, ...]
    ) -> Review | None:
        title = f"{self.rollout.metadata.name}: canary {weights.canary}% (step {step}) awaits approval"
        body = "\n".join(
            [
                f"gitops-rollouts asks to set **{self.rollout.key}** to canary {weights.canary}% "
                f"(step {step}). Merge to approve; close to roll back.",
                "",
                *(f"- {r}" for r in reasons),
            ]
        )
        # The forge is a convenience: the merge in Git is the approval; a failing forge is logged.
        return open_review(
            self.forge,
            branch=branch,
            base=base,
            title=title,
            body=body,
            auto_merge=self.forge_auto_merge,
            key=self.rollout.key,
        )

    @property
    def forge_auto_merge(self) -> bool:
        forge = self.rollout.spec.approval.forge
        return bool(forge and forge.auto_merge)


def forge_of(approval: ApprovalSpec) -> Forge | None:
    """The forge client of ``approval.forge`` (None without one); the token is read now, so a
    missing one is an error at start-up. Pipelines open their hand-over requests with it too."""
    f = approval.forge
    if f is None:
        return None
    from rollouts.forge import ForgeConfig, forge_for

    token = ForgeConfig.read_token(f.token_file, f.token_env)
    return forge_for(
        ForgeConfig(
            kind=f.kind,
            repository=f.repository,
            token=token,
            url=f.url,
            auto_merge=f.auto_merge,
            merge_method=f.merge_method,
        )
    )


def step_gates_for(rollout: Rollout, workspace: Workspace) -> StepGates | None:
    """The gates of ``rollout`` (None when it has no webhooks and gates no step); its forge client
    from ``spec.approval.forge`` (the token read now: a missing one is an error at start-up)."""
    spec = rollout.spec
    any_gate = any(gated(spec.approval, spec.steps, i) for i in range(len(spec.steps)))
    if not spec.webhooks and not any_gate:
        return None
    forge = forge_of(spec.approval) if any_gate else None
    return StepGates(rollout, workspace=workspace, forge=forge)
