"""Reading Git once per round: the state is reused while the branch head has not moved."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollouts.controller.gitcache import CachedWorkspace, HeadCache
from rollouts.gitops import GitopsError, Workspace
from rollouts.routes import Weights
from rollouts.state import CommitVerdict, WeightChange
from tests.controller.machinery import rollout_spec
from tests.fixtures.gitrepo import Remote, vs_with

ROUTE = "workloads/podinfo/virtual-service.yaml"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_state_is_reread_only_when_the_head_moves(remote: Remote, tmp_path: Path) -> None:
    spec = rollout_spec(str(remote.bare))
    clock = Clock()
    heads = HeadCache(ttl=1.0, clock=clock)
    cached = CachedWorkspace(Workspace.for_spec(spec, cache_dir=tmp_path / "cache"), heads)
    first = cached.read_state(spec)
    assert cached.read_state(spec) is first  # same head: no fetch, no parse
    assert heads.asked == 1  # one ls-remote served both
    remote.commit_file(ROUTE, vs_with(70, 30), "human: 30 %")
    assert cached.read_state(spec) is first  # within the ttl the head is not asked again
    clock.now += 1.5
    moved = cached.read_state(spec)
    assert moved.head == remote.head() != first.head and moved.weights == Weights(70, 30)
    assert heads.asked == 2


def test_our_commit_is_seen_at_once(remote: Remote, tmp_path: Path) -> None:
    spec = rollout_spec(str(remote.bare))
    heads = HeadCache(ttl=60.0)
    cached = CachedWorkspace(Workspace.for_spec(spec, cache_dir=tmp_path / "cache"), heads)
    before = cached.read_state(spec)
    cached.commit_weights(spec, WeightChange(Weights(40, 60), CommitVerdict.MANUAL, expected=before.weights))
    after = cached.read_state(spec)  # the ttl is long, but our own commit made the caches forget
    assert after.weights == Weights(40, 60) and after.head == remote.head()


def test_unreachable_remote_is_a_gitops_error(tmp_path: Path) -> None:
    spec = rollout_spec(str(tmp_path / "missing.git"))
    with pytest.raises(GitopsError, match="ls-remote"):
        HeadCache().head(Workspace.for_spec(spec, cache_dir=tmp_path / "cache"))
