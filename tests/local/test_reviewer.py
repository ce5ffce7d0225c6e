"""The local stack's reviewer merges approval branches as a person would, and the gate sees it."""

from __future__ import annotations

import pytest

from rollouts.gates.approval import approval_branch, decide
from rollouts.gitops import Workspace
from rollouts.gitops.approvals import propose, read_facts
from rollouts.local.reviewer import Reviewer
from rollouts.routes import Weights
from tests.fixtures.gitrepo import make_spec

pytestmark = pytest.mark.integration
BRANCH = approval_branch("rollouts", "test", "podinfo", "0.2.0", 2)


@pytest.fixture(autouse=True)
def _git_isolated(git_isolated: None) -> None:
    """No user or system Git config (``remote`` and ``cache`` come from tests.fixtures.git)."""


@pytest.mark.parametrize("strategy", ["merge", "squash", "rebase"])
def test_the_reviewer_merges_after_its_delay(remote, cache, tmp_path, strategy) -> None:
    spec = make_spec(str(remote.bare))
    merged: list[tuple[str, float]] = []
    reviewer = Reviewer(
        remote.bare,
        tmp_path / "reviewer",
        delay=10,
        strategy=strategy,
        on_merge=lambda b, w: merged.append((b, w)),
    )
    with Workspace(str(remote.bare), "master", cache_dir=cache) as ws:
        propose(ws, spec, Weights(40, 60), branch=BRANCH)
        reviewer.tick(now=100.0)
        assert (
            merged == []
            and decide(read_facts(ws, spec, branch=BRANCH, expected=Weights(40, 60))).state == "waiting"
        )
        reviewer.tick(now=110.0)
        assert merged == [(BRANCH, 10.0)] and reviewer.branches() == []  # merged, then deleted
        status = decide(read_facts(ws, spec, branch=BRANCH, expected=Weights(40, 60)))
    assert status.state == "approved", status.reason


def test_the_thread_stops(remote, tmp_path) -> None:
    reviewer = Reviewer(remote.bare, tmp_path / "reviewer", poll=0.05).start()
    reviewer.stop()
    assert reviewer._thread is not None and not reviewer._thread.is_alive()
