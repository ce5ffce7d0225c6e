"""Our commits on a protected branch, the pure part: which go by a branch of ours, on which branch,
and where one that waits for its merge stands.

With ``spec.approval.protectedBranch`` the watched branch refuses our direct pushes, so every commit
of ours is made on the watched branch's head and pushed to a branch of ours instead, named like the
steps' (``<prefix>/<namespace>/<name>/<revision>/<leaf>``), with the ``Rollout-Approval: <branch>``
trailer; it counts once it is reachable from the watched branch, recognised by that trailer (merge
commit, squash that keeps the message, rebase), or by the forge reporting its request merged (squash
templates that keep only the title). Never by its SHA.

Two kinds of wait:

- a step (``step-<n>``) is the approval gate's (:mod:`rollouts.gates.approval`): the analysis of the
  current step goes on while it waits, and a request closed unmerged is a rollback;
- every other commit here **holds** the rollout while it waits: the rollback (``rollback``, unless
  ``directRollback``), the two stages of ``finalize: promote-ga`` (``ga-image``, then ``route-ga``),
  a pause record (``pause-<n>``, the n-th pause of the revision) and the start of a mirror or A/B
  stage (``mirror``, ``match``). No further step is taken and the decision (a rollback's harm
  verdict) stays on record in its branch's commit, which is what ``rollouts status`` shows. A
  restarted controller finds the branch on the remote and holds again: the wait is Git's, not the
  process's. A branch deleted unmerged no longer holds; the decision, made again, is proposed again.

Pure: facts in, decisions and sentences out; no Git, no forge, no clock.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Literal

from rollouts.gates.approval import ReviewState
from rollouts.gates.status import since_text
from rollouts.spec_gates import ApprovalSpec
from rollouts.state import CommitVerdict, FinalizeStage, WeightChange
from rollouts.state.message import PRELUDE_STEPS

Kind = Literal["step", "stage", "rollback", "ga-image", "route-ga", "pause"]
Standing = Literal["waiting", "closed", "landed"]
_STEP_LEAF = re.compile(r"step-\d+")
_WHAT: dict[str, str] = {
    "stage": "start of the {leaf} stage",
    "rollback": "rollback",
    "ga-image": "GA image commit (finalize, stage 1 of 2)",
    "route-ga": "route back to GA (finalize, stage 2 of 2)",
    "pause": "pause record",
}


def by_merge(spec: ApprovalSpec, kind: Kind) -> bool:
    """Does a commit of ``kind`` go by a branch of ours? Every one does on a protected branch, except
    rollbacks while ``directRollback`` allows the controller a direct push."""
    if not spec.protected_branch:
        return False
    return not (kind == "rollback" and spec.direct_rollback)


def kind_of(change: WeightChange) -> Kind:
    """The kind of a weight commit of the controller's."""
    if change.verdict == CommitVerdict.ROLLBACK:
        return "rollback"
    if change.finalize == FinalizeStage.ROUTE_GA:
        return "route-ga"
    if change.step in PRELUDE_STEPS:
        return "stage"
    return "step"


def leaf(kind: Kind, *, step: str | None = None, pauses: int = 0) -> str:
    """The last segment of the branch: ``step-<n>`` (``step`` ``"2/3"``), the stage's name
    (``mirror``, ``match``), ``pause-<pauses + 1>``, or the kind itself."""
    if kind == "step":
        return f"step-{(step or '0').split('/')[0]}"
    if kind == "stage":
        return step or "stage"
    if kind == "pause":
        return f"pause-{pauses + 1}"
    return kind


def holds(branch: str) -> bool:
    """Does a waiting ``branch`` of ours hold the rollout (everything but a step's approval)?"""
    return _STEP_LEAF.fullmatch(branch.rsplit("/", 1)[-1]) is None


def kind_from(branch: str) -> Kind:
    """The kind of commit a branch of ours carries, from its last segment."""
    last = branch.rsplit("/", 1)[-1]
    if _STEP_LEAF.fullmatch(last):
        return "step"
    if last.startswith("pause-"):
        return "pause"
    base = re.sub(r"-\d+$", "", last)  # ``rollback-2``: the same revision rolled out again
    if base in ("rollback", "ga-image", "route-ga"):
        return base  # type: ignore[return-value]
    return "stage"


def standing(*, landed: bool, exists: bool, review: ReviewState | None) -> Standing | None:
    """Where a branch of ours stands: ``landed`` (reachable from the watched branch, or its request
    merged), ``closed`` (its request closed unmerged, the branch still there: it still holds),
    ``waiting``, or None (gone unmerged: it no longer holds)."""
    if landed or review == "merged":
        return "landed"
    if not exists:
        return None
    return "closed" if review == "closed" else "waiting"


@dataclass(frozen=True)
class MergeWait:
    """A commit of ours on a branch of ours and where it stands, with the sentence to show."""

    kind: Kind
    branch: str
    state: Standing
    reasons: tuple[str, ...] = ()  # the commit's reasons: the decision (a harm verdict) on record
    review_url: str | None = None
    since: float | None = None  # when our branch commit was made
    commit: str | None = None  # the commit that landed it

    @property
    def what(self) -> str:
        """``rollback``, ``pause record``, ``GA image commit (finalize, stage 1 of 2)`` ..."""
        return _WHAT.get(self.kind, "step").format(leaf=self.branch.rsplit("/", 1)[-1])

    def text(self, rollout_key: str, now: float | None = None) -> str:
        """``test/podinfo: rollback awaiting merge: merge <url> (branch ...), since ... (3 min);
        rollback: <the verdict's first reason>``."""
        now = time.time() if now is None else now
        where = f"{self.review_url} (branch {self.branch})" if self.review_url else f"branch {self.branch}"
        if self.state == "landed":
            return f"{rollout_key}: {self.what} merged ({(self.commit or 'by the forge')[:12]}): {where}"
        since = since_text(self.since, now)
        head = f"{rollout_key}: {self.what} awaiting merge: merge {where}{since}"
        if self.state == "closed":
            head += (
                "; the request was closed unmerged: the rollout still holds (merge it, or delete the branch)"
            )
        why = next((r for r in self.reasons if not r.startswith("Evidence:")), None)
        return f"{head}; {self.kind}: {why}" if why else head
