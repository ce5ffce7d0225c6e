"""How long each gated step waited for its approval, read from Git alone.

A gated step's change is a commit of ours carrying ``Rollout-Approval: <branch>``
(:mod:`rollouts.gates.approval`). Its *author* time is when the controller proposed it (rebase keeps
it); the time the change reached the watched branch is the committer time of the first-parent commit
that brought it there: the merge commit for a merge, the commit itself for a fast-forward, rebase or
squash. The request is what the merge commit's message names (GitHub's ``Merge pull request #N``,
GitLab's ``See merge request group/project!N``), or unknown.

Limits, stated rather than guessed around: a fast-forward leaves no merge time in Git (the wait reads
as the time between proposal and commit, often 0), and a squash whose commit no longer carries the
line is not seen. It reads at most :data:`MAX_COMMITS` commits and never writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import git

from rollouts.gates.approval import APPROVAL
from rollouts.gates.bymerge import MergeWait, kind_from

MAX_COMMITS = 500
_SEP, _END = "\x1f", "\x1e"
_LINE = re.compile(rf"^\s*[*-]?\s*{APPROVAL}:\s*(\S+)\s*$", re.MULTILINE)
_STEP = re.compile(r"^\s*[*-]?\s*Rollout-Step:\s*(\S+)\s*$", re.MULTILINE)
_GITHUB = re.compile(r"Merge pull request (#\d+)")
_GITLAB = re.compile(r"See merge request (\S+![0-9]+)")


@dataclass(frozen=True)
class ApprovalWait:
    """One approval: the branch, the step (``Rollout-Step``), proposed and landed (unix seconds)."""

    branch: str
    step: str | None
    proposed: int
    landed: int
    commit: str  # the first-parent commit that brought the change to the watched branch
    request: str | None

    @property
    def label(self) -> str:
        """``step 2/3`` for a step's approval; what else waited on a protected branch otherwise
        (``rollback``, ``GA image commit (finalize, stage 1 of 2)``, ``pause record`` ...)."""
        kind = kind_from(self.branch)
        if kind == "step":
            return f"step {self.step or '?'}"
        return MergeWait(kind, self.branch, "landed").what

    @property
    def minutes(self) -> int:
        """Whole minutes waited (never negative: clocks of different machines may disagree)."""
        return max(0, self.landed - self.proposed) // 60


def _log(repo: git.Repo, *args: str) -> list[list[str]]:
    out = repo.git.log(
        f"--max-count={MAX_COMMITS}", f"--format=%H{_SEP}%at{_SEP}%ct{_SEP}%P{_SEP}%B{_END}", *args
    )
    return [c.strip("\n").split(_SEP, 4) for c in out.split(_END) if _SEP in c]


def read_waits(repo: git.Repo, head: str) -> tuple[ApprovalWait, ...]:
    """The approvals that reached ``head`` (a commit or branch), oldest first, one per branch."""
    carrying = _log(repo, "--fixed-strings", f"--grep={APPROVAL}: ", head)
    if not carrying:
        return ()
    line = _log(repo, "--first-parent", head)
    on_line = {sha for sha, *_ in line}
    merges = [
        (sha, int(ct), body) for sha, _at, ct, parents, body in reversed(line) if len(parents.split()) > 1
    ]
    waits: dict[str, ApprovalWait] = {}
    for sha, at, ct, _parents, body in reversed(carrying):
        match = _LINE.search(body)
        if match is None or match.group(1) in waits:
            continue
        landed, commit, request = int(ct), sha, None
        if sha not in on_line:
            for merge, merged_at, message in merges:  # the oldest merge that holds it
                if repo.is_ancestor(repo.commit(sha), repo.commit(merge)):
                    landed, commit = merged_at, merge
                    found = _GITHUB.search(message) or _GITLAB.search(message)
                    request = found.group(1) if found else None
                    break
        else:
            found = _GITHUB.search(body) or _GITLAB.search(body)
            request = found.group(1) if found else None
        step = _STEP.search(body)
        waits[match.group(1)] = ApprovalWait(
            match.group(1), step.group(1) if step else None, int(at), landed, commit, request
        )
    return tuple(sorted(waits.values(), key=lambda w: w.landed))
