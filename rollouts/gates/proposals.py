"""Our commits on a protected branch, the shell: make each one on a branch of ours, open its request,
and find out when it landed (the rules are :mod:`rollouts.gates.bymerge`'s).

:class:`Proposals` has the workspace's three writing methods (``commit_weights``,
``promote_images``, ``record``) for the commits that go by merge. Each one, in turn:

1. already landed on the watched branch (its ``Rollout-Approval`` line reachable, or its request
   merged) -> returns as a commit would, with the commit that brought it;
2. its branch exists (proposed before, by this process or one before a restart) -> waits;
3. otherwise makes the commit on the watched branch's head and pushes it to the branch (the
   workspace's own change loop, ``via``); nothing to change -> returns as a no-op would;

then opens (or finds) the pull or merge request where a forge is configured, with auto-merge when
``spec.approval.forge.autoMerge`` asks, and raises :class:`AwaitingMergeError` with where it waits.
:meth:`Proposals.outstanding` is what the state machine asks at each tick: a branch of ours for the
current revision that holds the rollout and has not landed (found on the remote, so a restart
finds it too), or one this process saw waiting that has landed since (told once).

It must never push to the watched branch itself, and never force-push a branch of ours. The forge is
a convenience: when it is down, the branch in Git is still the request, and the merge still counts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from rollouts.forge.base import Forge, Review
from rollouts.forge.errors import ForgeError
from rollouts.gates.approval import revision_prefix
from rollouts.gates.bymerge import Kind, MergeWait, by_merge, holds, kind_from, kind_of, leaf, standing
from rollouts.gates.errors import AwaitingMergeError
from rollouts.gitops.approvals import BranchFacts, branch_facts, our_branches
from rollouts.gitops.errors import GitopsError
from rollouts.gitops.workspace import CommitResult, RecordResult, Workspace
from rollouts.routes import Weights
from rollouts.spec import Rollout
from rollouts.state import CommitVerdict, WeightChange, parse_message

log = logging.getLogger("rollouts.gates")
R = TypeVar("R", CommitResult, RecordResult)
MAX_AGAIN = 20  # branches of one commit kind for one revision (the same revision rolled out again)


def open_review(
    forge: Forge | None,
    *,
    branch: str,
    base: str,
    title: str,
    body: str,
    auto_merge: bool,
    key: str,
    fresh: bool = False,
) -> Review | None:
    """The request of ``branch`` on the forge: found, else opened (with auto-merge when asked).
    ``fresh``: the branch was just pushed anew, so a closed or merged request of an earlier push is
    not its request (a new one is opened). None without a forge, or when the forge fails (logged:
    the merge in Git is what counts)."""
    if forge is None:
        return None
    try:
        found = forge.find(branch)
        if found is not None and found.state != "open" and not fresh:
            return found
        if found is not None and found.state != "open":
            found = None
        review = found or forge.open(branch, base, title, body)
        if found is None and auto_merge:
            forge.enable_auto_merge(review)
        return review
    except ForgeError as exc:
        log.warning("%s: %s", key, exc)
        return None


def _find(forge: Forge, branch: str, key: str) -> Review | None:
    try:
        return forge.find(branch)
    except ForgeError as exc:
        log.warning("%s: %s", key, exc)
        return None


class Proposals:
    """The commits of one rollout that go by a branch of ours (a protected watched branch)."""

    def __init__(self, rollout: Rollout, *, workspace: Workspace, forge: Forge | None = None) -> None:
        self.rollout = rollout
        self.workspace = workspace
        self.forge = forge
        self._landed: set[str] = set()  # landed branches: history is not rewritten, they stay landed
        self._waited: set[str] = set()  # branches this process saw waiting (told once when they land)

    def applies(self, kind: Kind) -> bool:
        """Does a commit of ``kind`` go by a branch of ours for this rollout?"""
        return by_merge(self.rollout.spec.approval, kind)

    def branch(self, revision: str, last: str) -> str:
        """``<prefix>/<namespace>/<name>/<revision>/<last>``."""
        return self._prefix(revision) + last

    def _prefix(self, revision: str) -> str:
        meta = self.rollout.metadata
        return revision_prefix(self.rollout.spec.approval.branch_prefix, meta.namespace, meta.name, revision)

    # -- the workspace's writing methods, by merge ---------------------------------------------------

    def commit_weights(self, change: WeightChange, revision: str) -> CommitResult:
        """``change`` by a branch of ours (see the module docstring)."""
        kind = kind_of(change)
        weights = change.weights
        return self._through(
            kind,
            self._fresh(self.branch(revision, leaf(kind, step=change.step)), weights),
            lambda via: self.workspace.commit_weights(self.rollout, change, via=via),
            lambda sha: CommitResult(sha, sha, weights, weights, 1),
            title=f"{self.rollout.metadata.name}: canary {weights.canary}% ({change.verdict})",
            reasons=change.reasons,
        )

    def _fresh(self, branch: str, weights: Weights) -> BranchFacts:
        """What Git says of ``branch``, or of ``branch-<n>`` when the earlier ones landed long ago and
        the watched branch has other weights since (the same revision rolled out again: a stale
        landing is not this commit)."""
        for n in range(1, MAX_AGAIN + 1):
            facts = branch_facts(self.workspace, branch if n == 1 else f"{branch}-{n}")
            if facts.landed is None or self.workspace.read_weights(self.rollout) == weights:
                return facts  # not landed, or landed with its weights there: it is this commit
            self._landed.discard(facts.branch)
        raise GitopsError(f"{self.rollout.key}: {branch}: more than {MAX_AGAIN} landed branches of ours")

    def promote_images(
        self, revision: str, *, reasons: Sequence[str] = (), expected: Weights | None = None
    ) -> CommitResult:
        """``finalize: promote-ga``, stage 1, by a branch of ours."""
        live = expected or Weights.for_canary(100)
        return self._through(
            "ga-image",
            branch_facts(self.workspace, self.branch(revision, leaf("ga-image"))),
            lambda via: self.workspace.promote_images(
                self.rollout, reasons=reasons, expected=expected, via=via
            ),
            lambda sha: CommitResult(sha, sha, live, live, 1),
            title=f"{self.rollout.metadata.name}: GA -> {revision} (finalize)",
            reasons=reasons,
        )

    def record(self, revision: str, verdict: str, reasons: Sequence[str] = ()) -> RecordResult:
        """A pause record by a branch of ours, ``pause-<n>`` (the revision's n-th pause)."""
        pauses = sum(
            1
            for r in self.workspace.records(self.rollout)
            if r.verdict == CommitVerdict.PAUSE and r.revision == revision
        )
        return self._through(
            "pause",
            branch_facts(self.workspace, self.branch(revision, leaf("pause", pauses=pauses))),
            lambda via: self.workspace.record(self.rollout, verdict, reasons, via=via),
            lambda sha: RecordResult(sha, sha, 1),
            title=f"{self.rollout.metadata.name}: {verdict} rollout",
            reasons=reasons,
        )

    def _through(
        self,
        kind: Kind,
        facts: BranchFacts,
        commit: Callable[[str], R],
        landed: Callable[[str], R],
        *,
        title: str,
        reasons: Sequence[str],
    ) -> R:
        branch = facts.branch
        if facts.landed is not None:
            self._landed.add(branch)
            return landed(facts.landed)
        since = facts.opened_at
        if facts.exists:
            wait = self._wait(kind, branch, facts, reasons=tuple(reasons), title=title, since=since)
            if wait.state == "landed":  # the forge says merged (a squash that kept only the title)
                self._landed.add(branch)
                return landed(self.workspace.fetch())
            self._waited.add(branch)
            raise AwaitingMergeError(wait.text(self.rollout.key), wait)
        result = commit(branch)
        if result.sha is None:
            return result  # nothing to change: already there
        log.info("%s: %s proposed on branch %s (%s)", self.rollout.key, kind, branch, result.sha[:12])
        since = time.time()
        wait = self._wait(kind, branch, facts, reasons=tuple(reasons), title=title, since=since, fresh=True)
        self._waited.add(branch)
        raise AwaitingMergeError(wait.text(self.rollout.key), wait)

    def _wait(
        self,
        kind: Kind,
        branch: str,
        facts: BranchFacts,
        *,
        reasons: tuple[str, ...],
        title: str | None = None,
        since: float | None = None,
        open_missing: bool = True,
        fresh: bool = False,
    ) -> MergeWait:
        body = "\n".join(
            [
                f"gitops-rollouts cannot push to the protected branch: this is its {kind} commit for "
                f"**{self.rollout.key}**. The rollout holds until it is merged.",
                "",
                *(f"- {r}" for r in reasons),
            ]
        )
        review: Review | None = None
        if self.forge is not None and not open_missing:
            review = _find(self.forge, branch, self.rollout.key)  # asked only: not the leader, or status
        elif self.forge is not None:
            review = open_review(
                self.forge,
                branch=branch,
                base=self.rollout.spec.git.branch,
                title=title or f"{self.rollout.metadata.name}: {kind}",
                body=body,
                auto_merge=self._auto_merge,
                key=self.rollout.key,
                fresh=fresh,
            )
        state = standing(
            landed=facts.landed is not None, exists=True, review=review.state if review else None
        )
        return MergeWait(
            kind,
            branch,
            state or "waiting",
            reasons,
            review.url if review else None,
            since,
            facts.landed,
        )

    @property
    def _auto_merge(self) -> bool:
        forge = self.rollout.spec.approval.forge
        return bool(forge and forge.auto_merge)

    # -- what holds the rollout now -------------------------------------------------------------------

    def outstanding(self, revision: str, *, open_missing: bool = False) -> MergeWait | None:
        """A branch of ours for ``revision`` that holds the rollout and has not landed (``waiting``
        or ``closed``), else one this process saw waiting that landed since (``landed``, once), else
        None. One ``ls-remote``; a fetch only while a branch waits. The forge is only asked, unless
        ``open_missing`` (the leader): then a request missing for a waiting branch (the forge was
        down when it was proposed) is opened."""
        prefix = self._prefix(revision)
        listed = set(our_branches(self.workspace, prefix))
        # A branch seen waiting and gone since: merged and deleted (as forges do), or deleted unmerged.
        seen = {b for b in self._waited if b.startswith(prefix)}
        for branch in sorted(listed | seen):
            if not holds(branch) or branch in self._landed:
                continue
            facts = branch_facts(self.workspace, branch)
            reasons = parse_message(facts.message).reasons if facts.message else ()
            kind = kind_from(branch)
            if facts.landed is not None:
                self._landed.add(branch)
                if branch in self._waited:
                    self._waited.discard(branch)
                    return MergeWait(kind, branch, "landed", reasons, commit=facts.landed)
                continue
            if not facts.exists:
                self._waited.discard(branch)  # deleted unmerged: it no longer holds
                continue
            wait = self._wait(
                kind, branch, facts, reasons=reasons, since=facts.opened_at, open_missing=open_missing
            )
            if wait.state == "landed":  # the forge says merged: a squash that kept only the title
                self._landed.add(branch)
                if branch in self._waited:
                    self._waited.discard(branch)
                    return wait
                continue
            self._waited.add(branch)
            return wait
        return None
