"""What can go wrong in Git plumbing: one hierarchy, named for what failed.

::

    GitopsError                 anything this package raises
    ├── GitError                a Git operation failed (clone, fetch, push, ls-remote, the lock):
    │   ├── PushRejectedError   the remote branch moved meanwhile (retried on the new head)
    │   └── BranchProtectedError  the server refuses direct pushes to the branch (not retried)
    ├── RepoFileError           a file on the branch cannot be read or edited (missing, a symbolic
    │   │                       link, not UTF-8, malformed, bad weights): a person must fix it
    │   └── ManifestError       a Kubernetes manifest without the images we need
    ├── HumanOverrideError      someone else changed the weights: we stop and do not overwrite
    └── DiscoveryError          rollout specs cannot be discovered in a repo
    CredentialError             a configured key or token cannot be used (a ValueError: the
                                spec's or the flags' fault, found before any Git operation)
    RemoteUrlError              a remote URL that is refused (credentials in it, a remote helper)
    SigningError                a signing key that cannot sign (a ValueError: found at start-up)

The branches are siblings, so a caller handles each for its own reason, in any order (the controller
backs off on a ``GitError``, reports a ``RepoFileError`` once, adopts a ``HumanOverrideError``).
Every message names the file or the remote (redacted) and what failed; none carries a credential.
"""

from __future__ import annotations

from rollouts.routes import Weights


class GitopsError(RuntimeError):
    """Anything the Git plumbing raises; the message names the remote (redacted) or the file."""


class GitError(GitopsError):
    """A Git operation that failed (clone, fetch, push, ls-remote, or the workspace's lock): worth
    retrying later; the message names the remote (redacted), the branch and what failed."""


class PushRejectedError(GitError):
    """The remote refused our push because its branch moved (retryable)."""


class BranchProtectedError(GitError):
    """The remote refuses direct pushes to the branch (protected, or a pre-receive hook said no)."""


class RepoFileError(GitopsError):
    """A route, canary or GA file on the branch that cannot be read or edited: missing, a symbolic
    link, not UTF-8, malformed YAML, bad weights, an unknown subset. Retrying does not help; the
    message names the file (and route, entry or commit)."""


class ManifestError(RepoFileError):
    """A Kubernetes manifest that cannot be read for its container images; the message names the file."""


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


class CredentialError(ValueError):
    """A configured credential that cannot be used (missing file, empty token)."""


class RemoteUrlError(ValueError):
    """A Git remote URL we refuse before Git sees it; the message names the setting, redacted."""


class SigningError(ValueError):
    """A signing key that cannot sign; the message names the setting and the key, never its content."""
