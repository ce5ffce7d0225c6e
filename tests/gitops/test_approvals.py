"""Approval branches with real Git: a step's change proposed on a branch of ours (the watched branch
untouched), recognised once a person merges it (merge commit, squash, rebase), rejected when the
branch is deleted, dropped when the merge resolved our weights away; also through a protected branch."""

from __future__ import annotations

import pytest

from rollouts.gates.approval import approval_branch, decide
from rollouts.gitops import GitopsError, Workspace
from rollouts.gitops.approvals import propose, read_facts
from rollouts.gitops.protected import BranchProtectedError
from rollouts.routes import Weights
from tests.fixtures.gitrepo import Remote, git, vs_with
from tests.gitops.test_protected import protect

pytestmark = pytest.mark.integration
BRANCH = approval_branch("rollouts", "test", "podinfo", "0.2.0", 2)
ROUTE = "workloads/podinfo/virtual-service.yaml"


def _workspace(spec, cache) -> Workspace:
    return Workspace(spec.spec.git.url, "master", cache_dir=cache, backoff=0.01)


def _merge(remote: Remote, strategy: str) -> None:
    """A person merges our branch into master on the server's side (in their clone, then pushes)."""
    human = remote.human
    git(human, "fetch", "--quiet", "origin")
    git(human, "checkout", "--quiet", "master")
    git(human, "reset", "--quiet", "--hard", "origin/master")
    if strategy == "merge":
        git(
            human,
            "merge",
            "--quiet",
            "--no-ff",
            "-m",
            f"Merge pull request #7 from {BRANCH}",
            f"origin/{BRANCH}",
        )
    elif strategy == "squash":
        body = git(human, "log", "-1", "--format=%B", f"origin/{BRANCH}")
        git(human, "merge", "--quiet", "--squash", f"origin/{BRANCH}")
        git(human, "commit", "--quiet", "-m", f"podinfo: canary 60% (#7)\n\n* {body}")
    else:
        git(human, "cherry-pick", f"origin/{BRANCH}")
    git(human, "push", "--quiet", "origin", "master")


@pytest.mark.parametrize("strategy", ["merge", "squash", "rebase"])
def test_propose_then_merge_is_an_approval(remote, spec, cache, strategy) -> None:
    before = remote.head()
    with _workspace(spec, cache) as ws:
        proposal = propose(ws, spec, Weights(40, 60), branch=BRANCH, step="2/3", reasons=["step 1 passed"])
        assert proposal.pushed and remote.head() == before  # the watched branch is untouched
        assert "weight: 40   # GA" in remote.show(ROUTE, BRANCH)
        assert f"Rollout-Approval: {BRANCH}" in remote.message(BRANCH)
        assert "Rollout-Step: 2/3" in remote.message(BRANCH)
        again = propose(ws, spec, Weights(40, 60), branch=BRANCH, step="2/3")
        assert not again.pushed and again.sha == proposal.sha  # never a second commit or branch
        waiting = decide(read_facts(ws, spec, branch=BRANCH, expected=Weights(40, 60)))
        assert waiting.state == "waiting" and waiting.since is not None
        assert ws.read_weights(spec) == Weights(90, 10)
        _merge(remote, strategy)
        approved = decide(read_facts(ws, spec, branch=BRANCH, expected=Weights(40, 60)))
    assert approved.state == "approved", approved.reason
    assert ws.read_weights(spec) == Weights(40, 60)


def test_a_deleted_branch_is_a_rejection(remote, spec, cache) -> None:
    with _workspace(spec, cache) as ws:
        propose(ws, spec, Weights(40, 60), branch=BRANCH)
        git(remote.bare, "branch", "-D", BRANCH)
        status = decide(read_facts(ws, spec, branch=BRANCH, expected=Weights(40, 60)))
    assert status.state == "rejected" and "was deleted" in status.reason


def test_a_merge_that_drops_our_weights_is_not_an_approval(remote, spec, cache) -> None:
    with _workspace(spec, cache) as ws:
        propose(ws, spec, Weights(40, 60), branch=BRANCH)
        _merge(remote, "merge")
        remote.commit_file(ROUTE, vs_with(80, 20), "resolve: keep 20%")  # the other way
        status = decide(read_facts(ws, spec, branch=BRANCH, expected=Weights(40, 60)))
    assert status.state == "dropped" and "the merge dropped our change" in status.reason


def test_a_protected_branch_refuses_the_step_but_takes_the_approval_branch(remote, spec, cache) -> None:
    protect(remote, "GH006: Protected branch update failed for refs/heads/master.")
    with _workspace(spec, cache) as ws:
        with pytest.raises(BranchProtectedError):
            ws.set_weights(spec, Weights(40, 60), verdict="promote")
        proposal = propose(ws, spec, Weights(40, 60), branch=BRANCH)
    assert proposal.pushed and "weight: 40   # GA" in remote.show(ROUTE, BRANCH)


def test_a_foreign_branch_of_the_same_name_is_not_taken_over(remote, spec, cache) -> None:
    git(remote.human, "checkout", "--quiet", "-b", BRANCH)
    git(remote.human, "commit", "--quiet", "--allow-empty", "-m", "someone else's")
    git(remote.human, "push", "--quiet", "origin", BRANCH)
    with _workspace(spec, cache) as ws, pytest.raises(GitopsError, match="is not an approval branch of ours"):
        propose(ws, spec, Weights(40, 60), branch=BRANCH)
