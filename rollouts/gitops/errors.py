"""What can go wrong in Git plumbing: one hierarchy, named for what failed.

Every message names the remote (redacted) and what failed; no message carries a credential.
"""

from __future__ import annotations

from rollouts.routes import RouteError, Weights


class GitopsError(RuntimeError):
    """A Git operation that failed; the message names the remote (redacted) and what failed."""


class RouteFileError(GitopsError, RouteError):
    """A route or canary file on the branch that cannot be read or edited (malformed YAML, bad
    weights, unknown subset, missing file). Both a :class:`GitopsError` (the controller's Git
    failures) and a :class:`RouteError` (the editors' errors); the message names file, route, entry."""


class PushRejectedError(GitopsError):
    """The remote refused our push because its branch moved (retryable)."""


class HumanOverrideError(GitopsError):
    """The weights on the remote were changed by someone else: we stop and do not overwrite."""

    def __init__(self, message: str, *, expected: Weights, found: Weights, commit: str | None) -> None:
        super().__init__(message)
        self.expected = expected
        self.found = found
        self.commit = commit


class DiscoveryError(GitopsError):
    """Rollout specs could not be discovered: the repo cannot be read, or ``--path`` is not one of
    its directories."""
