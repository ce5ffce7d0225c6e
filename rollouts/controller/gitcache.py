"""Read Git once per round, not once per rollout.

A rollout's state is a function of the branch head (``RolloutState.head``), so a state read at head
H stays true until the branch moves. :class:`HeadCache` asks each remote for its head at most once
per ``ttl`` seconds (one ``git ls-remote`` serves every rollout of that repo in a round);
:class:`CachedWorkspace` returns a rollout's last state while the head is unchanged and reads it
(fetch, parse) only when it moved. Without it, 200 rollouts in one repo cost 200 fetches and 400
YAML parses per round (docs/benchmarks/controller.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from rollouts.gitops import CommitResult, RecordResult, RolloutState, Workspace
from rollouts.routes import Weights
from rollouts.spec import Rollout
from rollouts.state import WeightChange


class HeadCache:
    """Remote branch heads, each asked for at most once per ``ttl`` seconds; shared by all rollouts."""

    def __init__(self, ttl: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self._clock = ttl, clock
        self._heads: dict[tuple[str, str], tuple[str, float]] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()
        self.asked = 0

    def head(self, workspace: Workspace) -> str:
        """The remote head of ``workspace``'s branch (``GitError`` when the remote cannot say)."""
        key = (workspace.url, workspace.branch)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # one ls-remote per remote at a time; the others wait for its answer
            cached = self._heads.get(key)
            if cached is not None and self._clock() - cached[1] < self.ttl:
                return cached[0]
            sha = workspace.remote_head()
            self.asked += 1
            self._heads[key] = (sha, self._clock())
            return sha

    def forget(self, workspace: Workspace) -> None:
        """The branch moved (we committed): ask again next time."""
        with self._guard:
            self._heads.pop((workspace.url, workspace.branch), None)


class CachedWorkspace:
    """A ``Workspace`` whose ``read_state`` is skipped while the branch head is unchanged."""

    def __init__(self, workspace: Workspace, heads: HeadCache) -> None:
        self.workspace, self.heads = workspace, heads
        self._states: dict[str, RolloutState] = {}
        self.path = workspace.path

    def read_state(self, rollout: Rollout) -> RolloutState:
        """The rollout's state at the remote head: from the cache when the head has not moved."""
        cached = self._states.get(rollout.key)
        if cached is not None and cached.head == self.heads.head(self.workspace):
            return cached
        state = self.workspace.read_state(rollout)
        self._states[rollout.key] = state
        return state

    def commit_weights(self, rollout: Rollout, change: WeightChange) -> CommitResult:
        """Commit through the workspace; the head moves, so the caches forget it."""
        try:
            return self.workspace.commit_weights(rollout, change)
        finally:
            self._moved(rollout)

    def show(self, sha: str, rel: str) -> str:
        """A file at a commit, through the workspace (locked)."""
        return self.workspace.show(sha, rel)

    def promote_images(
        self, rollout: Rollout, *, reasons: Sequence[str] = (), expected: Weights | None = None
    ) -> CommitResult:
        """Copy the canary's images into GA through the workspace; the caches forget the head."""
        try:
            return self.workspace.promote_images(rollout, reasons=reasons, expected=expected)
        finally:
            self._moved(rollout)

    def record(self, rollout: Rollout, verdict: str, reasons: Sequence[str] = ()) -> RecordResult:
        """Record through the workspace; the head moves, so the caches forget it."""
        try:
            return self.workspace.record(rollout, verdict, reasons)
        finally:
            self._moved(rollout)

    def _moved(self, rollout: Rollout) -> None:
        self._states.pop(rollout.key, None)
        self.heads.forget(self.workspace)
