"""What the gates raise: one class, for a commit of ours that waits on a branch for its merge.

::

    AwaitingMergeError     our commit is on a branch of ours (a protected watched branch), not yet
                           merged: the caller holds; ``wait`` says where and why (not a failure)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rollouts.gates.bymerge import MergeWait


class AwaitingMergeError(Exception):
    """A commit of ours waits on a branch of ours for its merge into the protected watched branch.
    Not a Git failure (no backoff, nothing retried): the rollout holds until it lands."""

    def __init__(self, message: str, wait: MergeWait) -> None:
        super().__init__(message)
        self.wait = wait
