"""A protected branch, as a real Git server refuses it: a ``pre-receive`` hook in the bare remote that
declines updates of the branch (with GitHub's, GitLab's or a plain hook's words). Our push fails once
(no retry loop: a new head cannot help), as :class:`BranchProtectedError` naming the branch and the
server's words; nothing reaches the remote and the cached clone is back at the remote's head. Other
branches (ours, for approvals) are still accepted."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from rollouts.gitops import GitopsError, Workspace
from rollouts.gitops.protected import BranchProtectedError, is_protected_refusal
from rollouts.routes import Weights
from tests.fixtures.gitrepo import Remote, git

pytestmark = pytest.mark.integration

GITHUB = "GH006: Protected branch update failed for refs/heads/master."
GITLAB = "GitLab: You are not allowed to push code to protected branches on this project."


def protect(remote: Remote, words: str) -> Path:
    """Install a pre-receive hook that refuses updates of ``master`` with ``words`` (or Git's own)."""
    hook = remote.bare / "hooks" / "pre-receive"
    say = f'echo "error: {words}" >&2' if words else ":"
    hook.write_text(
        "#!/bin/sh\n"
        f"echo run >> {remote.bare / 'hook-runs'}\n"
        "while read old new ref; do\n"
        '  if [ "$ref" = "refs/heads/master" ]; then\n'
        f"    {say}\n"
        "    exit 1\n"
        "  fi\n"
        "done\n"
        "exit 0\n"
    )
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    return hook


@pytest.mark.parametrize("words", [GITHUB, GITLAB, ""])
def test_a_refused_push_to_a_protected_branch_is_named_and_not_retried(remote, spec, cache, words) -> None:
    protect(remote, words)
    before = remote.head()
    ws = Workspace(spec.spec.git.url, "master", cache_dir=cache, backoff=0.01)
    with pytest.raises(BranchProtectedError) as caught:
        ws.set_weights(spec, Weights(40, 60), verdict="promote")
    message = str(caught.value)
    assert "(master): git push failed" in message
    assert (words or "pre-receive hook declined") in message
    assert (remote.bare / "hook-runs").read_text().count("run") == 1  # refused once, not retried as a race
    assert remote.head() == before
    assert ws.read_weights(spec) == Weights(90, 10)  # the cached clone is the remote again


def test_other_branches_are_accepted_and_other_failures_are_not_protection(remote, spec, cache) -> None:
    protect(remote, GITHUB)
    # A human (or the controller, for an approval) can still push a branch of their own.
    git(remote.human, "pull", "--quiet", "origin", "master")
    git(remote.human, "checkout", "--quiet", "-b", "rollouts/test/podinfo/0.2.0/step-2")
    (remote.human / "workloads/podinfo/note.txt").write_text("x\n")
    git(remote.human, "add", ".")
    git(remote.human, "commit", "--quiet", "-m", "approval branch")
    git(remote.human, "push", "--quiet", "origin", "HEAD")
    assert git(remote.bare, "branch", "--list", "rollouts/*").strip()
    # Without the hook a plain push works again: the refusal came from the hook.
    (remote.bare / "hooks" / "pre-receive").unlink()
    ws = Workspace(spec.spec.git.url, "master", cache_dir=cache)
    assert ws.set_weights(spec, Weights(40, 60), verdict="promote").changed
    assert not is_protected_refusal("! [rejected] master -> master (fetch first)")
    assert not is_protected_refusal("Permission denied (publickey).")
    assert issubclass(BranchProtectedError, GitopsError)
