"""Approval branches in Git: propose a change on a branch of ours, and read what became of it.

:func:`propose` makes the same commit a step would push to the watched branch (same file edit, same
message and trailers, plus ``Rollout-Approval: <branch>``), but pushes it to
``refs/heads/<branch>``, a new branch of ours, through the workspace's one change loop
(``via``); the watched branch is untouched. Proposing again is a no-op once the branch exists with
our change (never a force-push, never a second branch).
:func:`propose_edit` is the same for any change (a pipeline's hand-over proposes the next
environment's canary manifest this way), and :func:`branch_facts` what Git says of any branch of ours.

:func:`read_facts` gathers what :func:`rollouts.gates.approval.decide` needs from Git: the weights
on the watched branch's head, whether a commit reachable from it carries our approval line (found
with ``git log --grep``, so merge, squash and rebase all count), whether our branch still exists,
and when it was proposed. The forge's view (a request merged or closed) is the caller's to add.

:func:`our_branches` and :func:`branch_facts` read the same for any branch of ours (the commits a
protected branch sends by merge, :mod:`rollouts.gates.proposals`).

Plumbing only: it decides nothing, and it uses the workspace's own lock, fetch, edit, commit and
clean-up, so every guarantee of :mod:`rollouts.gitops.workspace` holds (redacted messages, nothing
half-done, symbolic links refused, signed when the workspace signs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rollouts.gates.approval import APPROVAL, ApprovalFacts, approval_line, carries, landed
from rollouts.gitops.errors import GitopsError
from rollouts.gitops.workspace import FileEdit, Workspace, _file_errors
from rollouts.routes import Weights
from rollouts.spec import Rollout
from rollouts.state import CommitVerdict, WeightChange

MAX_SCAN = 200  # commits of the watched branch searched for our line (newest first)


@dataclass(frozen=True)
class Proposal:
    """A step's change on a branch of ours: the commit, the branch, whether this call pushed it."""

    branch: str
    sha: str
    pushed: bool
    base: Weights
    weights: Weights
    message: str


def _remote_branch_sha(ws: Workspace, branch: str) -> str | None:
    out = ws._git("ls-remote", "origin", f"refs/heads/{branch}")
    return out.split(maxsplit=1)[0] if out.strip() else None


def remote_branch_exists(ws: Workspace, branch: str) -> bool:
    """True when ``branch`` is on the remote now (one ``ls-remote``)."""
    with ws._locked():
        if not (ws.path / ".git").is_dir():
            ws._sync()
        return _remote_branch_sha(ws, branch) is not None


def _seen_ref(branch: str) -> str:
    return f"refs/rollouts/approvals/{branch}"


def was_proposed(ws: Workspace, branch: str) -> bool:
    """True when this cache has seen ``branch`` on the remote before (a local ref survives the
    branch's deletion on the remote: a deleted approval branch is a rejection, not a new start)."""
    with ws._locked():
        if not (ws.path / ".git").is_dir():
            return False
        return ws._rev(_seen_ref(branch)) is not None


def _fetch_branch(ws: Workspace, branch: str) -> str:
    ref = _seen_ref(branch)
    ws._git("fetch", "--no-tags", "--quiet", "origin", f"+refs/heads/{branch}:{ref}")
    return ref


def _existing_proposal(ws: Workspace, branch: str) -> tuple[str, str] | None:
    """(tip sha, message) of ``branch`` when the remote has it and it is ours (its tip carries our
    approval line); None when there is no such branch; an error for someone else's branch."""
    existing = _remote_branch_sha(ws, branch)
    if existing is None:
        return None
    message = ws._git("log", "-1", "--format=%B", _fetch_branch(ws, branch))
    if not carries(message, branch):
        raise GitopsError(
            ws._redact(f"{ws.remote}: branch {branch} exists and is not an approval branch of ours")
        )
    return existing, message


@dataclass(frozen=True)
class BranchProposal:
    """Any change of ours on a branch of ours (:func:`propose_edit`); ``sha`` None when the plan
    had nothing to propose (and no branch was made)."""

    branch: str
    sha: str | None
    pushed: bool
    message: str


def propose_edit(
    ws: Workspace,
    plan: Callable[[Callable[[str], str | None]], FileEdit | None],
    *,
    branch: str,
) -> BranchProposal:
    """:meth:`Workspace.commit_edit`'s plan, committed on top of the watched branch but pushed to
    ``branch`` (with the ``Rollout-Approval: <branch>`` line added). An existing branch of ours is
    returned as it is, ``plan`` not called: never a second commit, never a force-push."""
    with ws._locked(), _file_errors(), ws._clean_on_error():
        ws._sync()
        existing = _existing_proposal(ws, branch)
        if existing is not None:
            return BranchProposal(branch, existing[0], False, existing[1])
        edit = plan(ws._read_or_none)
        if edit is None:
            return BranchProposal(branch, None, False, "")
        for rel, text in edit.files.items():
            ws._write(rel, text)
        message = edit.message if edit.message.endswith("\n") else edit.message + "\n"
        message += approval_line(branch) + "\n"  # the trailer paragraph's last line
        sha = ws._commit(message, paths=list(edit.files), allow_empty=not edit.files)
        try:
            ws._git("push", "--porcelain", "--no-follow-tags", "origin", f"{sha}:refs/heads/{branch}")
            _fetch_branch(ws, branch)  # remembered: a later deletion is a rejection (was_proposed)
        finally:
            # The watched branch stays exactly the remote's: our commit lives only on our branch.
            ws._git("checkout", "--quiet", "--force", "-B", ws.branch, f"refs/remotes/origin/{ws.branch}")
        return BranchProposal(branch, sha, True, message)


def branches_under(ws: Workspace, prefix: str) -> list[str]:
    """The remote's branches named ``<prefix>/...`` (one ``ls-remote``), sorted."""
    with ws._locked():
        if not (ws.path / ".git").is_dir():
            ws._sync()
        out = ws._git("ls-remote", "--heads", "origin", f"refs/heads/{prefix}/*")
    heads = (line.split("\t", 1)[1] for line in out.splitlines() if "\t" in line)
    return sorted(h.removeprefix("refs/heads/") for h in heads)


def delete_branch(ws: Workspace, branch: str, tip: str) -> bool:
    """Delete ``branch`` on the remote if it still points at ``tip`` (our commit: a lease, so a
    commit someone pushed there since is never lost). False when it moved or is gone already."""
    with ws._locked(), _file_errors():
        if not (ws.path / ".git").is_dir():
            ws._sync()
        if _remote_branch_sha(ws, branch) != tip:
            return False
        try:
            ws._git(
                "push", "--porcelain", f"--force-with-lease=refs/heads/{branch}:{tip}", "origin",
                f":refs/heads/{branch}",
            )  # fmt: skip
        except GitopsError:
            return False  # moved between the look and the push: theirs wins
        return True


def propose(
    ws: Workspace,
    rollout: Rollout,
    weights: Weights,
    *,
    branch: str,
    verdict: str = "promote",
    step: str | None = None,
    reasons: Sequence[str] = (),
) -> Proposal:
    """Commit ``weights`` for the rollout's route on top of the watched branch and push it to
    ``branch`` (created; an existing branch of ours with our line is returned as it is). The commit
    is the one the step would make (the workspace's change loop, ``via`` the branch: the strategy
    blocks included), its subject labelled ``(approval)``."""
    path = rollout.spec.route.path
    with ws._locked(), _file_errors():
        ws._sync()
        base = ws._editor(rollout).read(ws._read(path))
        existing = _existing_proposal(ws, branch)
        if existing is not None:
            return Proposal(branch, existing[0], False, base, weights, existing[1])
    change = WeightChange(weights, CommitVerdict(verdict), tuple(reasons), step=step, label="approval")
    result = ws.commit_weights(rollout, change, via=branch)
    if result.sha is None:
        raise GitopsError(f"{rollout.key}: nothing to propose on {branch}: {ws.branch} has these weights")
    return Proposal(branch, result.sha, True, result.previous, weights, result.message)


def _landed(ws: Workspace, branch: str) -> str | None:
    """The newest commit of the (synced) watched branch that carries ``branch``'s approval line."""
    sep, end = "\x1f", "\x1e"
    out = ws._git(
        "log",
        f"--max-count={MAX_SCAN}",
        "--fixed-strings",
        f"--grep={APPROVAL}: {branch}",
        f"--format=%H{sep}%B{end}",
        "HEAD",
    )
    messages = [tuple(c.strip("\n").split(sep, 1)) for c in out.split(end) if sep in c]
    return landed(((sha, body) for sha, body in messages), branch)


def our_branches(ws: Workspace, prefix: str) -> dict[str, str]:
    """The remote's branches whose names start with ``prefix`` (name -> tip sha): one ``ls-remote``."""
    with ws._locked():
        if not (ws.path / ".git").is_dir():
            ws._sync()
        out = ws._git("ls-remote", "origin", f"refs/heads/{prefix}*")
    found: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        if ref.startswith(f"refs/heads/{prefix}"):
            found[ref.removeprefix("refs/heads/")] = sha
    return found


@dataclass(frozen=True)
class BranchFacts:
    """One branch of ours as Git shows it now: on the remote, landed on the watched branch (the
    commit carrying its ``Rollout-Approval`` line), its tip's message and commit time."""

    branch: str
    exists: bool
    landed: str | None
    message: str = ""
    opened_at: float | None = None
    tip: str | None = None  # the branch's commit on the remote, when it exists


def branch_facts(ws: Workspace, branch: str) -> BranchFacts:
    """Fetch the watched branch, then what became of ``branch`` (see :class:`BranchFacts`)."""
    with ws._locked(), _file_errors():
        ws._sync()
        found = _landed(ws, branch)
        tip = _remote_branch_sha(ws, branch)
        if tip is None:
            return BranchFacts(branch, False, found)
        ref = _fetch_branch(ws, branch)
        message = ws._git("log", "-1", "--format=%B", ref)
        opened_at = float(ws._git("log", "-1", "--format=%ct", ref).strip())
        return BranchFacts(branch, True, found, message, opened_at, tip)


def read_facts(ws: Workspace, rollout: Rollout, *, branch: str, expected: Weights) -> ApprovalFacts:
    """What Git says about the approval of ``branch`` (see the module docstring)."""
    with ws._locked(), _file_errors():
        ws._sync()
        current = ws._editor(rollout).read(ws._read(rollout.spec.route.path))
        found = _landed(ws, branch)
        tip = _remote_branch_sha(ws, branch)
        opened_at = None
        if tip is not None:
            ref = _fetch_branch(ws, branch)
            opened_at = float(ws._git("log", "-1", "--format=%ct", ref).strip())
        return ApprovalFacts(
            branch=branch,
            expected=expected,
            current=current,
            landed_commit=found,
            branch_exists=tip is not None,
            opened_at=opened_at,
        )
