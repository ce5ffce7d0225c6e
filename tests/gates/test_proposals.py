"""Commits by merge with real Git (a bare remote whose pre-receive hook refuses our pushes to master)
and the recorded GitHub API: proposed once, found again, landed by a person's merge, a stale landing
of the same revision rolled out again not taken for the new commit, a request closed unmerged still
holding, and a branch deleted unmerged no longer holding."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rollouts.forge import ForgeConfig, forge_for
from rollouts.forge.base import Retry
from rollouts.gates.errors import AwaitingMergeError
from rollouts.gates.proposals import Proposals
from rollouts.gitops import Workspace
from rollouts.routes import Weights
from rollouts.spec import parse_spec
from rollouts.state import CommitVerdict, WeightChange
from tests.fixtures.gitrepo import Remote, git, guide_rollout, protect_but_merges, vs_with
from tests.forge.forgeapi import TOKEN, ForgeApi
from tests.forge.forgeapi import serve as serve_forge

pytestmark = pytest.mark.integration
ROLLBACK = "rollouts/test/podinfo/0.2.0/rollback"
ROUTE = "workloads/podinfo/virtual-service.yaml"
CHANGE = WeightChange(Weights(100, 0), CommitVerdict.ROLLBACK, ("harm at 10%",), step="1/3")


@pytest.fixture
def forge_api() -> Iterator[ForgeApi]:
    yield from serve_forge()


def _proposals(remote: Remote, cache, forge=None) -> Proposals:
    spec = parse_spec(
        guide_rollout(str(remote.bare), approval={"protectedBranch": True, "directRollback": False})
    )
    return Proposals(spec, workspace=Workspace(str(remote.bare), "master", cache_dir=cache), forge=forge)


def _wait(proposals: Proposals, change: WeightChange = CHANGE):
    with pytest.raises(AwaitingMergeError) as caught:
        proposals.commit_weights(change, "0.2.0")
    return caught.value.wait


def _merge(remote: Remote, branch: str) -> None:
    git(remote.human, "pull", "--quiet", "origin", "master")
    git(remote.human, "fetch", "--quiet", "origin", branch)
    git(remote.human, "merge", "--quiet", "--no-ff", "-m", f"Merge {branch}", "FETCH_HEAD")
    git(remote.human, "push", "--quiet", "origin", "master")


def test_proposed_once_landed_by_a_merge_and_a_stale_landing_is_not_the_new_commit(remote, cache) -> None:
    protect_but_merges(remote)
    proposals = _proposals(remote, cache)
    first = _wait(proposals)
    assert (first.branch, first.state) == (ROLLBACK, "waiting")
    tip = git(remote.bare, "rev-parse", ROLLBACK)
    assert _wait(proposals).branch == ROLLBACK and git(remote.bare, "rev-parse", ROLLBACK) == tip  # once
    assert proposals.outstanding("0.2.0").branch == ROLLBACK  # type: ignore[union-attr]
    _merge(remote, ROLLBACK)
    landed = proposals.outstanding("0.2.0")
    assert landed is not None and landed.state == "landed" and proposals.outstanding("0.2.0") is None
    result = proposals.commit_weights(CHANGE, "0.2.0")
    assert result.sha == landed.commit and "weight: 100   # GA" in remote.show(ROUTE)
    # A person rolls the same revision out again; its next rollback is a new commit on a new branch.
    remote.commit_file(ROUTE, vs_with(90, 10), "a person: canary 10% again")
    again = _wait(proposals)
    assert again.branch == f"{ROLLBACK}-2" and again.kind == "rollback"
    assert not (remote.bare / "refused").exists()


def test_a_closed_request_still_holds_and_a_deleted_branch_no_longer_does(remote, cache, forge_api) -> None:
    protect_but_merges(remote)
    config = ForgeConfig(kind="github", repository="org/cluster", token=TOKEN, url=forge_api.base)
    forge = forge_for(config, retry=Retry(attempts=2, backoff=0.01, sleep=lambda s: None), timeout=5)
    proposals = _proposals(remote, cache, forge)
    assert _wait(proposals).review_url == "https://github.com/org/cluster/pull/1"
    forge_api.close(1)
    closed = proposals.outstanding("0.2.0")
    assert closed is not None and closed.state == "closed" and "still holds" in closed.text("k")
    git(remote.bare, "branch", "-D", ROLLBACK)
    assert proposals.outstanding("0.2.0") is None  # gone unmerged: the decision is made again
    again = _wait(proposals)  # proposed again, on the same branch, with a new request
    assert (again.branch, again.state, again.review_url) == (
        ROLLBACK,
        "waiting",
        "https://github.com/org/cluster/pull/2",
    )
